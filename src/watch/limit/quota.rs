//! CFS quota files of one cgroup directory: v2 `cpu.max` ("max 100000",
//! "50000 100000") and v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`
//! (quota -1 = unlimited). Pure parse/format functions plus the reads and
//! writes of one directory, so tests drive them against fixture copies.

use super::LimitError;
use std::path::{Path, PathBuf};

/// The kernel's default CFS period, µs.
pub const DEFAULT_PERIOD_US: u64 = 100_000;
/// The kernel's smallest accepted quota, µs (1 ms).
pub const MIN_QUOTA_US: u64 = 1_000;

/// Which file layout a directory has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaFiles {
    /// `cpu.max`.
    V2,
    /// `cpu.cfs_quota_us` + `cpu.cfs_period_us`.
    V1,
}

/// A CFS bandwidth setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuQuota {
    /// `None` = unlimited.
    pub quota_us: Option<u64>,
    pub period_us: u64,
}

impl CpuQuota {
    /// `cores` of CPU per period (at least 1 ms per period).
    pub fn for_cores(cores: f64, period_us: u64) -> CpuQuota {
        let period_us = if period_us == 0 { DEFAULT_PERIOD_US } else { period_us };
        let quota = (cores * period_us as f64).round().max(MIN_QUOTA_US as f64) as u64;
        CpuQuota {
            quota_us: Some(quota),
            period_us,
        }
    }

    /// The limit in cores (`None` = unlimited).
    pub fn cores(&self) -> Option<f64> {
        self.quota_us
            .filter(|_| self.period_us > 0)
            .map(|q| q as f64 / self.period_us as f64)
    }

    /// As operators read it: "0.5 cores (50000/100000 µs)" or "unlimited".
    pub fn describe(&self) -> String {
        match self.quota_us {
            Some(q) => format!(
                "{} ({q}/{} µs)",
                cores_label(q as f64 / self.period_us as f64),
                self.period_us
            ),
            None => format!("unlimited (period {} µs)", self.period_us),
        }
    }
}

/// "1 core", "0.5 cores", "2 cores".
pub fn cores_label(v: f64) -> String {
    let t = format!("{v:.3}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    if t == "1" {
        "1 core".into()
    } else {
        format!("{t} cores")
    }
}

/// Parses v2 `cpu.max`.
pub fn parse_cpu_max(text: &str) -> Result<CpuQuota, String> {
    let mut parts = text.split_whitespace();
    let quota = parts.next().ok_or("cpu.max is empty")?;
    let period_us = match parts.next() {
        Some(p) => p.parse::<u64>().map_err(|e| format!("cpu.max period {p:?}: {e}"))?,
        None => DEFAULT_PERIOD_US,
    };
    let quota_us = match quota {
        "max" => None,
        q => Some(q.parse::<u64>().map_err(|e| format!("cpu.max quota {q:?}: {e}"))?),
    };
    Ok(CpuQuota { quota_us, period_us })
}

/// Formats v2 `cpu.max`.
pub fn format_cpu_max(q: &CpuQuota) -> String {
    match q.quota_us {
        Some(quota) => format!("{quota} {}", q.period_us),
        None => format!("max {}", q.period_us),
    }
}

/// Parses v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`.
pub fn parse_cfs(quota: &str, period: &str) -> Result<CpuQuota, String> {
    let quota: i64 = quota
        .trim()
        .parse()
        .map_err(|e| format!("cpu.cfs_quota_us {:?}: {e}", quota.trim()))?;
    let period_us: u64 = period
        .trim()
        .parse()
        .map_err(|e| format!("cpu.cfs_period_us {:?}: {e}", period.trim()))?;
    Ok(CpuQuota {
        quota_us: u64::try_from(quota).ok().filter(|q| *q > 0),
        period_us,
    })
}

/// The directory under `path` that holds the CPU quota files: `path` itself,
/// or for a v1 path under another controller (e.g. `…/memory/docker/ID`)
/// the same group under the cpu controller.
pub fn quota_dir(path: &Path) -> Option<(PathBuf, QuotaFiles)> {
    crate::watch::cgroup::lookup_dirs(path).into_iter().find_map(|d| {
        if d.join("cpu.max").is_file() {
            Some((d, QuotaFiles::V2))
        } else if d.join("cpu.cfs_quota_us").is_file() {
            Some((d, QuotaFiles::V1))
        } else {
            None
        }
    })
}

fn read(path: PathBuf) -> Result<String, LimitError> {
    std::fs::read_to_string(&path).map_err(|e| LimitError::io(&path, &e))
}

fn write(path: PathBuf, text: &str) -> Result<(), LimitError> {
    std::fs::write(&path, text).map_err(|e| LimitError::io(&path, &e))
}

/// Reads the quota of `dir`.
pub fn read_quota(dir: &Path, files: QuotaFiles) -> Result<CpuQuota, LimitError> {
    let parsed = match files {
        QuotaFiles::V2 => parse_cpu_max(&read(dir.join("cpu.max"))?),
        QuotaFiles::V1 => parse_cfs(
            &read(dir.join("cpu.cfs_quota_us"))?,
            &read(dir.join("cpu.cfs_period_us"))?,
        ),
    };
    parsed.map_err(|detail| LimitError::Parse {
        path: dir.display().to_string(),
        detail,
    })
}

/// Writes the quota of `dir`. v1 lifts the quota first, so a new period
/// is never checked against the old quota.
pub fn write_quota(dir: &Path, files: QuotaFiles, q: &CpuQuota) -> Result<(), LimitError> {
    match files {
        QuotaFiles::V2 => write(dir.join("cpu.max"), &format_cpu_max(q)),
        QuotaFiles::V1 => {
            write(dir.join("cpu.cfs_quota_us"), "-1")?;
            write(dir.join("cpu.cfs_period_us"), &q.period_us.to_string())?;
            match q.quota_us {
                Some(quota) => write(dir.join("cpu.cfs_quota_us"), &quota.to_string()),
                None => Ok(()),
            }
        }
    }
}
