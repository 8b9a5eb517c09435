//! The device's MQTT + UDP transport end to end through a real broker
//! (Debian's mosquitto on a free 127.0.0.1 port, killed at the end;
//! skipped when it is not installed, failing with `XF_REQUIRE_TOOLS=1`):
//! an in-test OTA endpoint hands out MQTT credentials, and an in-test
//! gateway on the broker answers the hello with a UDP channel, hears the
//! uplink datagrams, and answers each turn with a scripted downlink that
//! loses nothing but reorders one datagram and duplicates another.
//! Real time (an external broker cannot follow a paused clock); every
//! wait is bounded.

use super::support::plan;
use super::tools::tool;
use axum::http::HeaderMap;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::fleet::{load_clips, run_fleet};
use xiaozhi_fleet::metrics::Snapshot;
use xiaozhi_fleet::protocol::udp::{UdpCipher, UdpParams};
use xiaozhi_fleet::report::{Report, RunContext};

/// A 60 ms Opus packet (hybrid SWB, 3 × 20 ms).
const TTS_FRAME: [u8; 3] = [0x6b, 0x03, 0xaa];
/// The downlink of each answer, by sequence number: 4 arrives after 5
/// (reordered: dropped), 5 twice (duplicated: dropped).
const DOWNLINK: [u32; 7] = [1, 2, 3, 5, 5, 4, 6];
const KEY: [u8; 16] = [0x5a; 16];

struct Broker(Child, u16, std::path::PathBuf);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.2);
    }
}

async fn start_broker() -> Option<Broker> {
    // Debian installs it in /usr/sbin, which a user's PATH may lack.
    let sbin = std::path::PathBuf::from("/usr/sbin/mosquitto");
    let bin = if sbin.is_file() { sbin } else { tool("mosquitto")? };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("xf-it-mosquitto-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\n")).unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = Broker(child, port, dir);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(broker);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mosquitto did not listen on 127.0.0.1:{port} within 5 s");
}

/// An OTA endpoint answering `mqtt` with a per-device publish topic (a
/// generic broker does not say who published; the topic does).
async fn start_ota(broker_port: u16) -> String {
    let answer = move |headers: HeaderMap| async move {
        let mac = headers
            .get("device-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .replace(':', "_");
        axum::Json(json!({
            "server_time": {"timestamp": 0, "timezone_offset": 480},
            "firmware": {"version": "2.0.4", "url": ""},
            "mqtt": {
                "endpoint": format!("127.0.0.1:{broker_port}"),
                "client_id": format!("GID_test@@@{mac}@@@{mac}"),
                "username": "u", "password": "p",
                "publish_topic": format!("xf/up/{mac}"),
            }
        }))
    };
    let app = axum::Router::new().route("/xiaozhi/ota/", axum::routing::post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/xiaozhi/ota/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// What the gateway saw.
#[derive(Default, Debug)]
struct Seen {
    hellos: u32,
    /// Uplink datagrams by device, each sequence checked to be 1, 2, 3, … per hello.
    uplink: HashMap<String, u32>,
    goodbyes: Vec<(String, String)>,
}

struct Device {
    session_id: String,
    nonce: [u8; 16],
    addr: Option<std::net::SocketAddr>,
    next_seq: u32,
    /// Downlink sequence numbers go on across the answers of a session.
    sent_base: u32,
}

/// A gateway on the broker: hello → UDP channel; `listen stop` → stt,
/// tts start, the scripted downlink, tts stop.
async fn start_gateway(broker_port: u16, seen: Arc<Mutex<Seen>>) {
    let mut o = MqttOptions::new("xf-test-gateway", "127.0.0.1", broker_port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(o, 1024);
    client.subscribe("xf/up/+", QoS::AtMostOnce).await.unwrap();
    // Roomy: the event loop must never wait on the gateway loop, which
    // waits on the event loop to publish.
    let (tx, mut rx) = mpsc::channel::<(String, Value)>(100_000);
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        while let Ok(ev) = events.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    ready_tx.take().map(|r| r.send(()));
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let mac = p.topic.trim_start_matches("xf/up/").to_string();
                    if let Ok(v) = serde_json::from_slice(&p.payload) {
                        let _ = tx.send((mac, v)).await;
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), ready)
        .await
        .unwrap()
        .unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let cipher = UdpCipher::new(&KEY);
    tokio::spawn(async move {
        let mut devices: HashMap<String, Device> = HashMap::new();
        let mut by_ssrc: HashMap<u32, String> = HashMap::new();
        let mut buf = [0u8; 2048];
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some((mac, v)) = m else { return };
                    let ssrc = by_ssrc.len() as u32 + 1;
                    on_message(&client, &udp, &cipher, udp_port, &mut devices, &mut by_ssrc, ssrc, &seen, &mac, &v).await;
                }
                r = udp.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { return };
                    let Ok((h, _)) = cipher.open(&buf[..n]) else { continue };
                    let Some(mac) = by_ssrc.get(&h.ssrc) else { continue };
                    let d = devices.get_mut(mac).unwrap();
                    d.addr = Some(from);
                    assert_eq!(h.sequence, d.next_seq, "uplink sequence of {mac}");
                    d.next_seq += 1;
                    *seen.lock().unwrap().uplink.entry(mac.clone()).or_default() += 1;
                }
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
async fn on_message(
    client: &AsyncClient,
    udp: &UdpSocket,
    cipher: &UdpCipher,
    udp_port: u16,
    devices: &mut HashMap<String, Device>,
    by_ssrc: &mut HashMap<u32, String>,
    ssrc: u32,
    seen: &Mutex<Seen>,
    mac: &str,
    v: &Value,
) {
    let to = format!("devices/p2p/{mac}");
    let say = |m: Value| client.publish(to.clone(), QoS::AtMostOnce, false, m.to_string());
    match (v["type"].as_str(), v["state"].as_str()) {
        (Some("hello"), _) => {
            assert_eq!((v["version"].as_u64(), v["transport"].as_str()), (Some(3), Some("udp")));
            let mut nonce = [0u8; 16];
            nonce[0] = 1;
            nonce[4..8].copy_from_slice(&ssrc.to_be_bytes());
            let session_id = format!("s-{mac}-{ssrc}");
            by_ssrc.insert(ssrc, mac.to_string());
            devices.insert(
                mac.to_string(),
                Device {
                    session_id: session_id.clone(),
                    nonce,
                    addr: None,
                    next_seq: 1,
                    sent_base: 0,
                },
            );
            seen.lock().unwrap().hellos += 1;
            let params = UdpParams {
                server: "127.0.0.1".into(),
                port: udp_port,
                key: KEY,
                nonce,
            };
            say(
                json!({"type": "hello", "version": 3, "session_id": session_id, "transport": "udp",
                "udp": params.to_hello(),
                "audio_params": {"format": "opus", "sample_rate": 24000, "channels": 1, "frame_duration": 60}}),
            )
            .await
            .unwrap();
        }
        (Some("listen"), Some("stop")) => {
            let d = devices.get_mut(mac).unwrap();
            let base = d.sent_base;
            d.sent_base += 6;
            let sid = d.session_id.clone();
            let addr = d.addr.expect("the device sent UDP before listen stop");
            say(json!({"type": "stt", "text": "几点了", "session_id": sid}))
                .await
                .unwrap();
            say(json!({"type": "tts", "state": "start", "session_id": sid}))
                .await
                .unwrap();
            // Let `tts start` through the broker before the audio, which takes the direct path.
            tokio::time::sleep(Duration::from_millis(200)).await;
            for seq in DOWNLINK {
                let datagram = cipher.seal(&d.nonce, 0, base + seq, &TTS_FRAME);
                udp.send_to(&datagram, addr).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            say(json!({"type": "tts", "state": "stop", "session_id": sid}))
                .await
                .unwrap();
        }
        (Some("goodbye"), _) => {
            let sid = v["session_id"].as_str().unwrap_or("").to_string();
            seen.lock().unwrap().goodbyes.push((mac.to_string(), sid));
            devices.remove(mac);
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_talk_over_mqtt_and_udp_through_mosquitto_and_count_the_downlink() {
    let Some(broker) = start_broker().await else { return };
    let seen = Arc::new(Mutex::new(Seen::default()));
    start_gateway(broker.1, seen.clone()).await;
    let ota = start_ota(broker.1).await;
    let p = plan(&format!(
        "devices = 2\nturns = 2\nthink_time = \"0s\"\nseed = 3\nota = \"{ota}\"\nclips = [\"ji-dian\"]\n\n\
         [[group]]\nmode = \"manual\"\ntransport = \"mqtt\"\n"
    ));
    let clips = load_clips(&p).unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    let run = run_fleet(&p, &ota, &clips, CancellationToken::new(), tx);
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap();
    let m = &out.metrics;
    assert!(m.failures.is_empty(), "{:?} {:?}", m.failures, m.failure_details);
    assert!(m.connect_failures.is_empty(), "{:?}", m.connect_failure_details);
    assert_eq!(m.completed, 4);
    assert_eq!(m.latency["ota"].count(), 2);
    // One MQTT connection per device; one hello per conversation.
    assert_eq!(m.latency["connect"].count(), 2);
    for r in &m.turn_records {
        assert_eq!(r.frames_received, 5, "{r:?}");
        let d = r.datagrams.expect("a UDP turn counts its datagrams");
        assert_eq!(
            (d.received, d.lost, d.reordered, d.duplicated, d.malformed),
            (5, 0, 1, 1, 0)
        );
        assert!(r.first_audio.is_some());
    }
    let ctx = RunContext {
        target_url: &ota,
        mock: false,
        devices: 2,
        seed: 3,
        fleet: "test",
    };
    let report = Report::build(&ctx, &out);
    let text = xiaozhi_fleet::report::render_summary(&report);
    assert!(
        text.contains("UDP downlink datagrams: 20 received, 0 lost, 4 reordered, 4 duplicated, 0 malformed"),
        "{text}"
    );
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(
        json["turns"]["datagrams"],
        json!({"received": 20, "lost": 0, "reordered": 4, "duplicated": 4, "malformed": 0})
    );
    // Goodbye (device-initiated, with the session id) once each device hung up.
    for _ in 0..100 {
        if seen.lock().unwrap().goodbyes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.hellos, 2, "{seen:?}");
    assert_eq!(seen.goodbyes.len(), 2, "{seen:?}");
    for (mac, sid) in &seen.goodbyes {
        assert!(sid.starts_with(&format!("s-{mac}-")), "{mac} {sid}");
    }
    assert!(seen.uplink.values().all(|&n| n > 10), "{:?}", seen.uplink);
    drop(broker);
}

/// Serves a broker, the OTA endpoint and the gateway for a fleet run in
/// another process (the MQTT memory figures of BENCHMARKS.md, until the
/// mock has a gateway): writes the OTA URL to `$XF_OTA_FILE` and serves
/// for `$XF_SERVE_S` seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a stand-in gateway for measuring by hand, not a check: XF_OTA_FILE=/tmp/ota.url cargo test --test it serve_mqtt_gateway_for_bench -- --ignored"]
async fn serve_mqtt_gateway_for_bench() {
    let Some(broker) = start_broker().await else { return };
    let seen = Arc::new(Mutex::new(Seen::default()));
    start_gateway(broker.1, seen.clone()).await;
    let ota = start_ota(broker.1).await;
    let file = std::env::var("XF_OTA_FILE").expect("XF_OTA_FILE");
    std::fs::write(&file, &ota).unwrap();
    let secs: u64 = std::env::var("XF_SERVE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    println!("gateway saw {} hellos", seen.lock().unwrap().hellos);
}
