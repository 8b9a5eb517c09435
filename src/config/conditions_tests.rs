use crate::audio::playback::Overflow;
use crate::config::plan::Overrides;
use crate::config::{ConfigError, FleetFile, Plan};
use crate::network::profiles;
use std::time::Duration;

fn plan(text: &str) -> Result<Plan, ConfigError> {
    Plan::from_file(FleetFile::parse(text, "t.toml")?, "t.toml", &Overrides::default())
}

fn err(text: &str) -> String {
    plan(text).unwrap_err().to_string()
}

#[test]
fn without_network_keys_every_link_is_perfect_and_the_board_is_the_firmwares() {
    let p = plan("devices = 2\n").unwrap();
    assert!(p.groups.iter().all(|g| g.network.is_none()));
    assert_eq!(p.groups[0].playback, crate::device::profile::PROFILES[0].playback);
    assert_eq!(p.groups[0].playback.overflow, Overflow::Drop);
    assert_eq!(p.groups[0].device_profile, "esp32-s3-default");
}

#[test]
fn a_top_level_profile_applies_to_every_group_unless_a_group_names_its_own() {
    let text = "network = \"wifi-poor\"\ndevices = 3\n[[group]]\ncount = 1\n[[group]]\ncount = 1\nnetwork = \"4g\"\n[[group]]\ncount = 1\nnetwork = \"lan\"\n";
    let p = plan(text).unwrap();
    assert_eq!(p.groups[0].network, profiles::profile("wifi-poor"));
    assert_eq!(p.groups[1].network, profiles::profile("4g"));
    assert_eq!(p.groups[2].network, None);
}

#[test]
fn an_unknown_profile_names_file_line_key_and_the_choices() {
    assert_eq!(
        err("devices = 1\nnetwork = \"wifi-bad\"\n"),
        "t.toml:2: `network` must be lan, wifi-good, wifi-poor, 4g, edge-of-range or none; got `wifi-bad`"
    );
    assert_eq!(
        err("[[group]]\ncount = 1\nnetwork = \"3g\"\n"),
        "t.toml:3: `group[0].network` must be lan, wifi-good, wifi-poor, 4g, edge-of-range or none; got `3g`"
    );
    assert_eq!(
        err("[[group]]\ncount = 1\n[group.network]\nprofile = \"5g\"\n"),
        "t.toml:4: `group[0].network.profile` must be lan, wifi-good, wifi-poor, 4g, edge-of-range or none; got `5g`"
    );
}

#[test]
fn a_network_table_changes_its_profiles_numbers() {
    let text = "[network]\nprofile = \"wifi-good\"\nlatency = \"40ms\"\njitter = \"exp(10ms)\"\nloss = 0.01\ndown_rate = \"2mbit\"\nup_rate = 256\nburst = 3000\nstall = \"200ms\"\nstall_every = \"10s\"\nrto = \"300ms\"\n";
    let p = plan(text).unwrap();
    let n = p.groups[0].network.clone().unwrap();
    assert_eq!(n.name, "custom (from wifi-good)");
    assert_eq!(n.down.base, Duration::from_millis(40));
    assert_eq!(n.down.jitter, crate::dist::Dist::Exponential(Duration::from_millis(10)));
    assert_eq!(n.down.loss, 0.01);
    assert_eq!(n.down.rate, Some(250_000.0));
    assert_eq!(n.up.rate, Some(32_000.0));
    assert_eq!(n.up.burst, 3000);
    assert_eq!(n.up.stall, Some((Duration::from_secs(10), Duration::from_millis(200))));
    assert_eq!(n.down.rto, Duration::from_millis(300));
    // Unchanged numbers stay the profile's.
    let only_loss = plan("[network]\nprofile = \"4g\"\nloss = 0.1\n").unwrap().groups[0]
        .network
        .clone()
        .unwrap();
    assert_eq!(only_loss.down.base, profiles::profile("4g").unwrap().down.base);
    // A table that changes nothing of lan is still a perfect link.
    assert_eq!(plan("[network]\nloss = 0\n").unwrap().groups[0].network, None);
}

#[test]
fn bad_network_values_name_their_key() {
    assert_eq!(
        err("[network]\nloss = 1.5\n"),
        "t.toml:2: `network.loss` must be at least 0 and below 1; got 1.5"
    );
    assert_eq!(
        err("[network]\nstall = \"2s\"\nstall_every = \"1s\"\n"),
        "t.toml:3: `network.stall_every` must be longer than `stall` (2s); got 1s"
    );
    assert_eq!(
        err("[network]\nstall = \"2s\"\n"),
        "t.toml:2: `network.stall` needs `stall_every` (how often it comes)"
    );
    assert!(err("[network]\ndown_rate = \"fast\"\n").starts_with("t.toml:2: `network.down_rate` must be kbit/s"));
    let typo = err("[network]\nlatncy = \"1ms\"\n");
    assert!(typo.starts_with("t.toml:2:") && typo.contains("latncy"), "{typo}");
}

#[test]
fn a_group_device_sets_its_queue_and_overflow_over_the_top_level_device() {
    let text = "devices = 2\n[device]\nqueue = 20\n[[group]]\ncount = 1\n[[group]]\ncount = 1\n[group.device]\nqueue = 5\noverflow = \"wait\"\n";
    let p = plan(text).unwrap();
    assert_eq!(p.playback.queue_capacity, 20);
    assert_eq!(
        (p.groups[0].playback.queue_capacity, p.groups[0].playback.overflow),
        (20, Overflow::Drop)
    );
    assert_eq!(
        (p.groups[1].playback.queue_capacity, p.groups[1].playback.overflow),
        (5, Overflow::Wait)
    );
    assert_eq!(
        err("[[group]]\ncount = 1\n[group.device]\nqueue = 0\n"),
        "t.toml:4: `group[0].device.queue` must be at least 1"
    );
    assert_eq!(
        err("[device]\noverflow = \"block\"\n"),
        "t.toml:2: `device.overflow` must be drop or wait; got `block`"
    );
}

#[test]
fn the_diagnose_setters_change_every_group() {
    let mut p = plan("devices = 2\n[[group]]\ncount = 1\n[[group]]\ncount = 1\nnetwork = \"4g\"\n").unwrap();
    profiles::set_network(&mut p, "edge-of-range").unwrap();
    assert!(p.groups.iter().all(|g| g.network == profiles::profile("edge-of-range")));
    profiles::set_network(&mut p, "none").unwrap();
    assert!(p.groups.iter().all(|g| g.network.is_none()));
    let e = profiles::set_network(&mut p, "dialup").unwrap_err();
    assert!(e.contains("wifi-poor") && e.contains("dialup"), "{e}");
    profiles::set_device_queue(&mut p, 10);
    assert!(
        p.groups
            .iter()
            .all(|g| g.playback.queue_capacity == 10 && g.playback.overflow == Overflow::Drop)
    );
}
