//! The mock's TTS voice: the bundled clips resampled to 24 kHz and encoded
//! once per process as 60 ms Opus packets, as PY encodes TTS at 24 kHz
//! whatever its hello says (PROTOCOL.md §2.2, §13). Sentence `k` of an
//! answer is clip `k mod n`, its transcript the sentence text.

use crate::audio::{ClipSet, DOWNLINK_RATE, UPLINK_RATE};
use bytes::Bytes;
use opus_rs::{Application, OpusEncoder};
use std::sync::{Arc, OnceLock};

/// Samples in one 60 ms frame at 24 kHz.
const FRAME_SAMPLES: usize = 1440;
/// PY's TTS encoder bitrate (§3.1).
const TTS_BITRATE: i32 = 24_000;

/// Pre-encoded TTS sentences.
#[derive(Debug)]
pub struct VoiceBank {
    sentences: Vec<(String, Arc<[Bytes]>)>,
}

impl VoiceBank {
    /// The bank built from the bundled clips, once per process.
    pub fn shared() -> Result<Arc<VoiceBank>, String> {
        static BANK: OnceLock<Result<Arc<VoiceBank>, String>> = OnceLock::new();
        BANK.get_or_init(|| {
            let clips = ClipSet::embedded().map_err(|e| e.to_string())?;
            VoiceBank::from_clips(&clips).map(Arc::new)
        })
        .clone()
    }

    /// Encodes every clip of a set as a TTS sentence.
    pub fn from_clips(set: &ClipSet) -> Result<VoiceBank, String> {
        let sentences = set
            .clips
            .iter()
            .map(|c| Ok((c.transcript.clone(), encode_24k(&upsample(&c.pcm))?.into())))
            .collect::<Result<Vec<_>, String>>()?;
        if sentences.is_empty() {
            return Err("no clips to build TTS sentences from".into());
        }
        Ok(VoiceBank { sentences })
    }

    /// Sentence `i` (wrapping): its text and frames.
    pub fn sentence(&self, i: usize) -> (String, Arc<[Bytes]>) {
        let (t, f) = &self.sentences[i % self.sentences.len()];
        (t.clone(), f.clone())
    }

    /// How many distinct sentences the bank holds.
    pub fn len(&self) -> usize {
        self.sentences.len()
    }

    /// Never true for a built bank.
    pub fn is_empty(&self) -> bool {
        self.sentences.is_empty()
    }
}

/// 16 kHz → 24 kHz by linear interpolation (good enough for test speech).
fn upsample(pcm: &[i16]) -> Vec<i16> {
    let out_len = pcm.len() * DOWNLINK_RATE as usize / UPLINK_RATE as usize;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * UPLINK_RATE as f64 / DOWNLINK_RATE as f64;
            let j = pos.floor() as usize;
            let frac = pos - j as f64;
            let a = pcm[j.min(pcm.len() - 1)] as f64;
            let b = pcm[(j + 1).min(pcm.len() - 1)] as f64;
            (a + (b - a) * frac).round() as i16
        })
        .collect()
}

/// 24 kHz mono → 60 ms Opus packets, last frame zero-padded (like PY).
fn encode_24k(pcm: &[i16]) -> Result<Vec<Bytes>, String> {
    let mut enc = OpusEncoder::new(DOWNLINK_RATE as i32, 1, Application::Voip).map_err(str::to_string)?;
    enc.bitrate_bps = TTS_BITRATE;
    let mut out = vec![0u8; 1500];
    let mut frame = vec![0i16; FRAME_SAMPLES];
    pcm.chunks(FRAME_SAMPLES)
        .map(|chunk| {
            frame.fill(0);
            frame[..chunk.len()].copy_from_slice(chunk);
            let n = enc
                .encode_i16(&frame, FRAME_SAMPLES, &mut out)
                .map_err(str::to_string)?;
            Ok(Bytes::copy_from_slice(&out[..n]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::packet_duration;
    use std::time::Duration;

    #[test]
    fn tts_frames_are_60ms_24khz_opus() {
        let bank = VoiceBank::shared().unwrap();
        let (text, frames) = bank.sentence(0);
        assert!(!text.is_empty());
        assert!(frames.len() > 10);
        for f in frames.iter() {
            assert_eq!(packet_duration(f).unwrap(), Duration::from_millis(60));
        }
    }

    #[test]
    fn upsample_keeps_duration_ratio() {
        assert_eq!(upsample(&[0; 1600]).len(), 2400);
    }
}
