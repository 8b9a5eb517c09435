//! What the operator sees: counts that add up on the console and in JSON,
//! connection failures printed with their reason (a broken hello, a refused
//! port, an unknown host), the series' last partial second, and wss://
//! against the mock with an operator's CA and without.

use crate::support::{plan, run_against_mock};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::config::plan::Overrides;
use xiaozhi_fleet::config::{FleetFile, Plan};
use xiaozhi_fleet::device::tls::TlsOptions;
use xiaozhi_fleet::fleet::{RunOutcome, load_clips, run_fleet};
use xiaozhi_fleet::metrics::Snapshot;
use xiaozhi_fleet::mock::{MockConfig, MockOptions, MockServer, tls};
use xiaozhi_fleet::report::{Report, RunContext, render_summary};

fn report(out: &RunOutcome, url: &str, devices: u32) -> Report {
    let ctx = RunContext {
        target_url: url,
        mock: false,
        devices,
        seed: 1,
        fleet: "test",
    };
    Report::build(&ctx, out)
}

/// Runs `plan` against `url` with a fresh collector.
async fn run_at(plan: &Plan, url: &str) -> RunOutcome {
    let clips = load_clips(plan).expect("clips");
    let (tx, _rx) = watch::channel(Snapshot::default());
    run_fleet(plan, url, &clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs")
}

#[tokio::test(start_paused = true)]
async fn barge_in_counts_add_up_on_the_console_and_in_json() {
    let text = "devices = 4\nturns = 5\nthink_time = \"0s\"\nseed = 31\n\n[[group]]\nbarge_in = 0.5\n";
    let (out, mock) = run_against_mock(&plan(text)).await;
    let r = report(&out, &mock.url(), 4);
    let t = &r.turns;
    assert!(t.interrupted > 0, "some answers were interrupted");
    assert_eq!(t.started, t.completed + t.failed + t.cancelled + t.interrupted);
    let line = format!(
        "turns: {} started = {} completed + {} failed (0.0%) + {} cancelled + {} interrupted (barge-in)",
        t.started, t.completed, t.failed, t.cancelled, t.interrupted
    );
    let console = render_summary(&r);
    assert!(console.contains(&line), "{console}");
    let json = serde_json::to_value(&r).unwrap();
    let j = &json["turns"];
    assert_eq!(
        j["started"].as_u64().unwrap(),
        ["completed", "failed", "cancelled", "interrupted"]
            .iter()
            .map(|k| j[k].as_u64().unwrap())
            .sum::<u64>()
    );
    // Interrupted turns keep what was measured before the abort.
    assert_eq!(r.latency_ms["first_audio"].count, t.completed + t.interrupted);
    assert!(console.contains("throughput: "), "{console}");
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_series_includes_the_last_partial_second() {
    let text = "devices = 3\nturns = 2\nthink_time = \"1s\"\nseed = 32\n";
    let (out, mock) = run_against_mock(&plan(text)).await;
    let m = &out.metrics;
    assert_eq!(m.series.iter().map(|p| p.turns).sum::<u64>(), m.completed);
    let last = m.series.last().expect("points");
    assert!(
        (last.t_s - out.duration.as_secs_f64()).abs() < 0.01,
        "{last:?} vs {:?}",
        out.duration
    );
    mock.stop().await;
}

/// A server that upgrades and answers the hello without `transport`.
async fn hello_without_transport() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/xiaozhi/v1/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                if let Some(Ok(Message::Text(_))) = ws.next().await {
                    let _ = ws.send(Message::text(r#"{"type":"hello","session_id":"x"}"#)).await;
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    (url, task)
}

#[tokio::test(start_paused = true)]
async fn a_hello_without_transport_shows_the_connection_failures_with_their_detail() {
    let (url, server) = hello_without_transport().await;
    let p = plan(&format!("url = \"{url}\"\ndevices = 2\nturns = 1\nseed = 33\n"));
    let out = run_at(&p, &url).await;
    let r = report(&out, &url, 2);
    assert_eq!(r.connections.failed.get("protocol"), Some(&2), "{:?}", r.connections);
    let console = render_summary(&r);
    assert!(console.contains("connection failed protocol: 2"), "{console}");
    assert!(console.contains("server hello has no transport"), "{console}");
    assert!(console.contains("failed protocol: 2"), "{console}");
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn a_refused_port_says_connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/xiaozhi/v1/", listener.local_addr().unwrap());
    drop(listener);
    let p = plan(&format!("url = \"{url}\"\ndevices = 1\nturns = 1\nseed = 34\n"));
    let out = run_at(&p, &url).await;
    let console = render_summary(&report(&out, &url, 1));
    assert!(console.contains("failed connect: 1"), "{console}");
    assert!(console.to_lowercase().contains("connection refused"), "{console}");
}

#[tokio::test]
async fn an_unknown_host_shows_the_dns_error() {
    let url = "ws://no-such-host.invalid:8000/xiaozhi/v1/";
    let p = plan(&format!(
        "url = \"{url}\"\ndevices = 1\nturns = 1\nseed = 35\nhello_timeout = \"3s\"\n"
    ));
    let out = tokio::time::timeout(Duration::from_secs(30), run_at(&p, url))
        .await
        .expect("bounded");
    let console = render_summary(&report(&out, url, 1));
    assert!(console.contains("DNS lookup of no-such-host.invalid"), "{console}");
}

/// A wss:// mock with a self-signed certificate for `localhost`, and the
/// certificate's PEM file.
async fn tls_mock(dir: &std::path::Path) -> (MockServer, std::path::PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    let server = tls::from_pem(
        cert.cert.pem().as_bytes(),
        "cert.pem",
        cert.signing_key.serialize_pem().as_bytes(),
        "key.pem",
    )
    .unwrap();
    let opts = MockOptions {
        tls: Some(server),
        ..MockOptions::default()
    };
    let mock = MockServer::start_with("127.0.0.1:0", MockConfig::default(), opts)
        .await
        .unwrap();
    (mock, pem)
}

fn wss_plan(url: &str, tls: TlsOptions) -> Plan {
    let text = format!("url = \"{url}\"\ndevices = 2\nturns = 1\nseed = 36\n");
    let ov = Overrides {
        tls,
        ..Overrides::default()
    };
    Plan::from_file(FleetFile::parse(&text, "t.toml").unwrap(), "t.toml", &ov).unwrap()
}

#[tokio::test(start_paused = true)]
async fn wss_with_a_self_signed_certificate_passes_with_ca_cert_and_fails_clearly_without() {
    let dir = std::env::temp_dir().join(format!("xf-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mock, pem) = tls_mock(&dir).await;
    let url = format!("wss://localhost:{}/xiaozhi/v1/", mock.addr.port());
    let trusted = TlsOptions {
        ca_cert: Some(pem),
        insecure: false,
    };
    let out = run_at(&wss_plan(&url, trusted), &url).await;
    assert_eq!((out.metrics.completed, out.metrics.failed), (2, 0));
    let out = run_at(&wss_plan(&url, TlsOptions::default()), &url).await;
    assert_eq!(out.metrics.completed, 0);
    let console = render_summary(&report(&out, &url, 2));
    assert!(console.contains("TLS: invalid peer certificate"), "{console}");
    let insecure = TlsOptions {
        ca_cert: None,
        insecure: true,
    };
    let out = run_at(&wss_plan(&url, insecure), &url).await;
    assert_eq!((out.metrics.completed, out.metrics.failed), (2, 0));
    mock.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_token_shows_what_the_server_said() {
    let text = "devices = 1\nturns = 1\nseed = 37\ntoken = \"wrong\"\n\n[mock]\ntoken = \"right\"\n";
    let (out, mock) = run_against_mock(&plan(text)).await;
    let console = render_summary(&report(&out, &mock.url(), 1));
    assert!(console.contains("the server said \"认证失败\""), "{console}");
    mock.stop().await;
}
