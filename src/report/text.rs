//! Console output in operators' terms: a live status line while running and
//! a summary table at the end.

use super::Report;
use crate::metrics::{LATENCY_METRICS, Percentiles, Snapshot};
use std::fmt::Write;

/// Send-lag p99 above this means the generator, not the server, is slow.
pub const SEND_LAG_LIMIT_MS: f64 = 5.0;

/// One line of live progress.
pub fn render_status(s: &Snapshot) -> String {
    let mut line = format!(
        "[{:>4}s] connected {:>4} · talking {:>4} · turns {} ok / {} failed",
        s.elapsed.as_secs(),
        s.connected,
        s.talking,
        s.completed,
        s.failed
    );
    if let Some(p95) = s.first_audio_p95_ms {
        let _ = write!(line, " · p95 first audio {p95:.0} ms");
    }
    if let Some(r) = s.stutter_ratio {
        let _ = write!(line, " · stutter {:.1}%", r * 100.0);
    }
    if let Some(lag) = s.send_lag_p99_ms {
        let _ = write!(line, " · send lag p99 {lag:.1} ms");
    }
    for (kind, n) in &s.failures {
        let _ = write!(line, " · {}={n}", kind.as_str());
    }
    line
}

/// Codes listed on the console; the JSON report has them all.
const CODES_SHOWN: usize = 20;

/// "3 devices wait for activation: codes 123456, …".
pub fn activation_line(a: &super::model::ActivationSection) -> String {
    let mut codes = a.codes.iter().take(CODES_SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if a.codes.len() > CODES_SHOWN {
        let _ = write!(codes, " and {} more (in the JSON report)", a.codes.len() - CODES_SHOWN);
    }
    let devices = if a.waiting == 1 { "device waits" } else { "devices wait" };
    format!("{} {devices} for activation: codes {codes}", a.waiting)
}

fn row(out: &mut String, name: &str, p: &Percentiles) {
    if p.count == 0 {
        let _ = writeln!(out, "  {name:<12} {:>6}   (no samples)", 0);
        return;
    }
    let _ = writeln!(
        out,
        "  {name:<12} {:>6} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
        p.count, p.min, p.p50, p.p90, p.p95, p.p99, p.max
    );
}

/// The end-of-run summary table.
pub fn render_summary(r: &Report) -> String {
    let mut out = String::new();
    let target = if r.run.mock {
        "the built-in mock server"
    } else {
        "the server"
    };
    let _ = writeln!(
        out,
        "\n{} devices against {target} at {} for {:.1} s{}",
        r.run.devices,
        r.run.target_url,
        r.run.duration_s,
        if r.run.interrupted { " (interrupted)" } else { "" }
    );
    let t = &r.turns;
    let _ = writeln!(
        out,
        "{}",
        turns_line(
            [t.started, t.completed, t.failed, t.cancelled, t.interrupted],
            t.failed_ratio
        )
    );
    failure_lines(&mut out, "failed", &t.failures, &t.failure_details);
    throughput_line(&mut out, r);
    let c = &r.connections;
    let conn_failed: u64 = c.failed.values().sum();
    if conn_failed > 0 || c.reconnects > 0 || c.idle_closed > 0 {
        let _ = writeln!(
            out,
            "connections: {} opened, {} reconnects, {} idle closed by the server, {} failed outside a turn",
            c.opened, c.reconnects, c.idle_closed, conn_failed
        );
        failure_lines(&mut out, "connection failed", &c.failed, &c.failure_details);
    }
    if let Some(a) = r.activation.as_ref().filter(|a| a.waiting > 0) {
        let _ = writeln!(out, "{}", activation_line(a));
    }
    if !t.stray_messages.is_empty() {
        let list: Vec<String> = t.stray_messages.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            out,
            "stray messages (not this turn's; ignored, never timed): {}",
            list.join(", ")
        );
    }
    if let Some(d) = t.datagrams {
        let _ = writeln!(
            out,
            "UDP downlink datagrams: {} received, {} lost, {} reordered, {} duplicated, {} malformed (late, repeated and malformed ones dropped, as the firmware does)",
            d.received, d.lost, d.reordered, d.duplicated, d.malformed
        );
    }
    let _ = writeln!(
        out,
        "\nlatency (ms)       count      min      p50      p90      p95      p99      max"
    );
    let _ = writeln!(out, "  (stt … turn are timed from end of speech)");
    for name in LATENCY_METRICS {
        match r.latency_ms.get(name) {
            // The OTA check only happens with --ota: no row without it.
            Some(p) if name == "ota" && p.count == 0 => {}
            Some(p) => row(&mut out, name, p),
            None => {}
        }
    }
    if let Some(p) = &r.providers {
        super::stand_ins::providers_lines(&mut out, p);
    }
    let p = &r.playback;
    let _ = writeln!(
        out,
        "\nplayback: {} of {} turns stuttered ({:.1}%), {} underruns, {} frames dropped (queue full)",
        p.stutter_turns,
        p.turns,
        p.stutter_ratio * 100.0,
        p.underruns,
        p.overflow_drops
    );
    if p.underruns > 0 {
        let _ = writeln!(
            out,
            "  silence per turn (ms): p50 {:.0}, p95 {:.0}, max {:.0}; of it between sentences: p95 {:.0}, max {:.0}",
            p.underrun_ms.p50, p.underrun_ms.p95, p.underrun_ms.max, p.sentence_gap_ms.p95, p.sentence_gap_ms.max
        );
    }
    for line in super::stutter::console_lines(p, t) {
        let _ = writeln!(out, "{line}");
    }
    for rec in &r.recordings {
        let _ = writeln!(
            out,
            "  recorded {} turn {}: {} underruns, {:.0} ms of silence{} → {}",
            rec.device_id,
            rec.turn,
            rec.underruns,
            rec.underrun_ms,
            super::stutter::marks_note(&rec.marks),
            rec.wav.display()
        );
    }
    if let Some(srv) = &r.server {
        server_lines(&mut out, srv);
    }
    if !r.stages.is_empty() {
        let _ = writeln!(out, "\nstages (each measured after its ramp-up):");
        for st in &r.stages {
            let fa = st.latency_ms.get("first_audio").map_or(0.0, |p| p.p95);
            let cpu = st.server.as_ref().map_or(String::new(), |w| {
                format!(", server CPU p95 {:.2} cores", w.cpu_cores.p95)
            });
            let _ = writeln!(
                out,
                "  {:>4} speakers: {} turns, {} failed, p95 first audio {:.0} ms, stutter {:.1}%{cpu}",
                st.speakers,
                st.turns.completed,
                st.turns.failed,
                fa,
                st.playback.stutter_ratio * 100.0
            );
        }
    }
    let a = &r.audio;
    let _ = writeln!(
        out,
        "\naudio: {} frames sent ({} KB), {} frames received ({} KB)",
        a.frames_sent,
        a.bytes_sent / 1024,
        a.frames_received,
        a.bytes_received / 1024
    );
    let lag = &r.generator.send_lag_ms;
    let verdict = if lag.p99 <= SEND_LAG_LIMIT_MS {
        "ok: the generator kept real-time pace".to_string()
    } else {
        format!("over {SEND_LAG_LIMIT_MS} ms: the generator was too slow, results understate the server")
    };
    let _ = writeln!(
        out,
        "generator: send lag p50 {:.1} ms, p99 {:.1} ms ({verdict})",
        lag.p50, lag.p99
    );
    out
}

/// The turn counts as one sum that adds up:
/// `[started, completed, failed, cancelled, interrupted]`.
pub fn turns_line([started, completed, failed, cancelled, interrupted]: [u64; 5], failed_ratio: f64) -> String {
    format!(
        "turns: {started} started = {completed} completed + {failed} failed ({:.1}%) + {cancelled} cancelled + {interrupted} interrupted (barge-in)",
        failed_ratio * 100.0
    )
}

/// One line per failure kind, with its first few distinct details.
fn failure_lines(
    out: &mut String,
    what: &str,
    counts: &std::collections::BTreeMap<String, u64>,
    details: &std::collections::BTreeMap<String, Vec<String>>,
) {
    for (kind, n) in counts {
        let _ = writeln!(out, "  {what} {kind}: {n}");
        for d in details.get(kind).into_iter().flatten() {
            let _ = writeln!(out, "      {d}");
        }
    }
}

/// Turns per second, speakers and connected devices over the run.
fn throughput_line(out: &mut String, r: &Report) {
    let secs = r.run.duration_s.max(f64::EPSILON);
    let peak = |f: fn(&crate::metrics::SeriesPoint) -> i64| r.series.iter().map(f).max().unwrap_or(0);
    let mean_talking = if r.series.is_empty() {
        0.0
    } else {
        r.series.iter().map(|p| p.talking as f64).sum::<f64>() / r.series.len() as f64
    };
    let _ = writeln!(
        out,
        "throughput: {:.2} turns/s completed; speakers mean {:.1}, peak {}; connected devices peak {}",
        r.turns.completed as f64 / secs,
        mean_talking,
        peak(|p| p.talking),
        peak(|p| p.connected)
    );
}

fn server_lines(out: &mut String, srv: &crate::watch::series::ServerReport) {
    let s = &srv.summary;
    let of_cores = srv
        .allotment
        .cpu_cores
        .map_or(" (allotment unknown)".to_string(), |c| format!(" of {c} allotted"));
    let _ = writeln!(
        out,
        "\nserver ({}): CPU cores mean {:.2}, p95 {:.2}, max {:.2}{of_cores}",
        srv.targets.join(", "),
        s.cpu_cores.mean,
        s.cpu_cores.p95,
        s.cpu_cores.max
    );
    let of_mem = srv.allotment.memory_mb.map_or(String::new(), |m| {
        format!(" of {m:.0} MB ({:.0}% at peak)", s.memory_mb.max / m * 100.0)
    });
    let _ = writeln!(
        out,
        "  memory MB mean {:.0}, max {:.0}{of_mem}",
        s.memory_mb.mean, s.memory_mb.max
    );
    if let Some(threads) = s.threads_max {
        let _ = writeln!(out, "  threads max {threads}");
    }
    if let (Some(h), Some(name)) = (&s.hot_thread_share, &s.hot_thread_name) {
        let _ = writeln!(
            out,
            "  busiest thread \"{name}\": p95 {:.0}% of one core",
            h.p95 * 100.0
        );
    }
    for e in &srv.events {
        let _ = writeln!(out, "  event at {:.1} s: {:?} {} {}", e.t_s, e.kind, e.target, e.detail);
    }
}
