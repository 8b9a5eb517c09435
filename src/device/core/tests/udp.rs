//! The core on the MQTT + UDP transport: the hello pair, the `udp` block's
//! checks, sealed uplink with its sequence numbers, and the downlink's
//! drop rule and per-turn counts.

use super::*;
use crate::protocol::udp::{UdpCipher, UdpParams};

const KEY: [u8; 16] = [9; 16];
const NONCE: [u8; 16] = [1, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 0];

fn udp_hello(key: &str) -> String {
    let mut udp = UdpParams {
        server: "127.0.0.1".into(),
        port: 8884,
        key: KEY,
        nonce: NONCE,
    }
    .to_hello();
    udp["key"] = key.into();
    serde_json::json!({"type": "hello", "version": 3, "transport": "udp", "session_id": "s1", "udp": udp}).to_string()
}

/// A device on the UDP transport whose hello went out at 0.
fn opened_udp() -> Harness {
    let mut h = Harness::opened(settings());
    h.core.set_transport(Transport::Udp);
    h.sent.clear();
    h.core.open(h.now);
    h.drain();
    h
}

#[test]
fn the_hello_over_mqtt_is_version_3_udp() {
    let h = opened_udp();
    assert_eq!(h.texts(), vec![(0, "hello".to_string())]);
    let core_hello = h.core.transport.client_hello(1);
    assert_eq!((core_hello.version, core_hello.transport.as_str()), (3, "udp"));
}

#[test]
fn a_udp_hello_with_a_short_key_fails_as_protocol_with_the_firmware_reason() {
    let mut h = opened_udp();
    h.text(40, &udp_hello("00112233"));
    assert!(h.ready.is_empty());
    assert_eq!(
        h.gone,
        vec![(
            40,
            Failure::new(FailureKind::Protocol, "server hello `udp.key` is 4 bytes, not 16")
        )]
    );
    assert!(h.sent.contains(&(40, Sent::Close)));
}

#[test]
fn a_websocket_hello_on_the_udp_transport_is_protocol() {
    let mut h = opened_udp();
    h.text(
        40,
        r#"{"type":"hello","version":1,"transport":"websocket","session_id":"s"}"#,
    );
    assert_eq!(h.gone[0].1.kind, FailureKind::Protocol);
    assert_eq!(
        h.gone[0].1.detail,
        "server hello has transport \"websocket\", not \"udp\""
    );
}

#[test]
fn a_turn_over_udp_seals_uplink_from_sequence_1_and_counts_its_downlink() {
    let mut h = opened_udp();
    h.text(10, &udp_hello(&hex::encode(KEY)));
    assert_eq!(h.ready.len(), 1);
    h.start(100, spec(Some(clip("a", "一加一等于几", 3)), ListenMode::Auto, 0));
    // Speech leaves at once from listen start: the gateway learns the
    // device's address before any answer (PROTOCOL.md §11.3).
    assert_eq!(h.audio_times()[0], 100);
    let gateway = UdpCipher::new(&KEY);
    let (head, opus) = gateway.open(&h.uplink[0]).unwrap();
    assert_eq!((head.sequence, head.ssrc, opus.as_slice()), (1, 42, &b"speech-0"[..]));
    h.run_to(400);
    let (head, _) = gateway.open(&h.uplink[1]).unwrap();
    assert_eq!(head.sequence, 2);
    h.text(400, r#"{"type":"stt","text":"一加一等于几"}"#);
    h.text(400, r#"{"type":"tts","state":"start"}"#);
    let d = |seq| gateway.seal(&NONCE, 0, seq, &TTS_FRAME);
    h.binaries(450, &[d(1), d(3), d(2), d(3), vec![1, 0, 0]]);
    h.binaries(510, &[d(4)]);
    h.text(900, r#"{"type":"tts","state":"stop"}"#);
    h.run_to(3000);
    let rec = &h.only_end().record;
    assert_eq!(rec.outcome, TurnOutcome::Completed);
    assert_eq!(rec.frames_received, 3);
    let c = rec.datagrams.unwrap();
    assert_eq!(
        (c.received, c.lost, c.reordered, c.duplicated, c.malformed),
        (3, 0, 1, 1, 1)
    );
}

#[test]
fn a_new_hello_restarts_the_uplink_sequence() {
    let mut h = opened_udp();
    h.text(10, &udp_hello(&hex::encode(KEY)));
    h.start(100, spec(Some(clip("a", "x", 2)), ListenMode::Auto, 0));
    h.gone_at(150, Failure::new(FailureKind::Closed, "gone"));
    h.uplink.clear();
    h.core.open(h.now);
    h.text(200, &udp_hello(&hex::encode(KEY)));
    h.start(300, spec(Some(clip("a", "x", 2)), ListenMode::Auto, 0));
    let (head, _) = UdpCipher::new(&KEY).open(&h.uplink[0]).unwrap();
    assert_eq!(head.sequence, 1);
}

#[test]
fn websocket_turns_carry_no_datagram_counts() {
    let mut h = Harness::connected(settings());
    h.start(100, spec(Some(clip("a", "x", 2)), ListenMode::Auto, 0));
    let stop = h.answer(400, 3);
    h.run_to(stop + 2000);
    assert_eq!(h.only_end().record.datagrams, None);
}

#[test]
fn the_server_goodbye_mid_turn_fails_it_as_closed() {
    let mut h = opened_udp();
    h.text(10, &udp_hello(&hex::encode(KEY)));
    h.start(100, spec(Some(clip("a", "x", 2)), ListenMode::Auto, 0));
    h.text(150, r#"{"type":"goodbye","session_id":"s1"}"#);
    let rec = &h.only_end().record;
    assert_eq!(rec.outcome, TurnOutcome::Failed(FailureKind::Closed));
    assert!(h.only_end().connection_lost);
}

#[test]
fn the_wake_word_greeting_sends_a_datagram_with_listen_detect_so_the_gateway_can_answer() {
    let mut h = opened_udp();
    h.text(10, &udp_hello(&hex::encode(KEY)));
    let mut s = spec(None, ListenMode::Auto, 0);
    s.detect = Some("你好小智".into());
    h.start(100, s);
    let texts = h.texts();
    assert_eq!(
        texts[texts.len() - 2..],
        [(100, "listen:detect".to_string()), (100, "listen:start".to_string())]
    );
    assert_eq!(h.audio_times().first(), Some(&100));
    let (head, _) = UdpCipher::new(&KEY).open(&h.uplink[0]).unwrap();
    assert_eq!(head.sequence, 1);
}

#[test]
fn over_udp_a_sentences_frames_may_precede_its_text_and_a_missing_tail_is_counted_lost() {
    let mut h = opened_udp();
    h.text(10, &udp_hello(&hex::encode(KEY)));
    h.start(100, spec(Some(clip("a", "一加一等于几", 3)), ListenMode::Auto, 0));
    h.run_to(400);
    h.text(400, r#"{"type":"tts","state":"start"}"#);
    h.text(400, r#"{"type":"tts","state":"sentence_start","text":"一","frames":2}"#);
    let gateway = UdpCipher::new(&KEY);
    let d = |seq| gateway.seal(&NONCE, 0, seq, &TTS_FRAME);
    // Sentence 2's first frame overtakes its text; 4 is lost in a gap, 6
    // (the last announced) never comes.
    h.binaries(450, &[d(1), d(2), d(3)]);
    h.text(460, r#"{"type":"tts","state":"sentence_start","text":"二","frames":4}"#);
    h.binaries(520, &[d(5)]);
    h.text(900, r#"{"type":"tts","state":"stop"}"#);
    h.run_to(3000);
    let rec = &h.only_end().record;
    assert_eq!(rec.outcome, TurnOutcome::Completed);
    assert_eq!(rec.frames_received, 4);
    let c = rec.datagrams.unwrap();
    assert_eq!((c.received, c.lost, c.reordered), (4, 2, 0));
}
