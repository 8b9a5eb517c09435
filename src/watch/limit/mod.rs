//! Setting the server's CPU limit for `capacity --cpus`, and always putting
//! the original back.
//!
//! This module owns [`CpuLimiter`]: what was there before, how a limit is
//! applied, and the restore. How depends on what is watched:
//! - a container (`--watch-docker`): the Engine API's container update;
//! - a cgroup directory (`--watch-cgroup`): its `cpu.max` (v2) or
//!   `cpu.cfs_quota_us`/`cpu.cfs_period_us` (v1);
//! - a process (`--watch-pid`, the mock child): a cgroup created for it where
//!   the cpu controller is writable, else CPU affinity of every thread to the
//!   first K cores (whole cores only), re-applied every second.
//!
//! The restore runs explicitly on the async path ([`CpuLimiter::restore`])
//! and, as a guard, from `Drop` (panic, early error) if it has not yet.

pub mod affinity;
pub mod docker;
mod error;
pub mod placement;
pub mod quota;

pub use error::LimitError;

use crate::watch::DockerClient;
use affinity::Affinity;
use docker::DockerCpu;
use placement::Placement;
use quota::{CpuQuota, QuotaFiles};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the affinity fallback re-applies the mask to new threads.
pub const AFFINITY_REFRESH: Duration = Duration::from_secs(1);

/// What to limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitTarget {
    Docker { name: String, socket: String },
    Cgroup(PathBuf),
    Pid(u32),
}

/// A limit in force.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The cores the server can really use (whole cores with affinity).
    pub cores: f64,
    /// What was written, in operators' words.
    pub how: String,
}

enum How {
    Cgroup {
        dir: PathBuf,
        files: QuotaFiles,
        original: CpuQuota,
    },
    Placed {
        placement: Placement,
        original: Option<f64>,
    },
    Affinity {
        affinity: Affinity,
        keeper: Option<CancellationToken>,
    },
    Docker {
        client: DockerClient,
        socket: String,
        name: String,
        original: DockerCpu,
    },
}

/// Sets and restores one server's CPU limit. See the module docs.
pub struct CpuLimiter {
    /// Counted in [`held`] while alive.
    _held: Held,
    how: How,
    /// Why the preferred way was not used (affinity fallback), if so.
    pub fallback_reason: Option<String>,
    restored: bool,
}

/// Limiters alive in this process: a second Ctrl-C waits (briefly) for
/// them to put the server's limit back before the process exits.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// How many CPU limits this process has changed and not yet restored.
pub fn held() -> usize {
    HELD.load(Ordering::SeqCst)
}

/// One count in [`HELD`], for as long as a limiter lives.
#[derive(Debug)]
struct Held;

impl Held {
    fn new() -> Held {
        HELD.fetch_add(1, Ordering::SeqCst);
        Held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CpuLimiter {
    /// Reads the current limit and gets ready to change it (for a process:
    /// creates its cgroup and moves it in, with no quota yet).
    pub async fn prepare(target: &LimitTarget) -> Result<CpuLimiter, LimitError> {
        let (how, fallback_reason) = match target {
            LimitTarget::Cgroup(path) => {
                let (dir, files) = quota::quota_dir(path).ok_or_else(|| {
                    LimitError::Unsupported(format!(
                        "{} has no CPU quota file (cpu.max or cpu.cfs_quota_us)",
                        path.display()
                    ))
                })?;
                let original = quota::read_quota(&dir, files)?;
                (How::Cgroup { dir, files, original }, None)
            }
            LimitTarget::Pid(pid) => prepare_pid(*pid)?,
            LimitTarget::Docker { name, socket } => {
                let client = DockerClient::connect(socket).map_err(|e| LimitError::Docker(e.to_string()))?;
                let inspect = client
                    .inspect(name)
                    .await
                    .map_err(|e| LimitError::Docker(e.to_string()))?;
                let how = How::Docker {
                    client,
                    socket: socket.clone(),
                    name: name.clone(),
                    original: DockerCpu::of_inspect(&inspect),
                };
                (how, None)
            }
        };
        Ok(CpuLimiter {
            _held: Held::new(),
            how,
            fallback_reason,
            restored: false,
        })
    }

    /// The limit in force before (cores; `None` = unlimited or unknown).
    pub fn original_cores(&self) -> Option<f64> {
        match &self.how {
            How::Cgroup { original, .. } => original.cores(),
            How::Placed { original, .. } => *original,
            How::Affinity { affinity, .. } => Some(affinity.process.len() as f64),
            How::Docker { original, .. } => original.cores(),
        }
    }

    /// How limits are set, in operators' words.
    pub fn method(&self) -> String {
        match &self.how {
            How::Cgroup { dir, files, .. } => format!("{} of {}", files_name(*files), dir.display()),
            How::Placed { placement, .. } => format!(
                "{} of {}, a cgroup created for pid {}",
                files_name(placement.mount.files),
                placement.created.display(),
                placement.pid
            ),
            How::Affinity { affinity, .. } => format!(
                "CPU affinity of every thread of pid {} (whole cores only, re-applied every second)",
                affinity.pid
            ),
            How::Docker { name, original, .. } => match original.nano_cpus {
                n if n > 0 => format!("Docker update of {name} (NanoCpus)"),
                _ => format!("Docker update of {name} (CpuQuota/CpuPeriod)"),
            },
        }
    }

    /// Limits the server to `cores`.
    pub async fn set(&mut self, cores: f64) -> Result<Applied, LimitError> {
        if !(cores.is_finite() && cores > 0.0) {
            return Err(LimitError::Unsupported(format!("{cores} is not a CPU allotment")));
        }
        self.restored = false;
        match &mut self.how {
            How::Cgroup { dir, files, original } => {
                let q = CpuQuota::for_cores(cores, original.period_us);
                quota::write_quota(dir, *files, &q)?;
                Ok(applied(&q, dir))
            }
            How::Placed { placement, .. } => {
                let q = CpuQuota::for_cores(cores, quota::DEFAULT_PERIOD_US);
                quota::write_quota(&placement.created, placement.mount.files, &q)?;
                Ok(applied(&q, &placement.created))
            }
            How::Affinity { affinity, keeper } => {
                let k = affinity::whole_cores(cores, affinity.process.len());
                let mask = affinity.first(k);
                let threads = affinity.apply(&mask)?;
                if let Some(old) = keeper.take() {
                    old.cancel();
                }
                *keeper = Some(keep_applying(affinity.clone(), mask.clone()));
                let whole = if (k as f64 - cores).abs() > f64::EPSILON {
                    format!(" (affinity gives whole cores only: {cores} → {k})")
                } else {
                    String::new()
                };
                Ok(Applied {
                    cores: k as f64,
                    how: format!("{threads} threads pinned to cores {mask:?}{whole}"),
                })
            }
            How::Docker {
                client, name, original, ..
            } => {
                let body = original.limit_body(cores);
                let how = describe_body(&body);
                client
                    .update(name, body)
                    .await
                    .map_err(|e| LimitError::Docker(e.to_string()))?;
                Ok(Applied { cores, how })
            }
        }
    }

    /// Puts the original limit back (idempotent). Returns what was done.
    pub async fn restore(&mut self) -> Result<String, LimitError> {
        if let How::Docker {
            client, name, original, ..
        } = &self.how
        {
            if self.restored {
                return Ok(String::new());
            }
            let body = original.restore_body();
            let how = describe_body(&body);
            client
                .update(name, body)
                .await
                .map_err(|e| LimitError::Docker(e.to_string()))?;
            self.restored = true;
            return Ok(format!("{name}: {how}"));
        }
        self.restore_blocking()
    }

    /// The restore without an async runtime (used by `Drop`).
    fn restore_blocking(&mut self) -> Result<String, LimitError> {
        if self.restored {
            return Ok(String::new());
        }
        let done = match &mut self.how {
            How::Cgroup { dir, files, original } => {
                quota::write_quota(dir, *files, original)?;
                format!("{}: {}", dir.display(), original.describe())
            }
            How::Placed { placement, .. } => {
                placement.undo()?;
                format!(
                    "pid {} back in {}, {} removed",
                    placement.pid,
                    placement.original.display(),
                    placement.created.display()
                )
            }
            How::Affinity { affinity, keeper } => {
                if let Some(k) = keeper.take() {
                    k.cancel();
                }
                affinity.restore()?;
                format!("pid {}: every thread's original CPU affinity", affinity.pid)
            }
            How::Docker {
                socket, name, original, ..
            } => restore_docker_on_thread(socket.clone(), name.clone(), *original)?,
        };
        self.restored = true;
        Ok(done)
    }
}

impl Drop for CpuLimiter {
    fn drop(&mut self) {
        if self.restored {
            return;
        }
        match self.restore_blocking() {
            Ok(done) => eprintln!("CPU limit restored: {done}"),
            Err(e) => eprintln!("warning: could not restore the server's CPU limit: {e}"),
        }
    }
}

fn files_name(files: QuotaFiles) -> &'static str {
    match files {
        QuotaFiles::V2 => "cgroup v2 cpu.max",
        QuotaFiles::V1 => "cgroup v1 cpu.cfs_quota_us",
    }
}

fn applied(q: &CpuQuota, dir: &Path) -> Applied {
    Applied {
        cores: q.cores().unwrap_or(0.0),
        how: format!("{} in {}", q.describe(), dir.display()),
    }
}

fn describe_body(b: &bollard::models::ContainerUpdateBody) -> String {
    match (b.nano_cpus, b.cpu_quota, b.cpu_period) {
        (Some(n), _, _) => format!("NanoCpus {n}"),
        (None, Some(q), Some(p)) => format!("CpuQuota {q}, CpuPeriod {p}"),
        _ => "no CPU change".into(),
    }
}

/// A cgroup of its own for `pid`, else CPU affinity (with the reason).
fn prepare_pid(pid: u32) -> Result<(How, Option<String>), LimitError> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let placed = match placement::parse_mountinfo(&mounts) {
        Some(mount) => Placement::create(pid, mount, Path::new("/proc")),
        None => Err(LimitError::Unsupported(
            "no cgroup hierarchy with the cpu controller is mounted".into(),
        )),
    };
    match placed {
        Ok(placement) => {
            let original = quota::quota_dir(&placement.original)
                .and_then(|(dir, files)| quota::read_quota(&dir, files).ok())
                .and_then(|q| q.cores());
            Ok((How::Placed { placement, original }, None))
        }
        Err(reason) => {
            let affinity = Affinity::record(pid)?;
            let why = format!("cannot create a cgroup for pid {pid} ({reason}): using CPU affinity, whole cores only");
            Ok((How::Affinity { affinity, keeper: None }, Some(why)))
        }
    }
}

/// Re-applies `mask` every second until cancelled (new threads).
fn keep_applying(affinity: Affinity, mask: Vec<usize>) -> CancellationToken {
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(AFFINITY_REFRESH);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let (a, m) = (affinity.clone(), mask.clone());
                    let gone = tokio::task::spawn_blocking(move || a.apply(&m).is_err()).await.unwrap_or(true);
                    if gone {
                        return;
                    }
                }
            }
        }
    });
    token
}

/// The Docker restore from synchronous code: its own thread and runtime.
fn restore_docker_on_thread(socket: String, name: String, original: DockerCpu) -> Result<String, LimitError> {
    let job = std::thread::spawn(move || -> Result<String, LimitError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LimitError::Docker(e.to_string()))?;
        rt.block_on(async {
            let client = DockerClient::connect(&socket).map_err(|e| LimitError::Docker(e.to_string()))?;
            let body = original.restore_body();
            let how = describe_body(&body);
            client
                .update(&name, body)
                .await
                .map_err(|e| LimitError::Docker(e.to_string()))?;
            Ok(format!("{name}: {how}"))
        })
    });
    job.join()
        .unwrap_or_else(|_| Err(LimitError::Docker("the restore thread panicked".into())))
}

#[cfg(test)]
mod tests;
