//! `--prometheus ADDR`: serves `/metrics` during the run, read at each
//! scrape from the live [`Feed`]: the same metrics the JSON report is built
//! from, so the last scrape's counters equal the report's counts. Names are
//! `xiaozhi_fleet_*` (listed in the README); latencies are histograms in
//! seconds with buckets from 50 ms to 30 s, taken from the run's
//! HdrHistograms (`_count` and `_sum` exact; a sample within 0.1% of a
//! bucket edge may land on either side of it).

use super::feed::Feed;
use crate::metrics::{LATENCY_METRICS, LatencyHistogram, Metrics};
use crate::report::csv::outcome;
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every metric name carries this prefix.
pub const PREFIX: &str = "xiaozhi_fleet";

/// Latency bucket upper bounds, in seconds.
pub const BUCKETS_S: [f64; 15] = [
    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0,
];

/// Encodes the feed's current state at each scrape.
#[derive(Debug)]
struct FleetCollector {
    feed: Feed,
}

type Enc<'a, 'b> = &'a mut DescriptorEncoder<'b>;

fn counter(e: Enc, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: Enc, name: &str, help: &str, unit: Option<&Unit>, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, unit, g.metric_type())?)
}

/// A counter family with one label.
fn counters<'k>(
    e: Enc,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'k str, u64)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (k, v) in values {
        let labels = [(label, k)];
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Prometheus buckets (per bucket, not cumulative) from an HdrHistogram.
pub fn prometheus_buckets(h: &LatencyHistogram) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(BUCKETS_S.len() + 1);
    let mut below = 0;
    for le in BUCKETS_S {
        let n = h.count_at_most_us((le * 1e6) as u64);
        out.push((le, n - below));
        below = n;
    }
    out.push((f64::MAX, h.count() - below));
    out
}

fn latencies(e: Enc, m: &Metrics) -> std::fmt::Result {
    let mut enc = e.encode_descriptor(
        "latency",
        "Turn latencies by metric, from end of speech (connect and hello per connection), completed turns",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    let empty = LatencyHistogram::new();
    for name in LATENCY_METRICS {
        let h = m.latency.get(name).unwrap_or(&empty);
        let labels = [("metric", name)];
        enc.encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum_us() as f64 / 1e6,
                h.count(),
                &prometheus_buckets(h),
                None,
            )?;
    }
    Ok(())
}

fn totals(e: Enc, m: &Metrics) -> std::fmt::Result {
    counter(e, "turns_started", "Turns started", m.turns_started)?;
    let outcomes = [
        (outcome(crate::metrics::TurnOutcome::Completed), m.completed),
        ("failed", m.failed),
        ("cancelled", m.cancelled),
        ("interrupted", m.interrupted),
    ];
    counters(e, "turns", "Finished turns by outcome", "outcome", outcomes)?;
    counters(
        e,
        "turn_failures",
        "Failed turns by kind",
        "kind",
        m.failures.iter().map(|(k, v)| (k.as_str(), *v)),
    )?;
    counters(
        e,
        "connect_failures",
        "Connects that failed outside a conversation, by kind",
        "kind",
        m.connect_failures.iter().map(|(k, v)| (k.as_str(), *v)),
    )?;
    counter(e, "connections", "Connections opened (hello received)", m.connections)?;
    counter(e, "playback_turns", "Completed turns with audio", m.playback.turns)?;
    counter(
        e,
        "stutter_turns",
        "Completed turns with at least one underrun of a frame or more",
        m.playback.stutter_turns,
    )?;
    counter(e, "underruns", "Gaps in the modelled playout", m.playback.underruns)?;
    stutter_causes(e, m)?;
    let t = &m.tally;
    counters(
        e,
        "frames",
        "Audio frames by direction",
        "direction",
        [("sent", t.frames_sent), ("received", t.frames_received)],
    )?;
    counters(
        e,
        "audio_bytes",
        "Audio bytes by direction",
        "direction",
        [("sent", t.bytes_sent), ("received", t.bytes_received)],
    )
}

/// Stutter per cause (see [`crate::metrics::stutter`]) and double answers.
fn stutter_causes(e: Enc, m: &Metrics) -> std::fmt::Result {
    use crate::metrics::stutter::StutterCause;
    let b = m.playback.causes.by_cause();
    let mut enc = e.encode_descriptor(
        "stutter",
        "Stutter time in completed turns by cause: server (audio late at the device's socket), network (held by the network conditions), device (dropped by a full decode queue)",
        Some(&Unit::Seconds),
        MetricType::Counter,
    )?;
    for c in StutterCause::ALL {
        let labels = [("cause", c.as_str())];
        ConstCounter::new(b.ms(c) / 1000.0).encode(enc.encode_family(&labels)?)?;
    }
    counters(
        e,
        "stutter_cause_turns",
        "Completed turns with any stutter of the cause",
        "cause",
        StutterCause::ALL.map(|c| (c.as_str(), b.turns(c))),
    )?;
    let x = m.extra_answers;
    counter(
        e,
        "extra_answers",
        "Answers beyond the first for one utterance (double answers)",
        x.answers,
    )?;
    counter(e, "extra_answer_turns", "Turns with at least one extra answer", x.turns)
}

impl FleetCollector {
    fn encode_all(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let snap = self.feed.fleet.borrow().clone();
        let server = self.feed.server.borrow().clone();
        let status = self.feed.status.borrow().clone();
        let empty = Metrics::default();
        let m = snap.metrics.as_deref().unwrap_or(&empty);
        latencies(&mut e, m)?;
        totals(&mut e, m)?;
        gauge(
            &mut e,
            "connected_devices",
            "Devices connected now",
            None,
            snap.connected as f64,
        )?;
        gauge(
            &mut e,
            "speakers",
            "Devices in a turn now (concurrent speakers)",
            None,
            snap.talking as f64,
        )?;
        let lag = snap.send_lag_p99_ms.unwrap_or(0.0) / 1000.0;
        gauge(
            &mut e,
            "send_lag_p99",
            "Generator send lag p99 (audio left late)",
            Some(&Unit::Seconds),
            lag,
        )?;
        let valid = status
            .generator_valid
            .unwrap_or(lag * 1000.0 <= crate::fleet::generator::SEND_LAG_P99_LIMIT_MS);
        gauge(
            &mut e,
            "generator_valid",
            "1 while the generator keeps real-time pace",
            None,
            valid as u8 as f64,
        )?;
        gauge(
            &mut e,
            "run_finished",
            "1 once the run is over",
            None,
            (status.phase != "running") as u8 as f64,
        )?;
        super::prometheus_stages::stage_info(&mut e, snap.stage.as_deref(), status.step.as_ref())?;
        super::prometheus_stages::knee(&mut e, &status.knee)?;
        if server.watched {
            self.server(&mut e, &server)?;
        }
        Ok(())
    }

    fn server(&self, e: Enc, s: &super::feed::ServerLive) -> std::fmt::Result {
        const MB: f64 = 1024.0 * 1024.0;
        let opt = |e: Enc, name: &str, help: &str, unit: Option<&Unit>, v: Option<f64>| {
            v.map_or(Ok(()), |v| gauge(e, name, help, unit, v))
        };
        opt(
            e,
            "server_cpu_cores",
            "The watched server's CPU use, in cores",
            None,
            s.cpu_cores,
        )?;
        opt(
            e,
            "server_memory",
            "The watched server's memory",
            Some(&Unit::Bytes),
            s.memory_mb.map(|m| m * MB),
        )?;
        opt(
            e,
            "server_cpu_allotment_cores",
            "The watched server's CPU allotment, in cores",
            None,
            s.cpu_allotment,
        )?;
        opt(
            e,
            "server_memory_limit",
            "The watched server's memory limit",
            Some(&Unit::Bytes),
            s.memory_limit_mb.map(|m| m * MB),
        )?;
        counter(e, "server_restarts", "Restarts of the watched server seen", s.restarts)?;
        counter(
            e,
            "server_oom_kills",
            "OOM kills of the watched server seen",
            s.oom_kills,
        )
    }
}

impl Collector for FleetCollector {
    fn encode(&self, e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_all(e)
    }
}

/// The registry for a feed.
pub fn registry(feed: Feed) -> Registry {
    let mut r = Registry::with_prefix(PREFIX);
    r.register_collector(Box::new(FleetCollector { feed }));
    r
}

/// The exposition text now.
pub fn render(r: &Registry) -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, r);
    out
}

/// The same exposition in the classic text format (0.0.4), for scrapers
/// that do not ask for OpenMetrics (curl, `promtool check metrics`): a
/// counter's HELP and TYPE lines name it with its `_total` suffix, and the
/// OpenMetrics-only `# UNIT` and `# EOF` lines go.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

const OPENMETRICS: &str = "application/openmetrics-text";

async fn metrics(State(r): State<Arc<Registry>>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let wants_openmetrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(OPENMETRICS));
    let text = render(&r);
    if wants_openmetrics {
        (
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
    } else {
        (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            classic_text(&text),
        )
    }
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, feed: Feed, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Arc::new(registry(feed)));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total_and_drops_openmetrics_lines() {
        let om = "# HELP x_turns Turns\n# TYPE x_turns counter\nx_turns_total 3\n# HELP x_up Up\n# TYPE x_up gauge\n# UNIT x_up seconds\nx_up 1\n# EOF\n";
        assert_eq!(
            classic_text(om),
            "# HELP x_turns_total Turns\n# TYPE x_turns_total counter\nx_turns_total 3\n# HELP x_up Up\n# TYPE x_up gauge\nx_up 1\n"
        );
    }

    #[test]
    fn stutter_is_exported_per_cause_with_double_answers() {
        use crate::audio::playback::TurnPlayback;
        let mut m = Metrics::default();
        for (server, network, dropped, extra) in [(60.0, 0.0, 0.0, 0), (120.0, 1500.0, 240.0, 2)] {
            m.playback.causes.add(&TurnPlayback {
                server_gap_ms: server,
                network_gap_ms: network,
                dropped_ms: dropped,
                ..TurnPlayback::default()
            });
            m.extra_answers.add(extra);
        }
        let (_fleet_tx, fleet) = tokio::sync::watch::channel(crate::metrics::Snapshot {
            metrics: Some(Arc::new(m)),
            ..Default::default()
        });
        let (_server_tx, server) = tokio::sync::watch::channel(Default::default());
        let (_status_tx, status) = tokio::sync::watch::channel(Default::default());
        let text = classic_text(&render(&registry(Feed { fleet, server, status })));
        for line in [
            "# TYPE xiaozhi_fleet_stutter_seconds_total counter",
            "xiaozhi_fleet_stutter_seconds_total{cause=\"server\"} 0.18",
            "xiaozhi_fleet_stutter_seconds_total{cause=\"network\"} 1.5",
            "xiaozhi_fleet_stutter_seconds_total{cause=\"device\"} 0.24",
            "# TYPE xiaozhi_fleet_stutter_cause_turns_total counter",
            "xiaozhi_fleet_stutter_cause_turns_total{cause=\"server\"} 2",
            "xiaozhi_fleet_stutter_cause_turns_total{cause=\"network\"} 1",
            "xiaozhi_fleet_stutter_cause_turns_total{cause=\"device\"} 1",
            "# TYPE xiaozhi_fleet_extra_answers_total counter",
            "xiaozhi_fleet_extra_answers_total 2",
            "xiaozhi_fleet_extra_answer_turns_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(text.contains("# HELP xiaozhi_fleet_stutter_seconds_total Stutter time"));
    }

    #[test]
    fn buckets_split_the_histogram_at_the_prometheus_bounds() {
        let mut h = LatencyHistogram::new();
        for ms in [10u64, 60, 60, 1200, 45_000] {
            h.record(std::time::Duration::from_millis(ms));
        }
        let b = prometheus_buckets(&h);
        assert_eq!(b.len(), BUCKETS_S.len() + 1);
        assert_eq!(b[0], (0.05, 1));
        assert_eq!(b[1], (0.1, 2));
        assert_eq!(b[6], (1.5, 1));
        assert_eq!(b[BUCKETS_S.len()], (f64::MAX, 1), "45 s lands in +Inf");
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 5);
    }
}
