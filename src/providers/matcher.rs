//! Which bundled clip a piece of audio is: the ASR stand-in's "recognition".
//!
//! Each clip's Opus packets are decoded once (what a server hears after
//! decoding the device's uplink) and reduced to a loudness envelope, 10 ms
//! per value in dB. Incoming audio gets the same envelope, and every clip is
//! slid across it; the score is the Pearson correlation over the clip's
//! length (audio missing at either end counts as silence). Envelopes do not
//! care about gain, codec phase or leading/trailing silence. A clip with a
//! large part cut off (as after the real server's wake-word mute) scores
//! low and gets the fallback transcript rather than another clip's.

use super::voice::CLIP_RATE;
use crate::audio::UPLINK_FRAME_SAMPLES;
use crate::audio::clip::ClipSet;
use opus_rs::OpusDecoder;

/// Envelope step: 10 ms at 16 kHz.
const HOP: usize = 160;
/// Envelope floor in dB (full scale = 0): silence is silence, however quiet.
const FLOOR_DB: f64 = -50.0;
/// Overlap needed to judge a match: this many envelope values (0.8 s)...
const MIN_OVERLAP: usize = 80;
/// ...and at least this share of the clip.
const MIN_OVERLAP_SHARE: f64 = 0.4;
/// The default lowest score taken as a match: the clips decoded score
/// 0.92–0.97 against their own originals and below 0.66 against each other.
pub const DEFAULT_MIN_MATCH: f64 = 0.75;
/// Only the last minute of a long recording is searched.
const MAX_QUERY: usize = 6_000;

/// The decoded clips' envelopes and transcripts.
pub struct Matcher {
    clips: Vec<Reference>,
}

struct Reference {
    name: String,
    transcript: String,
    env: Vec<f64>,
}

/// The best clip for some audio.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    pub clip: String,
    pub transcript: String,
    /// Correlation of the envelopes, −1..1.
    pub score: f64,
}

impl Matcher {
    /// Decodes every clip's packets (a fresh decoder each) and keeps its envelope.
    pub fn new(set: &ClipSet) -> Result<Matcher, String> {
        let mut clips = Vec::with_capacity(set.clips.len());
        for c in &set.clips {
            let mut dec = OpusDecoder::new(CLIP_RATE as i32, 1).map_err(|e| format!("{}: {e}", c.name))?;
            let mut out = vec![0f32; UPLINK_FRAME_SAMPLES * 2];
            let mut pcm = Vec::with_capacity(c.packets.len() * UPLINK_FRAME_SAMPLES);
            for p in c.packets.iter() {
                let n = dec
                    .decode(p, UPLINK_FRAME_SAMPLES, &mut out)
                    .map_err(|e| format!("{}: Opus decode failed: {e}", c.name))?;
                pcm.extend(out[..n.min(out.len())].iter().map(|&s| (s * 32767.0) as i16));
            }
            clips.push(Reference {
                name: c.name.clone(),
                transcript: c.transcript.clone(),
                env: envelope(&pcm),
            });
        }
        Ok(Matcher { clips })
    }

    /// The best-scoring clip for 16 kHz audio (`None` if there are no clips
    /// or the audio is too short to judge).
    pub fn best(&self, pcm: &[i16]) -> Option<Match> {
        let mut q = envelope(pcm);
        if q.len() > MAX_QUERY {
            q.drain(..q.len() - MAX_QUERY);
        }
        self.clips
            .iter()
            .filter_map(|r| {
                best_lag_score(&r.env, &q).map(|score| Match {
                    clip: r.name.clone(),
                    transcript: r.transcript.clone(),
                    score,
                })
            })
            .max_by(|a, b| a.score.total_cmp(&b.score))
    }
}

/// Loudness per 10 ms, in dB, floored.
pub fn envelope(pcm: &[i16]) -> Vec<f64> {
    pcm.chunks(HOP)
        .map(|f| {
            let ms = f.iter().map(|&s| (s as f64 / 32768.0).powi(2)).sum::<f64>() / f.len() as f64;
            (10.0 * (ms + 1e-12).log10()).max(FLOOR_DB)
        })
        .collect()
}

/// Highest correlation of `r` slid across `q`. Where the clip hangs over
/// either end of `q`, `q` is taken as silence, so a partial overlap is
/// judged over the whole clip (a cut-off clip scores lower, but a few
/// syllables that happen to look alike cannot score high).
fn best_lag_score(r: &[f64], q: &[f64]) -> Option<f64> {
    let need = ((r.len() as f64 * MIN_OVERLAP_SHARE) as usize)
        .max(MIN_OVERLAP)
        .min(r.len());
    if need == 0 || q.len() < need {
        return None;
    }
    // `lag` = where r[0] sits in q; negative = the clip's start is cut off.
    let lo = -(r.len() as isize - need as isize);
    let hi = q.len() as isize - need as isize;
    let mut window = vec![FLOOR_DB; r.len()];
    (lo..=hi)
        .map(|lag| {
            for (i, w) in window.iter_mut().enumerate() {
                let j = lag + i as isize;
                *w = if j >= 0 && (j as usize) < q.len() {
                    q[j as usize]
                } else {
                    FLOOR_DB
                };
            }
            pearson(r, &window)
        })
        .max_by(f64::total_cmp)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return 0.0;
    }
    sab / (saa * sbb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(set: &ClipSet, i: usize) -> Vec<i16> {
        let mut dec = OpusDecoder::new(16_000, 1).unwrap();
        let mut out = vec![0f32; 1920];
        let mut pcm = Vec::new();
        for p in set.clips[i].packets.iter() {
            let n = dec.decode(p, 960, &mut out).unwrap();
            pcm.extend(out[..n].iter().map(|&s| (s * 32767.0) as i16));
        }
        pcm
    }

    #[test]
    fn every_clip_matches_itself_among_silence_and_beats_the_others() {
        let set = ClipSet::embedded().unwrap();
        let m = Matcher::new(&set).unwrap();
        for (i, clip) in set.clips.iter().enumerate() {
            // Pre-roll silence, the utterance at half volume, trailing silence.
            let mut pcm = vec![0i16; 8_000];
            pcm.extend(decoded(&set, i).iter().map(|&s| s / 2));
            pcm.extend(vec![0i16; 4_800]);
            let best = m.best(&pcm).unwrap();
            assert_eq!(best.clip, clip.name, "score {}", best.score);
            assert!(best.score > 0.9, "{}: {}", clip.name, best.score);
        }
    }

    #[test]
    fn a_late_start_still_matches_and_a_half_clip_is_not_misattributed() {
        let set = ClipSet::embedded().unwrap();
        let m = Matcher::new(&set).unwrap();
        for (i, clip) in set.clips.iter().enumerate() {
            let pcm = decoded(&set, i);
            let best = m.best(&pcm[2_400..]).unwrap();
            assert_eq!(best.clip, clip.name, "first 150 ms missing: score {}", best.score);
            assert!(best.score >= DEFAULT_MIN_MATCH, "{}: {}", clip.name, best.score);
            let half = m.best(&pcm[pcm.len() / 2..]);
            assert!(
                half.as_ref()
                    .is_none_or(|b| b.clip == clip.name || b.score < DEFAULT_MIN_MATCH),
                "{}'s second half taken for {half:?}",
                clip.name
            );
        }
    }

    #[test]
    fn wrong_clips_score_well_below_the_threshold() {
        let set = ClipSet::embedded().unwrap();
        let m = Matcher::new(&set).unwrap();
        for a in &m.clips {
            for b in m.clips.iter().filter(|b| b.name != a.name) {
                let s = best_lag_score(&b.env, &a.env).unwrap_or(-1.0);
                assert!(s < DEFAULT_MIN_MATCH - 0.05, "{} looks like {}: {s}", a.name, b.name);
            }
        }
    }

    #[test]
    fn noise_and_silence_match_nothing_well() {
        let set = ClipSet::embedded().unwrap();
        let m = Matcher::new(&set).unwrap();
        assert!(m.best(&vec![0i16; 32_000]).is_none_or(|b| b.score < DEFAULT_MIN_MATCH));
        let mut x: u32 = 1;
        let noise: Vec<i16> = (0..48_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((x >> 16) as i16) / 8
            })
            .collect();
        let best = m.best(&noise).unwrap();
        assert!(
            best.score < DEFAULT_MIN_MATCH,
            "white noise scored {} as {}",
            best.score,
            best.clip
        );
        assert!(m.best(&[0i16; 100]).is_none(), "too short to judge");
    }
}
