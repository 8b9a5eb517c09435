//! The MQTT link against a real broker (Debian's mosquitto, started here on
//! a free 127.0.0.1 port and killed at the end; skipped with a message when
//! it is not installed, failing when `XF_REQUIRE_TOOLS=1`), and its
//! connect failures.

use super::*;
use std::process::{Child, Command, Stdio};

/// A mosquitto on 127.0.0.1, anonymous, for one test.
pub(crate) struct Broker {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file());
    if found.is_none() {
        let required = std::env::var("XF_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "mosquitto is required (XF_REQUIRE_TOOLS=1) but not installed"
        );
        eprintln!("skipped: mosquitto is not installed (apt-get install mosquitto, or run .ci/run)");
    }
    found
}

impl Broker {
    /// Starts mosquitto, waiting (≤ 5 s) until it accepts connections.
    pub async fn start() -> Option<Broker> {
        let bin = mosquitto()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("xf-mosquitto-{}-{port}", std::process::id()));
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
        let broker = Broker {
            child,
            port,
            _dir: TempDir(dir),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(broker);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("mosquitto did not listen on 127.0.0.1:{port} within 5 s");
    }
}

pub(crate) fn target(port: u16, mac: &str, publish_topic: &str) -> MqttTarget {
    MqttTarget {
        host: "127.0.0.1".into(),
        port,
        client_id: format!("GID_test@@@{}", mac.replace(':', "_")),
        username: "u".into(),
        password: "p".into(),
        keepalive: Duration::from_secs(240),
        publish_topic: publish_topic.into(),
        p2p_topic: crate::ota::mqtt_id::p2p_topic(mac),
    }
}

const LIMIT: Duration = Duration::from_secs(5);

async fn next_message(link: &mut MqttLink) -> Bytes {
    match tokio::time::timeout(LIMIT, link.recv()).await {
        Ok(Inbound::Message(b)) => b,
        other => panic!("no message: {other:?}"),
    }
}

#[tokio::test]
async fn link_connects_publishes_and_receives_through_mosquitto() {
    let Some(broker) = Broker::start().await else { return };
    // The device publishes on its own p2p topic: what it sends comes back
    // through the broker on the subscription made at connect.
    let t = target(broker.port, "02:00:00:00:00:01", "devices/p2p/02_00_00_00_00_01");
    let (mut link, took) = connect(&t, LIMIT).await.unwrap();
    assert!(took < LIMIT);
    assert!(link.is_alive());
    // The subscription is in place before our first publish (same connection, in order).
    link.publish(br#"{"type":"hello","version":3}"#.to_vec()).await.unwrap();
    assert_eq!(&next_message(&mut link).await[..], br#"{"type":"hello","version":3}"#);
    // A second client (the "gateway") reaches the device on its p2p topic.
    let gw = target(broker.port, "02:00:00:00:00:99", "devices/p2p/02_00_00_00_00_01");
    let (gateway, _) = connect(&gw, LIMIT).await.unwrap();
    gateway.publish(br#"{"type":"goodbye"}"#.to_vec()).await.unwrap();
    assert_eq!(&next_message(&mut link).await[..], br#"{"type":"goodbye"}"#);
}

#[tokio::test]
async fn broker_going_away_is_a_lost_link_with_the_reason() {
    let Some(broker) = Broker::start().await else { return };
    let t = target(broker.port, "02:00:00:00:00:02", "device-server");
    let (mut link, _) = connect(&t, LIMIT).await.unwrap();
    drop(broker);
    match tokio::time::timeout(LIMIT, link.recv()).await {
        Ok(Inbound::Lost(why)) => assert!(!why.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(!link.is_alive());
}

#[tokio::test]
async fn connecting_where_nothing_listens_is_a_connect_failure_with_the_os_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let f = connect(&target(port, "02:00:00:00:00:03", "device-server"), LIMIT)
        .await
        .err()
        .unwrap();
    assert_eq!(f.kind, FailureKind::Connect);
    assert!(
        f.detail.starts_with(&format!("MQTT broker 127.0.0.1:{port}: ")) && f.detail.contains("refused"),
        "{}",
        f.detail
    );
}

#[tokio::test]
async fn a_refused_connack_is_a_connect_failure_naming_the_code() {
    // A peer that answers CONNECT with CONNACK "not authorized" (rumqttc's
    // own codec writes it, no hand-made bytes).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).await;
        let mut out = bytes::BytesMut::new();
        rumqttc::ConnAck::new(rumqttc::ConnectReturnCode::NotAuthorized, false)
            .write(&mut out)
            .unwrap();
        s.write_all(&out).await.unwrap();
        let _ = s.read(&mut buf).await;
    });
    let f = connect(&target(port, "02:00:00:00:00:04", "device-server"), LIMIT)
        .await
        .err()
        .unwrap();
    assert_eq!(f.kind, FailureKind::Connect);
    assert!(f.detail.contains("CONNACK NotAuthorized"), "{}", f.detail);
    peer.abort();
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// Prints what an idle MQTT link (the connection, its rumqttc event loop
/// and its task) costs in this process. A figure, not a check.
#[tokio::test(flavor = "current_thread")]
#[ignore = "a figure, not a check: ulimit -n 65536; XF_LINKS=2000 cargo test --lib idle_mqtt_link_memory -- --ignored --nocapture"]
async fn idle_mqtt_link_memory() {
    let Some(broker) = Broker::start().await else { return };
    let n: u32 = std::env::var("XF_LINKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let warm = connect(&target(broker.port, "02:ff:00:00:00:00", "device-server"), LIMIT)
        .await
        .unwrap();
    let before = rss_kib();
    let mut links = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mac = format!("02:00:00:00:{:02x}:{:02x}", i >> 8, i & 0xff);
        links.push(
            connect(&target(broker.port, &mac, "device-server"), LIMIT)
                .await
                .unwrap()
                .0,
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib();
    println!(
        "{n} idle MQTT links: RSS +{} KiB, {:.1} KiB per link",
        after - before,
        (after - before) as f64 / f64::from(n)
    );
    drop((links, warm));
}
