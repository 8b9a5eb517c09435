//! Named network profiles (`lan`, `wifi-good`, `wifi-poor`, `4g`,
//! `edge-of-range`): each a pair of [`Conditions`] (down: server → device,
//! up: device → server) whose every number names where it comes from, and
//! the plan-wide setters the `diagnose` command uses. `docs/network-profiles.md`
//! repeats these numbers and sources for operators.
//!
//! Conventions: `base` and `jitter` are one-way (a round trip is twice
//! them); `loss` is per message after the link layer's own retries; rates
//! are bytes per second; `rto` is the first TCP retransmission timeout.
//! Where a source gives a range, the profile takes a value inside it and
//! says so; where no source gives the value, the comment says it is ours.

use super::{Conditions, LinkConditions};
use crate::config::Plan;
use crate::dist::Dist;
use std::time::Duration;

/// Every profile name, in order of worsening conditions.
pub const PROFILE_NAMES: &[&str] = &["lan", "wifi-good", "wifi-poor", "4g", "edge-of-range"];

/// One TCP initial window, 10 segments of 1460 bytes (RFC 6928): what a
/// sender puts on the link at once before the cap's pace applies.
const INITIAL_WINDOW: u32 = 14_600;

/// Linux's minimum retransmission timeout (`TCP_RTO_MIN`, 200 ms,
/// include/net/tcp.h): the server's stack retransmits the downlink.
const LINUX_RTO_MIN: Duration = Duration::from_millis(200);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Bytes per second of `kbit` kilobits per second.
fn kbit(kbit: f64) -> Option<f64> {
    Some(kbit * 1000.0 / 8.0)
}

/// Home or office Wi-Fi near the access point, little contention.
fn wifi_good() -> LinkConditions {
    let down = Conditions {
        // Typical value: a few ms per Wi-Fi hop when uncongested (Sui et
        // al., "Characterizing and Improving WiFi Latency in Large-Scale
        // Operational Networks", MobiSys 2016: most hop latencies < 10 ms).
        base: ms(2),
        // Ours, inside the same study's bulk: mean 3 ms of contention.
        jitter: Dist::Exponential(ms(3)),
        // Typical value: residual loss after 802.11 MAC retries; ITU-T
        // Y.1541 class 0/1 networks allow 1e-3, which good Wi-Fi meets.
        loss: 0.001,
        // ESP32 station TCP throughput is ~20–30 Mbit/s in Espressif's lab
        // iperf runs (ESP-IDF guide, "Wi-Fi Driver: throughput"); we take 20.
        rate: kbit(20_000.0),
        burst: INITIAL_WINDOW,
        stall: None,
        rto: LINUX_RTO_MIN,
    };
    let up = Conditions {
        // Ours: half the downlink (uplink airtime is contended the same way).
        rate: kbit(10_000.0),
        ..down.clone()
    };
    LinkConditions {
        name: "wifi-good".into(),
        down,
        up,
    }
}

/// A crowded 2.4 GHz network (a classroom, an office floor, a weak router).
fn wifi_poor() -> LinkConditions {
    let down = Conditions {
        // Ours: the uncontended part of a Wi-Fi hop, as in wifi-good.
        base: ms(5),
        // Heavy-tailed contention delay: lognormal, median 20 ms, σ 1
        // (mean 33 ms, 1 in 20 above 100 ms). Sui et al. (MobiSys 2016)
        // report a long tail of Wi-Fi hop latency in busy networks, with a
        // sizeable share of packets above 20 ms and some above 100 ms.
        jitter: Dist::LogNormal {
            median: ms(20),
            sigma: 1.0,
        },
        // Typical value: 1–5% loss after MAC retries is commonly measured
        // on congested 2.4 GHz networks; ITU-T Y.1541's class 0/1 objective
        // (1e-3) is missed by an order of magnitude. We take 2%.
        loss: 0.02,
        // Ours: a device's share of a crowded 2.4 GHz cell (802.11g/n at a
        // low MCS shared by ~20 stations): 2 Mbit/s down, 1 Mbit/s up.
        rate: kbit(2_000.0),
        burst: INITIAL_WINDOW,
        // A re-association (roam or rescan) freezes the link: Mishra, Shin
        // and Arbaugh ("An Empirical Analysis of the IEEE 802.11 MAC Layer
        // Handoff Process", SIGCOMM CCR 2003) measured 53–420 ms; we take
        // 300 ms, every 30 s (ours: how often is the least sourced number).
        stall: Some((Duration::from_secs(30), ms(300))),
        // RFC 6298: RTO = SRTT + 4·RTTVAR; with this profile's round trip
        // (~75 ms mean, wide spread) about 250 ms, above Linux's 200 ms floor.
        rto: ms(250),
    };
    let up = Conditions {
        rate: kbit(1_000.0),
        ..down.clone()
    };
    LinkConditions {
        name: "wifi-poor".into(),
        down,
        up,
    }
}

/// An LTE Cat-1 module (the 4G xiaozhi boards' kind) in a loaded cell.
fn lte() -> LinkConditions {
    let down = Conditions {
        // Typical value: measured LTE round trips are ~30–70 ms (OpenSignal,
        // "State of Mobile Networks" reports); the radio part's target is
        // < 5 ms one-way unloaded (3GPP TR 25.913). We take 20 ms one-way base.
        base: ms(20),
        // Ours: scheduling and HARQ spread, mean 15 ms (round trip ~70 ms mean).
        jitter: Dist::Exponential(ms(15)),
        // 3GPP TS 23.203 table 6.1.7: the default bearer (QCI 9) allows a
        // packet error loss rate of 1e-6 after RLC retries, voice (QCI 1)
        // 1e-2; we take 0.5% between them for a loaded cell (ours).
        loss: 0.005,
        // 3GPP TS 36.306: UE category 1 peaks at 10.3 Mbit/s down and
        // 5.2 Mbit/s up; ours: a loaded cell gives a device ~4 and ~1.
        rate: kbit(4_000.0),
        burst: INITIAL_WINDOW,
        // A handover interrupts the user plane for tens of ms (3GPP TS 36.133
        // handover interruption requirements; field measurements ~40–50 ms);
        // we take 50 ms every 60 s (ours: a device on the move).
        stall: Some((Duration::from_secs(60), ms(50))),
        // RFC 6298 with this round trip stays under Linux's 200 ms floor.
        rto: LINUX_RTO_MIN,
    };
    let up = Conditions {
        rate: kbit(1_000.0),
        ..down.clone()
    };
    LinkConditions {
        name: "4g".into(),
        down,
        up,
    }
}

/// A device at the edge of its access point's range.
fn edge_of_range() -> LinkConditions {
    let down = Conditions {
        // Ours: longer airtime at the lowest rates doubles wifi-poor's base.
        base: ms(10),
        // Ours: wifi-poor's lognormal with twice the median (mean 66 ms).
        jitter: Dist::LogNormal {
            median: ms(40),
            sigma: 1.0,
        },
        // Ours: at the edge of range MAC retries run out more often; 8%.
        loss: 0.08,
        // 802.11b/g fall back to 1–6 Mbit/s PHY rates at the edge of range
        // (IEEE 802.11 rate adaptation); about half is goodput, shared: ours 500 kbit/s.
        rate: kbit(500.0),
        // RFC 3390's older initial window (3 segments of 1460 bytes).
        burst: 4_380,
        // Mishra et al. (2003): re-associations up to 420 ms, more with
        // rescans across channels; ours: 1 s every 15 s.
        stall: Some((Duration::from_secs(15), Duration::from_secs(1))),
        // RFC 6298: SRTT ~140 ms plus 4·RTTVAR on this spread: ~500 ms.
        rto: ms(500),
    };
    let up = Conditions {
        rate: kbit(250.0),
        ..down.clone()
    };
    LinkConditions {
        name: "edge-of-range".into(),
        down,
        up,
    }
}

/// The profile called `name` (`lan`: perfect both ways); `None` for an unknown name.
pub fn profile(name: &str) -> Option<LinkConditions> {
    match name {
        "lan" => Some(LinkConditions {
            name: "lan".into(),
            down: Conditions::perfect(),
            up: Conditions::perfect(),
        }),
        "wifi-good" => Some(wifi_good()),
        "wifi-poor" => Some(wifi_poor()),
        "4g" => Some(lte()),
        "edge-of-range" => Some(edge_of_range()),
        _ => None,
    }
}

/// The accepted names in the words of an error: "lan, wifi-good, …, edge-of-range or none".
pub fn choices() -> String {
    format!("{} or none", PROFILE_NAMES.join(", "))
}

/// A name's conditions as a group holds them: `None` for `lan`/`none`
/// (nothing injected, no delay line), an error listing the choices for
/// an unknown name.
pub fn resolve(name: &str) -> Result<Option<LinkConditions>, String> {
    if name == "none" {
        return Ok(None);
    }
    match profile(name) {
        Some(p) if p.is_perfect() => Ok(None),
        Some(p) => Ok(Some(p)),
        None => Err(format!("must be {}; got `{name}`", choices())),
    }
}

/// Puts every group of `plan` on the named profile (`lan`/`none`: perfect).
pub fn set_network(plan: &mut Plan, name: &str) -> Result<(), String> {
    let conditions = resolve(name)?;
    for g in &mut plan.groups {
        g.network = conditions.clone();
    }
    Ok(())
}

/// Gives every group of `plan` a decode queue of `frames` frames whose
/// overflow is dropped (a memory-tight device).
pub fn set_device_queue(plan: &mut Plan, frames: u32) {
    for g in &mut plan.groups {
        g.playback.queue_capacity = (frames as usize).max(1);
        g.playback.overflow = crate::audio::playback::Overflow::Drop;
    }
}

/// The seed of device `index`'s link on its `connection`-th connection,
/// from the fleet's seed (splitmix64 of the three): the same fleet file
/// and seed give every device the same draws on every rerun.
pub fn device_seed(fleet_seed: u64, index: u32, connection: u32) -> u64 {
    let mut z = fleet_seed
        ^ (u64::from(index) << 32 | u64::from(connection)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ 0x6E65_7477_6F72_6B00; // "network"
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "profiles_tests.rs"]
mod tests;
