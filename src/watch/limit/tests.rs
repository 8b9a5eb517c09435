//! Tests of the CPU limiter: quota files against copies of the v1/v2
//! fixture directories, mountinfo and /proc/PID/cgroup parsing, a created
//! group in a fixture hierarchy, the Docker update against a fake daemon on
//! a unix socket, and (where this machine allows it) a real cgroup and real
//! CPU affinity of a `sleep` child.

use super::placement::{CpuMount, group_dir, parse_mountinfo, parse_proc_cgroup};
use super::quota::{CpuQuota, QuotaFiles, format_cpu_max, parse_cfs, parse_cpu_max};
use super::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/watch/fixtures")
        .join(name)
}

/// A fresh temporary directory for one test.
fn temp(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("xf-limit-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies a fixture cgroup directory to a temporary one.
fn copy_fixture(name: &str) -> PathBuf {
    let dir = temp(name);
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

fn text(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

#[test]
fn quota_text_forms() {
    let cases = [
        ("max 100000", None, 100_000),
        ("50000 100000", Some(50_000), 100_000),
        ("400000 100000\n", Some(400_000), 100_000),
        ("25000", Some(25_000), 100_000),
    ];
    for (input, quota, period) in cases {
        let q = parse_cpu_max(input).unwrap();
        assert_eq!((q.quota_us, q.period_us), (quota, period), "{input}");
    }
    assert!(parse_cpu_max("").is_err());
    assert!(parse_cpu_max("lots 100000").is_err());
    assert_eq!(parse_cfs("-1\n", "100000\n").unwrap().quota_us, None);
    assert_eq!(parse_cfs("150000", "100000").unwrap().cores(), Some(1.5));
    assert_eq!(format_cpu_max(&CpuQuota::for_cores(0.25, 100_000)), "25000 100000");
    assert_eq!(CpuQuota::for_cores(0.0001, 100_000).quota_us, Some(1_000), "1 ms floor");
    assert_eq!(CpuQuota::for_cores(2.0, 0).period_us, 100_000);
}

#[tokio::test]
async fn v1_fixture_limited_then_restored() {
    let dir = copy_fixture("cgroup_v1_limited");
    let mut limiter = CpuLimiter::prepare(&LimitTarget::Cgroup(dir.clone())).await.unwrap();
    assert_eq!(limiter.original_cores(), Some(1.5));
    let applied = limiter.set(0.5).await.unwrap();
    assert_eq!(applied.cores, 0.5);
    assert_eq!(text(dir.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(text(dir.join("cpu.cfs_period_us")), "100000");
    limiter.set(2.0).await.unwrap();
    assert_eq!(text(dir.join("cpu.cfs_quota_us")), "200000");
    limiter.restore().await.unwrap();
    assert_eq!(text(dir.join("cpu.cfs_quota_us")), "150000");
    assert_eq!(text(dir.join("cpu.cfs_period_us")), "100000");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn v1_unlimited_host_restored_to_minus_one() {
    let dir = copy_fixture("cgroup_v1_host");
    let mut limiter = CpuLimiter::prepare(&LimitTarget::Cgroup(dir.clone())).await.unwrap();
    assert_eq!(limiter.original_cores(), None);
    limiter.set(0.25).await.unwrap();
    assert_eq!(text(dir.join("cpu.cfs_quota_us")), "25000");
    limiter.restore().await.unwrap();
    assert_eq!(text(dir.join("cpu.cfs_quota_us")), "-1");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn v2_fixtures_limited_then_restored() {
    for (name, original, cores) in [
        ("cgroup_v2_limited", "400000 100000", Some(4.0)),
        ("cgroup_v2_unlimited", "max 100000", None),
    ] {
        let dir = copy_fixture(name);
        let mut limiter = CpuLimiter::prepare(&LimitTarget::Cgroup(dir.clone())).await.unwrap();
        assert_eq!(limiter.original_cores(), cores, "{name}");
        limiter.set(1.5).await.unwrap();
        assert_eq!(text(dir.join("cpu.max")), "150000 100000", "{name}");
        limiter.restore().await.unwrap();
        assert_eq!(text(dir.join("cpu.max")), original, "{name}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn drop_restores_a_limit_left_in_force() {
    let dir = copy_fixture("cgroup_v2_limited");
    {
        let mut limiter = CpuLimiter::prepare(&LimitTarget::Cgroup(dir.clone())).await.unwrap();
        limiter.set(0.5).await.unwrap();
        assert_eq!(text(dir.join("cpu.max")), "50000 100000");
    }
    assert_eq!(text(dir.join("cpu.max")), "400000 100000");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn v1_memory_path_finds_the_cpu_sibling() {
    let root = temp("v1-siblings");
    let mem = root.join("memory/docker/abc");
    let cpu = root.join("cpu/docker/abc");
    std::fs::create_dir_all(&mem).unwrap();
    std::fs::create_dir_all(&cpu).unwrap();
    std::fs::write(mem.join("memory.usage_in_bytes"), "1000\n").unwrap();
    std::fs::write(cpu.join("cpu.cfs_quota_us"), "200000\n").unwrap();
    std::fs::write(cpu.join("cpu.cfs_period_us"), "100000\n").unwrap();
    let mut limiter = CpuLimiter::prepare(&LimitTarget::Cgroup(mem)).await.unwrap();
    assert_eq!(limiter.original_cores(), Some(2.0));
    limiter.set(1.0).await.unwrap();
    assert_eq!(text(cpu.join("cpu.cfs_quota_us")), "100000");
    limiter.restore().await.unwrap();
    assert_eq!(text(cpu.join("cpu.cfs_quota_us")), "200000");
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn a_directory_without_quota_files_is_a_clear_error() {
    let dir = temp("noquota");
    let err = CpuLimiter::prepare(&LimitTarget::Cgroup(dir.clone()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("has no CPU quota file"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

const MOUNTINFO_V1: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
const MOUNTINFO_V2: &str =
    "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";
const MOUNTINFO_CPUACCT_ONLY: &str = "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
";

#[test]
fn mountinfo_prefers_the_v1_cpu_hierarchy() {
    let m = parse_mountinfo(MOUNTINFO_V1).unwrap();
    assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
    assert_eq!((m.root.as_str(), m.files), ("/", QuotaFiles::V1));
    let m = parse_mountinfo(MOUNTINFO_V2).unwrap();
    assert_eq!(
        (m.mount_point, m.files),
        (PathBuf::from("/sys/fs/cgroup"), QuotaFiles::V2)
    );
    assert_eq!(parse_mountinfo(MOUNTINFO_CPUACCT_ONLY), None, "cpuacct is not cpu");
    assert_eq!(parse_mountinfo(""), None);
}

#[test]
fn proc_cgroup_lines_and_group_dirs() {
    let v1 = "9:name=systemd:/\n4:memory:/process_api/e0\n2:cpu,cpuacct:/docker/abc\n0::/\n";
    assert_eq!(parse_proc_cgroup(v1, QuotaFiles::V1).as_deref(), Some("/docker/abc"));
    assert_eq!(parse_proc_cgroup(v1, QuotaFiles::V2).as_deref(), Some("/"));
    assert_eq!(
        parse_proc_cgroup("0::/user.slice/x\n", QuotaFiles::V2).as_deref(),
        Some("/user.slice/x")
    );
    assert_eq!(parse_proc_cgroup("0::/x\n", QuotaFiles::V1), None);
    let mount = CpuMount {
        mount_point: PathBuf::from("/sys/fs/cgroup/cpu"),
        root: "/".into(),
        files: QuotaFiles::V1,
    };
    assert_eq!(group_dir(&mount, "/"), PathBuf::from("/sys/fs/cgroup/cpu"));
    assert_eq!(
        group_dir(&mount, "/docker/abc"),
        PathBuf::from("/sys/fs/cgroup/cpu/docker/abc")
    );
    let namespaced = CpuMount {
        root: "/docker/abc".into(),
        ..mount
    };
    assert_eq!(
        group_dir(&namespaced, "/docker/abc/app"),
        PathBuf::from("/sys/fs/cgroup/cpu/app")
    );
}

#[test]
fn placement_in_a_fixture_hierarchy_moves_in_and_back() {
    let root = temp("hier");
    let proc_root = root.join("proc");
    std::fs::create_dir_all(proc_root.join("4242")).unwrap();
    std::fs::write(proc_root.join("4242/cgroup"), "2:cpu,cpuacct:/orig\n").unwrap();
    let hier = root.join("cpu");
    std::fs::create_dir_all(hier.join("orig")).unwrap();
    let mount = CpuMount {
        mount_point: hier.clone(),
        root: "/".into(),
        files: QuotaFiles::V1,
    };
    let p = Placement::create(4242, mount, &proc_root).unwrap();
    assert_eq!(p.created, hier.join("xiaozhi-fleet-4242"));
    assert_eq!(p.original, hier.join("orig"));
    assert_eq!(text(p.created.join("cgroup.procs")), "4242");
    // The kernel's files vanish with the group; a fixture's must go by hand.
    std::fs::remove_file(p.created.join("cgroup.procs")).unwrap();
    p.undo().unwrap();
    assert_eq!(text(hier.join("orig/cgroup.procs")), "4242");
    assert!(!p.created.exists());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn whole_cores_for_affinity() {
    let table = [
        (0.25, 2, 1),
        (0.5, 2, 1),
        (1.0, 2, 1),
        (1.5, 2, 2),
        (4.0, 2, 2),
        (3.0, 8, 3),
    ];
    for (cores, available, want) in table {
        assert_eq!(affinity::whole_cores(cores, available), want, "{cores} of {available}");
    }
}

/// A `sleep` child for tests that need a real process.
fn sleeper() -> std::process::Child {
    std::process::Command::new("sleep").arg("30").spawn().unwrap()
}

#[tokio::test]
async fn affinity_of_a_real_process_is_set_and_restored() {
    let mut child = sleeper();
    let pid = child.id();
    let a = Affinity::record(pid).unwrap();
    let before = affinity::get(pid as i32).unwrap();
    a.apply(&a.first(1)).unwrap();
    assert_eq!(affinity::get(pid as i32).unwrap(), a.first(1));
    a.restore().unwrap();
    assert_eq!(affinity::get(pid as i32).unwrap(), before);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Where this machine lets us create a cgroup (root, writable cpu
/// controller), a real process is moved in, limited, and moved back.
#[tokio::test]
async fn real_cgroup_for_a_process_when_writable() {
    let mut child = sleeper();
    let pid = child.id();
    let before = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut limiter = CpuLimiter::prepare(&LimitTarget::Pid(pid)).await.unwrap();
    if let Some(reason) = &limiter.fallback_reason {
        eprintln!("no writable cgroup here ({reason}); the affinity path was taken");
        let applied = limiter.set(0.5).await.unwrap();
        assert_eq!(applied.cores, 1.0, "affinity rounds up to whole cores");
    } else {
        let now = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(now.contains(&format!("xiaozhi-fleet-{pid}")), "{now}");
        let applied = limiter.set(0.5).await.unwrap();
        assert_eq!(applied.cores, 0.5);
    }
    limiter.restore().await.unwrap();
    let after = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(after, before);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Requests seen by the fake daemon: (method, path, body).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A fake Docker daemon: `GET …/json` answers `inspect`, `POST …/update`
/// answers 200; every request is recorded with its body.
fn fake_daemon(socket: &Path, inspect: String, seen: Seen) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        for _ in 0..50 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + length {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
            let mut words = head.split_whitespace();
            let method = words.next().unwrap_or("").to_string();
            let path = words.next().unwrap_or("").split('?').next().unwrap_or("").to_string();
            let reply = if path.ends_with("/json") {
                inspect.clone()
            } else {
                "{\"Warnings\":[]}".into()
            };
            seen.lock().unwrap().push((method, path, body));
            let out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
            let _ = conn.write_all(out.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    })
}

fn inspect_with(nano: i64, quota: i64, period: i64) -> String {
    serde_json::json!({
        "Id": "abc", "Name": "/srv",
        "State": {"Status": "running", "Running": true, "Pid": 77},
        "HostConfig": {"NanoCpus": nano, "CpuQuota": quota, "CpuPeriod": period, "Memory": 0}
    })
    .to_string()
}

fn updates(seen: &Seen) -> Vec<serde_json::Value> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(m, p, _)| m == "POST" && p.ends_with("/containers/srv/update"))
        .map(|(_, _, b)| serde_json::from_str(b).unwrap())
        .collect()
}

async fn docker_limiter(tag: &str, inspect: String) -> (CpuLimiter, Seen, PathBuf, tokio::task::JoinHandle<()>) {
    let socket = crate::watch::docker::tests::temp_socket(tag);
    let seen: Seen = Arc::default();
    let server = fake_daemon(&socket, inspect, seen.clone());
    let target = LimitTarget::Docker {
        name: "srv".into(),
        socket: socket.display().to_string(),
    };
    (CpuLimiter::prepare(&target).await.unwrap(), seen, socket, server)
}

#[tokio::test]
async fn docker_nano_cpus_set_then_restored() {
    let (mut limiter, seen, socket, server) = docker_limiter("nano", inspect_with(4_000_000_000, 0, 0)).await;
    assert_eq!(limiter.original_cores(), Some(4.0));
    let applied = limiter.set(1.5).await.unwrap();
    assert_eq!(applied.cores, 1.5);
    limiter.restore().await.unwrap();
    let bodies = updates(&seen);
    assert_eq!(
        bodies,
        vec![
            serde_json::json!({"NanoCpus": 1_500_000_000i64}),
            serde_json::json!({"NanoCpus": 4_000_000_000i64})
        ]
    );
    server.abort();
    let _ = std::fs::remove_file(socket);
}

#[tokio::test]
async fn docker_unlimited_uses_quota_and_restores_minus_one() {
    let (mut limiter, seen, socket, server) = docker_limiter("quota", inspect_with(0, 0, 0)).await;
    assert_eq!(limiter.original_cores(), None);
    limiter.set(0.5).await.unwrap();
    limiter.restore().await.unwrap();
    assert_eq!(
        updates(&seen),
        vec![
            serde_json::json!({"CpuPeriod": 100000, "CpuQuota": 50000}),
            serde_json::json!({"CpuPeriod": 100000, "CpuQuota": -1})
        ]
    );
    server.abort();
    let _ = std::fs::remove_file(socket);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_limit_restored_by_drop() {
    let (mut limiter, seen, socket, server) = docker_limiter("drop", inspect_with(0, 150_000, 100_000)).await;
    assert_eq!(limiter.original_cores(), Some(1.5));
    limiter.set(1.0).await.unwrap();
    drop(limiter);
    assert_eq!(
        updates(&seen),
        vec![
            serde_json::json!({"CpuPeriod": 100000, "CpuQuota": 100000}),
            serde_json::json!({"CpuPeriod": 100000, "CpuQuota": 150000})
        ]
    );
    server.abort();
    let _ = std::fs::remove_file(socket);
}
