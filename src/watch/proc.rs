//! `--watch-pid PID`: reads one process from `/proc` (CPU ticks, RSS, swap,
//! threads, open fds, per-thread CPU) and turns two reads into a
//! `ProcSample` (cores used, busiest thread's share of one core).
//!
//! Owns the `/proc/PID/stat` and `/proc/PID/status` parsers. Timing is the
//! caller's: `proc_delta` takes the wall time between the two reads.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{WatchError, bytes_to_mb};

/// Clock ticks per second assumed when `sysconf(_SC_CLK_TCK)` fails.
pub const DEFAULT_TICKS_PER_SEC: u64 = 100;

/// The fields of `/proc/PID/stat` (or `/proc/PID/task/TID/stat`) we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFields {
    pub pid: u32,
    /// The command name between the parentheses (may hold spaces and ')').
    pub comm: String,
    /// Process state letter (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    pub num_threads: u32,
    /// Start time after boot, in clock ticks (identifies pid reuse).
    pub starttime: u64,
}

/// Memory figures from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusMem {
    pub rss_bytes: u64,
    pub swap_bytes: u64,
}

/// One thread's cumulative CPU time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTicks {
    pub tid: u32,
    pub name: String,
    pub ticks: u64,
}

/// One read of a process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcSnapshot {
    pub pid: u32,
    pub comm: String,
    pub starttime: u64,
    /// utime + stime of the whole process, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
    pub swap_bytes: u64,
    pub threads: u32,
    /// Open file descriptors; `None` when `/proc/PID/fd` is not readable
    /// (another user's process without CAP_SYS_PTRACE).
    pub fds: Option<u32>,
    /// Per-thread CPU ticks, sorted by tid.
    pub per_thread: Vec<ThreadTicks>,
}

/// The busiest thread over an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HotThread {
    pub tid: u32,
    pub name: String,
    /// Share of one core the thread used (1.0 = one core fully busy).
    pub core_share: f64,
}

/// What a process used between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcSample {
    pub cpu_cores: f64,
    pub rss_mb: f64,
    pub swap_mb: f64,
    pub threads: u32,
    pub fds: Option<u32>,
    pub hot_thread: Option<HotThread>,
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 when unavailable).
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value; no pointers involved.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_TICKS_PER_SEC)
}

/// Parses `/proc/PID/stat`. The comm is delimited by the first '(' and the
/// LAST ')', since the name itself may contain spaces and parentheses.
pub fn parse_stat(text: &str) -> Result<StatFields, WatchError> {
    let bad = |detail: &str| WatchError::parse("/proc stat", detail);
    let open = text.find('(').ok_or_else(|| bad("no '(' before comm"))?;
    let close = text.rfind(')').ok_or_else(|| bad("no ')' after comm"))?;
    if close < open {
        return Err(bad("')' before '('"));
    }
    let pid = text[..open]
        .trim()
        .parse::<u32>()
        .map_err(|e| bad(&format!("pid: {e}")))?;
    let comm = text[open + 1..close].to_string();
    // rest[0] is field 3 (state); field N (1-based) is rest[N - 3].
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64, WatchError> {
        let raw = rest.get(n - 3).ok_or_else(|| bad(&format!("missing field {n}")))?;
        raw.parse::<u64>().map_err(|e| bad(&format!("field {n} {raw:?}: {e}")))
    };
    let state = rest
        .first()
        .and_then(|s| s.chars().next())
        .ok_or_else(|| bad("missing state"))?;
    let num_threads = u32::try_from(field(20)?).map_err(|e| bad(&format!("num_threads: {e}")))?;
    Ok(StatFields {
        pid,
        comm,
        state,
        ticks: field(14)?.saturating_add(field(15)?),
        num_threads,
        starttime: field(22)?,
    })
}

/// Parses `VmRSS` and `VmSwap` (kB) from `/proc/PID/status`. Kernel threads
/// and exiting processes have no such lines; they count as 0.
pub fn parse_status(text: &str) -> Result<StatusMem, WatchError> {
    let mut mem = StatusMem::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "VmRSS" => &mut mem.rss_bytes,
            "VmSwap" => &mut mem.swap_bytes,
            _ => continue,
        };
        let kb = value
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .map_err(|e| WatchError::parse("/proc status", format!("{key}: {e}")))?;
        *slot = kb.saturating_mul(1024);
    }
    Ok(mem)
}

/// Reads `/proc/PID`. Returns `WatchError::Gone` when the pid does not exist
/// or is a zombie.
pub fn read_proc(pid: u32) -> Result<ProcSnapshot, WatchError> {
    read_proc_at(Path::new("/proc"), pid)
}

/// `read_proc` with another procfs root (tests use a fixture tree).
pub fn read_proc_at(proc_root: &Path, pid: u32) -> Result<ProcSnapshot, WatchError> {
    let dir = proc_root.join(pid.to_string());
    let gone = || WatchError::Gone {
        what: format!("process {pid}"),
    };
    let stat = parse_stat(&read_text(&dir.join("stat"), pid)?)?;
    if matches!(stat.state, 'Z' | 'X' | 'x') {
        return Err(gone());
    }
    let mem = parse_status(&read_text(&dir.join("status"), pid)?)?;
    let fds = count_fds(&dir.join("fd"), pid)?;
    let per_thread = read_threads(&dir.join("task"));
    Ok(ProcSnapshot {
        pid,
        comm: stat.comm,
        starttime: stat.starttime,
        cpu_ticks: stat.ticks,
        rss_bytes: mem.rss_bytes,
        swap_bytes: mem.swap_bytes,
        threads: stat.num_threads,
        fds,
        per_thread,
    })
}

/// Reads a /proc file, mapping "no such process" to `Gone`.
fn read_text(path: &Path, pid: u32) -> Result<String, WatchError> {
    std::fs::read_to_string(path).map_err(|e| io_error(path, pid, &e))
}

fn io_error(path: &Path, pid: u32, err: &std::io::Error) -> WatchError {
    if err.kind() == ErrorKind::NotFound || err.raw_os_error() == Some(libc::ESRCH) {
        WatchError::Gone {
            what: format!("process {pid}"),
        }
    } else {
        WatchError::Io {
            path: path.display().to_string(),
            msg: err.to_string(),
        }
    }
}

fn count_fds(fd_dir: &Path, pid: u32) -> Result<Option<u32>, WatchError> {
    match std::fs::read_dir(fd_dir) {
        Ok(entries) => {
            let n = entries.filter(|e| e.is_ok()).count();
            Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Ok(None),
        Err(e) => Err(io_error(fd_dir, pid, &e)),
    }
}

/// Reads every `task/TID/{stat,comm}`; threads that exit mid-read are skipped.
fn read_threads(task_dir: &Path) -> Vec<ThreadTicks> {
    let Ok(entries) = std::fs::read_dir(task_dir) else {
        return Vec::new();
    };
    let mut threads: Vec<ThreadTicks> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse::<u32>().ok()?;
            read_thread(&task_dir.join(tid.to_string()), tid)
        })
        .collect();
    threads.sort_by_key(|t| t.tid);
    threads
}

fn read_thread(dir: &Path, tid: u32) -> Option<ThreadTicks> {
    let stat = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?).ok()?;
    let name = std::fs::read_to_string(dir.join("comm"))
        .map(|s| s.trim_end_matches('\n').to_string())
        .unwrap_or(stat.comm);
    Some(ThreadTicks {
        tid,
        name,
        ticks: stat.ticks,
    })
}

/// What the process used between `prev` and `cur`, `wall` apart.
pub fn proc_delta(prev: &ProcSnapshot, cur: &ProcSnapshot, wall: Duration, ticks_per_sec: u64) -> ProcSample {
    let tps = ticks_per_sec.max(1) as f64;
    let secs = wall.as_secs_f64();
    let cpu_cores = if secs > 0.0 {
        cur.cpu_ticks.saturating_sub(prev.cpu_ticks) as f64 / tps / secs
    } else {
        0.0
    };
    ProcSample {
        cpu_cores,
        rss_mb: bytes_to_mb(cur.rss_bytes),
        swap_mb: bytes_to_mb(cur.swap_bytes),
        threads: cur.threads,
        fds: cur.fds,
        hot_thread: hot_thread(&prev.per_thread, &cur.per_thread, secs, tps),
    }
}

/// The thread with the most ticks in the interval (ties: lowest tid). A
/// thread absent from `prev` started during the interval: all its ticks count.
fn hot_thread(prev: &[ThreadTicks], cur: &[ThreadTicks], secs: f64, tps: f64) -> Option<HotThread> {
    if secs <= 0.0 {
        return None;
    }
    let before: HashMap<u32, u64> = prev.iter().map(|t| (t.tid, t.ticks)).collect();
    let mut best: Option<(&ThreadTicks, u64)> = None;
    for t in cur {
        let used = t.ticks.saturating_sub(before.get(&t.tid).copied().unwrap_or(0));
        if best.is_none_or(|(_, b)| used > b) {
            best = Some((t, used));
        }
    }
    best.map(|(t, used)| HotThread {
        tid: t.tid,
        name: t.name.clone(),
        core_share: used as f64 / tps / secs,
    })
}

#[cfg(test)]
#[path = "proc_tests.rs"]
mod tests;
