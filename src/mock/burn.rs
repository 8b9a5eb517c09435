//! Real CPU work for the mock, so a watched mock-server process shows CPU
//! that rises with load like a real server's. Each answer stage burns a
//! fixed amount of CPU time in a busy loop that measures its own thread's
//! CPU clock (so preemption does not shorten the work), either on tokio's
//! blocking pool (spreads over cores) or on one dedicated thread named
//! `mock-burner` (a single hot thread, like an event loop doing VAD).

use std::sync::mpsc as std_mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;

/// Where the burn runs; written `pool` or `single`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BurnThreads {
    /// tokio's blocking pool: many threads, many cores.
    #[default]
    Pool,
    /// One dedicated thread: a single hot thread.
    Single,
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is
    // supported on Linux. On failure `ts` stays zero and the loop ends by
    // its wall-clock bound below.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Spins until this thread has used `amount` of CPU (at most 10× that in
/// wall time, so a starved thread cannot spin forever).
pub fn burn(amount: Duration) {
    let start = thread_cpu();
    let wall = std::time::Instant::now();
    let mut x = 0u64;
    while thread_cpu().saturating_sub(start) < amount && wall.elapsed() < amount * 10 {
        for i in 0..1000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
    }
}

type Job = (Duration, oneshot::Sender<()>);

/// The single burner thread's queue (started on first use).
fn single() -> &'static Mutex<std_mpsc::Sender<Job>> {
    static TX: OnceLock<Mutex<std_mpsc::Sender<Job>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = std_mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new().name("mock-burner".into()).spawn(move || {
            while let Ok((amount, done)) = rx.recv() {
                burn(amount);
                let _ = done.send(());
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the mock's burner thread: {e}");
        }
        Mutex::new(tx)
    })
}

/// Burns `amount` of CPU where `threads` says, without blocking the runtime.
pub async fn burn_cpu(amount: Duration, threads: BurnThreads) {
    if amount.is_zero() {
        return;
    }
    match threads {
        BurnThreads::Pool => {
            let _ = tokio::task::spawn_blocking(move || burn(amount)).await;
        }
        BurnThreads::Single => {
            let (tx, rx) = oneshot::channel();
            let sent = single().lock().map(|q| q.send((amount, tx)).is_ok()).unwrap_or(false);
            if sent {
                let _ = rx.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_uses_about_the_asked_cpu_time() {
        let before = thread_cpu();
        burn(Duration::from_millis(30));
        let used = thread_cpu() - before;
        assert!(used >= Duration::from_millis(30), "{used:?}");
    }
}
