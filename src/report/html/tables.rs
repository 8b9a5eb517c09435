//! The HTML report's tables: latency percentiles, failures (with whatever
//! details the report carries), stages, the worst turns' recordings.

use super::escape::esc;
use crate::metrics::{LATENCY_METRICS, Percentiles};
use crate::report::view::{ReportView, StageView};
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

pub fn tables(h: &mut String, v: &ReportView, out: &Path) {
    latency(h, v);
    failures(h, v);
    stages(h, v);
    recordings(h, v, out);
}

fn latency(h: &mut String, v: &ReportView) {
    if v.latency_ms.is_empty() {
        return;
    }
    h.push_str("<h2>Latency (ms, from end of speech)</h2>\n<table><tr><th>metric</th><th>count</th><th>min</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>max</th></tr>\n");
    for name in LATENCY_METRICS {
        let Some(p) = v.latency_ms.get(name) else { continue };
        let Percentiles {
            count,
            min,
            p50,
            p90,
            p95,
            p99,
            max,
            ..
        } = *p;
        let _ = writeln!(
            h,
            "<tr><td>{name}</td><td>{count}</td><td>{min:.0}</td><td>{p50:.0}</td><td>{p90:.0}</td><td>{p95:.0}</td><td>{p99:.0}</td><td>{max:.0}</td></tr>"
        );
    }
    h.push_str("</table>\n");
}

fn failures(h: &mut String, v: &ReportView) {
    let Some(t) = &v.turns else { return };
    h.push_str("<h2>Failures</h2>\n");
    let _ = writeln!(
        h,
        "<p>{} turns started: {} completed, {} failed, {} cancelled by the end of the run, {} interrupted by the user.</p>",
        t.started, t.completed, t.failed, t.cancelled, t.interrupted
    );
    if t.failures.is_empty() {
        h.push_str("<p>No failed turn.</p>\n");
    } else {
        h.push_str(
            "<table data-table=\"failures\"><tr><th>kind</th><th>turns</th><th>share of started</th><th>details (first few)</th></tr>\n",
        );
        for (kind, n) in &t.failures {
            let share = if t.started == 0 {
                0.0
            } else {
                *n as f64 / t.started as f64 * 100.0
            };
            let details: Vec<String> = t
                .failure_details
                .get(kind)
                .into_iter()
                .flatten()
                .map(|d| esc(d))
                .collect();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{n}</td><td>{share:.1}%</td><td>{}</td></tr>",
                esc(kind),
                details.join("<br>")
            );
        }
        h.push_str("</table>\n");
    }
    if !t.stray_messages.is_empty() {
        let list: Vec<String> = t
            .stray_messages
            .iter()
            .map(|(k, n)| format!("{} {n}", esc(k)))
            .collect();
        let _ = writeln!(
            h,
            "<p>Stray messages (not the turn's own; ignored, never timed): {}.</p>",
            list.join(", ")
        );
    }
    // Details the report carries beside the counts, shown as written.
    for (key, value) in t.other.iter().filter(|(_, v)| v.is_object() || v.is_array()) {
        let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
        let _ = writeln!(
            h,
            "<details open><summary>{}</summary><pre>{}</pre></details>",
            esc(key),
            esc(&pretty)
        );
    }
}

fn stage_row(h: &mut String, s: &StageView) {
    let fa = s.latency_ms.get("first_audio").copied().unwrap_or_default();
    let verdict = match (s.status.as_deref(), s.passed, s.generator_valid) {
        (Some(st), _, _) => st.to_string(),
        (_, _, Some(false)) => "generator too slow".into(),
        (_, Some(true), _) => "pass".into(),
        (_, Some(false), _) => "FAIL".into(),
        _ => String::new(),
    };
    let cpu = s
        .server
        .as_ref()
        .map_or(String::new(), |w| format!("{:.2}", w.cpu_cores.p95));
    let mem = s
        .server
        .as_ref()
        .map_or(String::new(), |w| format!("{:.0}", w.memory_mb.max));
    let _ = writeln!(
        h,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.1}%</td><td>{cpu}</td><td>{mem}</td><td>{}</td></tr>",
        esc(&s.name),
        s.speakers,
        s.turns.completed,
        s.turns.failed,
        fa.count,
        fa.p95,
        s.playback.stutter_ratio * 100.0,
        esc(&verdict)
    );
}

fn stages(h: &mut String, v: &ReportView) {
    let list = v.capacity.as_ref().map_or(&v.stages, |c| &c.stages);
    if list.is_empty() {
        return;
    }
    h.push_str("<h2>Stages</h2>\n<table data-table=\"stages\"><tr><th>stage</th><th>speakers</th><th>completed</th><th>failed</th><th>first-audio samples</th><th>p95 first audio (ms)</th><th>stutter</th><th>server CPU p95 (cores)</th><th>server memory max (MB)</th><th>verdict</th></tr>\n");
    for s in list {
        stage_row(h, s);
    }
    h.push_str("</table>\n");
}

fn recordings(h: &mut String, v: &ReportView, out: &Path) {
    if v.recordings.is_empty() {
        return;
    }
    h.push_str("<h2>Worst turns, recorded</h2>\n<p>Each gap is marked with its cause in the WAV (cue points) and in an Audacity label track (File › Import › Labels).</p>\n<table><tr><th>device</th><th>turn</th><th>underruns</th><th>silence (ms)</th><th>marked causes</th><th>listen</th><th>timeline</th><th>labels</th></tr>\n");
    let base = out.parent().unwrap_or(Path::new(""));
    for r in &v.recordings {
        let link = |p: &str| esc(&relative(Path::new(p), base).to_string_lossy());
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td><a href=\"{}\">WAV</a></td><td><a href=\"{}\">JSON</a></td><td>{}</td></tr>",
            esc(&r.device_id),
            r.turn,
            r.underruns,
            r.underrun_ms,
            esc(&crate::report::stutter::marks_list(&r.marks)),
            link(&r.wav),
            link(&r.timeline),
            r.labels
                .as_deref()
                .map_or(String::new(), |l| format!("<a href=\"{}\">labels</a>", link(l)))
        );
    }
    h.push_str("</table>\n");
}

/// `target` as seen from directory `base` (both as the run saw them:
/// relative to its working directory, or absolute).
pub fn relative(target: &Path, base: &Path) -> PathBuf {
    let abs = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        }
    };
    let (t, b) = (normal(&abs(target)), normal(&abs(base)));
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel: PathBuf = b[common..].iter().map(|_| "..").collect();
    for c in &t[common..] {
        rel.push(c);
    }
    rel
}

fn normal(p: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_links_are_relative_to_the_page() {
        assert_eq!(
            relative(Path::new("/a/runs/x/t.wav"), Path::new("/a/reports")),
            PathBuf::from("../runs/x/t.wav")
        );
        assert_eq!(
            relative(Path::new("/a/r/t.wav"), Path::new("/a/r")),
            PathBuf::from("t.wav")
        );
    }
}
