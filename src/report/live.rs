//! Live progress while a run goes: a progress bar for the run (or stage
//! plan) with a redrawn block under it on a terminal, or a plain line every
//! few seconds when stderr is not a terminal (logs stay readable).

use super::text::render_status;
use crate::metrics::Snapshot;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tokio::sync::watch;

/// Plain-output interval when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The block under the bar: counts, rates, latency, stutter, failures.
pub fn render_block(s: &Snapshot) -> [String; 2] {
    let mut a = format!(
        "connected {} · talking {} · turns {:.1}/s · {} ok",
        s.connected, s.talking, s.turns_per_sec, s.completed
    );
    if let Some(p95) = s.first_audio_p95_ms {
        let _ = write!(a, " · p95 first audio (10 s) {p95:.0} ms");
    }
    if let Some(r) = s.stutter_ratio {
        let _ = write!(a, " · stutter {:.1}%", r * 100.0);
    }
    if let Some(lag) = s.send_lag_p99_ms {
        let _ = write!(a, " · send lag p99 {lag:.1} ms");
    }
    let mut b = if s.failures.is_empty() {
        "failures: none".to_string()
    } else {
        let kinds: Vec<String> = s.failures.iter().map(|(k, n)| format!("{}={n}", k.as_str())).collect();
        format!("failures: {}", kinds.join(" · "))
    };
    let _ = write!(
        b,
        " · interrupted {} · idle closed {} · missed arrivals {}",
        s.interrupted, s.idle_closed, s.missed_arrivals
    );
    [a, b]
}

/// Shows progress until the collector's last snapshot. `expected` is the
/// run's planned length, when known.
pub async fn show_progress(mut rx: watch::Receiver<Snapshot>, expected: Option<Duration>) {
    if !std::io::stderr().is_terminal() {
        return plain(rx, expected).await;
    }
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let bar = multi.add(match expected {
        Some(d) => ProgressBar::new(d.as_secs().max(1)),
        None => ProgressBar::new_spinner(),
    });
    let style = match expected {
        Some(_) => ProgressStyle::with_template("{bar:40.cyan/blue} {pos}s / {len}s {msg}"),
        None => ProgressStyle::with_template("{spinner} {elapsed} {msg}"),
    };
    if let Ok(style) = style {
        bar.set_style(style);
    }
    let lines = [
        multi.add(ProgressBar::new_spinner()),
        multi.add(ProgressBar::new_spinner()),
    ];
    for l in &lines {
        if let Ok(style) = ProgressStyle::with_template("  {msg}") {
            l.set_style(style);
        }
    }
    while rx.changed().await.is_ok() {
        let s = rx.borrow_and_update().clone();
        bar.set_position(s.elapsed.as_secs());
        bar.set_message(s.stage.clone().map(|st| format!("stage: {st}")).unwrap_or_default());
        for (line, text) in lines.iter().zip(render_block(&s)) {
            line.set_message(text);
        }
    }
    bar.finish();
    for l in &lines {
        l.finish();
    }
}

async fn plain(mut rx: watch::Receiver<Snapshot>, expected: Option<Duration>) {
    let mut last = Duration::ZERO;
    while rx.changed().await.is_ok() {
        let s = rx.borrow_and_update().clone();
        if s.elapsed >= last + PLAIN_EVERY {
            last = s.elapsed;
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}{}",
                plain_prefix(&s, expected),
                render_status(&s)
            );
        }
    }
}

/// The stage being measured and the time left, when known.
fn plain_prefix(s: &Snapshot, expected: Option<Duration>) -> String {
    let mut prefix = s.stage.as_ref().map_or(String::new(), |st| format!("{st} · "));
    if let Some(total) = expected {
        let left = total.saturating_sub(s.elapsed).as_secs();
        prefix.push_str(&format!("{left} s left · "));
    }
    prefix
}
