//! [`FaultLog`]: what was actually injected, a count per kind and the
//! first [`FAULT_LOG_CAPACITY`] records, so tests can check that the
//! device saw exactly those.

use super::FaultKind;
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// One injected fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InjectedFault {
    /// The device's id (`Device-Id`, or the MAC of an MQTT client id),
    /// empty when the fault struck before the device was known.
    pub device: String,
    /// Utterance index on the session (turn faults), answer index on the
    /// conversation (gateway turn faults) or accept index (connection faults).
    pub index: u64,
    pub kind: FaultKind,
}

/// The first this-many injected faults are kept in the list.
pub const FAULT_LOG_CAPACITY: usize = 10_000;

/// What was injected: a count per kind and the first
/// [`FAULT_LOG_CAPACITY`] records.
#[derive(Debug, Default)]
pub struct FaultLog {
    counts: [AtomicU64; FaultKind::ALL.len()],
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
