//! Binary audio framing for protocol versions 1, 2 and 3 (PROTOCOL.md §3).
//!
//! Every WebSocket binary message carries exactly one Opus packet, preceded by
//! a header whose shape depends on the version negotiated out of band (the
//! `Protocol-Version` handshake header and the hello `version`). This module
//! owns that header: encoding for the sender and strict decoding for the
//! receiver, so the simulator and the mock server agree byte for byte and a
//! malformed frame becomes a typed error instead of garbage audio.

use thiserror::Error;

/// Size of the version 2 header in bytes.
pub const V2_HEADER_LEN: usize = 16;
/// Size of the version 3 header in bytes.
pub const V3_HEADER_LEN: usize = 4;
/// Frame type value for Opus audio (the only type ever used).
const TYPE_OPUS: u16 = 0;

/// Binary framing version (§3.2–§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// Raw Opus packet, no header (the only version PY and JV accept).
    V1,
    /// 16-byte header with version, type, timestamp and u32 payload size.
    V2,
    /// 4-byte header with type and u16 payload size.
    V3,
}

impl ProtocolVersion {
    /// The number used in the `Protocol-Version` header and the hello.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

impl TryFrom<u8> for ProtocolVersion {
    type Error = FramingError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            3 => Ok(Self::V3),
            other => Err(FramingError::UnsupportedVersion(other)),
        }
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FramingError {
    /// Protocol version number other than 1, 2 or 3.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// Frame or payload carries no Opus data.
    #[error("empty audio payload")]
    Empty,
    /// Frame is shorter than the version's header.
    #[error("frame of {actual} bytes is shorter than the {needed}-byte header")]
    TooShort { needed: usize, actual: usize },
    /// Header type field is not 0 (Opus).
    #[error("unsupported frame type {0}")]
    UnsupportedType(u16),
    /// Header `payload_size` disagrees with the bytes that follow it.
    #[error("header declares {declared} payload bytes but {actual} follow")]
    LengthMismatch { declared: usize, actual: usize },
    /// Payload does not fit the version's length field.
    #[error("payload of {len} bytes exceeds the {max}-byte limit")]
    TooLong { len: usize, max: usize },
}

/// A decoded binary frame, borrowing its payload from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioFrame<'a> {
    /// The Opus packet.
    pub payload: &'a [u8],
    /// Header timestamp in ms (V2 only; 0 for V1 and V3).
    pub timestamp_ms: u32,
}

/// Clears `out` and writes one frame (header + payload) into it.
///
/// `timestamp_ms` is only carried by V2. Empty payloads are refused because a
/// strict decoder rejects them.
pub fn encode_into(
    version: ProtocolVersion,
    payload: &[u8],
    timestamp_ms: u32,
    out: &mut Vec<u8>,
) -> Result<(), FramingError> {
    out.clear();
    if payload.is_empty() {
        return Err(FramingError::Empty);
    }
    match version {
        ProtocolVersion::V1 => {}
        ProtocolVersion::V2 => {
            let size = u32::try_from(payload.len()).map_err(|_| FramingError::TooLong {
                len: payload.len(),
                max: u32::MAX as usize,
            })?;
            out.reserve(V2_HEADER_LEN + payload.len());
            out.extend_from_slice(&2u16.to_be_bytes());
            out.extend_from_slice(&TYPE_OPUS.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&timestamp_ms.to_be_bytes());
            out.extend_from_slice(&size.to_be_bytes());
        }
        ProtocolVersion::V3 => {
            let size = u16::try_from(payload.len()).map_err(|_| FramingError::TooLong {
                len: payload.len(),
                max: u16::MAX as usize,
            })?;
            out.reserve(V3_HEADER_LEN + payload.len());
            out.push(0); // type: Opus
            out.push(0); // reserved
            out.extend_from_slice(&size.to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    Ok(())
}

/// Allocating convenience wrapper around [`encode_into`].
pub fn encode(version: ProtocolVersion, payload: &[u8], timestamp_ms: u32) -> Result<Vec<u8>, FramingError> {
    let mut out = Vec::new();
    encode_into(version, payload, timestamp_ms, &mut out)?;
    Ok(out)
}

/// Strictly decodes one binary message of the given version.
pub fn decode(version: ProtocolVersion, frame: &[u8]) -> Result<AudioFrame<'_>, FramingError> {
    let (payload, timestamp_ms) = match version {
        ProtocolVersion::V1 => (frame, 0),
        ProtocolVersion::V2 => decode_v2(frame)?,
        ProtocolVersion::V3 => (decode_v3(frame)?, 0),
    };
    if payload.is_empty() {
        return Err(FramingError::Empty);
    }
    Ok(AudioFrame { payload, timestamp_ms })
}

fn decode_v2(frame: &[u8]) -> Result<(&[u8], u32), FramingError> {
    let (header, payload) = split_header::<V2_HEADER_LEN>(frame)?;
    let kind = u16::from_be_bytes([header[2], header[3]]);
    if kind != TYPE_OPUS {
        return Err(FramingError::UnsupportedType(kind));
    }
    let timestamp = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    let declared = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
    check_length(declared as usize, payload)?;
    Ok((payload, timestamp))
}

fn decode_v3(frame: &[u8]) -> Result<&[u8], FramingError> {
    let (header, payload) = split_header::<V3_HEADER_LEN>(frame)?;
    if header[0] != 0 {
        return Err(FramingError::UnsupportedType(u16::from(header[0])));
    }
    let declared = u16::from_be_bytes([header[2], header[3]]);
    check_length(usize::from(declared), payload)?;
    Ok(payload)
}

fn split_header<const N: usize>(frame: &[u8]) -> Result<(&[u8; N], &[u8]), FramingError> {
    match frame.split_first_chunk::<N>() {
        Some(parts) => Ok(parts),
        None => Err(FramingError::TooShort {
            needed: N,
            actual: frame.len(),
        }),
    }
}

fn check_length(declared: usize, payload: &[u8]) -> Result<(), FramingError> {
    if declared == payload.len() {
        Ok(())
    } else {
        Err(FramingError::LengthMismatch {
            declared,
            actual: payload.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPUS: &[u8] = &[0x58, 0x01, 0x02, 0x03, 0x04];

    #[test]
    fn version_numbers_round_trip_and_reject_others() {
        for v in [ProtocolVersion::V1, ProtocolVersion::V2, ProtocolVersion::V3] {
            assert_eq!(ProtocolVersion::try_from(v.as_u8()), Ok(v));
        }
        assert_eq!(ProtocolVersion::try_from(0), Err(FramingError::UnsupportedVersion(0)));
        assert_eq!(ProtocolVersion::try_from(4), Err(FramingError::UnsupportedVersion(4)));
    }

    #[test]
    fn v1_round_trip_is_the_raw_packet() {
        let frame = encode(ProtocolVersion::V1, OPUS, 1234).expect("encode");
        assert_eq!(frame, OPUS);
        let decoded = decode(ProtocolVersion::V1, &frame).expect("decode");
        assert_eq!(decoded.payload, OPUS);
        assert_eq!(decoded.timestamp_ms, 0);
    }

    #[test]
    fn v2_round_trip_keeps_timestamp_and_exact_header() {
        let frame = encode(ProtocolVersion::V2, OPUS, 0x0102_0304).expect("encode");
        assert_eq!(&frame[..16], &[0, 2, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 5]);
        let decoded = decode(ProtocolVersion::V2, &frame).expect("decode");
        assert_eq!(decoded.payload, OPUS);
        assert_eq!(decoded.timestamp_ms, 0x0102_0304);
    }

    #[test]
    fn v3_round_trip_has_four_byte_header() {
        let frame = encode(ProtocolVersion::V3, OPUS, 99).expect("encode");
        assert_eq!(&frame[..4], &[0, 0, 0, 5]);
        let decoded = decode(ProtocolVersion::V3, &frame).expect("decode");
        assert_eq!(decoded.payload, OPUS);
        assert_eq!(decoded.timestamp_ms, 0);
    }

    #[test]
    fn encode_into_clears_previous_contents() {
        let mut out = vec![9; 40];
        encode_into(ProtocolVersion::V3, OPUS, 0, &mut out).expect("encode");
        assert_eq!(out.len(), 4 + OPUS.len());
    }

    #[test]
    fn v3_encode_rejects_payload_over_u16() {
        let big = vec![1u8; 65_536];
        assert_eq!(
            encode(ProtocolVersion::V3, &big, 0),
            Err(FramingError::TooLong {
                len: 65_536,
                max: 65_535
            })
        );
        assert!(encode(ProtocolVersion::V3, &big[..65_535], 0).is_ok());
    }

    #[test]
    fn encode_rejects_empty_payload() {
        assert_eq!(encode(ProtocolVersion::V1, &[], 0), Err(FramingError::Empty));
    }

    #[test]
    fn v1_rejects_empty_frame() {
        assert_eq!(decode(ProtocolVersion::V1, &[]), Err(FramingError::Empty));
    }

    #[test]
    fn v2_rejects_short_frame() {
        assert_eq!(
            decode(ProtocolVersion::V2, &[0; 15]),
            Err(FramingError::TooShort { needed: 16, actual: 15 })
        );
    }

    #[test]
    fn v2_rejects_non_audio_type() {
        let mut frame = encode(ProtocolVersion::V2, OPUS, 0).expect("encode");
        frame[3] = 1;
        assert_eq!(
            decode(ProtocolVersion::V2, &frame),
            Err(FramingError::UnsupportedType(1))
        );
    }

    #[test]
    fn v2_rejects_length_mismatch() {
        let mut frame = encode(ProtocolVersion::V2, OPUS, 0).expect("encode");
        frame.push(0);
        assert_eq!(
            decode(ProtocolVersion::V2, &frame),
            Err(FramingError::LengthMismatch { declared: 5, actual: 6 })
        );
    }

    #[test]
    fn v2_rejects_empty_payload() {
        let frame = [0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(ProtocolVersion::V2, &frame), Err(FramingError::Empty));
    }

    #[test]
    fn v3_rejects_short_frame() {
        assert_eq!(
            decode(ProtocolVersion::V3, &[0, 0, 0]),
            Err(FramingError::TooShort { needed: 4, actual: 3 })
        );
    }

    #[test]
    fn v3_rejects_non_audio_type() {
        let mut frame = encode(ProtocolVersion::V3, OPUS, 0).expect("encode");
        frame[0] = 1;
        assert_eq!(
            decode(ProtocolVersion::V3, &frame),
            Err(FramingError::UnsupportedType(1))
        );
    }

    #[test]
    fn v3_rejects_length_mismatch() {
        let mut frame = encode(ProtocolVersion::V3, OPUS, 0).expect("encode");
        frame.truncate(frame.len() - 1);
        assert_eq!(
            decode(ProtocolVersion::V3, &frame),
            Err(FramingError::LengthMismatch { declared: 5, actual: 4 })
        );
    }

    #[test]
    fn v3_rejects_empty_payload() {
        assert_eq!(decode(ProtocolVersion::V3, &[0, 0, 0, 0]), Err(FramingError::Empty));
    }
}
