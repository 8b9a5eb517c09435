//! Fault injection for the mock: the `[[mock.fault]]` tables as written
//! ([`FaultSettings`]), the resolved, seeded [`FaultPlan`] that picks which
//! connection or utterance gets which fault, and the [`FaultLog`] of what was
//! actually injected (so tests can check that the device saw exactly those).
//!
//! Two families:
//! - connection faults (`refuse`, `reject_upgrade`, `slow_handshake`,
//!   `no_hello`, `close_after_hello`) are picked per accepted connection, by
//!   probability `p` or by accept index (`connections = [0, 3]`, 0-based);
//! - turn faults (all others) are picked per utterance the session heard,
//!   by `p` or by the utterance's index on its session (`turns = [3]`,
//!   0-based, which is the device's turn number in a one-connection
//!   conversation).
//!
//! Draws are pure functions of `(seed, connection or device, index, kind)`,
//! so a run repeats whatever the timing. When several faults pick the same
//! connection or utterance, the first in file order wins.

use crate::units::Span;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Every fault the mock can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Accept, then reset the TCP connection before any HTTP.
    Refuse,
    /// Answer the upgrade with an HTTP error status.
    RejectUpgrade,
    /// Never answer the upgrade; close after `delay`.
    SlowHandshake,
    /// Upgrade, never answer the hello.
    NoHello,
    /// Send the hello, then close (1000) at once.
    CloseAfterHello,
    /// The VAD never ends the utterance.
    NoStt,
    /// `stt`, then nothing for that utterance.
    NoTtsStart,
    /// Audio stops mid-sentence; no `tts stop`.
    StallAudio,
    /// Close (1000) in the middle of the answer's audio.
    CloseMidTts,
    /// `tts stop` after only part of the announced audio.
    EarlyTtsStop,
    /// One binary frame that is not a valid Opus packet.
    BadBinary,
    /// One text frame that starts like JSON but does not parse.
    BadJson,
    /// `stt` carries another clip's transcript.
    CrossTalk,
    /// The session stops reading and writing for the rest of the connection.
    StallSocket,
    /// The answer's `stt` and `tts start` come again ~100 ms after the next `listen start`.
    LateStt,
}

impl FaultKind {
    pub const ALL: [FaultKind; 15] = [
        FaultKind::Refuse,
        FaultKind::RejectUpgrade,
        FaultKind::SlowHandshake,
        FaultKind::NoHello,
        FaultKind::CloseAfterHello,
        FaultKind::NoStt,
        FaultKind::NoTtsStart,
        FaultKind::StallAudio,
        FaultKind::CloseMidTts,
        FaultKind::EarlyTtsStop,
        FaultKind::BadBinary,
        FaultKind::BadJson,
        FaultKind::CrossTalk,
        FaultKind::StallSocket,
        FaultKind::LateStt,
    ];

    /// The name used in fleet files.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Refuse => "refuse",
            FaultKind::RejectUpgrade => "reject_upgrade",
            FaultKind::SlowHandshake => "slow_handshake",
            FaultKind::NoHello => "no_hello",
            FaultKind::CloseAfterHello => "close_after_hello",
            FaultKind::NoStt => "no_stt",
            FaultKind::NoTtsStart => "no_tts_start",
            FaultKind::StallAudio => "stall_audio",
            FaultKind::CloseMidTts => "close_mid_tts",
            FaultKind::EarlyTtsStop => "early_tts_stop",
            FaultKind::BadBinary => "bad_binary",
            FaultKind::BadJson => "bad_json",
            FaultKind::CrossTalk => "cross_talk",
            FaultKind::StallSocket => "stall_socket",
            FaultKind::LateStt => "late_stt",
        }
    }

    fn index(self) -> usize {
        FaultKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// Picked per connection (else per utterance).
    pub fn per_connection(self) -> bool {
        matches!(
            self,
            FaultKind::Refuse
                | FaultKind::RejectUpgrade
                | FaultKind::SlowHandshake
                | FaultKind::NoHello
                | FaultKind::CloseAfterHello
        )
    }

    /// Strikes partway through the answer's audio (takes `after_frames`).
    pub fn mid_answer(self) -> bool {
        matches!(
            self,
            FaultKind::StallAudio
                | FaultKind::CloseMidTts
                | FaultKind::EarlyTtsStop
                | FaultKind::BadBinary
                | FaultKind::BadJson
        )
    }
}

/// One `[[mock.fault]]` table as written. Unknown keys and kinds are
/// errors with the file's line (serde).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    pub kind: FaultKind,
    /// Probability per eligible connection or utterance.
    pub p: Option<f64>,
    /// Utterance indices on each session (0-based), for turn faults.
    pub turns: Option<Vec<u32>>,
    /// Accept indices (0-based), for connection faults.
    pub connections: Option<Vec<u64>>,
    /// `reject_upgrade`: the HTTP status (default 401).
    pub status: Option<u16>,
    /// `reject_upgrade`: the response body.
    pub body: Option<String>,
    /// `slow_handshake`: how long the upgrade goes unanswered (default 15 s).
    pub delay: Option<Span>,
    /// Mid-answer kinds: strike after this many frames of the answer (default 8).
    pub after_frames: Option<u32>,
}

/// Which connections or utterances a fault hits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Pick {
    Probability(f64),
    Indices(Vec<u64>),
}

/// A resolved fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub pick: Pick,
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub after_frames: u32,
}

/// Default `slow_handshake` delay: longer than the device's 10 s handshake limit.
pub const SLOW_HANDSHAKE_DELAY: Duration = Duration::from_secs(15);
/// Default frames of an answer sent before a mid-answer fault strikes: past
/// the 5-frame burst, inside the first sentence.
pub const AFTER_FRAMES: u32 = 8;

impl FaultSettings {
    /// Checks the table; errors are `(key, message)` relative to `fault[i]`.
    pub fn resolve(self) -> Result<Fault, (String, String)> {
        let kind = self.kind;
        let only = |present: bool, key: &str, which: &str| {
            if present {
                Err((
                    key.to_string(),
                    format!("applies only to {which}, not to `{}`", kind.name()),
                ))
            } else {
                Ok(())
            }
        };
        if kind != FaultKind::RejectUpgrade {
            only(self.status.is_some(), "status", "reject_upgrade")?;
            only(self.body.is_some(), "body", "reject_upgrade")?;
        }
        if kind != FaultKind::SlowHandshake {
            only(self.delay.is_some(), "delay", "slow_handshake")?;
        }
        if !kind.mid_answer() {
            only(
                self.after_frames.is_some(),
                "after_frames",
                "stall_audio, close_mid_tts, early_tts_stop, bad_binary and bad_json",
            )?;
        }
        if kind.per_connection() {
            only(self.turns.is_some(), "turns", "turn faults (use `connections`)")?;
        } else {
            only(
                self.connections.is_some(),
                "connections",
                "connection faults (use `turns`)",
            )?;
        }
        let indices = self
            .turns
            .map(|t| t.into_iter().map(u64::from).collect::<Vec<_>>())
            .or(self.connections);
        let pick = match (self.p, indices) {
            (Some(_), Some(_)) => {
                return Err(("p".into(), "give either `p` or a list of indices, not both".into()));
            }
            (Some(p), None) if (0.0..=1.0).contains(&p) => Pick::Probability(p),
            (Some(p), None) => return Err(("p".into(), format!("must be between 0 and 1; got {p}"))),
            (None, Some(i)) => Pick::Indices(i),
            (None, None) => {
                let list = if kind.per_connection() { "connections" } else { "turns" };
                return Err(("p".into(), format!("missing: give `p = 0.05` or `{list} = [..]`")));
            }
        };
        let status = self.status.unwrap_or(401);
        if !(400..=599).contains(&status) {
            return Err((
                "status".into(),
                format!("must be an HTTP error status (400–599); got {status}"),
            ));
        }
        let after_frames = self.after_frames.unwrap_or(AFTER_FRAMES);
        if after_frames == 0 {
            return Err(("after_frames".into(), "must be at least 1".into()));
        }
        Ok(Fault {
            kind,
            pick,
            body: self.body.unwrap_or_else(|| default_body(status)),
            status,
            delay: self.delay.map(|d| d.0).unwrap_or(SLOW_HANDSHAKE_DELAY),
            after_frames,
        })
    }
}

fn default_body(status: u16) -> String {
    match status {
        401 => "401 Unauthorized: token required".into(),
        403 => "403 Forbidden".into(),
        503 => "503 Service Unavailable: server busy".into(),
        s => format!("{s} mock rejection"),
    }
}

/// The resolved faults of one server, with the seed for their draws.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub faults: Vec<Fault>,
    pub seed: u64,
}

impl FaultPlan {
    /// No faults configured.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// The fault for the `index`-th accepted connection, if any.
    pub fn for_connection(&self, index: u64) -> Option<&Fault> {
        self.faults
            .iter()
            .filter(|f| f.kind.per_connection())
            .find(|f| self.hits(f, 0, index))
    }

    /// The fault for utterance `index` of a session whose device draws from
    /// `device` (a hash of its id), if any.
    pub fn for_utterance(&self, device: u64, index: u32) -> Option<&Fault> {
        self.faults
            .iter()
            .filter(|f| !f.kind.per_connection())
            .find(|f| self.hits(f, device, u64::from(index)))
    }

    fn hits(&self, f: &Fault, who: u64, index: u64) -> bool {
        match &f.pick {
            Pick::Indices(list) => list.contains(&index),
            Pick::Probability(p) => {
                let key = mix(mix(mix(self.seed, who), index), f.kind.index() as u64 + 1);
                ChaCha8Rng::seed_from_u64(key).random_bool(*p)
            }
        }
    }
}

/// Combines two numbers into a well-spread seed (splitmix64 finaliser).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_add(0x9e37_79b9_7f4a_7c15)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One injected fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InjectedFault {
    /// The device's id (`Device-Id`), empty when the fault struck before the
    /// HTTP request was read.
    pub device: String,
    /// Utterance index on the session (turn faults) or accept index
    /// (connection faults).
    pub index: u64,
    pub kind: FaultKind,
}

/// The first this-many injected faults are kept in the list.
pub const FAULT_LOG_CAPACITY: usize = 10_000;

/// What was injected: a count per kind and the first
/// [`FAULT_LOG_CAPACITY`] records.
#[derive(Debug, Default)]
pub struct FaultLog {
    counts: [AtomicU64; 15],
    list: Mutex<Vec<InjectedFault>>,
}

impl FaultLog {
    pub(crate) fn record(&self, device: &str, index: u64, kind: FaultKind) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
        if let Ok(mut list) = self.list.lock()
            && list.len() < FAULT_LOG_CAPACITY
        {
            list.push(InjectedFault {
                device: device.to_string(),
                index,
                kind,
            });
        }
    }

    /// Faults of this kind injected so far.
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    /// All faults injected so far.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The recorded faults, in injection order.
    pub fn injected(&self) -> Vec<InjectedFault> {
        self.list.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kind: FaultKind) -> FaultSettings {
        FaultSettings {
            kind,
            p: None,
            turns: None,
            connections: None,
            status: None,
            body: None,
            delay: None,
            after_frames: None,
        }
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
        assert!(plan.for_connection(3).is_none());
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
}
