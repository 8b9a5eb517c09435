//! Stutter per cause in the report's outputs: the console's lines in the
//! operator's terms and the merge rule for `playback.by_cause` (several
//! machines' reports: ms and turns add). The figures and their names come
//! from [`crate::metrics::stutter`].

use super::exact;
use super::model::{PlaybackSection, Turns};
use crate::metrics::LatencyHistogram;
use crate::metrics::stutter::{ByCause, StutterCause};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What each cause means, for people who did not write the tool.
pub fn cause_meaning(cause: StutterCause) -> &'static str {
    match cause {
        StutterCause::Server => "audio already late when it reached the device (the server's sending or its TTS)",
        StutterCause::Network => "audio on time at the server's end, held up on the way (the network conditions)",
        StutterCause::Device => "audio the device dropped because its decode queue was full",
    }
}

fn turns_word(n: u64) -> &'static str {
    if n == 1 { "turn" } else { "turns" }
}

/// "stutter by cause: server 300 ms (2 turns), network 420 ms (1 turn),
/// device 360 ms dropped (1 turn)"; `None` when nothing stuttered.
pub fn cause_line(b: &ByCause) -> Option<String> {
    if b.is_empty() {
        return None;
    }
    let parts: Vec<String> = StutterCause::ALL
        .iter()
        .map(|&c| {
            let dropped = if c == StutterCause::Device { " dropped" } else { "" };
            let n = b.turns(c);
            format!("{} {:.0} ms{dropped} ({n} {})", c.as_str(), b.ms(c), turns_word(n))
        })
        .collect();
    Some(format!("stutter by cause: {}", parts.join(", ")))
}

/// The cause with the most stutter time, when any (server on a tie, as
/// the device attributes a split gap).
pub fn main_cause(b: &ByCause) -> Option<StutterCause> {
    StutterCause::ALL
        .into_iter()
        .filter(|&c| b.ms(c) > 0.0)
        .fold(None, |best: Option<StutterCause>, c| match best {
            Some(x) if b.ms(x) >= b.ms(c) => Some(x),
            _ => Some(c),
        })
}

/// "double answers: 2 turns (3 extra answers)"; `None` when there were none.
pub fn double_answer_line(extra_answers: u64, turns: u64) -> Option<String> {
    if extra_answers == 0 {
        return None;
    }
    let answers = if extra_answers == 1 { "answer" } else { "answers" };
    Some(format!(
        "double answers: {turns} {} ({extra_answers} extra {answers}): the server answered one utterance more than once (a pause mid-sentence ending the turn early, or a late answer to an earlier turn)",
        turns_word(turns)
    ))
}

/// The console's lines about causes, under the playback line.
pub fn console_lines(p: &PlaybackSection, t: &Turns) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(line) = cause_line(&p.by_cause) {
        out.push(format!("  {line}"));
        if let Some(c) = main_cause(&p.by_cause) {
            out.push(format!("    mostly {}: {}", c.as_str(), cause_meaning(c)));
        }
    }
    if let Some(line) = short_gaps_line(p) {
        out.push(line);
    }
    if let Some(line) = double_answer_line(t.extra_answers, t.extra_answer_turns) {
        out.push(line);
    }
    out
}

/// Said when turns had gaps, none of a frame: the stutter count leaves
/// them out, yet many short gaps in a row (TTS slower than real time) are
/// heard as choppy speech, so the figure must not read as "no problem".
pub fn short_gaps_line(p: &PlaybackSection) -> Option<String> {
    let c = &p.by_cause;
    let with_gaps = c.turns_server.max(c.turns_network);
    let only_short = with_gaps.saturating_sub(p.stutter_turns);
    (only_short > 0).then(|| {
        format!(
            "  at least {only_short} more turn(s) had only gaps shorter than a frame (60 ms), not counted as \
             stutter; many in a row sound choppy: see silence per turn"
        )
    })
}

/// "server 1, device 2" for a recording's marks by cause, in report order.
pub fn marks_list<K: AsRef<str>>(marks: &BTreeMap<K, u32>) -> String {
    let parts: Vec<String> = StutterCause::ALL
        .iter()
        .filter_map(|c| {
            let n = marks.iter().find(|(k, _)| k.as_ref() == c.as_str())?.1;
            Some(format!("{} {n}", c.as_str()))
        })
        .collect();
    parts.join(", ")
}

/// " (marked: server 1, device 2)"; empty when nothing was marked.
pub fn marks_note<K: AsRef<str>>(marks: &BTreeMap<K, u32>) -> String {
    let list = marks_list(marks);
    if list.is_empty() {
        list
    } else {
        format!(" (marked: {list})")
    }
}

/// Merge rules for the causes in one merged section (the run's, or one
/// stage's): `playback.by_cause` summed from every report's, the per-turn
/// percentiles recomputed from the merged histograms, and the double-answer
/// counts present (0) even when every report predates them.
pub fn merge_causes<'a>(
    turns: &mut Value,
    playback: &mut Value,
    sections: impl IntoIterator<Item = &'a Value>,
    h: &BTreeMap<String, LatencyHistogram>,
) {
    if let Some(t) = turns.as_object_mut() {
        for k in ["extra_answers", "extra_answer_turns"] {
            t.entry(k).or_insert(json!(0));
        }
    }
    let Some(p) = playback.as_object_mut() else { return };
    p.insert("by_cause".into(), merged_by_cause(sections));
    for key in [exact::SERVER_GAP, exact::NETWORK_GAP, exact::DROPPED] {
        let pct = h.get(key).map(|h| h.percentiles()).unwrap_or_default();
        let field = key.trim_start_matches("playback.");
        p.insert(field.into(), serde_json::to_value(pct).unwrap_or_default());
    }
}

/// Merge rule for `playback.by_cause`: the sum of every report's object.
/// The integer turn counts would add by themselves; the ms would not
/// (differing floats become null in a generic merge), hence this rule.
pub fn merged_by_cause<'a>(sections: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut total = ByCause::default();
    for p in sections {
        if let Some(b) = p
            .get("by_cause")
            .and_then(|b| serde_json::from_value::<ByCause>(b.clone()).ok())
        {
            total.add(&b);
        }
    }
    serde_json::to_value(total).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_cause() -> ByCause {
        ByCause {
            server_ms: 300.0,
            network_ms: 420.5,
            device_ms: 360.0,
            turns_server: 2,
            turns_network: 1,
            turns_device: 1,
        }
    }

    #[test]
    fn cause_line_names_each_cause_with_its_time_and_turns() {
        assert_eq!(
            cause_line(&by_cause()).unwrap(),
            "stutter by cause: server 300 ms (2 turns), network 420 ms (1 turn), device 360 ms dropped (1 turn)"
        );
        assert_eq!(cause_line(&ByCause::default()), None);
        assert_eq!(main_cause(&by_cause()), Some(StutterCause::Network));
        assert_eq!(main_cause(&ByCause::default()), None);
    }

    #[test]
    fn turns_with_only_short_gaps_are_said_apart_from_stutter() {
        let mut p = PlaybackSection {
            turns: 8,
            stutter_turns: 0,
            by_cause: ByCause {
                server_ms: 7560.0,
                turns_server: 8,
                ..ByCause::default()
            },
            ..PlaybackSection::default()
        };
        let line = short_gaps_line(&p).unwrap();
        assert!(
            line.starts_with("  at least 8 more turn(s) had only gaps shorter than a frame"),
            "{line}"
        );
        p.stutter_turns = 8;
        assert_eq!(short_gaps_line(&p), None, "every turn with gaps already counted");
        p.by_cause = ByCause::default();
        p.stutter_turns = 0;
        assert_eq!(short_gaps_line(&p), None, "no gaps, nothing to say");
    }

    #[test]
    fn double_answers_are_said_only_when_there_were_some() {
        assert_eq!(double_answer_line(0, 0), None);
        let line = double_answer_line(3, 2).unwrap();
        assert!(
            line.starts_with("double answers: 2 turns (3 extra answers): "),
            "{line}"
        );
        assert!(
            double_answer_line(1, 1)
                .unwrap()
                .starts_with("double answers: 1 turn (1 extra answer): ")
        );
    }

    #[test]
    fn marks_note_lists_causes_in_report_order() {
        let marks = BTreeMap::from([("device", 2), ("server", 1)]);
        assert_eq!(marks_note(&marks), " (marked: server 1, device 2)");
        assert_eq!(marks_note(&BTreeMap::<String, u32>::new()), "");
    }

    #[test]
    fn merged_by_cause_adds_ms_and_turns_of_every_report() {
        let a = json!({"by_cause": {"server_ms": 100.25, "network_ms": 0.0, "device_ms": 60.0,
            "turns_server": 1, "turns_network": 0, "turns_device": 1}});
        let b = json!({"by_cause": {"server_ms": 50.5, "network_ms": 240.0, "device_ms": 0.0,
            "turns_server": 2, "turns_network": 3, "turns_device": 0}});
        let old = json!({"turns": 4});
        assert_eq!(
            merged_by_cause([&a, &b, &old]),
            json!({"server_ms": 150.75, "network_ms": 240.0, "device_ms": 60.0,
                "turns_server": 3, "turns_network": 3, "turns_device": 1})
        );
    }
}
