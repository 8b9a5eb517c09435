//! Speech clips: read the manifest and WAVs (built in, or from a
//! directory), trim them to the voiced packets, and encode each clip once to
//! 60 ms, 16 kHz mono Opus packets shared by every device through `Arc`.
//!
//! Because a clip's last packet is its last voiced one by the shared rule in
//! [`super::voice`], "end of speech" is simply the scheduled send instant of
//! the clip's last packet, on the device and in the mock's VAD alike.

use super::voice::{VOICE_RMS, VoiceDetector, rms};
use super::{FRAME, UPLINK_FRAME_SAMPLES, UPLINK_RATE};
use bytes::Bytes;
use opus_rs::{Application, OpusDecoder, OpusEncoder};
use serde::Deserialize;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The bundled manifest and WAVs, so the binary works from any directory.
const EMBEDDED_MANIFEST: &str = include_str!("../../audio-samples/manifest.toml");
const EMBEDDED_WAVS: &[(&str, &[u8])] = &[
    ("yi-jia-yi.wav", include_bytes!("../../audio-samples/yi-jia-yi.wav")),
    ("tian-qi.wav", include_bytes!("../../audio-samples/tian-qi.wav")),
    ("xiao-hua.wav", include_bytes!("../../audio-samples/xiao-hua.wav")),
    ("ji-dian.wav", include_bytes!("../../audio-samples/ji-dian.wav")),
    (
        "bo-fang-yin-yue.wav",
        include_bytes!("../../audio-samples/bo-fang-yin-yue.wav"),
    ),
    (
        "ming-tian-ti-xing.wav",
        include_bytes!("../../audio-samples/ming-tian-ti-xing.wav"),
    ),
    ("bei-jing.wav", include_bytes!("../../audio-samples/bei-jing.wav")),
    ("fan-yi.wav", include_bytes!("../../audio-samples/fan-yi.wav")),
];

/// Frames quieter than this at either end are trimmed before encoding; twice
/// the voice threshold, so the kept edge packets are voiced with margin.
const TRIM_RMS: f32 = 2.0 * VOICE_RMS;
/// Uplink Opus bitrate (the firmware uses "auto"; ~16 kbit/s for 16 kHz voice).
const UPLINK_BITRATE: i32 = 16_000;
/// Largest Opus packet we allow for one frame.
const MAX_PACKET: usize = 1500;

/// One utterance, ready to send.
#[derive(Debug)]
pub struct Clip {
    pub name: String,
    /// What the clip says (from the manifest).
    pub transcript: String,
    /// 60 ms Opus packets; the last one is voiced.
    pub packets: Arc<[Bytes]>,
    /// Trimmed 16 kHz PCM (for re-encoding as TTS audio in the mock).
    pub pcm: Arc<[i16]>,
    /// Where the speaker pauses mid-sentence, if they do ([`Clip::with_pause`]).
    pub pause: Option<ClipPause>,
}

/// A pause inside a clip: `frames` silence packets from packet `at` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipPause {
    pub at: usize,
    pub frames: usize,
}

impl Clip {
    /// Spoken length (packets × 60 ms).
    pub fn duration(&self) -> Duration {
        FRAME * self.packets.len() as u32
    }

    /// The same words with a pause of `pause` (whole 60 ms packets, rounded
    /// up) at the word boundary nearest the middle: before the quietest
    /// packet of the middle third of the clip. The pause is `silence` (the
    /// set's encoded-silence packet, real Opus like the rest) and the
    /// speech packets are the clip's own, so a server that knows the clip
    /// still recognises every packet of it. The clip still ends on its
    /// last voiced packet.
    pub fn with_pause(&self, pause: Duration, silence: &Bytes) -> Clip {
        let n = self.packets.len();
        let frames = pause.as_millis().div_ceil(FRAME.as_millis()) as usize;
        let at = quietest_in_middle(&self.pcm, n);
        let packets: Vec<Bytes> = self.packets[..at]
            .iter()
            .cloned()
            .chain(std::iter::repeat_n(silence.clone(), frames))
            .chain(self.packets[at..].iter().cloned())
            .collect();
        Clip {
            name: self.name.clone(),
            transcript: self.transcript.clone(),
            packets: packets.into(),
            pcm: self.pcm.clone(),
            pause: Some(ClipPause { at, frames }),
        }
    }
}

/// Index of the quietest of `n` packets' PCM frames in the middle third
/// (the middle packet when the PCM is not there): the likeliest gap
/// between words.
fn quietest_in_middle(pcm: &[i16], n: usize) -> usize {
    let (lo, hi) = (n / 3, (2 * n / 3).max(n / 3 + 1).min(n));
    (lo.max(1)..hi)
        .filter_map(|i| pcm.chunks(UPLINK_FRAME_SAMPLES).nth(i).map(|f| (i, frame_rms(f))))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map_or(n / 2, |(i, _)| i)
}

/// All clips plus the shared silence packet.
#[derive(Debug)]
pub struct ClipSet {
    pub clips: Vec<Arc<Clip>>,
    /// One 60 ms packet of encoded digital silence.
    pub silence: Bytes,
}

/// Clips that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("{file}: {message}")]
    Bad { file: String, message: String },
    #[error("no clip matches `{0}` (see audio-samples/manifest.toml for names)")]
    NoMatch(String),
    #[error("`{pattern}` is not a clip-name pattern: {reason}")]
    BadPattern { pattern: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    clip: Vec<ManifestEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    name: String,
    file: String,
    transcript: String,
}

fn bad(file: &str, message: impl Into<String>) -> ClipError {
    ClipError::Bad {
        file: file.to_string(),
        message: message.into(),
    }
}

impl ClipSet {
    /// The built-in clips, decoded and encoded once per process.
    pub fn embedded() -> Result<Arc<ClipSet>, ClipError> {
        static CACHE: OnceLock<Result<Arc<ClipSet>, String>> = OnceLock::new();
        CACHE
            .get_or_init(|| {
                let load = |f: &str| {
                    EMBEDDED_WAVS
                        .iter()
                        .find(|(n, _)| *n == f)
                        .map(|(_, b)| b.to_vec())
                        .ok_or_else(|| bad(f, "not bundled in the binary"))
                };
                Self::build(EMBEDDED_MANIFEST, "audio-samples/manifest.toml", load)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|m| bad("audio-samples", m))
    }

    /// Clips from a directory holding `manifest.toml` and the WAVs it names.
    pub fn from_dir(dir: &Path) -> Result<Arc<ClipSet>, ClipError> {
        let manifest_path = dir.join("manifest.toml");
        let mname = manifest_path.display().to_string();
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| bad(&mname, e.to_string()))?;
        let load =
            |f: &str| std::fs::read(dir.join(f)).map_err(|e| bad(&dir.join(f).display().to_string(), e.to_string()));
        Self::build(&text, &mname, load).map(Arc::new)
    }

    fn build(
        manifest: &str,
        mname: &str,
        load: impl Fn(&str) -> Result<Vec<u8>, ClipError>,
    ) -> Result<ClipSet, ClipError> {
        let m: Manifest = toml::from_str(manifest).map_err(|e| bad(mname, e.message().to_string()))?;
        if m.clip.is_empty() {
            return Err(bad(mname, "lists no clips"));
        }
        let mut clips = Vec::with_capacity(m.clip.len());
        for entry in m.clip {
            let pcm = read_wav(&load(&entry.file)?, &entry.file)?;
            clips.push(Arc::new(encode_clip(entry.name, entry.transcript, &pcm, &entry.file)?));
        }
        let silence = encode_frames(&[0; UPLINK_FRAME_SAMPLES], "silence")?
            .into_iter()
            .next()
            .ok_or_else(|| bad("silence", "encoder produced nothing"))?;
        Ok(ClipSet { clips, silence })
    }

    /// Clips whose names match any of the patterns (globs: `*`, `?`,
    /// `[ab]`, `{a,b}`), in the order of the patterns, each clip once.
    pub fn select(&self, patterns: &[String]) -> Result<Vec<Arc<Clip>>, ClipError> {
        let mut out: Vec<Arc<Clip>> = Vec::new();
        for p in patterns {
            let glob = name_pattern(p)?;
            let before = out.len();
            for c in &self.clips {
                if glob.is_match(&c.name) && !out.iter().any(|o| o.name == c.name) {
                    out.push(c.clone());
                }
            }
            if out.len() == before && !self.clips.iter().any(|c| glob.is_match(&c.name)) {
                return Err(ClipError::NoMatch(p.clone()));
            }
        }
        Ok(out)
    }
}

/// A clip-name glob, matched against whole names.
pub fn name_pattern(pattern: &str) -> Result<globset::GlobMatcher, ClipError> {
    globset::Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| ClipError::BadPattern {
            pattern: pattern.to_string(),
            reason: e.kind().to_string(),
        })
}

fn read_wav(bytes: &[u8], file: &str) -> Result<Vec<i16>, ClipError> {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|e| bad(file, e.to_string()))?;
    let spec = reader.spec();
    if spec.sample_rate != UPLINK_RATE || spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err(bad(
            file,
            format!(
                "must be 16000 Hz mono 16-bit PCM, is {} Hz, {} channel(s), {} bit",
                spec.sample_rate, spec.channels, spec.bits_per_sample
            ),
        ));
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(file, e.to_string()))
}

fn frame_rms(frame: &[i16]) -> f32 {
    let f: Vec<f32> = frame.iter().map(|&s| s as f32 / 32768.0).collect();
    rms(&f)
}

/// Trims to whole 60 ms frames from the first to the last loud frame, fades
/// the edges, encodes, and then drops trailing frames until the clip ends
/// on a packet that decodes clearly voiced with silence decoding silent
/// after it, the way the mock's VAD (one decoder per connection) hears it.
fn encode_clip(name: String, transcript: String, pcm: &[i16], file: &str) -> Result<Clip, ClipError> {
    let frames: Vec<&[i16]> = pcm.chunks(UPLINK_FRAME_SAMPLES).collect();
    let loud = |f: &&[i16]| frame_rms(f) > TRIM_RMS;
    let first = frames
        .iter()
        .position(loud)
        .ok_or_else(|| bad(file, "has no voiced audio"))?;
    let mut last = frames.iter().rposition(loud).unwrap_or(first);
    let silence = encode_frames(&[0; UPLINK_FRAME_SAMPLES], file)?;
    for _ in 0..MAX_TAIL_DROPS {
        let start = first * UPLINK_FRAME_SAMPLES;
        let end = ((last + 1) * UPLINK_FRAME_SAMPLES).min(pcm.len());
        let mut trimmed = pcm[start..end].to_vec();
        fade_edges(&mut trimmed);
        let packets = encode_frames(&trimmed, file)?;
        if packets.len() < 16 {
            return Err(bad(
                file,
                "is shorter than 0.96 s of speech; servers discard utterances under 0.9 s",
            ));
        }
        if ends_cleanly(&packets, &silence[0]) {
            return Ok(Clip {
                name,
                transcript,
                packets: packets.into(),
                pcm: trimmed.into(),
                pause: None,
            });
        }
        last -= 1;
    }
    Err(bad(file, "does not end on a clearly voiced packet; re-trim the clip"))
}

/// How many trailing frames trimming may drop before giving up.
const MAX_TAIL_DROPS: usize = 6;

/// Decoded (one decoder, clip then silence): the last clip packet has RMS ≥
/// twice the voice threshold and every following silence packet is silent.
fn ends_cleanly(packets: &[Bytes], silence: &Bytes) -> bool {
    let mut dec = match OpusDecoder::new(UPLINK_RATE as i32, 1) {
        Ok(d) => d,
        Err(_) => return false,
    };
    let mut out = vec![0f32; UPLINK_FRAME_SAMPLES * 2];
    let mut level = |p: &Bytes| match dec.decode(p, UPLINK_FRAME_SAMPLES, &mut out) {
        Ok(n) => rms(&out[..n.min(out.len())]),
        Err(_) => 0.0,
    };
    let levels: Vec<f32> = packets.iter().map(&mut level).collect();
    let tail_silent = (0..8).all(|_| level(silence) <= VOICE_RMS);
    levels.last().is_some_and(|&l| l >= TRIM_RMS) && tail_silent
}

/// Fade length at each clip edge. Without it the codec's overlap carries
/// the last syllable into the next (silence) packet, and a VAD would hear
/// speech one packet after the clip ended.
const FADE_SAMPLES: usize = 320;

fn fade_edges(pcm: &mut [i16]) {
    let n = FADE_SAMPLES.min(pcm.len() / 2);
    let len = pcm.len();
    for i in 0..n {
        let g = i as f32 / n as f32;
        pcm[i] = (pcm[i] as f32 * g) as i16;
        pcm[len - 1 - i] = (pcm[len - 1 - i] as f32 * g) as i16;
    }
}

/// Index of the last voiced packet when `packets` are sent and then
/// silence, as the mock's VAD (one decoder per connection) would hear it.
pub fn last_voiced_followed_by_silence(packets: &[Bytes], silence: &Bytes) -> Option<usize> {
    let mut vad = VoiceDetector::new();
    let tail = std::iter::repeat_n(silence, 8);
    packets
        .iter()
        .chain(tail)
        .enumerate()
        .filter(|(_, p)| vad.is_voiced(p))
        .map(|(i, _)| i)
        .last()
}

/// Encodes 16 kHz PCM into 60 ms packets (last frame zero-padded).
fn encode_frames(pcm: &[i16], file: &str) -> Result<Vec<Bytes>, ClipError> {
    let mut enc = OpusEncoder::new(UPLINK_RATE as i32, 1, Application::Voip).map_err(|e| bad(file, e))?;
    enc.bitrate_bps = UPLINK_BITRATE;
    let mut out = vec![0u8; MAX_PACKET];
    let mut frame = vec![0i16; UPLINK_FRAME_SAMPLES];
    pcm.chunks(UPLINK_FRAME_SAMPLES)
        .map(|chunk| {
            frame.fill(0);
            frame[..chunk.len()].copy_from_slice(chunk);
            let n = enc
                .encode_i16(&frame, UPLINK_FRAME_SAMPLES, &mut out)
                .map_err(|e| bad(file, format!("Opus encode failed: {e}")))?;
            Ok(Bytes::copy_from_slice(&out[..n]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::toc::packet_duration;

    #[test]
    fn embedded_clips_end_on_a_voiced_packet() {
        let set = ClipSet::embedded().unwrap();
        assert!(set.clips.len() >= 6);
        for clip in &set.clips {
            let last = last_voiced_followed_by_silence(&clip.packets, &set.silence);
            assert_eq!(last, Some(clip.packets.len() - 1), "{}", clip.name);
            let secs = clip.duration().as_secs_f64();
            assert!((0.96..=4.0).contains(&secs), "{} lasts {secs}", clip.name);
        }
    }

    #[test]
    fn packets_are_sixty_ms_opus_and_silence_is_not_voiced() {
        let set = ClipSet::embedded().unwrap();
        for p in set.clips[0].packets.iter() {
            assert_eq!(packet_duration(p).unwrap(), FRAME);
        }
        assert_eq!(packet_duration(&set.silence).unwrap(), FRAME);
        let mut vad = VoiceDetector::new();
        assert!((0..20).all(|_| !vad.is_voiced(&set.silence)));
    }

    #[test]
    fn a_pause_is_silence_packets_at_the_quietest_middle_packet() {
        let set = ClipSet::embedded().unwrap();
        for clip in &set.clips {
            let paused = clip.with_pause(Duration::from_millis(1500), &set.silence);
            let p = paused.pause.expect("paused");
            let n = clip.packets.len();
            assert_eq!(p.frames, 25, "1.5 s is 25 packets");
            assert!(
                p.at >= n / 3 && p.at < 2 * n / 3,
                "{} pauses at {} of {n}",
                clip.name,
                p.at
            );
            assert_eq!(paused.packets.len(), n + 25);
            assert_eq!(&paused.packets[..p.at], &clip.packets[..p.at]);
            assert!(paused.packets[p.at..p.at + 25].iter().all(|q| *q == set.silence));
            assert_eq!(&paused.packets[p.at + 25..], &clip.packets[p.at..]);
            // The quietest packet of the middle third is where the speech resumes.
            let level = |i: usize| frame_rms(&clip.pcm[i * UPLINK_FRAME_SAMPLES..(i + 1) * UPLINK_FRAME_SAMPLES]);
            assert!((n / 3..2 * n / 3).all(|i| level(p.at) <= level(i)), "{}", clip.name);
            // Still ends on its last voiced packet.
            let last = last_voiced_followed_by_silence(&paused.packets, &set.silence);
            assert_eq!(last, Some(paused.packets.len() - 1), "{}", clip.name);
        }
        let rounded = set.clips[0].with_pause(Duration::from_millis(1000), &set.silence);
        assert_eq!(rounded.pause.map(|p| p.frames), Some(17), "1 s rounds up to 17 packets");
    }

    #[test]
    fn select_by_name_and_glob() {
        let set = ClipSet::embedded().unwrap();
        assert_eq!(set.select(&["*".into()]).unwrap().len(), set.clips.len());
        let picked = set.select(&["tian-qi".into(), "yi-*".into()]).unwrap();
        let names: Vec<&str> = picked.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["tian-qi", "yi-jia-yi"]);
        assert!(matches!(set.select(&["nope".into()]), Err(ClipError::NoMatch(_))));
    }

    #[test]
    fn glob_matches_wildcards() {
        let matches = |p: &str, name: &str| name_pattern(p).unwrap().is_match(name);
        assert!(matches("*", "abc"));
        assert!(matches("a?c", "abc"));
        assert!(matches("*-qi", "tian-qi"));
        assert!(!matches("a*d", "abc"));
        assert!(!matches("tian", "tian-qi"), "a pattern matches whole names");
    }

    #[test]
    fn malformed_pattern_is_named() {
        let err = ClipSet::embedded().unwrap().select(&["tian-[qi".into()]).unwrap_err();
        assert!(
            matches!(&err, ClipError::BadPattern { pattern, .. } if pattern == "tian-[qi"),
            "{err}"
        );
    }
}
