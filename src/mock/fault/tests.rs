//! Unit tests of the fault picks, the table checks and the log.

use super::*;
use crate::units::Span;
use std::time::Duration;

fn settings(kind: FaultKind) -> FaultSettings {
    FaultSettings::of(kind)
}

#[test]
fn turn_list_picks_exactly_those_utterances() {
    let f = FaultSettings {
        turns: Some(vec![3]),
        ..settings(FaultKind::EarlyTtsStop)
    };
    let plan = FaultPlan {
        faults: vec![f.resolve().unwrap()],
        seed: 1,
    };
    let hit: Vec<u32> = (0..10).filter(|&i| plan.for_utterance(77, i).is_some()).collect();
    assert_eq!(hit, vec![3]);
    assert!(plan.for_connection(3, false).is_none());
}

#[test]
fn probability_draws_are_seeded_and_near_p() {
    let f = FaultSettings {
        p: Some(0.1),
        ..settings(FaultKind::CrossTalk)
    };
    let plan = FaultPlan {
        faults: vec![f.resolve().unwrap()],
        seed: 9,
    };
    let picks = |dev: u64| (0..2000).filter(|&i| plan.for_utterance(dev, i).is_some()).count();
    let n = picks(5);
    assert_eq!(n, picks(5), "same seed, same picks");
    assert!((150..=250).contains(&n), "{n} of 2000 at p = 0.1");
    assert_ne!(
        (0..200).map(|i| plan.for_utterance(5, i).is_some()).collect::<Vec<_>>(),
        (0..200).map(|i| plan.for_utterance(6, i).is_some()).collect::<Vec<_>>(),
        "devices draw independently"
    );
}

#[test]
fn wrong_keys_for_a_kind_are_named() {
    let bad = |s: FaultSettings| s.resolve().unwrap_err().0;
    let mut s = settings(FaultKind::NoStt);
    s.p = Some(0.5);
    s.status = Some(500);
    assert_eq!(bad(s), "status");
    let mut s = settings(FaultKind::Refuse);
    s.turns = Some(vec![1]);
    assert_eq!(bad(s), "turns");
    let mut s = settings(FaultKind::NoStt);
    s.connections = Some(vec![1]);
    assert_eq!(bad(s), "connections");
    assert_eq!(bad(settings(FaultKind::NoStt)), "p");
    let mut s = settings(FaultKind::BadJson);
    s.p = Some(1.5);
    assert_eq!(bad(s), "p");
    let mut s = settings(FaultKind::NoStt);
    s.p = Some(0.5);
    s.delay = Some(Span(Duration::from_secs(1)));
    assert_eq!(bad(s), "delay");
}

#[test]
fn reject_upgrade_defaults_to_401_with_a_body() {
    let mut s = settings(FaultKind::RejectUpgrade);
    s.connections = Some(vec![0]);
    let f = s.resolve().unwrap();
    assert_eq!(f.status, 401);
    assert_eq!(f.body, "401 Unauthorized: token required");
    let mut s = settings(FaultKind::RejectUpgrade);
    s.p = Some(1.0);
    s.status = Some(200);
    assert_eq!(s.resolve().unwrap_err().0, "status");
}

#[test]
fn log_counts_every_kind_and_keeps_records() {
    let log = FaultLog::default();
    log.record("d1", 3, FaultKind::CrossTalk);
    log.record("", 0, FaultKind::Refuse);
    assert_eq!(log.count(FaultKind::CrossTalk), 1);
    assert_eq!(log.total(), 2);
    assert_eq!(log.injected()[0].index, 3);
}

#[test]
fn gateway_answer_faults_are_picked_apart_from_core_turn_faults() {
    let mut loss = settings(FaultKind::UdpLoss);
    loss.turns = Some(vec![1]);
    loss.per_datagram = Some(0.5);
    let mut stt = settings(FaultKind::NoStt);
    stt.turns = Some(vec![1]);
    let plan = FaultPlan {
        faults: vec![loss.resolve().unwrap(), stt.resolve().unwrap()],
        seed: 3,
    };
    assert_eq!(plan.for_utterance(9, 1).map(|f| f.kind), Some(FaultKind::NoStt));
    let f = plan.for_answer(9, 1).unwrap();
    assert_eq!((f.kind, f.per_datagram), (FaultKind::UdpLoss, 0.5));
    assert!(plan.for_answer(9, 0).is_none());
    assert_eq!(plan.first_gateway_only(), Some((0, FaultKind::UdpLoss)));
}

#[test]
fn udp_keys_are_checked_and_bad_udp_key_is_a_connection_fault() {
    let bad = |s: FaultSettings| s.resolve().unwrap_err().0;
    let mut s = settings(FaultKind::UdpLoss);
    s.p = Some(1.0);
    s.per_datagram = Some(1.5);
    assert_eq!(bad(s), "per_datagram");
    let mut s = settings(FaultKind::NoStt);
    s.p = Some(1.0);
    s.per_datagram = Some(0.5);
    assert_eq!(bad(s), "per_datagram");
    let mut s = settings(FaultKind::BadUdpKey);
    s.turns = Some(vec![0]);
    assert_eq!(bad(s), "turns");
    let mut s = settings(FaultKind::BadUdpKey);
    s.connections = Some(vec![0]);
    let plan = FaultPlan {
        faults: vec![s.resolve().unwrap()],
        seed: 1,
    };
    assert!(plan.for_connection(0, false).is_none(), "never on WebSocket");
    assert_eq!(plan.for_connection(0, true).map(|f| f.kind), Some(FaultKind::BadUdpKey));
    let mut s = settings(FaultKind::UdpLate);
    s.p = Some(1.0);
    let f = s.resolve().unwrap();
    assert_eq!((f.delay, f.per_datagram), (UDP_LATE_DELAY, PER_DATAGRAM));
    let mut s = settings(FaultKind::MqttDisconnect);
    s.p = Some(1.0);
    s.after_frames = Some(3);
    assert_eq!(s.resolve().unwrap().after_frames, 3);
}

#[test]
fn datagram_draws_repeat_per_device_and_answer() {
    let plan = FaultPlan {
        faults: vec![],
        seed: 4,
    };
    let draws = |d: u64, i: u32| {
        let mut r = plan.datagram_rng(d, i);
        (0..32).map(|_| r.random_bool(0.5)).collect::<Vec<_>>()
    };
    assert_eq!(draws(1, 2), draws(1, 2));
    assert_ne!(draws(1, 2), draws(1, 3));
}
