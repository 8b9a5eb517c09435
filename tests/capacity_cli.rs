//! The real `capacity` binary: `--cpus` puts the server's original CPU limit
//! back after the run and after SIGINT (read back from /proc and the cgroup
//! files, or the CPU affinity where no cgroup can be created); the mock child
//! never outlives the tool (SIGINT, SIGTERM, even SIGKILL); a dead URL exits
//! 2 at once. Real time, bounded to seconds; only 127.0.0.1.
//!
//! A test binary of its own: it runs real processes for tens of seconds, and
//! cargo runs test binaries one after another, so the paused-clock tests
//! elsewhere never share the cores with it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xiaozhi-fleet"))
}

/// A fast mock: one short clip, quick answers of one sentence.
const FAST: &str = r#"
clips = ["ji-dian"]
think_time = "0s"
ramp = 20
grace = "5s"

[mock]
asr_delay = "50ms"
llm_delay = "100ms"
tts_delay = "50ms"
sentence_delay = "0ms"
sentences = 1
"#;

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("xf-capcli-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process killed when the test ends, also when it fails.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc { child, lines }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first stderr line containing `needle`, within `limit`.
    fn wait_line(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no line with {needle:?} within {limit:?}; saw:\n{}", seen.join("\n"));
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: sends a signal to our own child, which we have not reaped.
        assert_eq!(unsafe { libc::kill(self.pid() as libc::pid_t, sig) }, 0);
    }

    /// Waits for exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// An external mock server (the "server under test") and its URL.
fn server(fleet: &Path) -> (Proc, String) {
    let p = Proc::start(&[
        "mock-server",
        "--listen",
        "127.0.0.1:0",
        "--config",
        fleet.to_str().unwrap(),
    ]);
    let line = p.wait_line("listening on", Duration::from_secs(30));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap()
        .to_string();
    (p, url)
}

/// Where `pid` is for CPU: its cpu cgroup line and its allowed cores.
fn cpu_state(pid: u32) -> (String, String) {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let cpu_line = cgroup
        .lines()
        .find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|x| x == "cpu")) || l.starts_with("0::"))
        .unwrap_or("")
        .to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let allowed = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .unwrap_or("")
        .to_string();
    (cpu_line, allowed)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn cpus_limit_is_restored_after_the_run() {
    let dir = temp_dir("run");
    let fleet = dir.join("fast.toml");
    std::fs::write(&fleet, FAST).unwrap();
    let (srv, url) = server(&fleet);
    let before = cpu_state(srv.pid());
    let (rj, rt) = (dir.join("r.json"), dir.join("r.txt"));
    let pid = srv.pid().to_string();
    let mut cap = Proc::start(&[
        "capacity",
        fleet.to_str().unwrap(),
        "--url",
        &url,
        "--watch-pid",
        &pid,
        "--cpus",
        "0.5,1",
        "--stage-duration",
        "2s",
        "--max-speakers",
        "2",
        "--min-turns",
        "1",
        "--quiet",
        "--report",
        rj.to_str().unwrap(),
        "--report",
        rt.to_str().unwrap(),
    ]);
    let status = cap.wait(Duration::from_secs(180));
    assert_eq!(status.code(), Some(0), "capacity failed");
    assert_eq!(cpu_state(srv.pid()), before, "the original limit is back");
    assert!(!Path::new(&format!("/sys/fs/cgroup/cpu/xiaozhi-fleet-{pid}")).exists());
    let r = json(&rj);
    let allotments = r["capacity"]["allotments"].as_array().unwrap();
    assert_eq!(allotments.len(), 2);
    assert_eq!(
        (allotments[0]["cpus"].as_f64(), allotments[1]["cpus"].as_f64()),
        (Some(0.5), Some(1.0))
    );
    // Allotments whose knee was measured (not cut short by stages the
    // generator's self-check or too few turns left unjudged, as a loaded
    // machine can) make the curve; no point may be claimed from the others.
    let judged = allotments.iter().filter(|a| a["off_curve"].is_null()).count();
    match judged {
        2 => assert_eq!(
            r["sizing"]["scaling"]["points"].as_array().map(Vec::len),
            Some(2),
            "{}",
            r["sizing"]
        ),
        1 => assert!(
            r["sizing"]["scaling"].is_null() && !r["sizing"].is_null(),
            "{}",
            r["sizing"]
        ),
        _ => assert!(r["sizing"].is_null(), "{}", r["sizing"]),
    }
    let text = std::fs::read_to_string(&rt).unwrap();
    assert!(text.starts_with("capacity search against"), "{text}");
    assert!(text.contains("knee by CPU allotment:"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigint_mid_search_restores_the_limit_and_writes_the_report() {
    let dir = temp_dir("int");
    let fleet = dir.join("fast.toml");
    std::fs::write(&fleet, FAST).unwrap();
    let (srv, url) = server(&fleet);
    let before = cpu_state(srv.pid());
    let (rj, rt) = (dir.join("r.json"), dir.join("r.txt"));
    let pid = srv.pid().to_string();
    let mut cap = Proc::start(&[
        "capacity",
        fleet.to_str().unwrap(),
        "--url",
        &url,
        "--watch-pid",
        &pid,
        "--cpus",
        "0.5,1",
        "--stage-duration",
        "60s",
        "--quiet",
        "--report",
        rj.to_str().unwrap(),
        "--report",
        rt.to_str().unwrap(),
    ]);
    cap.wait_line("CPU allotment 0.5 cores", Duration::from_secs(60));
    let during = cpu_state(srv.pid());
    assert_ne!(during, before, "a limit is in force");
    let created = PathBuf::from(format!("/sys/fs/cgroup/cpu/xiaozhi-fleet-{pid}"));
    if during.0.contains("xiaozhi-fleet-") && created.exists() {
        let quota = std::fs::read_to_string(created.join("cpu.cfs_quota_us")).unwrap();
        assert_eq!(quota.trim(), "50000");
    }
    cap.signal(libc::SIGINT);
    let status = cap.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(130));
    assert_eq!(cpu_state(srv.pid()), before, "the original limit is back after SIGINT");
    assert!(!created.exists());
    let r = json(&rj);
    assert_eq!(r["run"]["interrupted"], true);
    assert_eq!(r["capacity"]["stop_reason"], "interrupted");
    assert_eq!(
        r["capacity"]["stages"].as_array().map(Vec::len),
        Some(0),
        "the running stage is discarded"
    );
    let text = std::fs::read_to_string(&rt).unwrap();
    assert!(text.contains("from 0 completed stages"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The children of `pid` (from /proc/*/stat).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// True once `pid` no longer runs (gone, or a zombie waiting for init).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, a)| a.trim_start().starts_with('Z')),
    }
}

fn mock_child_dies_with(sig: libc::c_int) {
    let dir = temp_dir("child");
    let fleet = dir.join("fast.toml");
    std::fs::write(&fleet, FAST).unwrap();
    let mut cap = Proc::start(&[
        "capacity",
        fleet.to_str().unwrap(),
        "--stage-duration",
        "60s",
        "--quiet",
    ]);
    cap.wait_line(
        "started the built-in mock server as a child process",
        Duration::from_secs(60),
    );
    let kids = children(cap.pid());
    assert_eq!(kids.len(), 1, "one mock child: {kids:?}");
    let mock = kids[0];
    cap.signal(sig);
    let status = cap.wait(Duration::from_secs(60));
    if sig == libc::SIGINT {
        assert_eq!(status.code(), Some(130));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dead(mock) {
        assert!(
            Instant::now() < deadline,
            "mock child {mock} outlived capacity (signal {sig})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mock_child_never_outlives_capacity() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGKILL] {
        mock_child_dies_with(sig);
    }
}

#[test]
fn dead_url_exits_2_at_once() {
    let dir = temp_dir("dead");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("ws://127.0.0.1:{port}/xiaozhi/v1/");
    let mut cap = Proc::start(&["capacity", "--url", &url, "--quiet"]);
    let line = cap.wait_line("no device could connect", Duration::from_secs(30));
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert_eq!(cap.wait(Duration::from_secs(30)).code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}
