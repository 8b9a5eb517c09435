//! The fallback when no cgroup can be created: CPU affinity of every thread
//! of the process to its first K allowed cores (`sched_setaffinity`),
//! re-applied every second for threads started since. Whole cores only.
//! Each thread's original mask is kept and written back at the end.

use super::LimitError;
use std::collections::BTreeMap;
use std::path::Path;

/// A set of CPU numbers.
pub type Cores = Vec<usize>;

/// The threads of `pid` (`/proc/PID/task`).
pub fn threads(proc_root: &Path, pid: u32) -> Result<Vec<i32>, LimitError> {
    let dir = proc_root.join(pid.to_string()).join("task");
    let entries = std::fs::read_dir(&dir).map_err(|e| LimitError::io(&dir, &e))?;
    let mut tids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// A thread's allowed CPUs.
pub fn get(tid: i32) -> Result<Cores, LimitError> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; the kernel writes
    // at most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(sys_error(tid, "sched_getaffinity"));
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Restricts a thread to `cores`.
pub fn set(tid: i32, cores: &[usize]) -> Result<(), LimitError> {
    // SAFETY: as in `get`; CPU_SET only touches bits below CPU_SETSIZE.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cores.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(sys_error(tid, "sched_setaffinity"));
    }
    Ok(())
}

fn sys_error(tid: i32, call: &str) -> LimitError {
    LimitError::Io {
        path: format!("thread {tid}"),
        msg: format!("{call}: {}", std::io::Error::last_os_error()),
    }
}

/// Whole cores for an allotment: at least 1, rounded up, at most `available`.
pub fn whole_cores(cores: f64, available: usize) -> usize {
    (cores.ceil().max(1.0) as usize).min(available.max(1))
}

/// Every thread's original mask, and the process's (for new threads).
#[derive(Debug, Clone)]
pub struct Affinity {
    pub pid: u32,
    pub original: BTreeMap<i32, Cores>,
    pub process: Cores,
}

impl Affinity {
    /// Records the current masks of every thread of `pid`.
    pub fn record(pid: u32) -> Result<Affinity, LimitError> {
        let process = get(pid as i32)?;
        let mut original = BTreeMap::new();
        for tid in threads(Path::new("/proc"), pid)? {
            if let Ok(mask) = get(tid) {
                original.insert(tid, mask);
            }
        }
        Ok(Affinity { pid, original, process })
    }

    /// The first `k` of the process's originally allowed cores.
    pub fn first(&self, k: usize) -> Cores {
        self.process.iter().copied().take(k.max(1)).collect()
    }

    /// Applies `cores` to every current thread (threads that exit meanwhile
    /// are skipped). Returns how many threads were set.
    pub fn apply(&self, cores: &[usize]) -> Result<usize, LimitError> {
        let mut done = 0;
        for tid in threads(Path::new("/proc"), self.pid)? {
            if set(tid, cores).is_ok() {
                done += 1;
            }
        }
        if done == 0 {
            return Err(LimitError::Gone { pid: self.pid });
        }
        Ok(done)
    }

    /// Writes every thread's original mask back (threads started since get
    /// the process's original mask). A process that is gone needs nothing.
    pub fn restore(&self) -> Result<(), LimitError> {
        let Ok(tids) = threads(Path::new("/proc"), self.pid) else {
            return Ok(());
        };
        for tid in tids {
            let mask = self.original.get(&tid).unwrap_or(&self.process);
            if let Err(e) = set(tid, mask)
                && Path::new(&format!("/proc/{}/task/{tid}", self.pid)).exists()
            {
                return Err(e);
            }
        }
        Ok(())
    }
}
