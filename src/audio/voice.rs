//! The one rule that calls an uplink packet voiced or silent, shared by the
//! mock server's VAD and the device's notion of "end of speech", so both
//! sides agree to the packet.
//!
//! Rule: decode the packet to 16 kHz PCM; it is voiced when the RMS of the
//! decoded samples is above [`VOICE_RMS`] (−40 dBFS). The bundled clips are
//! normalised to −3 dBFS peak and trimmed so their first and last packets sit
//! well above it; encoded digital silence decodes to (near) zero.

use super::{UPLINK_FRAME_SAMPLES, UPLINK_RATE};
use opus_rs::OpusDecoder;

/// RMS (full scale = 1.0) above which a decoded packet counts as voice.
pub const VOICE_RMS: f32 = 0.01;

/// Root mean square of samples in full-scale units.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f32 = samples.iter().map(|s| s * s).sum();
    (sum / samples.len() as f32).sqrt()
}

/// Decodes uplink packets in order and classifies each one.
pub struct VoiceDetector {
    decoder: OpusDecoder,
    pcm: Vec<f32>,
}

impl VoiceDetector {
    /// A fresh detector (one per connection, like the server's decoder).
    pub fn new() -> Self {
        let decoder = match OpusDecoder::new(UPLINK_RATE as i32, 1) {
            Ok(d) => d,
            Err(e) => unreachable!("16 kHz mono is a valid Opus decoder config: {e}"),
        };
        VoiceDetector {
            decoder,
            pcm: vec![0.0; UPLINK_FRAME_SAMPLES * 2],
        }
    }

    /// True when the packet decodes to voice. Undecodable packets are silent
    /// (the real server drops them).
    pub fn is_voiced(&mut self, packet: &[u8]) -> bool {
        match self.decoder.decode(packet, UPLINK_FRAME_SAMPLES, &mut self.pcm) {
            Ok(n) => rms(&self.pcm[..n.min(self.pcm.len())]) > VOICE_RMS,
            Err(_) => false,
        }
    }
}

impl Default for VoiceDetector {
    fn default() -> Self {
        Self::new()
    }
}
