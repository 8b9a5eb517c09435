//! The HTML report's "Stutter by cause" section: per cause (server,
//! network, device) what it means, its total time, the turns it touched and
//! its per-turn spread; then the double answers, when the server gave any.

use super::escape::esc;
use crate::metrics::Percentiles;
use crate::metrics::stutter::StutterCause;
use crate::report::stutter::{cause_meaning, double_answer_line, main_cause};
use crate::report::view::ReportView;
use std::fmt::Write;

/// The section, or nothing for a report without causes (an older one).
pub fn causes(h: &mut String, v: &ReportView) {
    let Some(p) = &v.playback else { return };
    if let Some(b) = &p.by_cause {
        h.push_str("<h2>Stutter by cause</h2>\n");
        match main_cause(b) {
            Some(c) => {
                let _ = writeln!(h, "<p>Mostly <b>{}</b>: {}.</p>", c.as_str(), esc(cause_meaning(c)));
            }
            None => h.push_str("<p>No gap and no dropped audio: nothing to attribute.</p>\n"),
        }
        h.push_str("<table data-table=\"causes\"><tr><th>cause</th><th>what it means</th><th>total (ms)</th><th>turns</th><th>per turn p95 (ms)</th><th>per turn max (ms)</th></tr>\n");
        for c in StutterCause::ALL {
            let per_turn: &Percentiles = match c {
                StutterCause::Server => &p.server_gap_ms,
                StutterCause::Network => &p.network_gap_ms,
                StutterCause::Device => &p.dropped_ms,
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td></tr>",
                c.as_str(),
                esc(cause_meaning(c)),
                b.ms(c),
                b.turns(c),
                per_turn.p95,
                per_turn.max
            );
        }
        h.push_str("</table>\n");
    }
    let count = |k: &str| {
        v.turns
            .as_ref()
            .and_then(|t| t.other.get(k))
            .and_then(|n| n.as_u64())
            .unwrap_or(0)
    };
    if let Some(line) = double_answer_line(count("extra_answers"), count("extra_answer_turns")) {
        let _ = writeln!(h, "<p>{}.</p>", esc(&line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn section_shows_each_cause_and_the_double_answers() {
        let v = ReportView::parse(&json!({
            "turns": {"completed": 4, "extra_answers": 3, "extra_answer_turns": 2},
            "playback": {"turns": 4, "by_cause": {"server_ms": 300.0, "network_ms": 1420.5, "device_ms": 360.0,
                "turns_server": 2, "turns_network": 1, "turns_device": 1},
                "network_gap_ms": {"count": 4, "min": 0.0, "mean": 355.125, "p50": 0.0, "p90": 1420.5,
                    "p95": 1420.5, "p99": 1420.5, "max": 1420.5}}
        }))
        .unwrap();
        let mut h = String::new();
        causes(&mut h, &v);
        assert!(h.contains("<p>Mostly <b>network</b>: "), "{h}");
        let network = format!(
            "<tr><td>network</td><td>{}</td><td>1420</td><td>1</td><td>1420</td><td>1420</td></tr>",
            cause_meaning(StutterCause::Network)
        );
        assert!(h.contains(&network), "{h}");
        assert!(h.contains("<tr><td>device</td>"), "{h}");
        assert!(h.contains("double answers: 2 turns (3 extra answers)"), "{h}");
        let old = ReportView::parse(&json!({"playback": {"turns": 4}})).unwrap();
        let mut h = String::new();
        causes(&mut h, &old);
        assert_eq!(h, "");
    }
}
