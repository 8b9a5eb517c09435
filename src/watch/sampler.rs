//! The server watcher: owns the list of watch targets (pids, cgroups,
//! containers), samples them every interval into one `ServerSample` (summed
//! over targets), emits `ServerEvent`s (OOM kill, restart, process gone, swap
//! in use, target unavailable) and reports the `Allotment` (limits). It never
//! errors out of a run: a failing target becomes an event.
//!
//! Docker targets are polled by a background task each (a two-cycle stats
//! call takes about a second), the sampler uses the latest result. Per-target
//! reading lives in `targets.rs`, the per-run summary in `summary.rs`.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::docker::DEFAULT_DOCKER_SOCKET;
use super::proc::clock_ticks_per_sec;
use super::targets::{Poller, Reading, Source, TargetState, new_state, observe};

use super::sample::{Allotment, ServerEvent, ServerSample, WatchMessage, WatchTarget};

/// How long `prime` waits for each container's first reading.
const DOCKER_FIRST_WAIT: Duration = Duration::from_secs(10);
/// Shortest sampling interval accepted.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Samples a fixed set of targets; see the module docs.
pub struct Watcher {
    start: Instant,
    targets: Vec<TargetState>,
    ticks_per_sec: u64,
    docker_socket: String,
    poll_pause: Duration,
    cancel: CancellationToken,
    /// Targets that gave CPU or memory at the last tick.
    last_read: usize,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Watcher {
    /// A watcher whose `t_s` counts from now.
    pub fn new(targets: Vec<WatchTarget>) -> Self {
        Self::with_start(targets, Instant::now())
    }

    /// A watcher whose `t_s` counts from `start` (the run's start).
    pub fn with_start(targets: Vec<WatchTarget>, start: Instant) -> Self {
        let targets = targets.into_iter().map(new_state).collect();
        Watcher {
            start,
            targets,
            ticks_per_sec: clock_ticks_per_sec(),
            docker_socket: DEFAULT_DOCKER_SOCKET.to_string(),
            poll_pause: Duration::from_millis(500),
            cancel: CancellationToken::new(),
            last_read: 0,
        }
    }

    /// Use another Docker socket than `/var/run/docker.sock`.
    pub fn docker_socket(mut self, socket: impl Into<String>) -> Self {
        self.docker_socket = socket.into();
        self
    }

    /// Pause between two Docker polls (each takes ~1 s itself).
    pub fn docker_poll_pause(mut self, pause: Duration) -> Self {
        self.poll_pause = pause;
        self
    }

    /// How many targets gave CPU or memory at the last tick (0: the sample
    /// of that tick says nothing and is not sent).
    pub fn last_read(&self) -> usize {
        self.last_read
    }

    /// Targets still being sampled.
    pub fn active_targets(&self) -> usize {
        self.targets.iter().filter(|t| t.active).count()
    }

    /// Limits known so far, summed over targets that have them.
    pub fn allotment(&self) -> Allotment {
        let sum = |f: fn(&Allotment) -> Option<f64>| {
            self.targets
                .iter()
                .filter_map(|t| f(&t.limits))
                .fold(None, |acc: Option<f64>, x| Some(acc.unwrap_or(0.0) + x))
        };
        Allotment {
            cpu_cores: sum(|a| a.cpu_cores),
            memory_mb: sum(|a| a.memory_mb),
        }
    }

    /// Takes the baseline readings (starting Docker pollers and waiting up to
    /// 10 s for their first results). Returns the events seen doing so.
    pub async fn prime(&mut self) -> Vec<ServerEvent> {
        self.start_pollers();
        let deadline = tokio::time::Instant::now() + DOCKER_FIRST_WAIT;
        for state in &mut self.targets {
            if let Source::Docker { feed: Some(rx), .. } = &mut state.source {
                let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
                rx.mark_changed();
            }
        }
        self.tick().await.1
    }

    /// Spawns a poller for each Docker target that has none yet.
    fn start_pollers(&mut self) {
        for state in &mut self.targets {
            if let Source::Docker {
                name,
                feed: feed @ None,
                ..
            } = &mut state.source
            {
                let (tx, rx) = watch::channel(None);
                let job = Poller {
                    socket: self.docker_socket.clone(),
                    name: name.clone(),
                    pause: self.poll_pause,
                    cancel: self.cancel.child_token(),
                };
                tokio::spawn(job.run(tx));
                *feed = Some(rx);
            }
        }
    }

    /// Reads every active target once; returns the summed sample and the
    /// events since the previous call.
    pub async fn tick(&mut self) -> (ServerSample, Vec<ServerEvent>) {
        let mut sample = ServerSample {
            t_s: 0.0,
            cpu_cores: 0.0,
            memory_mb: 0.0,
            threads: None,
            fds: None,
            hot_thread: None,
            throttled_ratio: None,
            swap_mb: None,
        };
        self.start_pollers();
        let mut events = Vec::new();
        let tps = self.ticks_per_sec;
        self.last_read = 0;
        for state in self.targets.iter_mut().filter(|t| t.active) {
            let reading = observe(state, tps).await;
            if reading.cpu_cores.is_some() || reading.memory_mb.is_some() {
                self.last_read += 1;
            }
            let t_s = self.start.elapsed().as_secs_f64();
            events.extend(reading.events.iter().map(|(kind, detail)| ServerEvent {
                t_s,
                kind: *kind,
                target: state.label.clone(),
                detail: detail.clone(),
            }));
            add_reading(&mut sample, reading);
        }
        sample.t_s = self.start.elapsed().as_secs_f64();
        (sample, events)
    }
}

fn add_opt<T: std::ops::Add<Output = T>>(acc: Option<T>, x: Option<T>) -> Option<T> {
    match (acc, x) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

fn add_reading(sample: &mut ServerSample, r: Reading) {
    sample.cpu_cores += r.cpu_cores.unwrap_or(0.0);
    sample.memory_mb += r.memory_mb.unwrap_or(0.0);
    sample.threads = add_opt(sample.threads, r.threads);
    sample.fds = add_opt(sample.fds, r.fds);
    sample.swap_mb = add_opt(sample.swap_mb, r.swap_mb);
    sample.throttled_ratio = match (sample.throttled_ratio, r.throttled_ratio) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if let Some(hot) = r.hot_thread
        && sample.hot_thread.as_ref().is_none_or(|h| hot.core_share > h.core_share)
    {
        sample.hot_thread = Some(hot);
    }
}

async fn send(tx: &mpsc::Sender<WatchMessage>, cancel: &CancellationToken, msg: WatchMessage) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        r = tx.send(msg) => r.is_ok(),
    }
}

/// Samples `targets` every `interval` until `cancel` fires (or the receiver
/// is dropped): first the baseline events and the `Allotment`, then per tick
/// its events and one `Sample` (none when no target could be read), plus a
/// new `Allotment` when limits change.
pub async fn run_watcher(
    targets: Vec<WatchTarget>,
    interval: Duration,
    cancel: CancellationToken,
    tx: mpsc::Sender<WatchMessage>,
) {
    run_watcher_with(Watcher::new(targets), interval, cancel, tx).await;
}

/// `run_watcher` with a configured `Watcher` (start time, Docker socket).
pub async fn run_watcher_with(
    mut watcher: Watcher,
    interval: Duration,
    cancel: CancellationToken,
    tx: mpsc::Sender<WatchMessage>,
) {
    let interval = interval.max(MIN_INTERVAL);
    let primed = tokio::select! {
        _ = cancel.cancelled() => return,
        events = watcher.prime() => events,
    };
    let mut allotment = watcher.allotment();
    let first = primed.into_iter().map(WatchMessage::Event);
    for msg in first.chain([WatchMessage::Allotment(allotment)]) {
        if !send(&tx, &cancel, msg).await {
            return;
        }
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (sample, events) = watcher.tick().await;
        let mut out: Vec<WatchMessage> = events.into_iter().map(WatchMessage::Event).collect();
        let now = watcher.allotment();
        if now != allotment {
            allotment = now;
            out.push(WatchMessage::Allotment(now));
        }
        // A tick where no target could be read (all gone or failing) has no
        // sample: zeros would drag the means down.
        if watcher.last_read() > 0 {
            out.push(WatchMessage::Sample(sample));
        }
        for msg in out {
            if !send(&tx, &cancel, msg).await {
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
