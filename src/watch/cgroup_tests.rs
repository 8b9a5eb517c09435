//! Tests for `cgroup.rs`. `fixtures/cgroup_v1_host` and `cgroup_v2_host` are
//! copied from a real Linux 6.18 host (v1 cpu/cpuacct/memory + a v2 unified
//! mount); the `*_limited` / `*_unlimited` ones follow the formats in the
//! kernel's cgroup-v1/cgroup-v2 documentation with container-like values.

use super::*;
use std::collections::HashMap;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/watch/fixtures")
        .join(name)
}

fn temp_tree(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("xf-cg-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn base(version: CgroupVersion) -> CgroupSnapshot {
    CgroupSnapshot {
        version,
        cpu_usage_ns: None,
        throttled_periods: 0,
        total_periods: 0,
        throttled_ns: 0,
        memory_bytes: None,
        memory_usage_bytes: None,
        memory_limit_bytes: None,
        cpu_limit_cores: None,
        oom_kills: 0,
        limit_hits: None,
        swap_bytes: None,
    }
}

#[test]
fn v2_limited_throttled_oom() {
    let snap = read_cgroup(&fixture("cgroup_v2_limited")).unwrap();
    let want = CgroupSnapshot {
        cpu_usage_ns: Some(8_842_201_334_000),
        throttled_periods: 1203,
        total_periods: 61234,
        throttled_ns: 95_112_003_000,
        memory_bytes: Some(3_221_225_472 - 134_217_728),
        memory_usage_bytes: Some(3_221_225_472),
        memory_limit_bytes: Some(4_294_967_296),
        cpu_limit_cores: Some(4.0),
        oom_kills: 1,
        limit_hits: Some(412),
        swap_bytes: Some(52_428_800),
        ..base(CgroupVersion::V2)
    };
    assert_eq!(snap, want);
}

#[test]
fn v2_unlimited() {
    let snap = read_cgroup(&fixture("cgroup_v2_unlimited")).unwrap();
    assert_eq!(snap.version, CgroupVersion::V2);
    assert_eq!(snap.memory_limit_bytes, None);
    assert_eq!(snap.cpu_limit_cores, None);
    assert_eq!(snap.memory_bytes, Some(471_859_200));
    assert_eq!((snap.oom_kills, snap.limit_hits), (0, Some(0)));
    assert_eq!(snap.swap_bytes, None);
}

#[test]
fn v2_real_host_partial_files() {
    // The real unified mount of a hybrid host: cpu.stat without throttling
    // lines and no memory files at all.
    let snap = read_cgroup(&fixture("cgroup_v2_host")).unwrap();
    assert_eq!(snap.version, CgroupVersion::V2);
    assert_eq!(snap.cpu_usage_ns, Some(148_280_654_000));
    assert_eq!(snap.total_periods, 0);
    assert_eq!(snap.memory_bytes, None);
}

#[test]
fn v1_limited_throttled_oom() {
    let snap = read_cgroup(&fixture("cgroup_v1_limited")).unwrap();
    let want = CgroupSnapshot {
        cpu_usage_ns: Some(5_234_567_890_123),
        throttled_periods: 9140,
        total_periods: 48211,
        throttled_ns: 812_345_678_901,
        memory_bytes: Some(2_143_289_344 - 41_943_040),
        memory_usage_bytes: Some(2_143_289_344),
        memory_limit_bytes: Some(2_147_483_648),
        cpu_limit_cores: Some(1.5),
        oom_kills: 3,
        limit_hits: Some(18211),
        ..base(CgroupVersion::V1)
    };
    assert_eq!(snap, want);
}

#[test]
fn v1_real_host_unlimited() {
    let snap = read_cgroup(&fixture("cgroup_v1_host")).unwrap();
    assert_eq!(snap.version, CgroupVersion::V1);
    assert_eq!(snap.cpu_usage_ns, Some(155_520_703_542));
    assert_eq!(snap.memory_limit_bytes, None, "9223372036854771712 = unlimited");
    assert_eq!(snap.cpu_limit_cores, None, "quota -1 = unlimited");
    assert_eq!(snap.memory_bytes, Some(193_110_016 - 103_526_400));
    assert_eq!(snap.swap_bytes, Some(193_212_416 - 193_110_016));
    assert_eq!((snap.oom_kills, snap.limit_hits), (0, Some(0)));
}

#[test]
fn v1_split_controller_layout() {
    let root = temp_tree("split");
    let src = fixture("cgroup_v1_limited");
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let ctrl = if name.starts_with("memory.") {
            "memory"
        } else if name.starts_with("cpuacct.") {
            "cpuacct"
        } else {
            "cpu"
        };
        let dir = root.join(ctrl).join("docker/abc123");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(src.join(&name), dir.join(&name)).unwrap();
    }
    let split = read_cgroup(&root.join("memory/docker/abc123")).unwrap();
    assert_eq!(split, read_cgroup(&src).unwrap());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn pure_parsers_over_lookup() {
    let files: HashMap<&str, &str> = [
        (
            "cpu.stat",
            "usage_usec 2000\nnr_periods 5\nnr_throttled 1\nthrottled_usec 7\n",
        ),
        ("memory.current", "1048576\n"),
    ]
    .into_iter()
    .collect();
    let lookup = |name: &str| files.get(name).map(|s| s.to_string());
    assert!(is_v2(&lookup), "usage_usec alone marks v2");
    let snap = parse_cgroup(&lookup).unwrap();
    assert_eq!(snap.cpu_usage_ns, Some(2_000_000));
    assert_eq!((snap.total_periods, snap.throttled_ns), (5, 7000));
    assert_eq!(snap.memory_bytes, Some(1_048_576));
    let v1 = |name: &str| (name == "memory.usage_in_bytes").then(|| "4096\n".to_string());
    assert!(!is_v2(&v1));
    assert_eq!(parse_v1(&v1).unwrap().memory_usage_bytes, Some(4096));
    let bad = |name: &str| (name == "memory.current").then(|| "12 MB".to_string());
    assert!(matches!(parse_v2(&bad), Err(WatchError::Parse { .. })));
}

#[test]
fn limit_parsers() {
    assert_eq!(parse_cpu_max("max 100000\n").unwrap(), None);
    assert_eq!(parse_cpu_max("400000 100000\n").unwrap(), Some(4.0));
    assert_eq!(parse_cpu_max("50000 100000").unwrap(), Some(0.5));
    assert!(parse_cpu_max("").is_err());
    assert!(parse_cpu_max("100 0").is_err());
    assert_eq!(parse_memory_max("max\n").unwrap(), None);
    assert_eq!(parse_memory_max("536870912\n").unwrap(), Some(536_870_912));
    assert!(parse_memory_max("lots").is_err());
    assert_eq!(parse_cfs_limit("-1\n", "100000\n").unwrap(), None);
    assert_eq!(parse_cfs_limit("250000", "100000").unwrap(), Some(2.5));
    assert!(parse_cfs_limit("x", "100000").is_err());
    assert_eq!(kv("oom_kill_disable 0\nunder_oom 1\noom_kill 3\n", "oom_kill"), Some(3));
    assert_eq!(kv("oom_kill_disable 0\n", "oom_kill"), None);
}

#[test]
fn cgroup_delta_exact_values() {
    let prev = CgroupSnapshot {
        cpu_usage_ns: Some(1_000_000_000),
        total_periods: 100,
        throttled_periods: 10,
        oom_kills: 1,
        limit_hits: Some(5),
        ..base(CgroupVersion::V2)
    };
    let cur = CgroupSnapshot {
        cpu_usage_ns: Some(4_000_000_000),
        total_periods: 120,
        throttled_periods: 18,
        memory_bytes: Some(300 * 1024 * 1024),
        memory_limit_bytes: Some(1024 * 1024 * 1024),
        cpu_limit_cores: Some(2.0),
        oom_kills: 3,
        limit_hits: Some(9),
        swap_bytes: Some(1024 * 1024),
        ..base(CgroupVersion::V2)
    };
    let s = cgroup_delta(&prev, &cur, Duration::from_secs(2));
    let want = CgroupSample {
        cpu_cores: Some(1.5),
        throttled_ratio: 0.4,
        memory_mb: Some(300.0),
        memory_limit_mb: Some(1024.0),
        cpu_limit_cores: Some(2.0),
        new_oom_kills: 2,
        new_limit_hits: 4,
        swap_mb: Some(1.0),
    };
    assert_eq!(s, want);
    let idle = cgroup_delta(&cur, &cur, Duration::from_secs(1));
    assert_eq!(
        (idle.cpu_cores, idle.throttled_ratio, idle.new_oom_kills),
        (Some(0.0), 0.0, 0)
    );
    let none = cgroup_delta(&base(CgroupVersion::V1), &cur, Duration::from_secs(1));
    assert_eq!(none.cpu_cores, None);
}

#[test]
fn missing_and_empty_dirs() {
    let err = read_cgroup(Path::new("/nonexistent/cgroup/xf")).unwrap_err();
    assert!(err.is_gone(), "{err}");
    let empty = temp_tree("empty");
    let err = read_cgroup(&empty).unwrap_err();
    assert!(matches!(err, WatchError::NotCgroup { .. }), "{err}");
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn live_machine_cgroup_if_mounted() {
    // Whatever this machine mounts: v1 cpu controller dir or the v2 root.
    let candidates = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"];
    let Some(path) = candidates.iter().map(Path::new).find(|p| read_cgroup(p).is_ok()) else {
        eprintln!("no readable cgroup mount here; skipping");
        return;
    };
    let a = read_cgroup(path).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let b = read_cgroup(path).unwrap();
    let s = cgroup_delta(&a, &b, Duration::from_millis(100));
    assert!(s.cpu_cores.unwrap_or(0.0) >= 0.0);
    assert!(a.cpu_usage_ns.is_some() || a.memory_bytes.is_some());
}
