//! `--watch-docker NAME`: the container's CPU limit through the Engine
//! API's container update. Owns the pure mapping from the container's
//! `HostConfig` to the update bodies that set and restore a limit.
//!
//! Docker refuses to mix `NanoCpus` with `CpuQuota`/`CpuPeriod` on update
//! and ignores zeros (a `NanoCpus` limit can never be lifted), so: a
//! container created with `--cpus` is limited and restored through
//! `NanoCpus`; any other through `CpuQuota`/`CpuPeriod`, restored to its
//! own quota or to -1 (unlimited).

use bollard::models::ContainerUpdateBody;
use serde_json::Value;

use super::quota::{DEFAULT_PERIOD_US, MIN_QUOTA_US};

/// A container's CPU settings (`HostConfig`), zeros as Docker stores them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DockerCpu {
    pub nano_cpus: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
}

impl DockerCpu {
    /// From inspect JSON (object or the CLI's one-element array).
    pub fn of_inspect(v: &Value) -> DockerCpu {
        let v = match v {
            Value::Array(items) => items.first().unwrap_or(&Value::Null),
            other => other,
        };
        let field = |k: &str| {
            v.pointer(&format!("/HostConfig/{k}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        DockerCpu {
            nano_cpus: field("NanoCpus"),
            cpu_quota: field("CpuQuota"),
            cpu_period: field("CpuPeriod"),
        }
    }

    /// The limit in cores (`None` = unlimited).
    pub fn cores(&self) -> Option<f64> {
        if self.nano_cpus > 0 {
            Some(self.nano_cpus as f64 / 1e9)
        } else if self.cpu_quota > 0 {
            Some(self.cpu_quota as f64 / self.period() as f64)
        } else {
            None
        }
    }

    fn period(&self) -> i64 {
        if self.cpu_period > 0 {
            self.cpu_period
        } else {
            DEFAULT_PERIOD_US as i64
        }
    }

    /// The update that limits the container to `cores`.
    pub fn limit_body(&self, cores: f64) -> ContainerUpdateBody {
        if self.nano_cpus > 0 {
            ContainerUpdateBody {
                nano_cpus: Some((cores * 1e9).round() as i64),
                ..ContainerUpdateBody::default()
            }
        } else {
            let period = self.period();
            ContainerUpdateBody {
                cpu_period: Some(period),
                cpu_quota: Some(((cores * period as f64).round() as i64).max(MIN_QUOTA_US as i64)),
                ..ContainerUpdateBody::default()
            }
        }
    }

    /// The update that puts the original setting back.
    pub fn restore_body(&self) -> ContainerUpdateBody {
        if self.nano_cpus > 0 {
            ContainerUpdateBody {
                nano_cpus: Some(self.nano_cpus),
                ..ContainerUpdateBody::default()
            }
        } else {
            ContainerUpdateBody {
                cpu_period: Some(self.period()),
                cpu_quota: Some(if self.cpu_quota > 0 { self.cpu_quota } else { -1 }),
                ..ContainerUpdateBody::default()
            }
        }
    }
}
