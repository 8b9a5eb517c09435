//! Network conditions between a device and its server, sans-IO: given the
//! instant a message is handed to the link and its size, one direction of
//! a link ([`Direction`]) says when it comes out at the other end, or that
//! it never does, and how much of its delay each cause added. No socket,
//! no clock, no runtime: the device shell holds messages until the instant
//! it is told (so the core stays pure), and tests feed scripted instants.
//!
//! What a direction models, in the order a message meets it:
//! - a bandwidth cap ([`bucket::TokenBucket`]): messages queue behind each
//!   other at the capped rate, after a burst allowance;
//! - latency: a fixed base plus a seeded jitter draw ([`crate::dist::Dist`]),
//!   so the delay is a distribution, not a constant;
//! - loss: over UDP a lost datagram is gone; over TCP the lost segment is
//!   sent again after a retransmission timeout (doubling if lost again), and
//!   TCP's in-order delivery holds every later message behind it
//!   (head-of-line blocking), which is how loss looks to a WebSocket device;
//! - periodic stalls ([`stall::Stalls`]): a freeze of D every T (Wi-Fi
//!   roaming, a 4G handover) during which nothing comes out; whatever would
//!   have arrived inside one comes out when it ends.
//!
//! Every draw comes from the direction's own seeded RNG, so a run repeats.

pub mod bucket;
pub mod link;
pub mod profiles;
pub mod stall;
#[cfg(test)]
mod tests;

use crate::dist::Dist;
use bucket::TokenBucket;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stall::Stalls;
use std::time::Duration;
use tokio::time::Instant;

/// Retransmissions of one TCP segment before the model stops doubling
/// (the next try always gets through).
pub const MAX_RETRANSMITS: u32 = 6;

/// What carries the messages: it decides what loss does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// In order, reliable: loss becomes delay for this message and the ones behind it.
    Tcp,
    /// Unordered, unreliable: loss is loss, jitter may reorder.
    Udp,
}

/// One direction's conditions as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct Conditions {
    /// Latency every message has.
    pub base: Duration,
    /// Added to `base`, drawn per message.
    pub jitter: Dist,
    /// Probability that a message (a TCP segment, a UDP datagram) is lost.
    pub loss: f64,
    /// Bytes per second; `None`: no cap.
    pub rate: Option<f64>,
    /// Bytes that may go at once before the cap applies.
    pub burst: u32,
    /// Freeze of `.1` every `.0`.
    pub stall: Option<(Duration, Duration)>,
    /// First retransmission timeout over TCP (Linux's minimum RTO is 200 ms).
    pub rto: Duration,
}

impl Conditions {
    /// No delay, no loss, no cap: a perfect link.
    pub fn perfect() -> Conditions {
        Conditions {
            base: Duration::ZERO,
            jitter: Dist::Fixed(Duration::ZERO),
            loss: 0.0,
            rate: None,
            burst: 0,
            stall: None,
            rto: Duration::from_millis(200),
        }
    }
}

/// A device's link: both directions' conditions and the name they go by.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConditions {
    /// The profile name, or `custom (from <profile>)` for custom values.
    pub name: String,
    /// Server → device.
    pub down: Conditions,
    /// Device → server.
    pub up: Conditions,
}

impl LinkConditions {
    /// Whether nothing is injected either way (then the device runs no delay line).
    pub fn is_perfect(&self) -> bool {
        self.down == Conditions::perfect() && self.up == Conditions::perfect()
    }

    /// One line for `describe`: latency, jitter, loss, caps, stalls.
    pub fn summary(&self) -> String {
        let d = &self.down;
        let mut s = format!(
            "{}: latency {} + {} one-way, loss {}%, rto {}",
            self.name,
            crate::units::format_duration(d.base),
            d.jitter,
            d.loss * 100.0,
            crate::units::format_duration(d.rto)
        );
        let kbit = |r: Option<f64>| r.map_or("uncapped".to_string(), |r| format!("{} kbit/s", r * 8.0 / 1000.0));
        s.push_str(&format!(
            ", down {}, up {} (burst {} B)",
            kbit(d.rate),
            kbit(self.up.rate),
            d.burst
        ));
        if let Some((every, length)) = d.stall {
            s.push_str(&format!(
                ", stall {} every {}",
                crate::units::format_duration(length),
                crate::units::format_duration(every)
            ));
        }
        s
    }
}

/// How long each cause held a message (the parts add up to its delay).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Waiting for the bandwidth cap.
    pub queued: Duration,
    /// Base latency plus jitter.
    pub latency: Duration,
    /// Retransmissions of this message (TCP).
    pub retransmit: Duration,
    /// Behind an earlier message still being retransmitted (TCP).
    pub head_of_line: Duration,
    /// Inside a stall.
    pub stalled: Duration,
}

impl Held {
    pub fn total(&self) -> Duration {
        self.queued + self.latency + self.retransmit + self.head_of_line + self.stalled
    }
}

/// What becomes of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Comes out at `at`, `held.total()` after it was sent.
    Deliver { at: Instant, held: Held },
    /// Gone (UDP only).
    Lost,
}

/// One direction of one device's link.
#[derive(Debug)]
pub struct Direction {
    cond: Conditions,
    carrier: Carrier,
    rng: ChaCha8Rng,
    bucket: Option<TokenBucket>,
    stalls: Option<Stalls>,
    /// When the last message came out (TCP keeps order).
    last_out: Option<Instant>,
}

impl Direction {
    /// A direction starting at `start`, its draws seeded by `seed` (the
    /// stall phase too, so a fleet's devices do not freeze in lock-step).
    pub fn new(cond: Conditions, carrier: Carrier, seed: u64, start: Instant) -> Direction {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bucket = cond.rate.map(|rate| TokenBucket::new(rate, cond.burst, start));
        let stalls = cond.stall.map(|(every, length)| {
            let phase = every.mul_f64(rng.random_range(0.0..1.0));
            Stalls::new(start + phase, every, length)
        });
        Direction {
            cond,
            carrier,
            rng,
            bucket,
            stalls,
            last_out: None,
        }
    }

    /// The fate of a message of `bytes` bytes handed to the link at `now`
    /// (calls come in sending order).
    pub fn send(&mut self, now: Instant, bytes: usize) -> Fate {
        let mut held = Held::default();
        let left = match self.bucket.as_mut() {
            Some(b) => b.take(now, bytes),
            None => now,
        };
        held.queued = left - now;
        held.latency = self.cond.base + self.cond.jitter.sample(&mut self.rng);
        if self.cond.loss > 0.0 {
            let mut rto = self.cond.rto;
            for _ in 0..MAX_RETRANSMITS {
                if !self.rng.random_bool(self.cond.loss.min(1.0)) {
                    break;
                }
                if self.carrier == Carrier::Udp {
                    return Fate::Lost;
                }
                held.retransmit += rto;
                rto *= 2;
            }
        }
        let mut out = left + held.latency + held.retransmit;
        if let Some(stalls) = &self.stalls
            && let Some(end) = stalls.frozen_until(out)
        {
            held.stalled = end - out;
            out = end;
        }
        if self.carrier == Carrier::Tcp {
            if let Some(last) = self.last_out
                && last > out
            {
                held.head_of_line = last - out;
                out = last;
            }
            self.last_out = Some(out);
        }
        Fate::Deliver { at: out, held }
    }
}
