//! Report formats, picked by the file extension: `.json` (the contract,
//! `schema/report.v1.json`), `.csv` (one row per turn, streamed during a
//! run; one row per stage for a capacity search), `.html` (self-contained
//! page with charts), `.md` / `.txt` (the console summary).

use super::view::ReportView;
use super::{Report, html, render_summary, slo};
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Html,
    Markdown,
    Text,
}

/// A report path whose extension names no format.
#[derive(Debug, thiserror::Error)]
#[error("report {path}: unknown format `{ext}`; use .json, .csv, .html, .md or .txt")]
pub struct UnknownFormat {
    pub path: PathBuf,
    pub ext: String,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format, UnknownFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        Ok(match ext.as_str() {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "html" | "htm" => Format::Html,
            "md" | "markdown" => Format::Markdown,
            "txt" | "text" => Format::Text,
            _ => {
                return Err(UnknownFormat {
                    path: path.to_path_buf(),
                    ext: if ext.is_empty() { "(none)".into() } else { ext },
                });
            }
        })
    }
}

/// Checks every report path's format before any work starts.
pub fn check_formats(paths: &[PathBuf]) -> Result<(), UnknownFormat> {
    paths.iter().try_for_each(|p| Format::of(p).map(|_| ()))
}

fn write_file(path: &Path, body: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, body)
}

fn markdown(title: &str, text: &str) -> String {
    format!("# {title}\n\n```text\n{}\n```\n", text.trim_matches('\n'))
}

/// Writes a run's report. The CSV was streamed during the run, so `.csv`
/// writes nothing here.
pub fn write_run(r: &Report, path: &Path) -> std::io::Result<()> {
    let format = Format::of(path).map_err(std::io::Error::other)?;
    let text = || {
        let mut t = render_summary(r);
        if let Some(v) = &r.slo {
            t.push_str(&slo::render(v));
        }
        t
    };
    let body = match format {
        Format::Csv => return Ok(()),
        Format::Json => serde_json::to_string_pretty(r).map_err(std::io::Error::other)? + "\n",
        Format::Html => {
            let value = serde_json::to_value(r).map_err(std::io::Error::other)?;
            let view = ReportView::parse(&value).map_err(std::io::Error::other)?;
            html::render(&view, path)
        }
        Format::Markdown => markdown("xiaozhi-fleet run", &text()),
        Format::Text => text(),
    };
    write_file(path, &body)
}

/// Writes any saved report (a capacity search's, a merge, or a run read
/// back from JSON) in the format `path` names.
pub fn write_value(report: &Value, path: &Path) -> anyhow::Result<()> {
    let format = Format::of(path)?;
    let view = ReportView::parse(report)?;
    let body = match format {
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
        Format::Html => html::render(&view, path),
        Format::Markdown => markdown("xiaozhi-fleet report", &text_of(&view)),
        Format::Text => text_of(&view),
        Format::Csv => match &view.capacity {
            Some(_) => stages_csv(&view),
            None => anyhow::bail!(
                "{}: a run's per-turn CSV is written while it runs (run --report r.csv); the JSON report does not keep every turn",
                path.display()
            ),
        },
    };
    write_file(path, &body).map_err(|e| anyhow::anyhow!("cannot write report {}: {e}", path.display()))
}

/// A capacity search as CSV: one row per stage.
fn stages_csv(v: &ReportView) -> String {
    let mut out = String::from(
        "speakers,passed,completed,failed,failed_ratio,first_audio_p50_ms,first_audio_p95_ms,turn_p95_ms,stutter_ratio,server_cpu_p95_cores,server_memory_max_mb\n",
    );
    for s in v.capacity.iter().flat_map(|c| &c.stages) {
        let lat = |k: &str| s.latency_ms.get(k).copied().unwrap_or_default();
        let (fa, turn) = (lat("first_audio"), lat("turn"));
        let srv = |f: fn(&super::view::ServerSummaryView) -> f64| {
            s.server.as_ref().map_or(String::new(), |w| format!("{:.3}", f(w)))
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{:.4},{:.3},{:.3},{:.3},{:.4},{},{}",
            s.speakers,
            s.passed.map_or(String::new(), |p| p.to_string()),
            s.turns.completed,
            s.turns.failed,
            s.turns.failed_ratio,
            fa.p50,
            fa.p95,
            turn.p95,
            s.playback.stutter_ratio,
            srv(|w| w.cpu_cores.p95),
            srv(|w| w.memory_mb.max)
        );
    }
    out
}

/// The summary of a report read back from JSON, in the console's words.
pub fn text_of(v: &ReportView) -> String {
    let mut out = String::new();
    let r = &v.run;
    let _ = writeln!(
        out,
        "{} devices against {} for {:.1} s (started {}){}",
        r.devices,
        r.target_url,
        r.duration_s,
        r.started_at,
        if r.interrupted { " (interrupted)" } else { "" }
    );
    if let Some(t) = &v.turns {
        let counts = [t.started, t.completed, t.failed, t.cancelled, t.interrupted];
        let _ = writeln!(out, "{}", super::text::turns_line(counts, t.failed_ratio));
        for (kind, n) in &t.failures {
            let _ = writeln!(out, "  failed {kind}: {n}");
            for d in t.failure_details.get(kind).into_iter().flatten() {
                let _ = writeln!(out, "      {d}");
            }
        }
    }
    if !v.latency_ms.is_empty() {
        let _ = writeln!(
            out,
            "\nlatency (ms)       count      min      p50      p90      p95      p99      max"
        );
        for name in crate::metrics::LATENCY_METRICS {
            if let Some(p) = v.latency_ms.get(name) {
                let _ = writeln!(
                    out,
                    "  {name:<12} {:>6} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
                    p.count, p.min, p.p50, p.p90, p.p95, p.p99, p.max
                );
            }
        }
    }
    if let Some(p) = &v.playback {
        let _ = writeln!(
            out,
            "\nplayback: {} of {} turns stuttered ({:.1}%), {} underruns",
            p.stutter_turns,
            p.turns,
            p.stutter_ratio * 100.0,
            p.underruns
        );
        if let Some(line) = p.by_cause.as_ref().and_then(super::stutter::cause_line) {
            let _ = writeln!(out, "  {line}");
        }
    }
    let count = |k: &str| v.turns.as_ref().and_then(|t| t.other.get(k)).and_then(|n| n.as_u64());
    if let Some(line) = super::stutter::double_answer_line(
        count("extra_answers").unwrap_or(0),
        count("extra_answer_turns").unwrap_or(0),
    ) {
        let _ = writeln!(out, "{line}");
    }
    capacity_text(&mut out, v);
    if let Some(s) = &v.slo {
        out.push_str(&slo::render(s));
    }
    out
}

fn capacity_text(out: &mut String, v: &ReportView) {
    let Some(c) = &v.capacity else { return };
    for s in &c.stages {
        let fa = s.latency_ms.get("first_audio").map_or(0.0, |p| p.p95);
        let verdict = match s.passed {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "",
        };
        let _ = writeln!(
            out,
            "  {:>4} speakers: {verdict}  (p95 first audio {fa:.0} ms, stutter {:.1}%, failed {:.1}%)",
            s.speakers,
            s.playback.stutter_ratio * 100.0,
            s.turns.failed_ratio * 100.0
        );
    }
    let _ = writeln!(
        out,
        "\nmost concurrent speakers within the SLOs: {} ({} stages, stopped: {})",
        crate::capacity::search::knee_text(c.max_speakers),
        c.stages.len(),
        c.stop_reason
    );
    if let Some(t) = v.sizing_text() {
        let _ = writeln!(out, "{t}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_pick_formats_and_unknown_ones_are_named() {
        assert_eq!(Format::of(Path::new("a/r.JSON")).unwrap(), Format::Json);
        assert_eq!(Format::of(Path::new("r.htm")).unwrap(), Format::Html);
        assert_eq!(Format::of(Path::new("r.md")).unwrap(), Format::Markdown);
        let err = check_formats(&[PathBuf::from("r.csv"), PathBuf::from("out/r.pdf")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "report out/r.pdf: unknown format `pdf`; use .json, .csv, .html, .md or .txt"
        );
        assert!(
            Format::of(Path::new("report"))
                .unwrap_err()
                .to_string()
                .contains("`(none)`")
        );
    }

    #[test]
    fn saved_report_text_says_stutter_by_cause_and_double_answers() {
        let v = ReportView::parse(&serde_json::json!({
            "turns": {"started": 3, "completed": 3, "extra_answers": 1, "extra_answer_turns": 1},
            "playback": {"turns": 3, "stutter_turns": 1, "stutter_ratio": 0.333, "underruns": 2,
                "by_cause": {"server_ms": 0.0, "network_ms": 480.0, "device_ms": 0.0,
                    "turns_server": 0, "turns_network": 1, "turns_device": 0}}
        }))
        .unwrap();
        let text = text_of(&v);
        assert!(
            text.contains(
                "\n  stutter by cause: server 0 ms (0 turns), network 480 ms (1 turn), device 0 ms dropped (0 turns)\n"
            ),
            "{text}"
        );
        assert!(text.contains("\ndouble answers: 1 turn (1 extra answer): "), "{text}");
    }
}
