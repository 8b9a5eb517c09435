//! What a process needs from the system to hold thousands of connections:
//! open files (one per connection) and the async runtime's threads.

/// Raises this process's open-file limit to its hard limit (a connection
/// is a file; the usual soft limit of 1024 would stop a fleet, or a mock,
/// at ~1000 devices). Returns the limit in force.
pub fn raise_open_files() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a
    // live rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Files a run needs beyond one per device (logs, reports, the runtime).
pub const SPARE_FILES: u64 = 64;

/// A warning when `connections` would not fit in the open-file limit.
pub fn open_files_warning(connections: u64) -> Option<String> {
    let limit = raise_open_files();
    (limit > 0 && connections + SPARE_FILES > limit).then(|| {
        format!(
            "{connections} connections need about {} open files, and this process may open {limit}: \
             raise the limit (ulimit -n) or shard the fleet (--shard)",
            connections + SPARE_FILES
        )
    })
}

/// The async runtime: `threads` workers (default: one per core this
/// process may use); one thread is a current-thread runtime, so a process
/// pinned to one core (`taskset -c 0`) runs everything on it.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let limit = raise_open_files();
        assert!(limit >= 256, "{limit}");
        assert_eq!(open_files_warning(10), None);
        let w = open_files_warning(limit).unwrap();
        assert!(w.contains("ulimit -n"), "{w}");
    }

    #[test]
    fn one_thread_is_a_current_thread_runtime() {
        let rt = runtime(Some(1)).unwrap();
        assert_eq!(rt.metrics().num_workers(), 1);
        assert_eq!(
            rt.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread
        );
        let rt = runtime(Some(3)).unwrap();
        assert_eq!(rt.metrics().num_workers(), 3);
    }
}
