//! What the mock heard: recognises the bundled clips from the uplink
//! packets' bytes, and knows each known packet's voiced verdict so the VAD
//! skips the Opus decode for it.
//!
//! The fleet sends the same encoded clip packets every time, so a map from
//! packet bytes to (clip, voiced) identifies them exactly. At the end of an
//! utterance, the clip that most of its voiced packets belong to is the one
//! heard, and `stt` carries that clip's manifest transcript; unknown audio
//! gets [`FALLBACK_TRANSCRIPT`]. The table is bounded by the clip set (one
//! entry per distinct packet) and built once per clip set.
//!
//! Verdicts come from decoding each clip in order after silence with one
//! decoder, as a session's decoder hears it (the clips end cleanly into
//! silence by construction, see `audio::clip`).

use crate::audio::ClipSet;
use crate::audio::voice::VoiceDetector;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// What `stt` says for audio that is none of the known clips.
pub const FALLBACK_TRANSCRIPT: &str = "[mock ASR] 语音已识别";
/// What `cross_talk` says when the set has no second clip to borrow from.
const OTHER_DEVICE_TEXT: &str = "[mock cross-talk] 另一台设备的话";

/// A known uplink packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    /// The clip it belongs to (`None`: the silence packet).
    pub clip: Option<usize>,
    pub voiced: bool,
}

/// The clips a server can recognise.
#[derive(Debug, Default)]
pub struct ClipIndex {
    transcripts: Vec<String>,
    /// Voiced packets in each clip.
    voiced: Vec<u32>,
    packets: HashMap<Bytes, Known>,
}

impl ClipIndex {
    /// Indexes a clip set: every packet of every clip, and the silence packet.
    pub fn build(set: &ClipSet) -> ClipIndex {
        let mut packets = HashMap::new();
        packets.insert(
            set.silence.clone(),
            Known {
                clip: None,
                voiced: false,
            },
        );
        let mut voiced_per_clip = vec![0; set.clips.len()];
        for (i, clip) in set.clips.iter().enumerate() {
            let mut ear = VoiceDetector::new();
            ear.is_voiced(&set.silence);
            ear.is_voiced(&set.silence);
            for p in clip.packets.iter() {
                let voiced = ear.is_voiced(p);
                let known = *packets.entry(p.clone()).or_insert(Known { clip: Some(i), voiced });
                if known.clip == Some(i) && known.voiced {
                    voiced_per_clip[i] += 1;
                }
            }
        }
        ClipIndex {
            transcripts: set.clips.iter().map(|c| c.transcript.clone()).collect(),
            voiced: voiced_per_clip,
            packets,
        }
    }

    /// The index of the bundled clips, built once per process.
    pub fn embedded() -> Result<Arc<ClipIndex>, String> {
        static INDEX: OnceLock<Result<Arc<ClipIndex>, String>> = OnceLock::new();
        INDEX
            .get_or_init(|| {
                let set = ClipSet::embedded().map_err(|e| e.to_string())?;
                Ok(Arc::new(ClipIndex::build(&set)))
            })
            .clone()
    }

    /// The packet's clip and verdict, if it is a known packet.
    pub fn lookup(&self, packet: &[u8]) -> Option<Known> {
        self.packets.get(packet).copied()
    }

    /// Clips known.
    pub fn clips(&self) -> usize {
        self.transcripts.len()
    }

    /// What `stt` says for a heard clip (or unknown audio).
    pub fn transcript(&self, clip: Option<usize>) -> String {
        clip.and_then(|c| self.transcripts.get(c))
            .cloned()
            .unwrap_or_else(|| FALLBACK_TRANSCRIPT.to_string())
    }

    /// What `stt` says when only `heard` of the clip's voiced packets
    /// reached the recogniser (the rest muted after a wake word, §13.1): the
    /// end of the transcript in proportion, as an ASR that missed the start
    /// would say it. Whole clips get the whole transcript.
    pub fn heard_transcript(&self, clip: Option<usize>, heard: u32) -> String {
        let full = self.transcript(clip);
        let Some(total) = clip.and_then(|c| self.voiced.get(c)).copied() else {
            return full;
        };
        if heard >= total || total == 0 {
            return full;
        }
        let chars: Vec<char> = full.chars().collect();
        let keep = ((chars.len() as u64 * u64::from(heard)).div_ceil(u64::from(total)) as usize).max(1);
        chars[chars.len() - keep.min(chars.len())..].iter().collect()
    }

    /// Another clip's transcript than the one heard (cross-talk).
    pub fn other_transcript(&self, clip: Option<usize>) -> String {
        let n = self.transcripts.len();
        let other = match clip {
            Some(c) if n > 1 => (c + 1) % n,
            None if n > 0 => 0,
            _ => return OTHER_DEVICE_TEXT.to_string(),
        };
        self.transcripts[other].clone()
    }
}

/// Voiced packets of one utterance, per clip.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    per_clip: Vec<u32>,
    voiced: u32,
}

impl Tally {
    /// A voiced packet was counted into the utterance.
    pub fn voiced(&mut self, clip: Option<usize>) {
        self.voiced += 1;
        if let Some(c) = clip {
            if self.per_clip.len() <= c {
                self.per_clip.resize(c + 1, 0);
            }
            self.per_clip[c] += 1;
        }
    }

    /// The clip most voiced packets belong to (more than half of them).
    pub fn heard(&self) -> Option<usize> {
        let (clip, &n) = self
            .per_clip
            .iter()
            .enumerate()
            .max_by_key(|&(i, n)| (*n, std::cmp::Reverse(i)))?;
        (n > 0 && 2 * n > self.voiced).then_some(clip)
    }

    /// Voiced packets of `clip` in the utterance.
    pub fn count(&self, clip: Option<usize>) -> u32 {
        clip.and_then(|c| self.per_clip.get(c)).copied().unwrap_or(0)
    }

    pub fn clear(&mut self) {
        self.per_clip.clear();
        self.voiced = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clip_is_recognised_from_its_packets_with_its_transcript() {
        let set = ClipSet::embedded().unwrap();
        let index = ClipIndex::build(&set);
        assert_eq!(index.lookup(&set.silence).map(|k| k.voiced), Some(false));
        for (i, clip) in set.clips.iter().enumerate() {
            let mut tally = Tally::default();
            for p in clip.packets.iter() {
                let k = index.lookup(p).expect("known packet");
                if k.voiced {
                    tally.voiced(k.clip);
                }
            }
            assert_eq!(tally.heard(), Some(i), "{}", clip.name);
            assert_eq!(index.transcript(tally.heard()), clip.transcript);
            let whole = tally.count(Some(i));
            assert_eq!(index.heard_transcript(Some(i), whole), clip.transcript);
            assert_ne!(index.other_transcript(Some(i)), clip.transcript);
            // The last packet is voiced, as the session's decoder hears it.
            let last = clip.packets.last().unwrap();
            assert!(index.lookup(last).unwrap().voiced, "{}", clip.name);
        }
    }

    #[test]
    fn a_clip_heard_in_part_gets_the_end_of_its_transcript_in_proportion() {
        let set = ClipSet::embedded().unwrap();
        let index = ClipIndex::build(&set);
        let i = set
            .clips
            .iter()
            .position(|c| c.transcript == "一加一等于几")
            .expect("bundled clip");
        let total = index.voiced[i];
        assert!(total >= 6, "{total}");
        // About half the voiced packets: the last three of six characters.
        assert_eq!(index.heard_transcript(Some(i), total / 2), "等于几");
        assert_eq!(index.heard_transcript(Some(i), 1), "几");
        assert_eq!(index.heard_transcript(None, 3), FALLBACK_TRANSCRIPT);
    }

    #[test]
    fn unknown_or_mixed_audio_gets_the_fallback() {
        let mut t = Tally::default();
        t.voiced(None);
        t.voiced(None);
        t.voiced(Some(1));
        assert_eq!(t.heard(), None);
        let index = ClipIndex::embedded().unwrap();
        assert_eq!(index.transcript(None), FALLBACK_TRANSCRIPT);
        assert_eq!(index.lookup(b"not opus"), None);
    }
}
