//! `--watch-cgroup PATH`: reads a cgroup directory (v2 unified or v1) and
//! turns two reads into a `CgroupSample` (cores used, throttling, memory,
//! limits, new OOM kills).
//!
//! Owns the cgroup file parsers. `parse_v1` / `parse_v2` are pure functions
//! of a file lookup (`name -> Option<contents>`), so tests drive them with
//! fixture text. `read_cgroup` reads what exists in one directory; for a v1
//! path under `<root>/{memory,cpu,cpuacct,cpu,cpuacct}/<rel>` it also looks in
//! the sibling controller directories with the same `<rel>`.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{WatchError, bytes_to_mb};

/// v1 reports "no memory limit" as PAGE_COUNTER_MAX pages
/// (9223372036854771712 with 4 KiB pages); anything from 2^62 up is unlimited.
pub const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

/// Which cgroup hierarchy a directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// One read of a cgroup. Counters are cumulative.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CgroupSnapshot {
    pub version: CgroupVersion,
    /// CPU time used by the group, ns (`None` if no CPU accounting file).
    pub cpu_usage_ns: Option<u64>,
    pub throttled_periods: u64,
    pub total_periods: u64,
    pub throttled_ns: u64,
    /// Memory in use like `docker stats` counts it: usage minus inactive
    /// file cache (`None` if no memory accounting file).
    pub memory_bytes: Option<u64>,
    /// Raw `memory.current` / `memory.usage_in_bytes`.
    pub memory_usage_bytes: Option<u64>,
    /// `None` = unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// `None` = unlimited.
    pub cpu_limit_cores: Option<f64>,
    pub oom_kills: u64,
    /// Times usage hit the limit (v1 `memory.failcnt`, v2 `memory.events` max).
    pub limit_hits: Option<u64>,
    pub swap_bytes: Option<u64>,
}

/// What a cgroup used between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CgroupSample {
    pub cpu_cores: Option<f64>,
    /// Δthrottled periods / Δperiods; 0.0 when no period elapsed (no quota).
    pub throttled_ratio: f64,
    pub memory_mb: Option<f64>,
    pub memory_limit_mb: Option<f64>,
    pub cpu_limit_cores: Option<f64>,
    pub new_oom_kills: u64,
    pub new_limit_hits: u64,
    pub swap_mb: Option<f64>,
}

/// Reads the cgroup at `path` (v1 or v2, detected).
pub fn read_cgroup(path: &Path) -> Result<CgroupSnapshot, WatchError> {
    if !path.is_dir() {
        return Err(WatchError::Gone {
            what: format!("cgroup {}", path.display()),
        });
    }
    let dirs = lookup_dirs(path);
    let files = |name: &str| dirs.iter().find_map(|d| std::fs::read_to_string(d.join(name)).ok());
    let snap = parse_cgroup(&files)?;
    if snap.cpu_usage_ns.is_none() && snap.memory_usage_bytes.is_none() {
        return Err(WatchError::NotCgroup {
            path: path.display().to_string(),
        });
    }
    Ok(snap)
}

/// `path` first, then v1 sibling controller directories for the same group.
pub(crate) fn lookup_dirs(path: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![path.to_path_buf()];
    let comps: Vec<Component> = path.components().collect();
    let controllers = ["cpu", "cpuacct", "cpu,cpuacct", "cpuacct,cpu", "memory"];
    let Some(i) = comps
        .iter()
        .position(|c| controllers.iter().any(|k| c.as_os_str() == *k))
    else {
        return dirs;
    };
    let root: PathBuf = comps[..i].iter().collect();
    let rel: PathBuf = comps[i + 1..].iter().collect();
    for ctrl in controllers {
        let dir = root.join(ctrl).join(&rel);
        if dir.is_dir() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// v2 if `cgroup.controllers` exists or `cpu.stat` has `usage_usec`.
pub fn is_v2(files: &impl Fn(&str) -> Option<String>) -> bool {
    files("cgroup.controllers").is_some() || files("cpu.stat").is_some_and(|s| kv(&s, "usage_usec").is_some())
}

/// Detects the version and parses.
pub fn parse_cgroup(files: &impl Fn(&str) -> Option<String>) -> Result<CgroupSnapshot, WatchError> {
    if is_v2(files) { parse_v2(files) } else { parse_v1(files) }
}

/// Parses a v2 (unified) cgroup: `cpu.stat`, `cpu.max`, `memory.current`,
/// `memory.max`, `memory.events`, `memory.stat`, `memory.swap.current`.
pub fn parse_v2(files: &impl Fn(&str) -> Option<String>) -> Result<CgroupSnapshot, WatchError> {
    let cpu_stat = files("cpu.stat").unwrap_or_default();
    let events = files("memory.events").unwrap_or_default();
    let usage = number(files, "memory.current")?;
    let inactive = files("memory.stat").and_then(|s| kv(&s, "inactive_file"));
    let memory_limit_bytes = match files("memory.max") {
        Some(text) => parse_memory_max(&text)?,
        None => None,
    };
    let cpu_limit_cores = match files("cpu.max") {
        Some(text) => parse_cpu_max(&text)?,
        None => None,
    };
    Ok(CgroupSnapshot {
        version: CgroupVersion::V2,
        cpu_usage_ns: kv(&cpu_stat, "usage_usec").map(|us| us.saturating_mul(1000)),
        throttled_periods: kv(&cpu_stat, "nr_throttled").unwrap_or(0),
        total_periods: kv(&cpu_stat, "nr_periods").unwrap_or(0),
        throttled_ns: kv(&cpu_stat, "throttled_usec").unwrap_or(0).saturating_mul(1000),
        memory_bytes: usage.map(|u| working_set(u, inactive)),
        memory_usage_bytes: usage,
        memory_limit_bytes,
        cpu_limit_cores,
        oom_kills: kv(&events, "oom_kill").unwrap_or(0),
        limit_hits: kv(&events, "max"),
        swap_bytes: number(files, "memory.swap.current")?,
    })
}

/// Parses a v1 cgroup: `cpuacct.usage`, `cpu.cfs_quota_us`,
/// `cpu.cfs_period_us`, `cpu.stat`, `memory.usage_in_bytes`,
/// `memory.limit_in_bytes`, `memory.oom_control`, `memory.failcnt`,
/// `memory.stat`, `memory.memsw.usage_in_bytes`.
pub fn parse_v1(files: &impl Fn(&str) -> Option<String>) -> Result<CgroupSnapshot, WatchError> {
    let cpu_stat = files("cpu.stat").unwrap_or_default();
    let usage = number(files, "memory.usage_in_bytes")?;
    let inactive = files("memory.stat").and_then(|s| kv(&s, "total_inactive_file"));
    let memsw = number(files, "memory.memsw.usage_in_bytes")?;
    let oom = files("memory.oom_control").unwrap_or_default();
    let cpu_limit_cores = match (files("cpu.cfs_quota_us"), files("cpu.cfs_period_us")) {
        (Some(quota), Some(period)) => parse_cfs_limit(&quota, &period)?,
        _ => None,
    };
    Ok(CgroupSnapshot {
        version: CgroupVersion::V1,
        cpu_usage_ns: number(files, "cpuacct.usage")?,
        throttled_periods: kv(&cpu_stat, "nr_throttled").unwrap_or(0),
        total_periods: kv(&cpu_stat, "nr_periods").unwrap_or(0),
        throttled_ns: kv(&cpu_stat, "throttled_time").unwrap_or(0),
        memory_bytes: usage.map(|u| working_set(u, inactive)),
        memory_usage_bytes: usage,
        memory_limit_bytes: number(files, "memory.limit_in_bytes")?.filter(|l| *l < V1_UNLIMITED_THRESHOLD),
        cpu_limit_cores,
        oom_kills: kv(&oom, "oom_kill").unwrap_or(0),
        limit_hits: number(files, "memory.failcnt")?,
        swap_bytes: memsw.zip(usage).map(|(sw, u)| sw.saturating_sub(u)),
    })
}

/// Usage minus inactive file cache, as `docker stats` computes it.
fn working_set(usage: u64, inactive_file: Option<u64>) -> u64 {
    match inactive_file {
        Some(inactive) if inactive < usage => usage - inactive,
        _ => usage,
    }
}

/// A file holding one unsigned number; `None` when the file is absent.
fn number(files: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<u64>, WatchError> {
    let Some(text) = files(name) else {
        return Ok(None);
    };
    text.trim()
        .parse::<u64>()
        .map(Some)
        .map_err(|e| WatchError::parse(name, format!("{:?}: {e}", text.trim())))
}

/// The value of `key` in a flat-keyed file ("key value" per line).
pub fn kv(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key))
            .then(|| parts.next()?.parse::<u64>().ok())
            .flatten()
    })
}

/// v2 `cpu.max`: "max 100000" → None, "400000 100000" → Some(4.0).
pub fn parse_cpu_max(text: &str) -> Result<Option<f64>, WatchError> {
    let bad = |d: String| WatchError::parse("cpu.max", d);
    let mut parts = text.split_whitespace();
    let quota = parts.next().ok_or_else(|| bad("empty".into()))?;
    if quota == "max" {
        return Ok(None);
    }
    let quota: u64 = quota.parse().map_err(|e| bad(format!("quota {quota:?}: {e}")))?;
    let period: u64 = match parts.next() {
        Some(p) => p.parse().map_err(|e| bad(format!("period {p:?}: {e}")))?,
        None => 100_000,
    };
    if period == 0 {
        return Err(bad("period 0".into()));
    }
    Ok(Some(quota as f64 / period as f64))
}

/// v2 `memory.max`: "max" → None, else bytes.
pub fn parse_memory_max(text: &str) -> Result<Option<u64>, WatchError> {
    let text = text.trim();
    if text == "max" {
        return Ok(None);
    }
    text.parse::<u64>()
        .map(Some)
        .map_err(|e| WatchError::parse("memory.max", format!("{text:?}: {e}")))
}

/// v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`: quota -1 → None.
pub fn parse_cfs_limit(quota: &str, period: &str) -> Result<Option<f64>, WatchError> {
    let quota: i64 = quota
        .trim()
        .parse()
        .map_err(|e| WatchError::parse("cpu.cfs_quota_us", format!("{e}")))?;
    let period: i64 = period
        .trim()
        .parse()
        .map_err(|e| WatchError::parse("cpu.cfs_period_us", format!("{e}")))?;
    if quota <= 0 || period <= 0 {
        return Ok(None);
    }
    Ok(Some(quota as f64 / period as f64))
}

/// What the group used between `prev` and `cur`, `wall` apart.
pub fn cgroup_delta(prev: &CgroupSnapshot, cur: &CgroupSnapshot, wall: Duration) -> CgroupSample {
    let secs = wall.as_secs_f64();
    let cpu_cores = match (prev.cpu_usage_ns, cur.cpu_usage_ns) {
        (Some(a), Some(b)) if secs > 0.0 => Some(b.saturating_sub(a) as f64 / 1e9 / secs),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let periods = cur.total_periods.saturating_sub(prev.total_periods);
    let throttled = cur.throttled_periods.saturating_sub(prev.throttled_periods);
    let throttled_ratio = crate::metrics::ratio(throttled, periods).min(1.0);
    let hits = cur.limit_hits.unwrap_or(0);
    CgroupSample {
        cpu_cores,
        throttled_ratio,
        memory_mb: cur.memory_bytes.map(bytes_to_mb),
        memory_limit_mb: cur.memory_limit_bytes.map(bytes_to_mb),
        cpu_limit_cores: cur.cpu_limit_cores,
        new_oom_kills: cur.oom_kills.saturating_sub(prev.oom_kills),
        new_limit_hits: hits.saturating_sub(prev.limit_hits.unwrap_or(hits)),
        swap_mb: cur.swap_bytes.map(bytes_to_mb),
    }
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
