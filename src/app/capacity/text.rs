//! The capacity report as operators read it: one line per stage, the knee
//! (per allotment with `--cpus`), and the sizing verdict. The same text goes
//! to stdout and to `--report` files that do not end in `.json`.

use super::report::CapacityReport;
use crate::capacity::render_text;
use crate::capacity::search::knee_text;
use crate::capacity::section::{CapacityStage, StageStatus};
use crate::watch::limit::quota::cores_label;

/// "1 turn", "2 turns".
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
use std::fmt::Write;

/// One stage's line, as printed when the stage ends.
pub fn stage_line(s: &CapacityStage) -> String {
    let fa = s.latency_ms.get("first_audio").filter(|p| p.count > 0).map(|p| p.p95);
    let cpus = s.cpus.map_or(String::new(), |c| format!("{:>10} ", cores_label(c)));
    let verdict = match (s.generator_valid, s.status) {
        (false, _) => "GENERATOR TOO SLOW",
        (true, status) => status.label(),
    };
    let latency = fa.map_or("no first audio measured".to_string(), |ms| {
        format!("p95 first audio {ms:.0} ms")
    });
    let mut line = format!(
        "  {cpus}{:>4} speakers: {verdict}  ({} in {:.0} s{}, {latency}, stutter {:.1}%, failed {:.1}%",
        s.speakers,
        plural(s.turns.completed + s.turns.failed, "turn"),
        s.measured_s,
        if s.extended { ", extended" } else { "" },
        s.playback.stutter_ratio * 100.0,
        s.turns.failed_ratio * 100.0
    );
    if let Some(w) = &s.server {
        let _ = write!(
            line,
            ", server CPU p95 {:.2} / max {:.2} cores, memory max {:.0} MB",
            w.cpu_cores.p95, w.cpu_cores.max, w.memory_mb.max
        );
        if let Some(t) = w.threads_max {
            let _ = write!(line, ", {t} threads");
        }
    }
    line.push(')');
    for reason in s.inconclusive_reason.iter().chain(&s.generator_invalid_reasons) {
        let _ = write!(line, "\n        {reason}");
    }
    line
}

/// The whole text report.
pub fn render(r: &CapacityReport) -> String {
    let c = &r.capacity;
    let mut out = format!(
        "capacity search against {}{} ({} load, {} s per stage, at least {} per stage{})\n",
        r.run.target_url,
        if r.run.mock { " (the built-in mock)" } else { "" },
        c.shape,
        r.run.stage_duration_s,
        plural(c.min_turns, "turn"),
        if r.run.interrupted { ", interrupted" } else { "" }
    );
    for s in &c.stages {
        let _ = writeln!(out, "{}", stage_line(s));
    }
    if let Some(allotments) = &c.allotments {
        let _ = writeln!(out, "\nknee by CPU allotment:");
        for a in allotments {
            let _ = writeln!(
                out,
                "  {:>10}: {} ({} stages, stopped: {}; limit: {})",
                cores_label(a.cpus),
                a.max_speakers.map_or(knee_text(None), |k| format!("{k} speakers")),
                a.stages.len(),
                a.stop_reason,
                a.limit
            );
            if let Some(why) = &a.off_curve {
                let _ = writeln!(out, "              not on the scaling curve: {why}");
            }
        }
    }
    let _ = writeln!(out, "\n{}", knee_line(r));
    if c.stop_reason == "generator_invalid" {
        let _ = writeln!(
            out,
            "The load generator could not keep real-time pace at the last stage, so the search stopped there and \
             that stage is left out of the sizing: the knee may be higher. Run the generator on another machine \
             (or give it more cores) and search again."
        );
    }
    match &r.sizing {
        Some(s) => {
            let _ = write!(out, "{}", render_text(s));
            if !s.evidence.is_empty() {
                let _ = writeln!(out, "evidence:");
                for e in &s.evidence {
                    let _ = writeln!(out, "  {e}");
                }
            }
        }
        None => {
            let _ = writeln!(
                out,
                "(no sizing verdict: no server CPU/memory was watched, or no stage could be judged; add --watch-pid, --watch-cgroup or --watch-docker)"
            );
        }
    }
    out
}

/// The knee, and how far it can be trusted.
fn knee_line(r: &CapacityReport) -> String {
    let c = &r.capacity;
    let inconclusive = c
        .stages
        .iter()
        .filter(|s| s.status == StageStatus::Inconclusive)
        .count();
    let left_out = match inconclusive {
        0 => String::new(),
        n => format!("; {n} inconclusive stage(s) left out"),
    };
    if r.run.interrupted {
        format!(
            "interrupted: most concurrent speakers within the SLOs from {} completed stages: {} (not converged; the stage in progress was discarded{left_out})",
            c.completed_stages,
            knee_text(c.max_speakers)
        )
    } else {
        format!(
            "most concurrent speakers within the SLOs: {} ({} stages, stopped: {}{left_out})",
            knee_text(c.max_speakers),
            c.stages.len(),
            c.stop_reason
        )
    }
}
