//! Tests for `sampler.rs` and `summary.rs`: summary math, and the watcher
//! over live child processes, fixture cgroup trees and a fake Docker daemon.
//! Every wait is bounded by a count or a timeout.

use super::*;
use crate::watch::docker::tests::{
    INSPECT_OOM, Routes, STATS_V2, fake_docker, running_inspect_object, temp_socket, wire,
};
use crate::watch::proc::HotThread;
use crate::watch::sample::EventKind;
use crate::watch::summary::{ServerSummary, Stats, summarize, summarize_with};
use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

fn sample(t_s: f64, cpu: f64, mem: f64) -> ServerSample {
    ServerSample {
        t_s,
        cpu_cores: cpu,
        memory_mb: mem,
        threads: None,
        fds: None,
        hot_thread: None,
        throttled_ratio: None,
        swap_mb: None,
    }
}

#[test]
fn summarize_nearest_rank() {
    let mut samples: Vec<ServerSample> = (1..=20).map(|i| sample(i as f64, i as f64, 100.0)).collect();
    samples[3].hot_thread = Some(HotThread {
        tid: 7,
        name: "asr".into(),
        core_share: 0.9,
    });
    samples[4].hot_thread = Some(HotThread {
        tid: 8,
        name: "tts".into(),
        core_share: 0.3,
    });
    samples[5].throttled_ratio = Some(0.25);
    samples[6].threads = Some(31);
    let s = summarize(&samples);
    assert_eq!(s.samples, 20);
    assert_eq!(
        s.cpu_cores,
        Stats {
            mean: 10.5,
            p95: 19.0,
            p99: 20.0,
            max: 20.0
        }
    );
    assert_eq!(
        s.memory_mb,
        Stats {
            mean: 100.0,
            p95: 100.0,
            p99: 100.0,
            max: 100.0
        }
    );
    assert_eq!(
        s.hot_thread_share,
        Some(Stats {
            mean: 0.6,
            p95: 0.9,
            p99: 0.9,
            max: 0.9
        })
    );
    assert_eq!(s.hot_thread_name.as_deref(), Some("asr"));
    assert_eq!(
        (s.throttled_ratio_max, s.threads_max, s.swap_mb_max),
        (Some(0.25), Some(31), None)
    );
    // n = 10: rank ceil(9.5) = 10, the max; n = 1: the only value.
    let ten: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(Stats::of(&ten).p95, 10.0);
    assert_eq!(
        Stats::of(&[3.0]),
        Stats {
            mean: 3.0,
            p95: 3.0,
            p99: 3.0,
            max: 3.0
        }
    );
    assert_eq!(summarize(&[]), ServerSummary::default());
}

#[test]
fn burst_share_counts_samples_at_90_percent_of_the_allotment() {
    // 1-core allotment: 0.95 and 0.9 are bursts, 0.89 is not.
    let cpu = [0.2, 0.3, 0.95, 0.9, 0.89, 0.1, 0.2, 0.3, 0.4, 0.5];
    let samples: Vec<ServerSample> = cpu.iter().map(|&c| sample(1.0, c, 100.0)).collect();
    assert_eq!(summarize_with(&samples, Some(1.0)).cpu_burst_share, Some(0.2));
    assert_eq!(summarize_with(&samples, Some(2.0)).cpu_burst_share, Some(0.0));
    assert_eq!(summarize(&samples).cpu_burst_share, None, "no allotment, no bursts");
    assert_eq!(summarize_with(&[], Some(1.0)).cpu_burst_share, None);
    let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!((Stats::of(&hundred).p95, Stats::of(&hundred).p99), (95.0, 99.0));
}

/// A child killed when the test ends, also when it fails (a busy loop
/// must never outlive its test).
struct Kid(Child);

impl Kid {
    fn id(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &str, args: &[&str]) -> Kid {
    Kid(Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

/// Receives until `pred` matches, at most `limit` messages or 15 s.
async fn recv_until(
    rx: &mut mpsc::Receiver<WatchMessage>,
    limit: usize,
    pred: impl Fn(&WatchMessage) -> bool,
) -> Vec<WatchMessage> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for _ in 0..limit {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(msg)) => {
                let done = pred(&msg);
                seen.push(msg);
                if done {
                    break;
                }
            }
            _ => break,
        }
    }
    seen
}

fn samples(msgs: &[WatchMessage]) -> Vec<&ServerSample> {
    msgs.iter()
        .filter_map(|m| match m {
            WatchMessage::Sample(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_reports_process_gone_and_keeps_running() {
    let mut busy = spawn("sh", &["-c", "while :; do :; done"]);
    let mut idle = spawn("sleep", &["10"]);
    let (busy_pid, idle_pid) = (busy.id(), idle.id());
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let targets = vec![WatchTarget::Pid(busy_pid), WatchTarget::Pid(idle_pid)];
    let task = tokio::spawn(run_watcher(targets, Duration::from_millis(250), cancel.clone(), tx));

    let before = recv_until(&mut rx, 20, |m| matches!(m, WatchMessage::Sample(s) if s.t_s > 0.9)).await;
    assert!(matches!(
        before[0],
        WatchMessage::Allotment(Allotment {
            cpu_cores: None,
            memory_mb: None
        })
    ));
    let last = *samples(&before).last().unwrap();
    assert_eq!(last.threads, Some(2));
    // Other work may share the cores: a busy loop still shows, an idle child never does.
    assert!(last.cpu_cores > 0.05, "busy child used {}", last.cpu_cores);
    assert_eq!(last.hot_thread.as_ref().unwrap().tid, busy_pid);

    busy.kill().unwrap();
    busy.wait().unwrap();
    let gone = recv_until(
        &mut rx,
        40,
        |m| matches!(m, WatchMessage::Event(e) if e.kind == EventKind::ProcessGone),
    )
    .await;
    let Some(WatchMessage::Event(event)) = gone.last() else {
        panic!("no ProcessGone event: {gone:?}");
    };
    assert_eq!(event.target, format!("pid {busy_pid}"));
    // Still sampling the remaining target afterwards.
    let after = recv_until(&mut rx, 20, |m| matches!(m, WatchMessage::Sample(_))).await;
    let s = samples(&after);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].threads, Some(1));
    assert!(s[0].t_s > event.t_s);

    idle.kill().unwrap();
    idle.wait().unwrap();
    let _ = recv_until(&mut rx, 20, |m| matches!(m, WatchMessage::Event(_))).await;
    // No target left: no more samples (zeros would drag the means down).
    let quiet = tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await;
    assert!(quiet.is_err(), "a sample after every target was gone: {quiet:?}");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn watcher_missing_pid_is_gone_at_prime() {
    let mut w = Watcher::new(vec![WatchTarget::Pid(u32::MAX - 1)]);
    let events = w.prime().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::ProcessGone);
    assert_eq!(w.active_targets(), 0);
    let (s, ev) = w.tick().await;
    assert!(ev.is_empty());
    assert_eq!((s.cpu_cores, s.memory_mb), (0.0, 0.0));
}

fn copy_fixture(name: &str, tag: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/watch/fixtures")
        .join(name);
    let dst = std::env::temp_dir().join(format!("xf-sampler-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    dst
}

#[tokio::test]
async fn watcher_cgroup_limits_oom_swap_and_removal() {
    let dir = copy_fixture("cgroup_v2_limited", "cg");
    let mut w = Watcher::new(vec![WatchTarget::Cgroup(dir.clone())]);
    let events = w.prime().await;
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::SwapInUse], "50 MiB swap in the fixture");
    assert_eq!(
        w.allotment(),
        Allotment {
            cpu_cores: Some(4.0),
            memory_mb: Some(4096.0)
        }
    );

    let events_text = std::fs::read_to_string(dir.join("memory.events")).unwrap();
    std::fs::write(
        dir.join("memory.events"),
        events_text.replace("oom_kill 1", "oom_kill 2"),
    )
    .unwrap();
    let (s, events) = w.tick().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::OomKill);
    assert!(events[0].detail.contains("4096 MiB"), "{}", events[0].detail);
    assert_eq!(s.memory_mb, (3_221_225_472u64 - 134_217_728) as f64 / 1048576.0);
    assert_eq!(s.throttled_ratio, Some(0.0));

    std::fs::remove_dir_all(&dir).unwrap();
    let (_, events) = w.tick().await;
    assert_eq!(events[0].kind, EventKind::ProcessGone);
    assert_eq!(w.active_targets(), 0);
}

#[tokio::test]
async fn watcher_docker_unreachable_is_one_event() {
    let mut w = Watcher::new(vec![WatchTarget::Docker("xiaozhi".into())])
        .docker_socket("/nonexistent/xf/docker.sock")
        .docker_poll_pause(Duration::from_millis(10));
    let events = w.prime().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, EventKind::Unavailable);
    assert!(
        events[0]
            .detail
            .starts_with("cannot reach Docker at /nonexistent/xf/docker.sock: ")
    );
    for _ in 0..3 {
        let (s, events) = w.tick().await;
        assert!(events.is_empty());
        assert_eq!(s.cpu_cores, 0.0);
    }
    assert_eq!(w.active_targets(), 1, "retried, not dropped");
}

/// Ticks until an event arrives (at most 100 × 20 ms).
async fn tick_until_events(w: &mut Watcher) -> Vec<ServerEvent> {
    for _ in 0..100 {
        let (_, events) = w.tick().await;
        if !events.is_empty() {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Vec::new()
}

#[tokio::test]
async fn watcher_docker_fake_daemon_oom_restart_removal() {
    let socket = temp_socket("sampler");
    let routes: Routes = Arc::default();
    let json_route = "/containers/srv/json".to_string();
    routes.lock().unwrap().extend([
        (json_route.clone(), (200, running_inspect_object())),
        ("/containers/srv/stats".to_string(), (200, wire(STATS_V2))),
    ]);
    let server = fake_docker(&socket, routes.clone(), 500);
    let mut w = Watcher::new(vec![WatchTarget::Docker("srv".into())])
        .docker_socket(socket.to_str().unwrap())
        .docker_poll_pause(Duration::from_millis(10));
    assert!(w.prime().await.is_empty());
    assert_eq!(
        w.allotment(),
        Allotment {
            cpu_cores: Some(1.5),
            memory_mb: None
        }
    );
    let (s, _) = w.tick().await;
    assert_eq!((s.cpu_cores, s.memory_mb, s.throttled_ratio), (1.5, 600.0, Some(0.4)));

    routes
        .lock()
        .unwrap()
        .insert(json_route.clone(), (200, wire(INSPECT_OOM)));
    let kinds: Vec<EventKind> = tick_until_events(&mut w).await.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::OomKill, EventKind::Restart, EventKind::ProcessGone]
    );
    assert_eq!(w.active_targets(), 1, "a stopped container may come back");

    routes.lock().unwrap().remove(&json_route);
    let events = tick_until_events(&mut w).await;
    assert_eq!(events[0].kind, EventKind::ProcessGone);
    assert_eq!(events[0].detail, "container srv is gone");
    assert_eq!(w.active_targets(), 0);
    server.abort();
    let _ = std::fs::remove_file(&socket);
}
