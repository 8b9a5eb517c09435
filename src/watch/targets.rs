//! One watch target's state and reading: the baseline kept between ticks,
//! the per-kind readers (pid, cgroup, Docker feed) that turn a read into a
//! `Reading` plus events, and the background poller for each container.
//! Failures never escape: `Gone` retires the target, anything else is one
//! `Unavailable` event until the target reads again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::cgroup::{CgroupSnapshot, cgroup_delta, read_cgroup};
use super::docker::{DockerClient, DockerSnapshot, docker_events, docker_sample};
use super::proc::{HotThread, ProcSnapshot, proc_delta, read_proc};
use super::sample::{Allotment, EventKind, WatchTarget};
use super::{WatchError, bytes_to_mb};

pub(crate) type DockerFeed = watch::Receiver<Option<Result<DockerSnapshot, WatchError>>>;

pub(crate) enum Source {
    Pid {
        pid: u32,
        prev: Option<(ProcSnapshot, Instant)>,
    },
    Cgroup {
        path: PathBuf,
        prev: Option<(CgroupSnapshot, Instant)>,
    },
    Docker {
        name: String,
        feed: Option<DockerFeed>,
        last: Option<DockerSnapshot>,
    },
}

pub(crate) struct TargetState {
    pub(crate) label: String,
    pub(crate) source: Source,
    pub(crate) active: bool,
    pub(crate) failing: bool,
    pub(crate) swap_reported: bool,
    pub(crate) limits: Allotment,
}

/// One target's contribution to a sample.
#[derive(Default)]
pub(crate) struct Reading {
    pub(crate) cpu_cores: Option<f64>,
    pub(crate) memory_mb: Option<f64>,
    pub(crate) threads: Option<u32>,
    pub(crate) fds: Option<u32>,
    pub(crate) hot_thread: Option<HotThread>,
    pub(crate) throttled_ratio: Option<f64>,
    pub(crate) swap_mb: Option<f64>,
    pub(crate) events: Vec<(EventKind, String)>,
}

pub(crate) fn new_state(target: WatchTarget) -> TargetState {
    let label = target.label();
    let source = match target {
        WatchTarget::Pid(pid) => Source::Pid { pid, prev: None },
        WatchTarget::Cgroup(path) => Source::Cgroup { path, prev: None },
        WatchTarget::Docker(name) => Source::Docker {
            name,
            feed: None,
            last: None,
        },
    };
    TargetState {
        label,
        source,
        active: true,
        failing: false,
        swap_reported: false,
        limits: Allotment::default(),
    }
}

/// Reads one target and turns failures into events (never an error).
pub(crate) async fn observe(state: &mut TargetState, tps: u64) -> Reading {
    let result = match &mut state.source {
        Source::Pid { pid, prev } => observe_pid(*pid, prev, tps).await,
        Source::Cgroup { path, prev } => observe_cgroup(path, prev, &mut state.limits).await,
        Source::Docker { feed, last, .. } => observe_docker(feed, last, &mut state.limits),
    };
    let mut reading = match result {
        Ok(r) => {
            state.failing = false;
            r
        }
        Err(e) if e.is_gone() => {
            state.active = false;
            Reading {
                events: vec![(EventKind::ProcessGone, e.to_string())],
                ..Reading::default()
            }
        }
        Err(e) => {
            let mut r = Reading::default();
            if !state.failing {
                r.events.push((EventKind::Unavailable, e.to_string()));
            }
            state.failing = true;
            r
        }
    };
    if let Some(swap) = reading.swap_mb.filter(|s| *s > 0.0 && !state.swap_reported) {
        state.swap_reported = true;
        reading
            .events
            .push((EventKind::SwapInUse, format!("{swap:.1} MiB swapped out")));
    }
    reading
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WatchError> + Send + 'static,
) -> Result<T, WatchError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(WatchError::Io {
            path: "(blocking read task)".into(),
            msg: e.to_string(),
        })
    })
}

async fn observe_pid(pid: u32, prev: &mut Option<(ProcSnapshot, Instant)>, tps: u64) -> Result<Reading, WatchError> {
    let cur = blocking(move || read_proc(pid)).await?;
    let now = Instant::now();
    if prev.as_ref().is_some_and(|(p, _)| p.starttime != cur.starttime) {
        return Err(WatchError::Gone {
            what: format!("process {pid} (pid reused by {:?})", cur.comm),
        });
    }
    let reading = match prev.as_ref() {
        Some((p, at)) => {
            let s = proc_delta(p, &cur, now.duration_since(*at), tps);
            Reading {
                cpu_cores: Some(s.cpu_cores),
                memory_mb: Some(s.rss_mb),
                threads: Some(s.threads),
                fds: s.fds,
                hot_thread: s.hot_thread,
                swap_mb: Some(s.swap_mb),
                ..Reading::default()
            }
        }
        None => Reading {
            memory_mb: Some(bytes_to_mb(cur.rss_bytes)),
            threads: Some(cur.threads),
            fds: cur.fds,
            swap_mb: Some(bytes_to_mb(cur.swap_bytes)),
            ..Reading::default()
        },
    };
    *prev = Some((cur, now));
    Ok(reading)
}

async fn observe_cgroup(
    path: &Path,
    prev: &mut Option<(CgroupSnapshot, Instant)>,
    limits: &mut Allotment,
) -> Result<Reading, WatchError> {
    let dir = path.to_path_buf();
    let cur = blocking(move || read_cgroup(&dir)).await?;
    let now = Instant::now();
    let (base, at) = prev.take().unwrap_or_else(|| (cur.clone(), now));
    let s = cgroup_delta(&base, &cur, now.duration_since(at));
    *limits = Allotment {
        cpu_cores: s.cpu_limit_cores,
        memory_mb: s.memory_limit_mb,
    };
    let mut events = Vec::new();
    if s.new_oom_kills > 0 {
        let limit = s.memory_limit_mb.map_or("unlimited".into(), |m| format!("{m:.0} MiB"));
        events.push((
            EventKind::OomKill,
            format!(
                "{} new oom_kill(s) in the cgroup (memory limit {limit})",
                s.new_oom_kills
            ),
        ));
    }
    *prev = Some((cur, now));
    Ok(Reading {
        cpu_cores: s.cpu_cores,
        memory_mb: s.memory_mb,
        throttled_ratio: Some(s.throttled_ratio),
        swap_mb: s.swap_mb,
        events,
        ..Reading::default()
    })
}

/// Uses the poller's latest result; a new one may carry state-change events.
fn observe_docker(
    feed: &mut Option<DockerFeed>,
    last: &mut Option<DockerSnapshot>,
    limits: &mut Allotment,
) -> Result<Reading, WatchError> {
    let mut events = Vec::new();
    let latest = match feed.as_mut().map(|rx| (rx.has_changed(), rx)) {
        Some((Ok(true), rx)) => rx.borrow_and_update().clone(),
        // The poller ended (container gone): its last value is still unseen.
        Some((Err(_), rx)) => {
            let last_value = rx.borrow_and_update().clone();
            *feed = None;
            last_value
        }
        _ => None,
    };
    match latest {
        Some(Ok(snap)) => {
            if let Some(prev) = last.as_ref() {
                events = docker_events(&prev.info, &snap.info);
            }
            *last = Some(snap);
        }
        Some(Err(e)) => return Err(e),
        None => {}
    }
    let Some(snap) = last.as_ref() else {
        return Ok(Reading::default());
    };
    let s = docker_sample(snap);
    *limits = Allotment {
        cpu_cores: s.cpu_limit_cores,
        memory_mb: s.memory_limit_mb,
    };
    Ok(Reading {
        cpu_cores: Some(s.cpu_cores),
        memory_mb: Some(s.memory_mb),
        throttled_ratio: s.running.then_some(s.throttled_ratio),
        events,
        ..Reading::default()
    })
}

/// Background task polling one container until cancelled or it is gone.
pub(crate) struct Poller {
    pub(crate) socket: String,
    pub(crate) name: String,
    pub(crate) pause: Duration,
    pub(crate) cancel: CancellationToken,
}

pub(crate) type DockerResult = Option<Result<DockerSnapshot, WatchError>>;

impl Poller {
    pub(crate) async fn run(self, tx: watch::Sender<DockerResult>) {
        let mut client: Option<DockerClient> = None;
        loop {
            let fetch = async {
                let c = match client.take() {
                    Some(c) => c,
                    None => DockerClient::connect(&self.socket)?,
                };
                let snap = c.snapshot(&self.name).await;
                client = Some(c);
                snap
            };
            let result = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = fetch => r,
            };
            let pause = if result.is_ok() {
                self.pause
            } else {
                self.pause.max(Duration::from_secs(1))
            };
            let gone = result.as_ref().is_err_and(WatchError::is_gone);
            if tx.send(Some(result)).is_err() || gone {
                return;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
