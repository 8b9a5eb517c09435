//! Audio: the speech clips devices say (decoded once, encoded once to Opus
//! and shared by every device), the one rule that calls a packet voiced, the
//! uplink pacer, and the device's playback (decode-queue) model.

pub mod clip;
pub mod pacer;
pub mod playback;
pub mod voice;

pub use clip::{Clip, ClipError, ClipPause, ClipSet};
pub use pacer::Pacer;

use std::time::Duration;

/// Uplink frame length: the firmware sends one 60 ms Opus packet per period.
pub const FRAME: Duration = Duration::from_millis(60);
/// Uplink sample rate (PROTOCOL.md §3.1).
pub const UPLINK_RATE: u32 = 16_000;
/// Samples in one 60 ms uplink frame.
pub const UPLINK_FRAME_SAMPLES: usize = 960;
/// The rate the real server encodes TTS at, whatever its hello says (§2.2).
pub const DOWNLINK_RATE: u32 = 24_000;
