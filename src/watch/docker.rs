//! `--watch-docker NAME`: reads a container through the Docker Engine API
//! (bollard over the unix socket): limits, OOM/restart state from
//! `GET /containers/{id}/json` and usage from
//! `GET /containers/{id}/stats?stream=false` (two-cycle sample, so
//! `precpu_stats` is filled and one response gives a CPU rate).
//!
//! Owns the JSON → snapshot mapping, done by pure functions over
//! `serde_json::Value` (bollard's typed responses are converted to `Value`
//! first) so tests feed fixture JSON; and the container state-change events.

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{InspectContainerOptions, StatsOptionsBuilder};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

use super::sample::EventKind;
use super::{WatchError, bytes_to_mb};

/// Where Docker listens unless told otherwise.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Seconds bollard waits for one API call.
const DOCKER_TIMEOUT_SECS: u64 = 30;

/// What `docker inspect` tells about a container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    /// Name without the leading '/'.
    pub name: String,
    pub status: String,
    pub running: bool,
    /// Host pid of the container's init process while running.
    pub pid: Option<u32>,
    pub oom_killed: bool,
    pub restart_count: u64,
    /// From `HostConfig.NanoCpus`, else `CpuQuota / CpuPeriod`; `None` = unlimited.
    pub cpu_limit_cores: Option<f64>,
    /// `HostConfig.Memory`; `None` = unlimited.
    pub memory_limit_bytes: Option<u64>,
}

/// What one stats response tells (cumulative counters, `cur` and `pre`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerStats {
    pub cpu_total_ns: u64,
    pub precpu_total_ns: u64,
    pub system_ns: u64,
    pub presystem_ns: u64,
    pub online_cpus: u32,
    /// Usage minus inactive file cache, as `docker stats` shows it.
    pub memory_bytes: u64,
    pub memory_usage_bytes: u64,
    /// `memory_stats.limit` (host RAM when the container is unlimited).
    pub memory_stats_limit_bytes: Option<u64>,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
    pub pre_periods: u64,
    pub pre_throttled_periods: u64,
}

/// One inspect (+ stats while running).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DockerSnapshot {
    pub info: ContainerInfo,
    pub stats: Option<ContainerStats>,
}

/// What the container used over the stats response's own window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DockerSample {
    pub running: bool,
    pub cpu_cores: f64,
    /// Δthrottled / Δperiods within the response; 0.0 without a quota.
    pub throttled_ratio: f64,
    pub memory_mb: f64,
    pub memory_limit_mb: Option<f64>,
    pub cpu_limit_cores: Option<f64>,
}

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_u64()
}

fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_i64()
}

/// Maps `GET /containers/{id}/json` (or the CLI's one-element array).
pub fn parse_inspect(v: &Value) -> Result<ContainerInfo, WatchError> {
    let v = match v {
        Value::Array(items) => items
            .first()
            .ok_or_else(|| WatchError::parse("docker inspect", "empty array"))?,
        other => other,
    };
    let state = v
        .get("State")
        .filter(|s| s.is_object())
        .ok_or_else(|| WatchError::parse("docker inspect", "no State object"))?;
    let host = v.get("HostConfig").cloned().unwrap_or(Value::Null);
    let nano = i64_at(&host, &["NanoCpus"]).unwrap_or(0);
    let quota = i64_at(&host, &["CpuQuota"]).unwrap_or(0);
    let period = match i64_at(&host, &["CpuPeriod"]).unwrap_or(0) {
        p if p > 0 => p,
        _ => 100_000, // Docker's default CFS period.
    };
    let cpu_limit_cores = if nano > 0 {
        Some(nano as f64 / 1e9)
    } else if quota > 0 {
        Some(quota as f64 / period as f64)
    } else {
        None
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(ContainerInfo {
        id: text(v, "Id"),
        name: text(v, "Name").trim_start_matches('/').to_string(),
        status: text(state, "Status"),
        running: state.get("Running").and_then(Value::as_bool).unwrap_or(false),
        pid: u64_at(state, &["Pid"])
            .filter(|p| *p > 0)
            .and_then(|p| u32::try_from(p).ok()),
        oom_killed: state.get("OOMKilled").and_then(Value::as_bool).unwrap_or(false),
        restart_count: u64_at(v, &["RestartCount"]).unwrap_or(0),
        cpu_limit_cores,
        memory_limit_bytes: i64_at(&host, &["Memory"])
            .filter(|m| *m > 0)
            .and_then(|m| u64::try_from(m).ok()),
    })
}

/// Maps `GET /containers/{id}/stats?stream=false`.
pub fn parse_stats(v: &Value) -> Result<ContainerStats, WatchError> {
    let cpu = v
        .get("cpu_stats")
        .filter(|c| c.is_object())
        .ok_or_else(|| WatchError::parse("docker stats", "no cpu_stats object"))?;
    let pre = v.get("precpu_stats").cloned().unwrap_or(Value::Null);
    let mem = v.get("memory_stats").cloned().unwrap_or(Value::Null);
    let percpu = cpu
        .pointer("/cpu_usage/percpu_usage")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let online_cpus = u64_at(cpu, &["online_cpus"])
        .filter(|n| *n > 0)
        .or(u64::try_from(percpu).ok().filter(|n| *n > 0))
        .unwrap_or(1);
    let usage = u64_at(&mem, &["usage"]).unwrap_or(0);
    // Same rule as the docker CLI: v1 total_inactive_file, else v2 inactive_file.
    let inactive = u64_at(&mem, &["stats", "total_inactive_file"])
        .or_else(|| u64_at(&mem, &["stats", "inactive_file"]))
        .filter(|i| *i < usage)
        .unwrap_or(0);
    Ok(ContainerStats {
        cpu_total_ns: u64_at(cpu, &["cpu_usage", "total_usage"]).unwrap_or(0),
        precpu_total_ns: u64_at(&pre, &["cpu_usage", "total_usage"]).unwrap_or(0),
        system_ns: u64_at(cpu, &["system_cpu_usage"]).unwrap_or(0),
        presystem_ns: u64_at(&pre, &["system_cpu_usage"]).unwrap_or(0),
        online_cpus: u32::try_from(online_cpus).unwrap_or(u32::MAX),
        memory_bytes: usage - inactive,
        memory_usage_bytes: usage,
        memory_stats_limit_bytes: u64_at(&mem, &["limit"]),
        periods: u64_at(cpu, &["throttling_data", "periods"]).unwrap_or(0),
        throttled_periods: u64_at(cpu, &["throttling_data", "throttled_periods"]).unwrap_or(0),
        throttled_ns: u64_at(cpu, &["throttling_data", "throttled_time"]).unwrap_or(0),
        pre_periods: u64_at(&pre, &["throttling_data", "periods"]).unwrap_or(0),
        pre_throttled_periods: u64_at(&pre, &["throttling_data", "throttled_periods"]).unwrap_or(0),
    })
}

/// Builds a snapshot from inspect JSON and (if running) stats JSON.
pub fn docker_snapshot(inspect: &Value, stats: Option<&Value>) -> Result<DockerSnapshot, WatchError> {
    let info = parse_inspect(inspect)?;
    let stats = match stats {
        Some(s) if info.running => Some(parse_stats(s)?),
        _ => None,
    };
    Ok(DockerSnapshot { info, stats })
}

/// CPU rate like `docker stats`: Δcontainer / Δsystem × online CPUs.
pub fn docker_sample(snap: &DockerSnapshot) -> DockerSample {
    let info = &snap.info;
    let (cpu_cores, throttled_ratio, memory_mb) = match &snap.stats {
        Some(s) => {
            let cpu_delta = s.cpu_total_ns.saturating_sub(s.precpu_total_ns) as f64;
            let sys_delta = s.system_ns.saturating_sub(s.presystem_ns) as f64;
            let cores = if sys_delta > 0.0 && s.presystem_ns > 0 {
                cpu_delta / sys_delta * f64::from(s.online_cpus)
            } else {
                0.0
            };
            let periods = s.periods.saturating_sub(s.pre_periods);
            let throttled = s.throttled_periods.saturating_sub(s.pre_throttled_periods);
            let ratio = crate::metrics::ratio(throttled, periods).min(1.0);
            (cores, ratio, bytes_to_mb(s.memory_bytes))
        }
        None => (0.0, 0.0, 0.0),
    };
    DockerSample {
        running: info.running,
        cpu_cores,
        throttled_ratio,
        memory_mb,
        memory_limit_mb: info.memory_limit_bytes.map(bytes_to_mb),
        cpu_limit_cores: info.cpu_limit_cores,
    }
}

/// State changes between two inspects worth telling the operator about.
pub fn docker_events(prev: &ContainerInfo, cur: &ContainerInfo) -> Vec<(EventKind, String)> {
    let mut events = Vec::new();
    if cur.oom_killed && !prev.oom_killed {
        events.push((
            EventKind::OomKill,
            format!(
                "container OOM-killed (status {}, memory limit {:?} bytes)",
                cur.status, cur.memory_limit_bytes
            ),
        ));
    }
    if cur.restart_count > prev.restart_count {
        events.push((
            EventKind::Restart,
            format!("RestartCount {} -> {}", prev.restart_count, cur.restart_count),
        ));
    } else if prev.running && cur.running && prev.pid != cur.pid {
        events.push((
            EventKind::Restart,
            format!("container pid {:?} -> {:?}", prev.pid, cur.pid),
        ));
    }
    if prev.running && !cur.running {
        events.push((
            EventKind::ProcessGone,
            format!("container stopped (status {})", cur.status),
        ));
    }
    events
}

/// A Docker API connection for one socket.
#[derive(Debug, Clone)]
pub struct DockerClient {
    docker: Docker,
    socket: String,
}

impl DockerClient {
    /// Connects (lazily: the first call really talks) to a unix socket path.
    pub fn connect(socket: &str) -> Result<Self, WatchError> {
        let docker = Docker::connect_with_socket(socket, DOCKER_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            .map_err(|e| unreachable_error(socket, &e))?;
        Ok(DockerClient {
            docker,
            socket: socket.to_string(),
        })
    }

    /// Connects through `DOCKER_HOST` (unix://) or `/var/run/docker.sock`.
    pub fn connect_default() -> Result<Self, WatchError> {
        let socket = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
            .unwrap_or_else(|| DEFAULT_DOCKER_SOCKET.to_string());
        let docker = Docker::connect_with_unix_defaults().map_err(|e| unreachable_error(&socket, &e))?;
        Ok(DockerClient { docker, socket })
    }

    /// The socket path this client talks to.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// `GET /containers/{name}/json` as JSON.
    pub async fn inspect(&self, name: &str) -> Result<Value, WatchError> {
        let resp = self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.api_error(name, e))?;
        to_value(name, &resp)
    }

    /// `GET /containers/{name}/stats?stream=false&one-shot=false` as JSON
    /// (the daemon waits one cycle so `precpu_stats` is filled).
    pub async fn stats(&self, name: &str) -> Result<Value, WatchError> {
        let opts = StatsOptionsBuilder::new().stream(false).one_shot(false).build();
        let mut stream = self.docker.stats(name, Some(opts));
        match stream.next().await {
            Some(Ok(resp)) => to_value(name, &resp),
            Some(Err(e)) => Err(self.api_error(name, e)),
            None => Err(WatchError::Docker {
                container: name.to_string(),
                msg: "empty stats response".into(),
            }),
        }
    }

    /// Inspect, then stats if the container is running.
    pub async fn snapshot(&self, name: &str) -> Result<DockerSnapshot, WatchError> {
        let inspect = self.inspect(name).await?;
        let stats = match parse_inspect(&inspect)?.running {
            true => Some(self.stats(name).await?),
            false => None,
        };
        docker_snapshot(&inspect, stats.as_ref())
    }

    /// `POST /containers/{name}/update` (resource limits).
    pub async fn update(&self, name: &str, body: bollard::models::ContainerUpdateBody) -> Result<(), WatchError> {
        self.docker
            .update_container(name, body)
            .await
            .map_err(|e| self.api_error(name, e))
    }

    fn api_error(&self, name: &str, err: BollardError) -> WatchError {
        match err {
            BollardError::DockerResponseServerError { status_code: 404, .. } => WatchError::Gone {
                what: format!("container {name}"),
            },
            BollardError::DockerResponseServerError { status_code, message } => WatchError::Docker {
                container: name.to_string(),
                msg: format!("HTTP {status_code}: {message}"),
            },
            e @ (BollardError::SocketNotFoundError(_)
            | BollardError::HyperLegacyError { .. }
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError) => unreachable_error(&self.socket, &e),
            other => WatchError::Docker {
                container: name.to_string(),
                msg: other.to_string(),
            },
        }
    }
}

fn unreachable_error(socket: &str, err: &BollardError) -> WatchError {
    WatchError::DockerUnreachable {
        socket: socket.trim_start_matches("unix://").to_string(),
        msg: err.to_string(),
    }
}

fn to_value<T: Serialize>(name: &str, resp: &T) -> Result<Value, WatchError> {
    serde_json::to_value(resp).map_err(|e| WatchError::Docker {
        container: name.to_string(),
        msg: format!("cannot re-encode response: {e}"),
    })
}

#[cfg(test)]
#[path = "docker_tests.rs"]
pub(crate) mod tests;
