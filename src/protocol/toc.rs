//! Opus packet duration from the TOC byte (RFC 6716 §3.1).
//!
//! Downlink packets must be timed by what they contain, not by what the
//! server hello advertised: PY announces 16 kHz / 60 ms but sends 24 kHz
//! hybrid packets of 3 × 20 ms frames (PROTOCOL.md §13). This module owns the
//! tiny parser that turns a packet's first byte(s) into its playout duration,
//! which the playout model and the mock server's pacing both rely on.

use std::time::Duration;
use thiserror::Error;

/// Longest duration a single Opus packet may carry (RFC 6716 §3.2.5).
const MAX_PACKET_US: u64 = 120_000;

/// Why a packet's duration could not be determined.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TocError {
    /// The packet has no TOC byte.
    #[error("empty Opus packet")]
    Empty,
    /// Code 3 packet without its frame-count byte.
    #[error("code 3 Opus packet lacks its frame-count byte")]
    MissingFrameCount,
    /// Code 3 packet declaring zero frames.
    #[error("code 3 Opus packet declares zero frames")]
    ZeroFrames,
    /// Total duration above the 120 ms limit.
    #[error("Opus packet lasts {duration_us} µs, above the 120 ms limit")]
    TooLong { duration_us: u64 },
}

/// Duration of one frame, in microseconds, for a TOC configuration (0–31).
fn frame_us(config: u8) -> u64 {
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    }
}

/// Returns how much audio one Opus packet carries.
pub fn packet_duration(packet: &[u8]) -> Result<Duration, TocError> {
    let (&toc, rest) = packet.split_first().ok_or(TocError::Empty)?;
    let config = toc >> 3;
    let frames: u64 = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = rest.first().ok_or(TocError::MissingFrameCount)? & 0x3f;
            if count == 0 {
                return Err(TocError::ZeroFrames);
            }
            u64::from(count)
        }
    };
    let duration_us = frame_us(config) * frames;
    if duration_us > MAX_PACKET_US {
        return Err(TocError::TooLong { duration_us });
    }
    Ok(Duration::from_micros(duration_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn py_hybrid_swb_three_frames_is_60_ms() {
        assert_eq!(packet_duration(&[0x6b, 0x03, 0xaa]), Ok(ms(60)));
    }

    #[test]
    fn silk_wb_single_60_ms_frame_is_60_ms() {
        assert_eq!(packet_duration(&[0x58, 0x01]), Ok(ms(60)));
    }

    #[test]
    fn celt_20_ms_code_1_is_40_ms() {
        // config 31 (CELT FB 20 ms), code 1.
        assert_eq!(packet_duration(&[0xf9, 0x00, 0x00]), Ok(ms(40)));
    }

    #[test]
    fn code_2_counts_two_frames() {
        // config 1 (SILK NB 20 ms), code 2.
        assert_eq!(packet_duration(&[0x0a, 0x01, 0x00]), Ok(ms(40)));
    }

    #[test]
    fn celt_2_5_ms_frame_keeps_sub_millisecond_precision() {
        // config 16 (CELT NB 2.5 ms), code 0.
        assert_eq!(packet_duration(&[0x80]), Ok(Duration::from_micros(2_500)));
    }

    #[test]
    fn hybrid_10_ms_frame_is_10_ms() {
        // config 12, code 0.
        assert_eq!(packet_duration(&[0x60]), Ok(ms(10)));
    }

    #[test]
    fn code_3_ignores_vbr_and_padding_flags() {
        // count byte 0xc2: VBR + padding flags set, 2 frames of 20 ms.
        assert_eq!(packet_duration(&[0x6b, 0xc2]), Ok(ms(40)));
    }

    #[test]
    fn rejects_empty_packet() {
        assert_eq!(packet_duration(&[]), Err(TocError::Empty));
    }

    #[test]
    fn rejects_code_3_without_count_byte() {
        assert_eq!(packet_duration(&[0x6b]), Err(TocError::MissingFrameCount));
    }

    #[test]
    fn rejects_code_3_with_zero_frames() {
        assert_eq!(packet_duration(&[0x6b, 0x00]), Err(TocError::ZeroFrames));
    }

    #[test]
    fn rejects_packet_longer_than_120_ms() {
        // config 11 (SILK 60 ms), code 3, 3 frames = 180 ms.
        assert_eq!(
            packet_duration(&[0x5b, 0x03]),
            Err(TocError::TooLong { duration_us: 180_000 })
        );
    }

    #[test]
    fn accepts_exactly_120_ms() {
        // config 11 (SILK 60 ms), code 1: 2 × 60 ms.
        assert_eq!(packet_duration(&[0x59]), Ok(ms(120)));
    }
}
