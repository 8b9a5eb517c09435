//! Fault injection for the mock: the `[[mock.fault]]` tables as written
//! ([`FaultSettings`], `settings`), the resolved, seeded [`FaultPlan`]
//! that picks which connection, utterance or answer gets which fault
//! (here), the kinds and their families ([`FaultKind`], `kind`), and the
//! [`FaultLog`] of what was actually injected (`log`).
//!
//! Three families:
//! - connection faults (`refuse`, `reject_upgrade`, `slow_handshake`,
//!   `no_hello`, `close_after_hello`, `bad_udp_key`) are picked per
//!   accepted connection (WebSocket, or MQTT on the gateway: each listener
//!   counts its own), by probability `p` or by accept index
//!   (`connections = [0, 3]`, 0-based);
//! - turn faults of the session core (`no_stt` … `late_stt`) are picked
//!   per utterance the session heard, by `p` or by the utterance's index
//!   on its session (`turns = [3]`, 0-based, which is the device's turn
//!   number in a one-connection conversation);
//! - turn faults of the gateway (`udp_loss`, `udp_reorder`,
//!   `udp_duplicate`, `udp_late`, `mqtt_disconnect`) are picked per answer
//!   (`tts start`) on an MQTT conversation, by `p` or `turns`; the UDP
//!   kinds then strike each downlink datagram of that answer with
//!   probability `per_datagram`.
//!
//! Gateway-only kinds are refused at configuration time when the gateway
//! is off (`[mock] mqtt`), and are never picked for WebSocket connections.
//! Draws are pure functions of `(seed, connection or device, index, kind)`,
//! so a run repeats whatever the timing. When several faults of one
//! family pick the same connection or utterance, the first in file order
//! wins.

mod kind;
mod log;
mod settings;
#[cfg(test)]
mod tests;

pub use kind::FaultKind;
pub use log::{FAULT_LOG_CAPACITY, FaultLog, InjectedFault};
pub use settings::FaultSettings;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
    /// UDP downlink kinds: probability per datagram of a picked answer.
    #[serde(default)]
    pub per_datagram: f64,
}

/// Default `slow_handshake` delay: longer than the device's 10 s handshake limit.
pub const SLOW_HANDSHAKE_DELAY: Duration = Duration::from_secs(15);
/// Default frames of an answer sent before a mid-answer fault strikes: past
/// the 5-frame burst, inside the first sentence.
pub const AFTER_FRAMES: u32 = 8;
/// Default probability per datagram of the UDP downlink kinds.
pub const PER_DATAGRAM: f64 = 0.1;
/// Default `udp_late` delay: five packets, so later ones overtake it.
pub const UDP_LATE_DELAY: Duration = Duration::from_millis(300);

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

    /// The first gateway-only fault, if any (refused without the gateway).
    pub fn first_gateway_only(&self) -> Option<(usize, FaultKind)> {
        (self.faults.iter().enumerate())
            .find(|(_, f)| f.kind.gateway_only())
            .map(|(i, f)| (i, f.kind))
    }

    /// The fault for the `index`-th accepted connection, if any: of the
    /// WebSocket listener, or (`gateway`) of the gateway's MQTT listener,
    /// which alone can have `bad_udp_key`.
    pub fn for_connection(&self, index: u64, gateway: bool) -> Option<&Fault> {
        self.faults
            .iter()
            .filter(|f| f.kind.per_connection() && (gateway || !f.kind.gateway_only()))
            .find(|f| self.hits(f, 0, index))
    }

    /// The session core's fault for utterance `index` of a session whose
    /// device draws from `device` (a hash of its id), if any.
    pub fn for_utterance(&self, device: u64, index: u32) -> Option<&Fault> {
        self.faults
            .iter()
            .filter(|f| !f.kind.per_connection() && !f.kind.per_answer())
            .find(|f| self.hits(f, device, u64::from(index)))
    }

    /// The gateway's fault for answer `index` of a conversation whose
    /// device draws from `device`, if any.
    pub fn for_answer(&self, device: u64, index: u32) -> Option<&Fault> {
        self.faults
            .iter()
            .filter(|f| f.kind.per_answer())
            .find(|f| self.hits(f, device, u64::from(index)))
    }

    /// The seeded generator of one answer's per-datagram draws.
    pub fn datagram_rng(&self, device: u64, index: u32) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(mix(mix(self.seed, device), u64::from(index)), 0xda7a))
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
