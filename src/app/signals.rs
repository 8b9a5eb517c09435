//! Stopping a run from outside: Ctrl-C (SIGINT), SIGTERM (`docker stop`,
//! Kubernetes, CI runners, `timeout`) and SIGHUP (a closed terminal) all
//! cancel one token, so the run stops new turns, winds down and still
//! writes every report marked `interrupted`. A second signal exits with
//! 130 at once, or, while `capacity --cpus` has the server's CPU limit
//! changed, as soon as that limit is back (at most 10 s; a third signal
//! does not wait).

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The exit code of an interrupted command.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The signals that interrupt a run, with the name shown on the console.
const SIGNALS: [(SignalKind, &str); 3] = [
    (SignalKind::interrupt(), "Ctrl-C"),
    (SignalKind::terminate(), "SIGTERM"),
    (SignalKind::hangup(), "SIGHUP"),
];

/// Installs the handlers now (so a signal that arrives before the run
/// starts is not lost to the default action) and returns the token they
/// cancel. Must be called inside the tokio runtime.
pub fn interrupt_token() -> CancellationToken {
    token_saying("stopping new turns and writing the reports")
}

/// [`interrupt_token`] for a server (`mock-server`): the signal stops it.
pub fn stop_token() -> CancellationToken {
    token_saying("stopping the server")
}

fn token_saying(what: &'static str) -> CancellationToken {
    let token = CancellationToken::new();
    let mut streams: Vec<(Signal, &'static str)> = Vec::new();
    for (kind, name) in SIGNALS {
        match signal(kind) {
            Ok(s) => streams.push((s, name)),
            Err(e) => tracing::warn!("cannot handle {name}: {e}"),
        }
    }
    let t = token.clone();
    tokio::spawn(async move {
        let Some(name) = next_signal(&mut streams).await else {
            return;
        };
        eprintln!("\n{name}: {what} ({name} again to stop at once)");
        tracing::info!(signal = name, "interrupted");
        t.cancel();
        if let Some(again) = next_signal(&mut streams).await {
            if crate::watch::limit::held() > 0 {
                eprintln!(
                    "{again} again: putting the server's CPU limit back first (at most {} s; {again} once more to stop now)",
                    RESTORE_WAIT.as_secs()
                );
                tokio::select! {
                    _ = limits_restored() => {}
                    _ = tokio::time::sleep(RESTORE_WAIT) => {
                        eprintln!("warning: the server's CPU limit may not be restored: check it");
                    }
                    _ = next_signal(&mut streams) => {
                        eprintln!("warning: stopped before the server's CPU limit was restored: check it");
                    }
                }
            } else {
                eprintln!("{again} again: stopping at once");
            }
            std::process::exit(EXIT_INTERRUPTED);
        }
    });
    token
}

/// How long a second signal waits for `capacity --cpus` to put the
/// server's original CPU limit back.
const RESTORE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves once no CPU limit set by this process is left unrestored.
async fn limits_restored() {
    while crate::watch::limit::held() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits for any of the signals; `None` if none could be installed.
async fn next_signal(streams: &mut [(Signal, &'static str)]) -> Option<&'static str> {
    if streams.is_empty() {
        return None;
    }
    let waits = streams.iter_mut().map(|(s, name)| {
        let name: &'static str = name;
        Box::pin(async move {
            s.recv().await;
            name
        })
    });
    let (name, _, _) = futures_util::future::select_all(waits).await;
    Some(name)
}
