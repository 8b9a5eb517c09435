//! Activation and binding end to end on a paused clock against the mock
//! with `activation = true`: unbound devices wait (counted, with their
//! codes, in the report and on the console), `provision` binds the fleet's
//! identities by MAC or by code, idempotently, after which the same fleet
//! runs with no failure; a device bound while it polls goes on by itself.
//! The token never shows in what provisioning prints or returns.

use crate::report::schema_errors;
use crate::support::plan;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::app::provision::render;
use xiaozhi_fleet::config::Plan;
use xiaozhi_fleet::fleet::{RunOutcome, load_clips, run_fleet};
use xiaozhi_fleet::metrics::{FailureKind, Snapshot};
use xiaozhi_fleet::mock::{MockConfig, MockServer};
use xiaozhi_fleet::provision::{ProvisionError, ProvisionOptions, Summary, Token, provision};
use xiaozhi_fleet::report::{Report, RunContext, render_summary};

const MANAGER_TOKEN: &str = "mgr-s3cret-7f3a";
const MOCK: &str = "activation = true\nmanager_token = \"mgr-s3cret-7f3a\"";

/// `devices` devices × two turns, seed 5, through the OTA at `ota_url`.
fn fleet(devices: u32, ota_url: &str) -> Plan {
    plan(&format!(
        "devices = {devices}\nturns = 2\nthink_time = \"0s\"\nseed = 5\nota = \"{ota_url}\"\n\n\
         [mock]\nasr_delay = \"100ms\"\nllm_delay = \"100ms\"\ntts_delay = \"100ms\"\nsentences = 1\n\
         silence_window = \"300ms\"\n{MOCK}\n"
    ))
}

async fn mock() -> MockServer {
    let cfg: MockConfig = fleet(1, "http://127.0.0.1:1/xiaozhi/ota/").mock;
    MockServer::start("127.0.0.1:0", cfg).await.expect("mock binds")
}

async fn run(p: &Plan) -> RunOutcome {
    let clips = load_clips(p).expect("clips load");
    let (tx, _rx) = watch::channel(Snapshot::default());
    let url = p.ota.clone().expect("an OTA URL");
    run_fleet(p, &url, &clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs")
}

fn report(out: &RunOutcome, devices: u32) -> Report {
    let ctx = RunContext {
        target_url: "http://127.0.0.1/xiaozhi/ota/",
        mock: true,
        devices,
        seed: 5,
        fleet: "test",
    };
    Report::build(&ctx, out)
}

fn options(mock: &MockServer, devices: u32, by_code: bool, token: &str) -> ProvisionOptions {
    ProvisionOptions {
        manager_api: mock.manager_api_url(),
        token: Token::new(token),
        agent: "agent-1".into(),
        ota: Some(mock.ota_url()),
        by_code,
        seed: 5,
        devices,
        concurrency: 3,
        timeout: Duration::from_secs(5),
    }
}

fn summary(devices: u32, added: u32, already_bound: u32, by_code: bool) -> Summary {
    Summary {
        devices,
        added,
        already_bound,
        failed: Vec::new(),
        by_code,
    }
}

/// Every turn completed, no connect failed, nobody waits.
fn all_served(out: &RunOutcome, devices: u32) {
    let m = &out.metrics;
    assert!(m.failures.is_empty(), "{:?} {:?}", m.failures, m.failure_details);
    assert!(m.connect_failures.is_empty(), "{:?}", m.connect_failure_details);
    assert_eq!(m.completed, 2 * devices as u64);
    let json = serde_json::to_value(report(out, devices)).unwrap();
    assert_eq!(json["activation"], serde_json::json!({"waiting": 0, "codes": []}));
}

#[tokio::test(start_paused = true)]
async fn unbound_devices_wait_and_the_report_lists_their_codes() {
    let mock = mock().await;
    let out = run(&fleet(3, &mock.ota_url())).await;
    let m = &out.metrics;
    assert_eq!(
        m.connect_failures.get(&FailureKind::Ota),
        Some(&3),
        "{:?}",
        m.connect_failures
    );
    assert_eq!(m.failures.get(&FailureKind::Ota), Some(&6), "{:?}", m.failures);
    assert_eq!((m.failures.len(), m.connections), (1, 0));
    let codes = m.activation.codes();
    assert_eq!(codes.len(), 3);
    for c in &codes {
        assert!(c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()), "{c}");
    }
    let details = &m.connect_failure_details[&FailureKind::Ota];
    let expected: Vec<String> = codes
        .iter()
        .map(|c| format!("waiting for activation: code {c} (still pending after 10 tries)"))
        .collect();
    let mut seen = details.clone();
    seen.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(seen, want);
    let r = report(&out, 3);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["activation"]["waiting"], 3);
    assert_eq!(json["activation"]["codes"], serde_json::json!(codes));
    assert_eq!(schema_errors(&json), Vec::<String>::new());
    let text = render_summary(&r);
    let line = format!("3 devices wait for activation: codes {}", codes.join(", "));
    assert!(text.contains(&line), "{text}");
}

#[tokio::test(start_paused = true)]
async fn provision_by_mac_then_the_fleet_runs_and_provisioning_again_changes_nothing() {
    let mock = mock().await;
    let first = provision(&options(&mock, 4, false, MANAGER_TOKEN), |_, _| {})
        .await
        .unwrap();
    assert_eq!(first, summary(4, 4, 0, false));
    assert_eq!(
        first.line(),
        "provisioned 4 devices: 4 added, 0 already bound, 0 failed"
    );
    all_served(&run(&fleet(4, &mock.ota_url())).await, 4);
    let again = provision(&options(&mock, 4, false, MANAGER_TOKEN), |_, _| {})
        .await
        .unwrap();
    assert_eq!(again, summary(4, 0, 4, false));
}

#[tokio::test(start_paused = true)]
async fn provision_by_code_binds_the_codes_the_ota_answers_give() {
    let mock = mock().await;
    let mut progress = Vec::new();
    let opts = options(&mock, 5, true, MANAGER_TOKEN);
    let first = provision(&opts, |done, total| progress.push((done, total)))
        .await
        .unwrap();
    assert_eq!(first, summary(5, 5, 0, true));
    assert_eq!(progress, (1..=5).map(|d| (d, 5)).collect::<Vec<_>>());
    all_served(&run(&fleet(5, &mock.ota_url())).await, 5);
    let again = provision(&opts, |_, _| {}).await.unwrap();
    assert_eq!(again, summary(5, 0, 5, true));
    // A fleet of more devices: only the new ones are bound.
    let more = provision(&options(&mock, 7, true, MANAGER_TOKEN), |_, _| {})
        .await
        .unwrap();
    assert_eq!(more, summary(7, 2, 5, true));
}

#[tokio::test(start_paused = true)]
async fn a_device_bound_while_it_polls_goes_on_to_talk() {
    let mock = mock().await;
    let opts = options(&mock, 2, false, MANAGER_TOKEN);
    // Bound 4 s in: the devices poll at 0 s and 3 s (202), then 6 s (200).
    let binder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        provision(&opts, |_, _| {}).await
    });
    let started = tokio::time::Instant::now();
    let out = run(&fleet(2, &mock.ota_url())).await;
    assert_eq!(binder.await.unwrap().unwrap(), summary(2, 2, 0, false));
    all_served(&out, 2);
    assert!(started.elapsed() >= Duration::from_secs(6), "{:?}", started.elapsed());
    assert_eq!(out.metrics.latency["ota"].count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_stops_provisioning_and_is_never_shown() {
    let mock = mock().await;
    let opts = options(&mock, 3, false, "wrong-t0ken-99");
    assert!(!format!("{opts:?}").contains("wrong-t0ken-99"), "{opts:?}");
    let err = provision(&opts, |_, _| {}).await.unwrap_err();
    assert!(
        matches!(&err, ProvisionError::Unauthorized(m) if m == "invalid token"),
        "{err:?}"
    );
    let said = format!("{err} {err:?}");
    assert_eq!(
        said,
        "the admin API refused the token: invalid token Unauthorized(\"invalid token\")"
    );
    // Nothing was bound: the devices still wait.
    let out = provision(&options(&mock, 3, false, MANAGER_TOKEN), |_, _| {})
        .await
        .unwrap();
    assert_eq!(out, summary(3, 3, 0, false));
    assert!(!render(&out).contains(MANAGER_TOKEN));
}

#[tokio::test(start_paused = true)]
async fn by_code_failures_are_listed_with_their_reason() {
    let mock = mock().await;
    let mut opts = options(&mock, 2, true, MANAGER_TOKEN);
    opts.ota = Some(format!("http://{}/nowhere/", mock.ota_addr));
    let out = provision(&opts, |_, _| {}).await.unwrap();
    assert_eq!((out.added, out.already_bound, out.failed.len()), (0, 0, 2));
    for (device, why) in &out.failed {
        assert_eq!(why, "OTA answered HTTP 404", "{device}");
    }
    let text = render(&out);
    assert!(
        text.starts_with("provisioned 2 devices: 0 bound by code, 0 already bound, 2 failed\n  failed "),
        "{text}"
    );
    opts.ota = None;
    assert!(matches!(provision(&opts, |_, _| {}).await, Err(ProvisionError::NoOta)));
}

/// `xiaozhi-fleet provision ...` with the token from `--token` or the environment.
async fn provision_command(mock: &MockServer, token: &str, in_env: bool) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_xiaozhi-fleet"));
    let api = mock.manager_api_url();
    c.args([
        "provision",
        "--manager-api",
        &api,
        "--agent",
        "a1",
        "--devices",
        "3",
        "--seed",
        "5",
    ]);
    if in_env {
        c.env("XF_MANAGER_TOKEN", token);
    } else {
        c.env_remove("XF_MANAGER_TOKEN").args(["--token", token]);
    }
    tokio::task::spawn_blocking(move || c.output().expect("the binary runs"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provision_command_never_prints_the_token() {
    let mock = mock().await;
    let text = |o: &std::process::Output| {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!all.contains(MANAGER_TOKEN) && !all.contains("wrong-t0ken"), "{all}");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let first = provision_command(&mock, MANAGER_TOKEN, true).await;
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(
        text(&first),
        "provisioned 3 devices: 3 added, 0 already bound, 0 failed\n"
    );
    let again = provision_command(&mock, MANAGER_TOKEN, false).await;
    assert_eq!(
        text(&again),
        "provisioned 3 devices: 0 added, 3 already bound, 0 failed\n"
    );
    let refused = provision_command(&mock, "wrong-t0ken", false).await;
    assert_eq!(refused.status.code(), Some(2));
    text(&refused);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("error: the admin API refused the token: invalid token"),
        "{err}"
    );
}
