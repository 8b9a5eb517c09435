//! Named device profiles: the playback (decode-queue) shape of real boards,
//! each value citing the firmware it comes from. A fleet file picks one
//! with `[device] profile = "..."` and may override any value.

use crate::audio::playback::PlaybackConfig;

/// A board's playback parameters and where they come from.
#[derive(Clone, Copy, Debug)]
pub struct DeviceProfile {
    pub name: &'static str,
    pub playback: PlaybackConfig,
    pub source: &'static str,
}

/// The profile used when a fleet file names none.
pub const DEFAULT_PROFILE: &str = "esp32-s3-default";

/// Every known profile.
pub const PROFILES: &[DeviceProfile] = &[DeviceProfile {
    name: DEFAULT_PROFILE,
    playback: PlaybackConfig {
        // MAX_DECODE_PACKETS_IN_QUEUE = 2400 / OPUS_FRAME_DURATION_MS.
        queue_capacity: 40,
        // No jitter buffer: the first received frame is decoded at once.
        start_threshold: 0,
        // A full queue drops the arriving packet (the firmware's receive path
        // does not wait for a slot), counted as audio the device dropped.
        overflow: crate::audio::playback::Overflow::Drop,
    },
    source: "78/xiaozhi-esp32 @48142026 main/audio/audio_service.h (decode queue 2400 ms / 60 ms = 40 packets), \
             main/audio/audio_service.cc (no start threshold, no catch-up); PROTOCOL.md §8.1-8.2",
}];

/// Looks a profile up by name.
pub fn profile(name: &str) -> Option<&'static DeviceProfile> {
    PROFILES.iter().find(|p| p.name == name)
}

/// Profile names, for error messages.
pub fn profile_names() -> String {
    PROFILES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}
