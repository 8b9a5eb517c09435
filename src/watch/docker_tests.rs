//! Tests for `docker.rs`: fixture JSON of the Engine API (`/containers/{id}/json`
//! and `/containers/{id}/stats?stream=false`, cgroup v1 and v2 hosts), the
//! bollard model round trip, events, and the live client against a missing
//! socket and a tiny fake daemon on a unix socket.

use super::*;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const INSPECT_OOM: &str = include_str!("fixtures/docker_inspect_oomkilled.json");
pub(crate) const INSPECT_RUNNING: &str = include_str!("fixtures/docker_inspect_running.json");
pub(crate) const STATS_V1: &str = include_str!("fixtures/docker_stats_v1.json");
pub(crate) const STATS_V2: &str = include_str!("fixtures/docker_stats_v2.json");

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The API form (an object) of the CLI-style running fixture (an array).
pub(crate) fn running_inspect_object() -> String {
    json(INSPECT_RUNNING)[0].to_string()
}

/// A fixture as the daemon sends it: one line of JSON plus a newline
/// (bollard decodes the stats body line by line).
pub(crate) fn wire(fixture: &str) -> String {
    format!("{}\n", json(fixture))
}

#[test]
fn inspect_oomkilled_restarted_twice() {
    let info = parse_inspect(&json(INSPECT_OOM)).unwrap();
    assert_eq!(info.name, "xiaozhi-esp32-server");
    assert_eq!((info.status.as_str(), info.running, info.pid), ("exited", false, None));
    assert!(info.oom_killed);
    assert_eq!(info.restart_count, 2);
    assert_eq!(info.cpu_limit_cores, Some(2.0), "NanoCpus 2e9");
    assert_eq!(info.memory_limit_bytes, Some(2_147_483_648));
}

#[test]
fn inspect_running_quota_unlimited_memory() {
    let info = parse_inspect(&json(INSPECT_RUNNING)).unwrap();
    assert_eq!(info.name, "xiaozhi-server-b");
    assert_eq!((info.running, info.pid), (true, Some(23817)));
    assert!(!info.oom_killed);
    assert_eq!(info.cpu_limit_cores, Some(1.5), "CpuQuota 150000 / CpuPeriod 100000");
    assert_eq!(info.memory_limit_bytes, None, "Memory 0 = unlimited");
    assert!(parse_inspect(&json("{\"Id\":\"x\"}")).is_err());
    assert!(parse_inspect(&json("[]")).is_err());
}

#[test]
fn stats_v2_exact_sample() {
    let snap = docker_snapshot(&json(&running_inspect_object()), Some(&json(STATS_V2))).unwrap();
    let stats = snap.stats.clone().unwrap();
    assert_eq!(stats.online_cpus, 8);
    assert_eq!(stats.memory_usage_bytes, 734_003_200);
    assert_eq!(stats.memory_bytes, 734_003_200 - 104_857_600, "minus inactive_file");
    assert_eq!(stats.memory_stats_limit_bytes, Some(2_147_483_648));
    let s = docker_sample(&snap);
    assert_eq!(s.cpu_cores, 1.5, "1.5e9 ns of 8e9 system ns on 8 cpus");
    assert_eq!(s.throttled_ratio, 0.4);
    assert_eq!(s.memory_mb, 600.0);
    assert_eq!((s.cpu_limit_cores, s.memory_limit_mb), (Some(1.5), None));
}

#[test]
fn stats_v1_exact_sample() {
    let stats = parse_stats(&json(STATS_V1)).unwrap();
    assert_eq!(
        stats.memory_bytes,
        524_288_000 - 52_428_800,
        "minus total_inactive_file"
    );
    assert_eq!((stats.periods, stats.throttled_periods), (8010, 100));
    assert_eq!(stats.throttled_ns, 2_000_000_000);
    let snap = docker_snapshot(&json(INSPECT_RUNNING), Some(&json(STATS_V1))).unwrap();
    let s = docker_sample(&snap);
    assert!((s.cpu_cores - 0.4).abs() < 1e-12, "{}", s.cpu_cores);
    assert_eq!(s.throttled_ratio, 0.5);
    assert_eq!(s.memory_mb, 450.0);
    // Without online_cpus the CLI falls back to the percpu array length.
    let mut v = json(STATS_V1);
    v["cpu_stats"].as_object_mut().unwrap().remove("online_cpus");
    assert_eq!(parse_stats(&v).unwrap().online_cpus, 4);
    assert!(parse_stats(&json("{}")).is_err());
}

#[test]
fn stopped_container_has_no_usage() {
    let snap = docker_snapshot(&json(INSPECT_OOM), Some(&json(STATS_V2))).unwrap();
    assert_eq!(snap.stats, None);
    let s = docker_sample(&snap);
    assert_eq!((s.running, s.cpu_cores, s.memory_mb), (false, 0.0, 0.0));
    assert_eq!(s.memory_limit_mb, Some(2048.0));
}

#[test]
fn bollard_models_round_trip() {
    for (text, is_inspect) in [
        (INSPECT_OOM.to_string(), true),
        (running_inspect_object(), true),
        (STATS_V1.to_string(), false),
        (STATS_V2.to_string(), false),
    ] {
        let raw = json(&text);
        if is_inspect {
            let typed: ContainerInspectResponse = serde_json::from_value(raw.clone()).unwrap();
            let back = serde_json::to_value(&typed).unwrap();
            assert_eq!(parse_inspect(&back).unwrap(), parse_inspect(&raw).unwrap());
        } else {
            let typed: ContainerStatsResponse = serde_json::from_value(raw.clone()).unwrap();
            let back = serde_json::to_value(&typed).unwrap();
            assert_eq!(parse_stats(&back).unwrap(), parse_stats(&raw).unwrap());
        }
    }
}

#[test]
fn events_oom_restart_stop() {
    let running = parse_inspect(&json(INSPECT_RUNNING)).unwrap();
    let dead = ContainerInfo {
        running: false,
        pid: None,
        status: "exited".into(),
        oom_killed: true,
        restart_count: 2,
        ..running.clone()
    };
    let kinds: Vec<EventKind> = docker_events(&running, &dead).into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds,
        vec![EventKind::OomKill, EventKind::Restart, EventKind::ProcessGone]
    );
    let respawned = ContainerInfo {
        pid: Some(30001),
        ..running.clone()
    };
    let events = docker_events(&running, &respawned);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, EventKind::Restart);
    assert!(docker_events(&running, &running).is_empty());
}

#[tokio::test]
async fn missing_socket_is_a_clear_error() {
    let err = DockerClient::connect("/nonexistent/xf/docker.sock").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot reach Docker at /nonexistent/xf/docker.sock: "),
        "{msg}"
    );
}

#[tokio::test]
async fn non_socket_file_is_unreachable() {
    let path = std::env::temp_dir().join(format!("xf-not-a-socket-{}", std::process::id()));
    std::fs::write(&path, "").unwrap();
    let client = DockerClient::connect(path.to_str().unwrap()).unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), client.inspect("x"))
        .await
        .unwrap()
        .unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, WatchError::DockerUnreachable { .. }), "{err}");
}

/// Canned responses by path suffix (`/containers/NAME/json`, `.../stats`).
pub(crate) type Routes = Arc<Mutex<HashMap<String, (u16, String)>>>;

/// A fake Docker daemon on a unix socket: answers each request from
/// `routes` (404 otherwise) and closes the connection. Serves at most
/// `max_requests` requests; abort the handle to stop it earlier.
pub(crate) fn fake_docker(socket: &Path, routes: Routes, max_requests: usize) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        for _ in 0..max_requests {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf);
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let path = path.split('?').next().unwrap_or("").to_string();
            let (code, body) = {
                let routes = routes.lock().unwrap();
                routes
                    .iter()
                    .find(|(suffix, _)| path.ends_with(suffix.as_str()))
                    .map(|(_, r)| r.clone())
                    .unwrap_or((404, r#"{"message":"No such container"}"#.to_string()))
            };
            let reply = format!(
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    })
}

pub(crate) fn temp_socket(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!("xf-{tag}-{}-{nanos}.sock", std::process::id()))
}

#[tokio::test]
async fn live_client_against_fake_daemon() {
    let socket = temp_socket("dock");
    let routes: Routes = Arc::default();
    routes.lock().unwrap().extend([
        ("/containers/srv/json".to_string(), (200, running_inspect_object())),
        ("/containers/srv/stats".to_string(), (200, wire(STATS_V2))),
    ]);
    let server = fake_docker(&socket, routes, 20);
    let client = DockerClient::connect(socket.to_str().unwrap()).unwrap();
    let snap = client.snapshot("srv").await.unwrap();
    assert_eq!(snap.info.pid, Some(23817));
    assert_eq!(docker_sample(&snap).cpu_cores, 1.5);
    let err = client.snapshot("nosuch").await.unwrap_err();
    assert!(err.is_gone(), "{err}");
    server.abort();
    let _ = std::fs::remove_file(&socket);
}

#[tokio::test]
async fn default_socket_error_names_the_socket() {
    if Path::new(DEFAULT_DOCKER_SOCKET).exists() {
        eprintln!("a Docker socket exists here; skipping");
        return;
    }
    let msg = DockerClient::connect(DEFAULT_DOCKER_SOCKET).unwrap_err().to_string();
    assert!(
        msg.starts_with("cannot reach Docker at /var/run/docker.sock: "),
        "{msg}"
    );
    if std::env::var_os("DOCKER_HOST").is_none() {
        let msg = DockerClient::connect_default().unwrap_err().to_string();
        assert!(
            msg.starts_with("cannot reach Docker at /var/run/docker.sock: "),
            "{msg}"
        );
    }
}
