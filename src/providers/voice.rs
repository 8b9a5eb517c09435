//! Speech audio for the TTS stand-in: a "tape" of the bundled clips (real
//! Mandarin speech with short pauses between utterances), cut to a length
//! that follows the text, so the server's Opus encoder works on speech and
//! not on silence. Also the WAV/PCM encodings and the resampling both
//! stand-ins need.

use crate::audio::clip::ClipSet;
use std::io::Cursor;
use std::time::Duration;

/// The clips' rate.
pub const CLIP_RATE: u32 = 16_000;
/// Pause between clips on the tape.
const GAP: Duration = Duration::from_millis(150);
/// Fade at the cut end, so the answer does not end in a click.
const FADE: Duration = Duration::from_millis(10);

/// The bundled clips end to end, at one sample rate, with clip start offsets.
pub struct Tape {
    pub rate: u32,
    samples: Vec<i16>,
    starts: Vec<usize>,
}

impl Tape {
    /// The tape at `rate` (16000 or 24000) from `clips`.
    pub fn new(clips: &ClipSet, rate: u32) -> Tape {
        let gap = vec![0i16; (GAP.as_secs_f64() * CLIP_RATE as f64) as usize];
        let mut samples = Vec::new();
        let mut starts = Vec::new();
        for c in &clips.clips {
            starts.push(samples.len());
            samples.extend_from_slice(&c.pcm);
            samples.extend_from_slice(&gap);
        }
        let ratio = rate as f64 / CLIP_RATE as f64;
        Tape {
            rate,
            samples: resample(&samples, CLIP_RATE, rate),
            starts: starts.iter().map(|&s| (s as f64 * ratio).round() as usize).collect(),
        }
    }

    /// Exactly `len` samples of speech, starting at the clip `text` hashes
    /// to (the same sentence always sounds the same), wrapping round.
    pub fn speak(&self, text: &str, len: usize) -> Vec<i16> {
        if self.samples.is_empty() {
            return vec![0; len];
        }
        let start = self.starts[(fnv1a(text) % self.starts.len() as u64) as usize];
        let mut out: Vec<i16> = self.samples.iter().copied().cycle().skip(start).take(len).collect();
        let fade = ((FADE.as_secs_f64() * self.rate as f64) as usize).min(out.len());
        let n = out.len();
        for i in 0..fade {
            let g = i as f32 / fade as f32;
            out[n - 1 - i] = (out[n - 1 - i] as f32 * g) as i16;
        }
        out
    }
}

/// Characters that take time to say: letters and digits of any script
/// (CJK ideographs included); spaces and punctuation take none.
pub fn spoken_chars(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphanumeric()).count()
}

/// Samples for `text` at `rate`: `per_char` per spoken character, divided by `speed`.
pub fn speech_len(text: &str, per_char: Duration, speed: f64, rate: u32) -> usize {
    let secs = per_char.as_secs_f64() * spoken_chars(text) as f64 / speed;
    (secs * rate as f64).round() as usize
}

/// 64-bit FNV-1a: a stable hash (std's is randomised per process).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Linear-interpolation resampling (speech band only; good enough for a codec to chew on).
pub fn resample(pcm: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || pcm.is_empty() {
        return pcm.to_vec();
    }
    let out_len = (pcm.len() as u64 * to as u64 / from as u64) as usize;
    let step = from as f64 / to as f64;
    (0..out_len)
        .map(|i| {
            let x = i as f64 * step;
            let j = x as usize;
            let f = x - j as f64;
            let a = pcm[j.min(pcm.len() - 1)] as f64;
            let b = pcm[(j + 1).min(pcm.len() - 1)] as f64;
            (a + (b - a) * f).round() as i16
        })
        .collect()
}

/// A 16-bit mono WAV file.
pub fn wav_bytes(pcm: &[i16], rate: u32) -> Result<Vec<u8>, hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cur = Cursor::new(Vec::with_capacity(44 + pcm.len() * 2));
    {
        let mut w = hound::WavWriter::new(&mut cur, spec)?;
        for &s in pcm {
            w.write_sample(s)?;
        }
        w.finalize()?;
    }
    Ok(cur.into_inner())
}

/// Raw little-endian 16-bit PCM.
pub fn pcm_bytes(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Raw little-endian 16-bit PCM bytes to samples (a trailing odd byte is dropped).
pub fn samples_of(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// A WAV file's audio as 16 kHz mono samples (channels averaged, any rate
/// resampled), or a message saying why it cannot be read.
pub fn read_wav_16k(bytes: &[u8]) -> Result<Vec<i16>, String> {
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| format!("not a WAV file ({e})"))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(format!(
            "WAV must be 16-bit PCM, is {} bit {:?}",
            spec.bits_per_sample, spec.sample_format
        ));
    }
    let all: Vec<i16> = reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("WAV data is damaged ({e})"))?;
    let ch = spec.channels.max(1) as usize;
    let mono: Vec<i16> = all
        .chunks(ch)
        .map(|f| (f.iter().map(|&s| s as i32).sum::<i32>() / f.len() as i32) as i16)
        .collect();
    Ok(resample(&mono, spec.sample_rate, CLIP_RATE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_follows_spoken_characters_only() {
        assert_eq!(spoken_chars("好的，我明白了。"), 6);
        assert_eq!(spoken_chars("OK, 2 cats!"), 7);
        let per = Duration::from_millis(200);
        assert_eq!(speech_len("你好。", per, 1.0, 24_000), 9_600);
        assert_eq!(speech_len("你好。", per, 2.0, 16_000), 3_200);
    }

    #[test]
    fn tape_speaks_exact_lengths_of_real_speech() {
        let clips = ClipSet::embedded().unwrap();
        let tape = Tape::new(&clips, 24_000);
        let pcm = tape.speak("今天天气怎么样", 48_000);
        assert_eq!(pcm.len(), 48_000);
        let rms = (pcm.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt();
        assert!(rms > 300.0, "speech, not silence: rms {rms}");
        assert_eq!(tape.speak("今天天气怎么样", 48_000), pcm, "same text, same audio");
    }

    #[test]
    fn wav_round_trips_through_hound() {
        let pcm: Vec<i16> = (0..24_000).map(|i| ((i % 100) * 50) as i16).collect();
        let bytes = wav_bytes(&pcm, 24_000).unwrap();
        let back = read_wav_16k(&bytes).unwrap();
        assert_eq!(back.len(), 16_000);
        assert!(read_wav_16k(b"RIFF....nonsense").is_err());
    }
}
