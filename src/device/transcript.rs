//! Checking what the server heard: the `stt` text against the transcript of
//! the clip the device spoke (character error rate), and against every other
//! clip's transcript, to catch an answer meant for another device
//! (cross-talk). Pure functions; off by default against real servers, whose
//! ASR words things its own way.

use std::sync::Arc;

/// Characters that count: letters and digits (CJK included). Punctuation,
/// spaces and emoji are what servers trim or add, not what was heard.
fn normalise(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Edit distance (insertions, deletions, substitutions) between two strings
/// of characters.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Character error rate of `heard` against `reference`: edits needed per
/// reference character (0 = identical; can exceed 1).
pub fn cer(heard: &str, reference: &str) -> f64 {
    let h = normalise(heard);
    let r = normalise(reference);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(&h, &r) as f64 / r.len() as f64
}

/// Every clip's transcript, and the largest character error rate that still
/// counts as "heard right".
#[derive(Clone, Debug)]
pub struct TranscriptCheck {
    pub max_cer: f64,
    /// (clip name, transcript) of every clip the fleet may speak.
    pub book: Arc<[(String, String)]>,
}

/// What an `stt` says about the turn.
#[derive(Clone, Debug, PartialEq)]
pub enum Heard {
    /// Close enough to the spoken clip's transcript.
    Right,
    /// Close to another clip's transcript, not to ours.
    OtherDevice { clip: String, cer: f64 },
    /// Close to nothing we know.
    Wrong { cer: f64 },
}

impl TranscriptCheck {
    /// Judges `heard` for a turn that spoke the clip with `transcript`.
    pub fn judge(&self, heard: &str, transcript: &str) -> Heard {
        let own = cer(heard, transcript);
        if own <= self.max_cer {
            return Heard::Right;
        }
        let best = self
            .book
            .iter()
            .filter(|(_, t)| normalise(t) != normalise(transcript))
            .map(|(name, t)| (name, cer(heard, t)))
            .filter(|(_, c)| *c <= self.max_cer && *c < own)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((clip, cer)) => Heard::OtherDevice {
                clip: clip.clone(),
                cer,
            },
            None => Heard::Wrong { cer: own },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(max_cer: f64) -> TranscriptCheck {
        TranscriptCheck {
            max_cer,
            book: vec![
                ("yi-jia-yi".to_string(), "一加一等于几".to_string()),
                ("tian-qi".to_string(), "今天天气怎么样".to_string()),
            ]
            .into(),
        }
    }

    #[test]
    fn cer_ignores_punctuation_and_counts_edits_per_reference_char() {
        assert_eq!(cer("一加一等于几？", "一加一等于几"), 0.0);
        // One substitution in six characters.
        assert_eq!(cer("一加二等于几", "一加一等于几"), 1.0 / 6.0);
        // Everything missing: six deletions.
        assert_eq!(cer("", "一加一等于几"), 1.0);
        assert_eq!(cer("Hello, World", "hello world"), 0.0);
    }

    #[test]
    fn own_transcript_is_right_within_the_limit() {
        assert_eq!(check(0.2).judge("一加二等于几", "一加一等于几"), Heard::Right);
        assert_eq!(
            check(0.1).judge("一加二等于几", "一加一等于几"),
            Heard::Wrong { cer: 1.0 / 6.0 }
        );
    }

    #[test]
    fn another_clips_words_are_cross_talk() {
        assert_eq!(
            check(0.2).judge("今天天气怎么样", "一加一等于几"),
            Heard::OtherDevice {
                clip: "tian-qi".into(),
                cer: 0.0
            }
        );
    }

    #[test]
    fn unknown_words_are_wrong_not_cross_talk() {
        let Heard::Wrong { cer } = check(0.2).judge("[mock ASR] 语音已识别", "一加一等于几") else {
            panic!("expected a wrong transcript");
        };
        assert!(cer > 0.9, "{cer}");
    }
}
