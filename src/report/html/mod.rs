//! The HTML report: one self-contained page (inline CSS and SVG charts, no
//! scripts, fonts or network) rendered from any saved report — a run, a
//! capacity search or a merge — through the lenient [`ReportView`]. The
//! verdicts come first, in plain words; then the charts (each drawn only
//! when it has data, otherwise the page says what is missing); then the
//! tables.

mod causes;
pub mod escape;
mod tables;

pub use escape::esc;

use super::chart::{self, BLUE, Chart, GREEN, GREY, Marker, ORANGE, PURPLE, RED};
use super::slo::human_value;
use super::view::{ReportView, StageView};
use crate::capacity::slo::{Slo, SloMetric, Stat};
use std::fmt::Write;
use std::path::Path;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:920px;color:#222}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}\
.verdict{padding:10px 14px;border-radius:6px;margin:8px 0;white-space:pre-wrap}\
.pass{background:#e6f4ea;border:1px solid #8c8}.fail{background:#fdecea;border:1px solid #e88}\
.info{background:#eef3fb;border:1px solid #9bd}table{border-collapse:collapse;margin:8px 0}\
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}\
td:first-child,th:first-child{text-align:left}figure{margin:12px 0}.missing{color:#888;font-style:italic}\
.kpi{display:inline-block;margin:4px 18px 4px 0}.kpi b{font-size:20px;display:block}";

/// The whole page. `out` is where it will be written (recording links are
/// made relative to it).
pub fn render(v: &ReportView, out: &Path) -> String {
    let mut h = String::new();
    let title = if v.is_capacity() {
        "xiaozhi-fleet capacity report"
    } else {
        "xiaozhi-fleet run report"
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
    );
    header(&mut h, v);
    verdicts(&mut h, v);
    kpis(&mut h, v);
    charts(&mut h, v);
    causes::causes(&mut h, v);
    tables::tables(&mut h, v, out);
    h.push_str("</body></html>\n");
    h
}

fn header(h: &mut String, v: &ReportView) {
    let r = &v.run;
    let target = if r.mock {
        "the built-in mock server"
    } else {
        "the server"
    };
    let what = match (&v.capacity, r.stage_duration_s) {
        (Some(_), Some(stage)) => format!("Capacity search against {target}, {stage:.0} s per stage"),
        (Some(_), None) => format!("Capacity search against {target}"),
        (None, _) => format!("{} devices against {target}", r.devices),
    };
    let _ = writeln!(
        h,
        "<p>{what} at <code>{}</code>, started {}, {:.1} s, fleet <code>{}</code>{}.</p>",
        esc(&r.target_url),
        esc(&r.started_at),
        r.duration_s,
        esc(&r.fleet),
        if r.interrupted {
            " — <b>interrupted</b> (partial results)"
        } else {
            ""
        }
    );
    if !v.merged_from.is_empty() {
        let files: Vec<String> = v
            .merged_from
            .iter()
            .map(|m| esc(m.get("file").and_then(|f| f.as_str()).unwrap_or("?")))
            .collect();
        let _ = writeln!(h, "<p>Merged from {} reports: {}.</p>", files.len(), files.join(", "));
    }
}

fn box_(h: &mut String, class: &str, text: &str) {
    let _ = writeln!(h, "<div class=\"verdict {class}\">{text}</div>");
}

fn verdicts(h: &mut String, v: &ReportView) {
    h.push_str("<h2>Verdict</h2>\n");
    if let Some(slo) = &v.slo {
        let failed: Vec<String> = slo
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| {
                let seen = c
                    .observed
                    .map_or("nothing measured".into(), |o| human_value(&c.unit, o));
                format!("{} — was {seen}", esc(&c.description))
            })
            .collect();
        if slo.passed {
            let all: Vec<String> = slo.checks.iter().map(|c| esc(&c.description)).collect();
            box_(h, "pass", &format!("SLOs passed: {}.", all.join("; ")));
        } else {
            box_(h, "fail", &format!("SLO FAILED: {}.", failed.join("; ")));
        }
    } else if let Some(c) = &v.capacity {
        let slos: Vec<String> = c
            .slos
            .iter()
            .filter_map(|s| Slo::parse(s).ok())
            .map(|s| s.describe())
            .collect();
        box_(
            h,
            "info",
            &format!(
                "At most <b>{}</b> concurrent speakers within the SLOs ({}); {} stages, search stopped: {}.",
                esc(&crate::capacity::search::knee_text(c.max_speakers)),
                esc(&slos.join(", ")),
                c.stages.len(),
                esc(&c.stop_reason)
            ),
        );
    } else {
        box_(
            h,
            "info",
            "No SLO was set for this run (add --slo or [[slo]] to judge it).",
        );
    }
    match v.sizing_text() {
        Some(text) => {
            let class = match v.sizing_verdict() {
                Some("INSUFFICIENT") => "fail",
                Some(_) => "pass",
                None => "info",
            };
            box_(h, class, &esc(&text));
        }
        None if v.is_capacity() => box_(
            h,
            "info",
            "No sizing verdict: the server's CPU and memory were not watched (--watch-pid, --watch-cgroup, --watch-docker).",
        ),
        None => {}
    }
    if let Some(g) = v
        .generator
        .as_ref()
        .filter(|g| !g.valid && !g.invalid_reasons.is_empty())
    {
        box_(
            h,
            "fail",
            &format!(
                "The load generator fell behind, so these figures are not the server's alone: {}",
                esc(&g.invalid_reasons.join("; "))
            ),
        );
    }
}

fn kpis(h: &mut String, v: &ReportView) {
    let Some(t) = &v.turns else { return };
    let mut kpi = |label: &str, value: String| {
        let _ = write!(h, "<span class=\"kpi\"><b>{value}</b>{label}</span>");
    };
    kpi("turns completed", t.completed.to_string());
    kpi("failed", format!("{} ({:.1}%)", t.failed, t.failed_ratio * 100.0));
    if let Some(fa) = v.latency_ms.get("first_audio").filter(|p| p.count > 0) {
        kpi("first audio p50", format!("{:.0} ms", fa.p50));
        kpi("first audio p95", format!("{:.0} ms", fa.p95));
    }
    if let Some(p) = &v.playback {
        kpi("turns stuttered", format!("{:.1}%", p.stutter_ratio * 100.0));
        if let Some(c) = p.by_cause.as_ref().and_then(crate::report::stutter::main_cause) {
            kpi("stutter mostly", c.as_str().to_string());
        }
    }
    h.push('\n');
}

/// Writes one chart, or a note saying why it is missing.
fn figure(h: &mut String, name: &str, svg: Option<String>, points: usize, missing: &str) {
    match svg {
        Some(svg) => {
            let _ = writeln!(
                h,
                "<figure class=\"chart\" data-chart=\"{name}\" data-points=\"{points}\">{svg}</figure>"
            );
        }
        None => {
            let _ = writeln!(
                h,
                "<p class=\"missing\" data-chart-missing=\"{name}\">{}</p>",
                esc(missing)
            );
        }
    }
}

fn draw(h: &mut String, name: &str, c: Chart, missing: &str) {
    let n = c.points();
    figure(h, name, c.svg(), n, missing);
}

fn charts(h: &mut String, v: &ReportView) {
    h.push_str("<h2>Charts</h2>\n");
    if let Some(c) = &v.capacity {
        knee_charts(h, c, v);
    }
    if !v.is_capacity() {
        run_charts(h, v);
    }
    server_charts(h, v);
    latency_histogram(h, v);
}

fn run_charts(h: &mut String, v: &ReportView) {
    let ls = &v.latency_series;
    let pick = |f: fn(&super::timeline::LatencyPoint) -> (u64, f64)| -> Vec<(f64, f64)> {
        ls.iter()
            .filter_map(|p| {
                let (n, y) = f(p);
                (n > 0).then_some((p.t_s, y))
            })
            .collect()
    };
    let lat = Chart::new(
        "Latency over time (turns ending each second)",
        "seconds into the run",
        "ms",
    )
    .line(
        "first audio p50",
        BLUE,
        pick(|p| (p.first_audio_ms.count, p.first_audio_ms.p50)),
    )
    .line(
        "first audio p95",
        RED,
        pick(|p| (p.first_audio_ms.count, p.first_audio_ms.p95)),
    )
    .line("turn p50", GREEN, pick(|p| (p.turn_ms.count, p.turn_ms.p50)))
    .line("turn p95", ORANGE, pick(|p| (p.turn_ms.count, p.turn_ms.p95)));
    draw(h, "latency", lat, "No completed turn: no latency over time.");
    let s = &v.series;
    let load = Chart::new("Load over time", "seconds into the run", "count")
        .line(
            "speakers (talking)",
            RED,
            s.iter().map(|p| (p.t_s, p.talking as f64)).collect(),
        )
        .line(
            "connected devices",
            BLUE,
            s.iter().map(|p| (p.t_s, p.connected as f64)).collect(),
        )
        .line(
            "turns completed per second",
            GREEN,
            s.iter().map(|p| (p.t_s, p.turns as f64)).collect(),
        );
    draw(h, "load", load, "No per-second series in this report.");
    let stutter = Chart::new(
        "Stutter over time: silence heard mid-answer",
        "seconds into the run",
        "ms of underrun per second",
    )
    .line("underrun time", PURPLE, pick(|p| (p.playback_turns, p.underrun_ms)))
    .line(
        "turns that stuttered",
        RED,
        pick(|p| (p.playback_turns, p.stutter_turns as f64)),
    );
    draw(h, "stutter", stutter, "No turn with playback: no stutter over time.");
}

fn slo_limit(slos: &[String], want: fn(&SloMetric) -> bool) -> Option<f64> {
    slos.iter()
        .filter_map(|s| Slo::parse(s).ok())
        .find(|s| want(&s.metric))
        .map(|s| s.limit)
}

fn knee_charts(h: &mut String, c: &super::view::CapacityView, v: &ReportView) {
    let mut stages: Vec<&StageView> = c.stages.iter().collect();
    stages.sort_by_key(|s| s.speakers);
    let passed = |s: &StageView| match (s.generator_valid, s.passed) {
        (Some(false), _) => None,
        (_, p) => Some(p.unwrap_or(false)),
    };
    let fa: Vec<(f64, f64)> = stages
        .iter()
        .filter_map(|s| {
            s.latency_ms
                .get("first_audio")
                .filter(|p| p.count > 0)
                .map(|p| (s.speakers as f64, p.p95))
        })
        .collect();
    let mut knee = Chart::new(
        "Knee curve: p95 first audio per stage (green pass, red fail, grey: generator too slow)",
        "concurrent speakers",
        "p95 first audio (ms)",
    )
    .line("p95 first audio", BLUE, fa);
    knee.markers = stages
        .iter()
        .filter_map(|s| {
            s.latency_ms.get("first_audio").filter(|p| p.count > 0).map(|p| Marker {
                x: s.speakers as f64,
                y: p.p95,
                passed: passed(s),
            })
        })
        .collect();
    if let Some(limit) = slo_limit(&c.slos, |m| matches!(m, SloMetric::Latency { stat: Stat::P95, .. })) {
        knee = knee.level("SLO limit", RED, limit, None);
    }
    draw(h, "knee", knee, "No stage completed a turn: no knee curve.");
    let st: Vec<(f64, f64)> = stages
        .iter()
        .map(|s| (s.speakers as f64, s.playback.stutter_ratio * 100.0))
        .collect();
    let mut stutter =
        Chart::new("Stutter per stage", "concurrent speakers", "turns that stuttered (%)").line("stutter", PURPLE, st);
    stutter.markers = stages
        .iter()
        .map(|s| Marker {
            x: s.speakers as f64,
            y: s.playback.stutter_ratio * 100.0,
            passed: passed(s),
        })
        .collect();
    if let Some(limit) = slo_limit(&c.slos, |m| matches!(m, SloMetric::StutterRatio)) {
        stutter = stutter.level("SLO limit", RED, limit * 100.0, None);
    }
    draw(h, "stutter_per_stage", stutter, "No stages.");
    let cores_knee: Vec<(f64, f64)> = c
        .allotments
        .iter()
        .filter_map(|a| {
            let num = |keys: &[&str]| keys.iter().find_map(|k| a.get(*k).and_then(|x| x.as_f64()));
            Some((
                num(&["applied_cores", "cpus", "cpu_cores", "cores"])?,
                num(&["max_speakers", "knee"])?,
            ))
        })
        .collect();
    if cores_knee.len() >= 2 {
        draw(
            h,
            "knee_vs_cores",
            Chart::new(
                "Knee versus cores",
                "CPU cores allotted",
                "most concurrent speakers within the SLOs",
            )
            .line("knee", BLUE, cores_knee),
            "",
        );
    }
    let _ = v;
}

fn server_charts(h: &mut String, v: &ReportView) {
    let Some(srv) = &v.server else {
        let _ = writeln!(
            h,
            "<p class=\"missing\" data-chart-missing=\"server\">The server's CPU and memory were not watched (--watch-pid, --watch-cgroup, --watch-docker).</p>"
        );
        return;
    };
    let s = &srv.samples;
    let mut cpu = Chart::new("Server CPU", "seconds into the run", "cores")
        .line(
            "CPU cores (each sample)",
            BLUE,
            s.iter().map(|p| (p.t_s, p.cpu_cores)).collect(),
        )
        .level(
            &format!("mean {:.2}", srv.summary.cpu_cores.mean),
            GREY,
            srv.summary.cpu_cores.mean,
            None,
        );
    if let Some(c) = srv.allotment.cpu_cores {
        cpu = cpu.level(&format!("allotment {c} cores"), RED, c, None);
    }
    draw(h, "server_cpu", cpu, "No server samples.");
    let mut mem = Chart::new("Server memory", "seconds into the run", "MB").line(
        "memory",
        BLUE,
        s.iter().map(|p| (p.t_s, p.memory_mb)).collect(),
    );
    if let Some(limit) = srv.allotment.memory_mb {
        mem = mem
            .level("80–90% of limit", ORANGE, 0.8 * limit, Some(0.9 * limit))
            .level("90–95%", RED, 0.9 * limit, Some(0.95 * limit))
            .level("95–100%", PURPLE, 0.95 * limit, Some(limit))
            .level(&format!("limit {limit:.0} MB"), RED, limit, None);
    }
    draw(h, "server_memory", mem, "No server samples.");
}

/// First-audio histogram in up to 40 equal bins between min and max.
fn latency_histogram(h: &mut String, v: &ReportView) {
    let Some(hist) = v.histogram(&super::exact::latency_key("first_audio")) else {
        let _ = writeln!(
            h,
            "<p class=\"missing\" data-chart-missing=\"histogram\">No first-audio histogram in this report.</p>"
        );
        return;
    };
    let p = hist.percentiles();
    let (lo, hi) = (p.min, p.max.max(p.min + 1.0));
    let width = (hi - lo) / 40.0;
    let edge = |i: usize| lo + width * i as f64;
    let at_most = |ms: f64| hist.count_at_most_us((ms * 1000.0).round() as u64);
    let mut buckets = Vec::new();
    for i in 0..40 {
        let below = if i == 0 { 0 } else { at_most(edge(i)) };
        buckets.push((edge(i), edge(i + 1), at_most(edge(i + 1)).saturating_sub(below)));
    }
    let svg = chart::bars(
        "First audio: how many turns waited how long",
        "first audio (ms)",
        &buckets,
    );
    figure(h, "histogram", svg, buckets.len(), "");
}
