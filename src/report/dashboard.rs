//! `--dashboard ADDR`: a live web page of the run, as k6 and Locust users
//! expect. `/` is one embedded page (no external assets); `/events` pushes
//! the state every second as server-sent events; `/state` is the latest
//! state as JSON. The state is built from the live [`Feed`] by
//! [`state_of`], from the same metrics as the report, so the page's last
//! numbers are the report's.

use super::feed::{Feed, RunStatus, ServerLive};
use super::slo::check;
use super::{latency_of, playback_of, turns_of};
use crate::metrics::{Metrics, Snapshot};
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use futures_util::Stream;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The page (HTML, CSS and script in one file, embedded in the binary).
pub const PAGE: &str = include_str!("dashboard.html");

/// Points of the page's chart kept for a page opened mid-run (10 minutes
/// at one per second).
const HISTORY_POINTS: usize = 600;

/// One point of the page's chart.
fn point(snap: &Snapshot) -> Value {
    json!({ "t": snap.elapsed.as_secs_f64(), "fa": snap.first_audio_p95_ms, "sp": snap.talking })
}

/// Keeps the chart's recent points, so a page opened mid-run starts with
/// them; one owner, published as whole snapshots.
fn keep_history(mut fleet: watch::Receiver<Snapshot>) -> watch::Receiver<Arc<Vec<Value>>> {
    let (tx, rx) = watch::channel(Arc::new(Vec::new()));
    tokio::spawn(async move {
        let mut points = std::collections::VecDeque::with_capacity(HISTORY_POINTS);
        while fleet.changed().await.is_ok() {
            let p = point(&fleet.borrow_and_update());
            if points.len() == HISTORY_POINTS {
                points.pop_front();
            }
            points.push_back(p);
            let _ = tx.send(Arc::new(points.iter().cloned().collect()));
        }
    });
    rx
}

#[derive(Clone)]
struct Shared {
    feed: Feed,
    history: watch::Receiver<Arc<Vec<Value>>>,
}

/// The state the page shows.
pub fn state_of(snap: &Snapshot, server: &ServerLive, status: &RunStatus) -> Value {
    let empty = Metrics::default();
    let m = snap.metrics.as_deref().unwrap_or(&empty);
    let fa = latency_of(m).remove("first_audio").unwrap_or_default();
    let turns = turns_of(m);
    let playback = playback_of(m);
    let verdict = (!status.slos.is_empty()).then(|| {
        let measure = crate::capacity::slo::StageMeasure {
            latency_ms: latency_of(m),
            stutter_ratio: playback.stutter_ratio,
            failed_ratio: turns.failed_ratio,
            turns_completed: turns.completed,
        };
        check(&status.slos, &measure)
    });
    json!({
        "phase": status.phase,
        "elapsed_s": snap.elapsed.as_secs_f64(),
        "stage": snap.stage.clone().or(status.step.as_ref().map(|s| s.label.clone())),
        "step": status.step,
        "knee": status.knee,
        "connected": snap.connected,
        "speakers": snap.talking,
        "turns_per_sec": snap.turns_per_sec,
        "turns": turns,
        "first_audio_ms": fa,
        "first_audio_p95_recent_ms": snap.first_audio_p95_ms,
        "stutter_ratio": playback.stutter_ratio,
        "stutter_by_cause": playback.by_cause,
        "send_lag_p99_ms": snap.send_lag_p99_ms,
        "generator_valid": status.generator_valid,
        "server": server.watched.then(|| json!({
            "cpu_cores": server.cpu_cores,
            "memory_mb": server.memory_mb,
            "cpu_allotment": server.cpu_allotment,
            "memory_limit_mb": server.memory_limit_mb,
            "restarts": server.restarts,
            "oom_kills": server.oom_kills,
        })),
        "verdict": verdict,
    })
}

/// The state now. Copies first (the metrics are shared, not copied), so
/// the collector never waits on a page being served.
fn current(feed: &Feed) -> Value {
    let snap = feed.fleet.borrow().clone();
    let server = feed.server.borrow().clone();
    let status = feed.status.borrow().clone();
    state_of(&snap, &server, &status)
}

/// First a `history` event (the chart's recent points), then one `state`
/// event per fleet snapshot or status change; the last one is named `final`
/// and sent once the status writer is gone (the run and its report are
/// done), then the stream ends.
fn events(shared: Shared) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((shared, 0u8), |(mut sh, step)| async move {
        match step {
            0 => {
                let history = json!(**sh.history.borrow());
                let event = Event::default().event("history").data(history.to_string());
                return Some((Ok(event), (sh, 1)));
            }
            1 => {}
            _ => return None,
        }
        let feed = &mut sh.feed;
        let fleet_open = feed.fleet.has_changed().is_ok();
        let mut finished = false;
        tokio::select! {
            r = feed.fleet.changed(), if fleet_open => { let _ = r; }
            r = feed.status.changed() => finished = r.is_err(),
        }
        let kind = if finished { "final" } else { "state" };
        let event = Event::default().event(kind).data(current(feed).to_string());
        Some((Ok(event), (sh, if finished { 2 } else { 1 })))
    })
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn state(State(sh): State<Shared>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], current(&sh.feed).to_string())
}

async fn sse(State(sh): State<Shared>) -> impl IntoResponse {
    Sse::new(events(sh)).keep_alive(KeepAlive::default())
}

/// Serves the dashboard on `listener` until `shutdown` (open event streams
/// end by themselves when the run's status writer is dropped).
pub async fn serve(listener: TcpListener, feed: Feed, shutdown: CancellationToken) -> std::io::Result<()> {
    let history = keep_history(feed.fleet.clone());
    let app = Router::new()
        .route("/", get(page))
        .route("/state", get(state))
        .route("/events", get(sse))
        .with_state(Shared { feed, history });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::slo::Slo;
    use std::time::Duration;

    #[test]
    fn state_shows_whole_run_figures_and_the_verdict_so_far() {
        let mut m = Metrics {
            turns_started: 3,
            completed: 2,
            failed: 1,
            ..Metrics::default()
        };
        let fa = m.latency.entry("first_audio").or_default();
        fa.record(Duration::from_millis(900));
        fa.record(Duration::from_millis(1100));
        let snap = Snapshot {
            elapsed: Duration::from_secs(7),
            talking: 4,
            metrics: Some(std::sync::Arc::new(m)),
            ..Snapshot::default()
        };
        let status = RunStatus {
            phase: "running".into(),
            slos: vec![Slo::parse("first_audio.p95<=1s").unwrap()],
            ..RunStatus::default()
        };
        let s = state_of(&snap, &ServerLive::default(), &status);
        assert_eq!(s["speakers"], 4);
        assert_eq!(s["turns"]["completed"], 2);
        assert_eq!(s["first_audio_ms"]["max"], 1100.0);
        assert_eq!(s["verdict"]["passed"], false);
        assert_eq!(s["verdict"]["checks"][0]["observed"], 1100.0);
        assert!(s["server"].is_null(), "no server watched");
    }

    #[test]
    fn state_shows_stutter_by_cause_and_double_answers() {
        use crate::audio::playback::TurnPlayback;
        let mut m = Metrics::default();
        m.playback.causes.add(&TurnPlayback {
            server_gap_ms: 120.0,
            network_gap_ms: 60.0,
            dropped_ms: 240.0,
            ..TurnPlayback::default()
        });
        m.extra_answers.add(2);
        let snap = Snapshot {
            metrics: Some(std::sync::Arc::new(m)),
            ..Snapshot::default()
        };
        let s = state_of(&snap, &ServerLive::default(), &RunStatus::default());
        assert_eq!(
            s["stutter_by_cause"],
            json!({"server_ms": 120.0, "network_ms": 60.0, "device_ms": 240.0,
                "turns_server": 1, "turns_network": 1, "turns_device": 1})
        );
        assert_eq!(
            (&s["turns"]["extra_answers"], &s["turns"]["extra_answer_turns"]),
            (&json!(2), &json!(1))
        );
        for id in [
            "stutter_by_cause",
            "extra_answer_turns",
            "id=\"stutter_causes\"",
            "id=\"double_answers\"",
        ] {
            assert!(PAGE.contains(id), "the page shows {id}");
        }
    }
}
