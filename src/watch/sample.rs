//! What the watcher reports: the targets it watches, one interval's usage
//! summed over them ([`ServerSample`]), the events it saw ([`ServerEvent`])
//! and the server's limits ([`Allotment`]). Plain data, shared by the
//! readers, the sampler and the summary.

use std::path::PathBuf;

use serde::Serialize;

use super::proc::HotThread;

/// One thing to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    Pid(u32),
    Cgroup(PathBuf),
    Docker(String),
}

impl WatchTarget {
    /// Human label used in events: "pid 123", "cgroup /sys/...", "docker NAME".
    pub fn label(&self) -> String {
        match self {
            WatchTarget::Pid(pid) => format!("pid {pid}"),
            WatchTarget::Cgroup(path) => format!("cgroup {}", path.display()),
            WatchTarget::Docker(name) => format!("docker {name}"),
        }
    }
}

/// Usage over one interval, summed over the targets still being watched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerSample {
    /// Seconds since the run started.
    pub t_s: f64,
    pub cpu_cores: f64,
    pub memory_mb: f64,
    /// Sum over pid targets (`None` without one).
    pub threads: Option<u32>,
    pub fds: Option<u32>,
    /// Busiest thread over all pid targets.
    pub hot_thread: Option<HotThread>,
    /// Highest ratio over cgroup/docker targets.
    pub throttled_ratio: Option<f64>,
    pub swap_mb: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    OomKill,
    Restart,
    ProcessGone,
    SwapInUse,
    /// A target could not be read (e.g. Docker unreachable); retried.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerEvent {
    pub t_s: f64,
    pub kind: EventKind,
    pub target: String,
    pub detail: String,
}

/// The server's limits, summed over targets that have one.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct Allotment {
    pub cpu_cores: Option<f64>,
    pub memory_mb: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum WatchMessage {
    Allotment(Allotment),
    Sample(ServerSample),
    Event(ServerEvent),
}
