//! MQTT + UDP devices on `wifi-poor`, against the mock's gateway on a
//! paused clock: the injected link loses datagrams (the devices count
//! them lost), delays the MQTT text, and every turn still completes and
//! plays.

use crate::mqtt_mock::{DEVICES, TURNS};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::fleet::{load_clips, run_fleet};
use xiaozhi_fleet::metrics::{Snapshot, TurnOutcome};
use xiaozhi_fleet::mock::MockServer;

#[tokio::test(start_paused = true)]
async fn mqtt_devices_on_wifi_poor_count_lost_datagrams_and_keep_playing() {
    let fleet = |ota: &str| {
        let mut p = crate::mqtt_mock::fleet(ota, "mqtt", "");
        xiaozhi_fleet::network::profiles::set_network(&mut p, "wifi-poor").unwrap();
        p
    };
    let settings = fleet("http://127.0.0.1:1/xiaozhi/ota/").mock;
    let mock = MockServer::start("127.0.0.1:0", settings).await.unwrap();
    let p = fleet(&mock.ota_url());
    let clips = load_clips(&p).expect("clips load");
    let (tx, _rx) = watch::channel(Snapshot::default());
    let out = run_fleet(&p, &mock.ota_url(), &clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs");
    let m = &out.metrics;
    assert!(m.failures.is_empty(), "{:?} {:?}", m.failures, m.failure_details);
    assert_eq!(m.completed, DEVICES * TURNS);
    let d = m.datagrams.expect("turns over UDP count their datagrams");
    eprintln!("wifi-poor over UDP: {d:?}");
    assert!(d.lost > 0, "{d:?}");
    // One FIFO hop: lost datagrams, none overtaken (the firmware would drop those).
    assert_eq!(d.reordered, 0);
    // Lost and not late: about the profile's 2% of what was sent.
    let share = d.lost as f64 / (d.received + d.lost) as f64;
    assert!(share > 0.005 && share < 0.05, "lost share {share}");
    for r in &m.turn_records {
        assert_eq!(r.outcome, TurnOutcome::Completed);
        let pb = r.playback.as_ref().expect("every turn played");
        assert!(pb.frames > 0);
        assert!(r.first_audio.is_some_and(|f| f < Duration::from_secs(10)));
    }
    mock.stop().await;
}
