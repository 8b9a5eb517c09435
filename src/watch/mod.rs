//! Server-side resource watching: what the xiaozhi Server container (or
//! process, or cgroup) uses while the fleet load runs, so an operator can tell
//! whether its CPU/memory allotment is enough.
//!
//! This file owns the shared error type and the unit constants. The readers
//! live in `proc` (a pid), `cgroup` (a cgroup v1/v2 directory) and `docker`
//! (a container through the Docker API); `sampler` turns them into one
//! per-interval `ServerSample` stream plus `ServerEvent`s (the data in
//! `sample`), `summary` sums a run up;
//! `limit` sets (and restores) the server's CPU limit for `capacity --cpus`.
//!
//! All parsing is done by pure functions over file contents / JSON values so
//! the tests can drive them with fixtures of real kernel and Docker output.

pub mod cgroup;
pub mod docker;
pub mod limit;
pub mod proc;
pub mod sample;
pub mod sampler;
pub mod series;
pub mod summary;
mod targets;

pub use cgroup::{CgroupSample, CgroupSnapshot, cgroup_delta, read_cgroup};
pub use docker::{ContainerInfo, ContainerStats, DockerClient, DockerSample, DockerSnapshot};
pub use proc::{HotThread, ProcSample, ProcSnapshot, proc_delta, read_proc};
pub use sample::{Allotment, EventKind, ServerEvent, ServerSample, WatchMessage, WatchTarget};
pub use sampler::{Watcher, run_watcher};
pub use summary::{ServerSummary, Stats, summarize};

/// Bytes in one "MB" as reported everywhere in this module (MiB, like
/// `docker stats` and `top`).
pub const BYTES_PER_MB: f64 = 1024.0 * 1024.0;

/// Converts a byte count to MiB.
pub fn bytes_to_mb(bytes: u64) -> f64 {
    bytes as f64 / BYTES_PER_MB
}

/// Everything that can go wrong while reading a watch target.
///
/// The variants carry strings (not source errors) so the error is `Clone` and
/// can be passed between the Docker poller task and the sampler.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WatchError {
    /// The watched thing no longer exists: the pid exited (or is a zombie, or
    /// the pid was reused), the cgroup directory was removed, or the
    /// container was deleted.
    #[error("{what} is gone")]
    Gone { what: String },
    /// A file that should be readable could not be read.
    #[error("cannot read {path}: {msg}")]
    Io { path: String, msg: String },
    /// A file or JSON document did not have the expected format.
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
    /// The directory has neither CPU nor memory accounting files.
    #[error("{path} is not a cgroup directory (no cpu or memory accounting files)")]
    NotCgroup { path: String },
    /// The Docker daemon socket could not be used at all.
    #[error("cannot reach Docker at {socket}: {msg}")]
    DockerUnreachable { socket: String, msg: String },
    /// The Docker daemon answered with an error.
    #[error("Docker API error for {container}: {msg}")]
    Docker { container: String, msg: String },
}

impl WatchError {
    /// True for the `Gone` kind: the target will never come back.
    pub fn is_gone(&self) -> bool {
        matches!(self, WatchError::Gone { .. })
    }

    pub(crate) fn parse(what: impl Into<String>, detail: impl Into<String>) -> Self {
        WatchError::Parse {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
