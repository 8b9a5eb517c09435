//! Tests for `proc.rs`: parsers over real `/proc` text captured on a Linux
//! 6.18 host, a fixture procfs tree, delta math, and a live child process.

use super::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

const STAT_PAREN: &str = include_str!("fixtures/proc_stat_paren.txt");
const STAT_PYTHON: &str = include_str!("fixtures/proc_stat_python.txt");
const STATUS_SLEEP: &str = include_str!("fixtures/proc_status_sleep.txt");
/// Excerpt of a swapping Python server's status (same layout as the real one).
const STATUS_SWAPPING: &str = "Name:\tpython3\nState:\tS (sleeping)\nVmPeak:\t 1893344 kB\n\
VmSize:\t 1893344 kB\nVmHWM:\t  498212 kB\nVmRSS:\t  412356 kB\nRssAnon:\t  380100 kB\n\
VmSwap:\t   10240 kB\nThreads:\t27\n";

fn thread(tid: u32, name: &str, ticks: u64) -> ThreadTicks {
    ThreadTicks {
        tid,
        name: name.to_string(),
        ticks,
    }
}

fn snapshot(cpu_ticks: u64, per_thread: Vec<ThreadTicks>) -> ProcSnapshot {
    ProcSnapshot {
        pid: 42,
        comm: "srv".into(),
        starttime: 1,
        cpu_ticks,
        rss_bytes: 100 * 1024 * 1024,
        swap_bytes: 512 * 1024,
        threads: per_thread.len() as u32,
        fds: Some(12),
        per_thread,
    }
}

#[test]
fn parse_stat_comm_with_spaces_and_paren() {
    let s = parse_stat(STAT_PAREN).unwrap();
    assert_eq!(s.pid, 7337);
    assert_eq!(s.comm, "my srv) (x");
    assert_eq!(s.state, 'S');
    assert_eq!(s.ticks, 0);
    assert_eq!(s.num_threads, 1);
    assert_eq!(s.starttime, 186837);
}

#[test]
fn parse_stat_multithreaded_ticks() {
    let s = parse_stat(STAT_PYTHON).unwrap();
    assert_eq!((s.pid, s.comm.as_str()), (7560, "python3"));
    assert_eq!(s.ticks, 136 + 4);
    assert_eq!(s.num_threads, 3);
    assert_eq!(s.starttime, 187480);
}

#[test]
fn parse_stat_rejects_garbage() {
    for bad in ["", "123 (x", "abc (x) S 1", "12 (x) S 1 2 3"] {
        assert!(matches!(parse_stat(bad), Err(WatchError::Parse { .. })), "{bad:?}");
    }
}

#[test]
fn parse_status_real_and_swapping() {
    let m = parse_status(STATUS_SLEEP).unwrap();
    assert_eq!(m.rss_bytes, 1820 * 1024);
    assert_eq!(m.swap_bytes, 0);
    let m = parse_status(STATUS_SWAPPING).unwrap();
    assert_eq!(m.rss_bytes, 412356 * 1024);
    assert_eq!(m.swap_bytes, 10240 * 1024);
    assert_eq!(parse_status("Name:\tkthreadd\n").unwrap(), StatusMem::default());
    assert!(parse_status("VmRSS:\t lots kB\n").is_err());
}

/// A fresh empty directory under the system temp dir.
fn temp_tree(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("xf-proc-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn read_proc_at_fixture_tree() {
    let root = temp_tree("tree");
    let p = root.join("7560");
    write(&p.join("stat"), STAT_PYTHON);
    write(&p.join("status"), STATUS_SWAPPING);
    for fd in ["0", "1", "2", "3"] {
        write(&p.join("fd").join(fd), "");
    }
    let main = STAT_PYTHON.to_string();
    let worker = STAT_PYTHON.replacen("7560 (python3)", "7602 (python3)", 1);
    let worker = worker.replacen(" 136 4 ", " 134 0 ", 1);
    write(&p.join("task/7560/stat"), &main);
    write(&p.join("task/7560/comm"), "python3\n");
    write(&p.join("task/7602/stat"), &worker);
    write(&p.join("task/7602/comm"), "asr_worker\n");
    let snap = read_proc_at(&root, 7560).unwrap();
    assert_eq!(snap.cpu_ticks, 140);
    assert_eq!(snap.threads, 3);
    assert_eq!(snap.fds, Some(4));
    assert_eq!(snap.swap_bytes, 10240 * 1024);
    assert_eq!(
        snap.per_thread,
        vec![thread(7560, "python3", 140), thread(7602, "asr_worker", 134)]
    );
    let err = read_proc_at(&root, 999_999).unwrap_err();
    assert!(err.is_gone(), "{err}");
    // A zombie still has /proc/PID/stat but is gone for our purposes.
    write(&p.join("stat"), &STAT_PYTHON.replacen(") S ", ") Z ", 1));
    assert!(read_proc_at(&root, 7560).unwrap_err().is_gone());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn proc_delta_exact_values() {
    let prev = snapshot(100, vec![thread(1, "main", 50), thread(2, "asr", 40)]);
    let cur = snapshot(
        250,
        vec![thread(1, "main", 60), thread(2, "asr", 170), thread(3, "new", 5)],
    );
    let s = proc_delta(&prev, &cur, Duration::from_secs(2), 100);
    assert_eq!(s.cpu_cores, 0.75);
    assert_eq!(s.rss_mb, 100.0);
    assert_eq!(s.swap_mb, 0.5);
    assert_eq!((s.threads, s.fds), (3, Some(12)));
    let hot = s.hot_thread.unwrap();
    assert_eq!((hot.tid, hot.name.as_str(), hot.core_share), (2, "asr", 0.65));
    // A thread born during the interval counts all its ticks.
    let born = snapshot(400, vec![thread(1, "main", 60), thread(9, "vad", 100)]);
    let hot = proc_delta(&prev, &born, Duration::from_millis(500), 100)
        .hot_thread
        .unwrap();
    assert_eq!((hot.tid, hot.core_share), (9, 2.0));
}

#[test]
fn proc_delta_zero_wall_and_counter_reset() {
    let prev = snapshot(500, vec![thread(1, "main", 500)]);
    let cur = snapshot(100, vec![thread(1, "main", 100)]);
    let s = proc_delta(&prev, &cur, Duration::ZERO, 100);
    assert_eq!(s.cpu_cores, 0.0);
    assert_eq!(s.hot_thread, None);
    let s = proc_delta(&prev, &cur, Duration::from_secs(1), 100);
    assert_eq!(s.cpu_cores, 0.0);
    assert_eq!(s.hot_thread.unwrap().core_share, 0.0);
}

#[test]
fn clock_ticks_is_positive() {
    assert!(clock_ticks_per_sec() > 0);
}

#[test]
fn live_busy_child_then_gone() {
    let mut child = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let first = read_proc(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let second = read_proc(pid);
    // Reap the busy loop before any assertion can fail.
    child.kill().unwrap();
    child.wait().unwrap();
    let (first, second) = (first.unwrap(), second.unwrap());
    let sample = proc_delta(&first, &second, t0.elapsed(), clock_ticks_per_sec());
    assert_eq!(second.comm, "sh");
    assert!(second.rss_bytes > 0);
    assert!(second.fds.unwrap() >= 1);
    assert_eq!(second.per_thread.len(), 1);
    // Other work may share the cores: a busy loop still shows clearly.
    assert!(sample.cpu_cores > 0.05, "busy loop used {}", sample.cpu_cores);
    let hot = sample.hot_thread.unwrap();
    assert_eq!((hot.tid, hot.name.as_str()), (pid, "sh"));
    assert!(read_proc(pid).unwrap_err().is_gone());
}

#[test]
fn live_zombie_is_gone() {
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    let pid = child.id();
    assert!(read_proc(pid).is_ok());
    child.kill().unwrap();
    // Not reaped yet: the pid is a zombie until wait().
    let mut gone = false;
    for _ in 0..100 {
        if read_proc(pid).is_err_and(|e| e.is_gone()) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait().unwrap();
    assert!(gone);
}
