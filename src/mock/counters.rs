//! What the mock saw: plain atomic counters that sessions bump, read by
//! tests, the mock's own report and `mock-server`'s summary.

use super::fault::FaultLog;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// What the mock saw. Plain atomic counters that sessions bump (the fault
/// log keeps its bounded record list behind a lock; faults are rare).
#[derive(Debug, Default)]
pub struct MockCounters {
    /// Upgraded WebSocket connections.
    pub sessions: AtomicU64,
    /// Sessions currently open.
    pub active_sessions: AtomicI64,
    /// Client hellos answered.
    pub hellos: AtomicU64,
    /// `listen start` messages.
    pub listen_starts: AtomicU64,
    /// `listen stop` messages (push-to-talk release).
    pub listen_stops: AtomicU64,
    /// `listen detect` with a configured wake word (answered with a greeting).
    pub wake_words: AtomicU64,
    /// `listen detect` with other text (taken as the utterance).
    pub detect_texts: AtomicU64,
    /// Turns open now: from `listen start` (or speech) until `tts stop` was
    /// sent and the device could have drained its queue without starting
    /// another turn. A closed-loop speaker with no think time stays open.
    pub open_turns: AtomicI64,
    /// Utterances answered (`stt` sent for speech or detect text).
    pub turns: AtomicU64,
    /// Utterances too short to answer.
    pub too_short: AtomicU64,
    /// `tts stop` sent at the natural end of an answer.
    pub replies_completed: AtomicU64,
    /// Answers open now (`stt` sent, `tts stop` not yet).
    pub open_replies: AtomicI64,
    /// `abort` messages.
    pub aborts: AtomicU64,
    /// Binary frames received / TTS frames sent.
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Audio that arrived before the hello (dropped, as PY does).
    pub frames_before_hello: AtomicU64,
    /// MCP results received from devices.
    pub mcp_results: AtomicU64,
    /// Sessions closed by the idle timeout (goodbye turn or hard close).
    pub idle_closes: AtomicU64,
    /// Malformed client input (bad JSON shapes, bad framing).
    pub protocol_errors: AtomicU64,
    /// Uplink frames discarded by the wake-word mute (§13.1).
    pub muted_frames: AtomicU64,
    /// Utterances whose audio matched no bundled clip (answered with the
    /// fallback text).
    pub unrecognised: AtomicU64,
    /// Connections closed for not finishing the handshake in time.
    pub handshake_timeouts: AtomicU64,
    /// `accept()` errors (e.g. out of file descriptors); the loop backs off.
    pub accept_errors: AtomicU64,
    /// Connections closed (1009) for a message over [`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE).
    pub oversized: AtomicU64,
    /// Faults injected: a count per kind and the first 10,000 records.
    pub faults: FaultLog,
    /// OTA version checks answered (with both identity headers).
    pub ota_requests: AtomicU64,
    /// Their `Device-Id` headers, in arrival order.
    pub ota_device_ids: Mutex<Vec<String>>,
    /// Gateway: MQTT connections accepted (CONNACK sent).
    pub mqtt_connections: AtomicU64,
    /// Gateway: conversations opened (device hello answered).
    pub conversations: AtomicU64,
    /// Gateway: uplink datagrams routed to a conversation.
    pub datagrams_in: AtomicU64,
    /// Gateway: uplink datagrams dropped (malformed, unknown ssrc).
    pub datagrams_unrouted: AtomicU64,
    /// Gateway: downlink datagrams sent.
    pub datagrams_out: AtomicU64,
    /// Gateway: downlink audio dropped because the device had sent no
    /// datagram yet (its address unknown), as the real gateway drops it.
    pub downlink_before_address: AtomicU64,
    /// Gateway faults per datagram: dropped, duplicated, reordered, delayed.
    pub udp_dropped: AtomicU64,
    pub udp_duplicated: AtomicU64,
    pub udp_reordered: AtomicU64,
    pub udp_delayed: AtomicU64,
}

impl MockCounters {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}
