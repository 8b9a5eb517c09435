//! The mock's MQTT + UDP gateway over real loopback sockets on a paused
//! clock, with a tiny in-test device (rumqttc client, a UDP socket and
//! `protocol::udp` sealing) so these tests depend only on the mock: a
//! manual-mode turn gets `stt`, `tts start`, sealed Opus datagrams that
//! decrypt to valid packets and `tts stop`; the device's `goodbye` ends the
//! conversation; connection faults and bad hellos get what the real gateway
//! gives; `udp_loss` shows as sequence gaps and `mqtt_disconnect` drops the
//! connection mid-answer, each logged once; duplicated, reordered and
//! late datagrams are counted by the device's sequence window; the OTA answer names the
//! gateway and signs the password the gateway then checks.

use bytes::Bytes;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, Incoming, MqttOptions, NetworkOptions, QoS};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use xiaozhi_fleet::audio::ClipSet;
use xiaozhi_fleet::config::{FleetFile, Plan, plan::Overrides};
use xiaozhi_fleet::mock::{FaultKind, MockConfig, MockCounters, MockServer};
use xiaozhi_fleet::ota::mqtt_id::{GATEWAY_USERNAME, PUBLISH_TOPIC, client_id, p2p_topic};
use xiaozhi_fleet::protocol::packet_duration;
use xiaozhi_fleet::protocol::udp::{SequenceWindow, UdpCipher, UdpParams};

const MOCK: &str =
    "mqtt = true\nasr_delay = \"100ms\"\nllm_delay = \"100ms\"\ntts_delay = \"100ms\"\nsentences = 2\nseed = 3\n";
const MAC: &str = "02:aa:00:00:00:01";
/// Bound on every waiting loop: this many 60 ms ticks.
const TICKS: u32 = 2_000;

fn mock_config(extra: &str) -> MockConfig {
    let text = format!("[mock]\n{MOCK}{extra}\n");
    let raw = FleetFile::parse(&text, "t.toml").expect("parses");
    Plan::from_file(raw, "t.toml", &Overrides::default())
        .expect("valid")
        .mock
}

/// What the device's MQTT event loop reports.
#[derive(Debug)]
enum Heard {
    Connected,
    Refused(ConnectReturnCode),
    Json(Value),
    Ended,
}

/// The in-test device's MQTT side: the client and what its event loop heard.
struct Control {
    client: AsyncClient,
    heard: mpsc::Receiver<Heard>,
}

/// Connects as PY's OTA says (client id, username), subscribes to the p2p
/// topic, and drives the event loop on a task of its own.
async fn connect(mock: &MockServer) -> Control {
    let endpoint = mock.mqtt_endpoint().expect("gateway runs");
    connect_as(&endpoint, &client_id("bread", MAC), GATEWAY_USERNAME, "").await
}

/// Connects to `endpoint` (`host:port`) with these credentials.
async fn connect_as(endpoint: &str, id: &str, username: &str, password: &str) -> Control {
    let (host, port) = endpoint.rsplit_once(':').unwrap();
    let mut opts = MqttOptions::new(id, host, port.parse().unwrap());
    opts.set_keep_alive(Duration::from_secs(240));
    opts.set_credentials(username, password);
    let (client, mut events) = AsyncClient::new(opts, 16);
    // Nagle off, as devices do: on a paused clock a small publish held
    // back for a delayed ACK would arrive only after the test.
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    events.set_network_options(net);
    let (tx, heard) = mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let h = match events.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => Heard::Connected,
                Ok(Event::Incoming(Incoming::Publish(p))) => match serde_json::from_slice(&p.payload) {
                    Ok(v) => Heard::Json(v),
                    Err(_) => continue,
                },
                Ok(_) => continue,
                Err(ConnectionError::ConnectionRefused(code)) => Heard::Refused(code),
                Err(_) => Heard::Ended,
            };
            let end = matches!(h, Heard::Refused(_) | Heard::Ended);
            if tx.send(h).await.is_err() || end {
                break;
            }
        }
    });
    client.subscribe(p2p_topic(MAC), QoS::AtMostOnce).await.unwrap();
    Control { client, heard }
}

impl Control {
    async fn publish(&self, v: Value) {
        let text = v.to_string();
        self.client
            .publish(PUBLISH_TOPIC, QoS::AtMostOnce, false, text.into_bytes())
            .await
            .unwrap();
    }

    async fn next(&mut self) -> Heard {
        match tokio::time::timeout(Duration::from_secs(30), self.heard.recv()).await {
            Ok(Some(h)) => h,
            _ => Heard::Ended,
        }
    }

    /// The next JSON message, skipping the connection notice.
    async fn next_json(&mut self) -> Value {
        for _ in 0..TICKS {
            match self.next().await {
                Heard::Json(v) => return v,
                Heard::Connected => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
        panic!("no message")
    }

    /// Hello version 3 over UDP; the UDP parameters and session id.
    async fn hello(&mut self) -> (UdpParams, String) {
        self.publish(json!({"type": "hello", "version": 3, "transport": "udp",
            "features": {"mcp": false},
            "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}}))
            .await;
        let h = self.next_json().await;
        assert_eq!(
            (h["type"].as_str(), h["transport"].as_str()),
            (Some("hello"), Some("udp")),
            "{h}"
        );
        let udp = UdpParams::from_hello(h.get("udp")).expect("the firmware's checks pass");
        (udp, h["session_id"].as_str().unwrap().to_string())
    }
}

/// One manual-mode turn's result, as the device saw it.
struct Turn {
    labels: Vec<String>,
    audio: Vec<Bytes>,
    window: SequenceWindow,
    first_sequence: Option<u32>,
    /// The MQTT connection ended during the turn.
    dropped: bool,
}

/// `listen start` (manual), clip 0 sealed over UDP at 60 ms, `listen
/// stop`, then everything until `tts stop` (or the connection's end).
async fn turn(ctl: &mut Control, udp: &UdpParams, c: &MockCounters) -> Turn {
    let set = ClipSet::embedded().unwrap();
    let clip = &set.clips[0];
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect((udp.server.as_str(), udp.port)).await.unwrap();
    let cipher = UdpCipher::new(&udp.key);
    ctl.publish(json!({"session_id": "", "type": "listen", "state": "start", "mode": "manual"}))
        .await;
    let mut t = Turn {
        labels: Vec::new(),
        audio: Vec::new(),
        window: SequenceWindow::default(),
        first_sequence: None,
        dropped: false,
    };
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    for k in 0..TICKS {
        let at = start + Duration::from_millis(60) * k;
        loop {
            tokio::select! {
                h = ctl.heard.recv() => match h {
                    Some(Heard::Json(v)) => {
                        let label = match v["type"].as_str().unwrap_or("") {
                            "stt" => format!("stt:{}", v["text"].as_str().unwrap_or("")),
                            "tts" => format!("tts:{}", v["state"].as_str().unwrap_or("")),
                            other => other.to_string(),
                        };
                        let done = label == "tts:stop";
                        t.labels.push(label);
                        if done {
                            return t;
                        }
                    }
                    Some(Heard::Connected) => {}
                    _ => {
                        t.dropped = true;
                        return t;
                    }
                },
                r = sock.recv(&mut buf) => {
                    let n = r.unwrap();
                    let (header, payload) = cipher.open(&buf[..n]).expect("well-formed datagram");
                    assert_eq!(header.ssrc, udp.ssrc());
                    t.first_sequence.get_or_insert(header.sequence);
                    if t.window.arrive(header.sequence) == xiaozhi_fleet::protocol::udp::Arrival::Accept {
                        t.audio.push(Bytes::from(payload));
                    }
                }
                _ = tokio::time::sleep_until(at) => break,
            }
        }
        let k = k as usize;
        if k < clip.packets.len() {
            sock.send(&cipher.seal(&udp.nonce, 0, k as u32 + 1, &clip.packets[k]))
                .await
                .unwrap();
        } else if k == clip.packets.len() {
            ctl.publish(json!({"session_id": "", "type": "listen", "state": "stop"}))
                .await;
        }
    }
    panic!("no tts stop: {:?} {c:?}", t.labels)
}

async fn settle(c: &MockCounters) {
    for _ in 0..TICKS {
        if c.active_sessions.load(Ordering::Relaxed) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("conversation never ended");
}

#[tokio::test(start_paused = true)]
async fn manual_turn_over_mqtt_and_udp_gets_the_answer_as_sealed_opus() {
    let mock = MockServer::start("127.0.0.1:0", mock_config("")).await.unwrap();
    let mut ctl = connect(&mock).await;
    let (udp, session_id) = ctl.hello().await;
    let t = turn(&mut ctl, &udp, &mock.counters).await;
    let transcript = &ClipSet::embedded().unwrap().clips[0].transcript;
    let at = |l: &str| t.labels.iter().position(|x| x == l);
    let stt = at(&format!("stt:{transcript}")).unwrap_or_else(|| panic!("{:?}", t.labels));
    assert!(
        stt < at("tts:start").unwrap() && at("tts:start") < at("tts:stop"),
        "{:?}",
        t.labels
    );
    assert!(!t.audio.is_empty());
    for packet in &t.audio {
        assert_eq!(
            packet_duration(packet).unwrap(),
            Duration::from_millis(60),
            "valid Opus TOC"
        );
    }
    let c = &mock.counters;
    assert_eq!(t.first_sequence, Some(1), "downlink sequence starts at 1");
    assert_eq!(
        t.window.counts.lost + t.window.counts.reordered + t.window.counts.duplicated,
        0
    );
    assert_eq!(t.window.counts.received, MockCounters::get(&c.frames_out));
    assert_eq!(MockCounters::get(&c.datagrams_out), MockCounters::get(&c.frames_out));
    assert_eq!(MockCounters::get(&c.downlink_before_address), 0);
    assert_eq!(MockCounters::get(&c.conversations), 1);
    assert_eq!(MockCounters::get(&c.mqtt_connections), 1);
    ctl.publish(json!({"session_id": session_id, "type": "goodbye"})).await;
    settle(c).await;
    // A message for a conversation the gateway no longer has: `goodbye`.
    ctl.publish(json!({"session_id": session_id, "type": "listen", "state": "start", "mode": "manual"}))
        .await;
    let bye = ctl.next_json().await;
    assert_eq!(
        (bye["type"].as_str(), bye["session_id"].as_str()),
        (Some("goodbye"), Some(session_id.as_str()))
    );
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rejected_connect_and_bad_hellos_get_what_the_real_gateway_gives() {
    let faults = "[[mock.fault]]\nkind = \"reject_upgrade\"\nconnections = [0]\nstatus = 401\n\
                  [[mock.fault]]\nkind = \"bad_udp_key\"\nconnections = [1]\n";
    let mock = MockServer::start("127.0.0.1:0", mock_config(faults)).await.unwrap();
    let mut refused = connect(&mock).await;
    assert!(matches!(
        refused.next().await,
        Heard::Refused(ConnectReturnCode::BadUserNamePassword)
    ));
    let mut ctl = connect(&mock).await;
    ctl.publish(json!({"type": "hello", "version": 1, "transport": "websocket"}))
        .await;
    assert_eq!(ctl.next_json().await["type"], "error");
    ctl.publish(json!({"type": "hello", "version": 3, "transport": "udp"}))
        .await;
    let h = ctl.next_json().await;
    let err = UdpParams::from_hello(h.get("udp")).unwrap_err();
    assert!(err.contains("`udp.key` is 15 bytes"), "{err}");
    let log = &mock.counters.faults;
    assert_eq!(
        (log.count(FaultKind::RejectUpgrade), log.count(FaultKind::BadUdpKey)),
        (1, 1)
    );
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn udp_loss_shows_as_sequence_gaps_and_is_logged_once() {
    let fault = "[[mock.fault]]\nkind = \"udp_loss\"\nturns = [0]\nper_datagram = 0.3\n";
    let mock = MockServer::start("127.0.0.1:0", mock_config(fault)).await.unwrap();
    let mut ctl = connect(&mock).await;
    let (udp, _) = ctl.hello().await;
    let t = turn(&mut ctl, &udp, &mock.counters).await;
    assert!(
        t.labels.iter().any(|l| l == "tts:stop"),
        "the turn completes: {:?}",
        t.labels
    );
    let c = &mock.counters;
    let dropped = MockCounters::get(&c.udp_dropped);
    assert!(
        t.window.counts.lost > 0 && t.window.counts.lost <= dropped,
        "{:?} vs {dropped}",
        t.window.counts
    );
    assert_eq!(t.window.counts.received + dropped, MockCounters::get(&c.frames_out));
    let injected = c.faults.injected();
    assert_eq!(injected.len(), 1, "{injected:?}");
    assert_eq!(
        (injected[0].kind, injected[0].index, injected[0].device.as_str()),
        (FaultKind::UdpLoss, 0, MAC)
    );
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn mqtt_disconnect_drops_the_connection_mid_answer() {
    let fault = "[[mock.fault]]\nkind = \"mqtt_disconnect\"\nturns = [0]\nafter_frames = 3\n";
    let mock = MockServer::start("127.0.0.1:0", mock_config(fault)).await.unwrap();
    let mut ctl = connect(&mock).await;
    let (udp, _) = ctl.hello().await;
    let t = turn(&mut ctl, &udp, &mock.counters).await;
    assert!(t.dropped, "{:?}", t.labels);
    assert!(t.labels.iter().any(|l| l == "tts:start") && !t.labels.iter().any(|l| l == "tts:stop"));
    assert_eq!(mock.counters.faults.count(FaultKind::MqttDisconnect), 1);
    settle(&mock.counters).await;
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ota_answer_names_the_gateway_and_signs_the_password_it_checks() {
    let mock = MockServer::start(
        "127.0.0.1:0",
        mock_config("ota = \"mqtt\"\nmqtt_signature_key = \"k1\"\n"),
    )
    .await
    .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let answer: Value = reqwest::Client::new()
        .post(mock.ota_url())
        .header("Device-Id", MAC)
        .header("Client-Id", "3f6b2c1e-8d4a-4b7e-9c2f-1a2b3c4d5e6f")
        .body(json!({"board": {"type": "bread"}}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = &answer["mqtt"];
    let endpoint = m["endpoint"].as_str().unwrap();
    assert_eq!(Some(endpoint.to_string()), mock.mqtt_endpoint());
    let (id, user, password) = (
        m["client_id"].as_str().unwrap(),
        m["username"].as_str().unwrap(),
        m["password"].as_str().unwrap(),
    );
    let mut wrong = connect_as(endpoint, id, user, "not-the-signature").await;
    assert!(matches!(
        wrong.next().await,
        Heard::Refused(ConnectReturnCode::BadUserNamePassword)
    ));
    let mut ctl = connect_as(endpoint, id, user, password).await;
    let (udp, _) = ctl.hello().await;
    assert_eq!(udp.port, mock.gateway.unwrap().udp.port());
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn duplicated_reordered_and_late_datagrams_reach_the_sequence_window() {
    let cases = [
        ("udp_duplicate", FaultKind::UdpDuplicate),
        ("udp_reorder", FaultKind::UdpReorder),
        ("udp_late", FaultKind::UdpLate),
    ];
    for (name, kind) in cases {
        let fault = format!("[[mock.fault]]\nkind = \"{name}\"\np = 1.0\nper_datagram = 0.3\n");
        let mock = MockServer::start("127.0.0.1:0", mock_config(&fault)).await.unwrap();
        let mut ctl = connect(&mock).await;
        let (udp, _) = ctl.hello().await;
        let t = turn(&mut ctl, &udp, &mock.counters).await;
        let (c, w) = (&mock.counters, t.window.counts);
        assert!(t.labels.iter().any(|l| l == "tts:stop"), "{name}: {:?}", t.labels);
        let (seen, struck) = match kind {
            FaultKind::UdpDuplicate => (w.duplicated, MockCounters::get(&c.udp_duplicated)),
            FaultKind::UdpReorder => (w.reordered, MockCounters::get(&c.udp_reordered)),
            _ => (w.reordered, MockCounters::get(&c.udp_delayed)),
        };
        assert!(seen > 0 && struck > 0, "{name}: {w:?}, struck {struck}");
        assert_eq!(w.lost, 0, "{name}: late and reordered ones arrived: {w:?}");
        assert_eq!(c.faults.count(kind), 1, "{name}: logged once for the answer");
        mock.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn close_after_hello_over_mqtt_is_a_goodbye_right_after_the_hello() {
    let fault = "[[mock.fault]]\nkind = \"close_after_hello\"\nconnections = [0]\n";
    let mock = MockServer::start("127.0.0.1:0", mock_config(fault)).await.unwrap();
    let mut ctl = connect(&mock).await;
    let (_, session_id) = ctl.hello().await;
    let bye = ctl.next_json().await;
    assert_eq!(
        (bye["type"].as_str(), bye["session_id"].as_str()),
        (Some("goodbye"), Some(session_id.as_str()))
    );
    settle(&mock.counters).await;
    assert_eq!(mock.counters.faults.count(FaultKind::CloseAfterHello), 1);
    mock.stop().await;
}
