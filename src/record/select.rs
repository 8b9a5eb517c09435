//! Picking which turns to keep as recordings, in bounded memory.
//!
//! `Worst(N)` keeps the N turns that stuttered worst (the most audio missing:
//! silence plus what the device dropped, then the slowest) in a
//! heap of at most N entries whose weakest member is on top, so a run of any
//! length holds at most N traces for it. `Device(id)` keeps every turn of one
//! device. A trace wanted by both rules is stored once.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::trace::TurnTrace;

/// One recording rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordRule {
    /// Keep the N turns that stuttered worst (then the slowest ones).
    Worst(usize),
    /// Keep every turn of this device (its id: the lower-case MAC).
    Device(String),
}

/// Keeps or drops each offered turn trace at once.
#[derive(Debug)]
pub struct Recorder {
    worst: usize,
    devices: Vec<String>,
    /// The best `worst` candidates so far, the weakest on top.
    heap: BinaryHeap<Candidate>,
    /// Every trace of a device-rule device, in offer order.
    by_device: Vec<TurnTrace>,
}

impl Recorder {
    /// Builds a recorder; several `Worst` rules keep the largest N.
    pub fn new(rules: Vec<RecordRule>) -> Self {
        let mut worst = 0;
        let mut devices = Vec::new();
        for rule in rules {
            match rule {
                RecordRule::Worst(n) => worst = worst.max(n),
                RecordRule::Device(id) => devices.push(id),
            }
        }
        Self {
            worst,
            devices,
            heap: BinaryHeap::with_capacity(worst),
            by_device: Vec::new(),
        }
    }

    /// Whether any rule can keep a turn (`Worst(0)` cannot), i.e. whether
    /// devices need to capture traces at all.
    pub fn is_active(&self) -> bool {
        self.worst > 0 || !self.devices.is_empty()
    }

    /// Whether a device rule keeps every turn of this device.
    pub fn wants_device(&self, device_id: &str) -> bool {
        self.devices.iter().any(|d| d.eq_ignore_ascii_case(device_id))
    }

    /// Keeps the trace (for either rule) or drops it.
    pub fn offer(&mut self, trace: TurnTrace) {
        let key = RankKey::of(&trace);
        let for_device = self.wants_device(&trace.device_id);
        let enters_heap = self.worst > 0
            && (self.heap.len() < self.worst || self.heap.peek().is_some_and(|top| key.cmp(&top.key).is_lt()));
        if enters_heap {
            if self.heap.len() >= self.worst {
                // Drops the weakest; its trace too unless `by_device` holds it.
                self.heap.pop();
            }
            let trace = if for_device {
                self.by_device.push(trace);
                None
            } else {
                Some(trace)
            };
            self.heap.push(Candidate { key, trace });
        } else if for_device {
            self.by_device.push(trace);
        }
    }

    /// The kept traces: the worst first (worst to least bad), then the
    /// remaining device-rule turns in (device, conversation, turn) order. No trace twice.
    pub fn into_kept(self) -> Vec<TurnTrace> {
        let mut by_device = self.by_device;
        let mut kept = Vec::with_capacity(self.heap.len() + by_device.len());
        for candidate in self.heap.into_sorted_vec() {
            match candidate.trace {
                Some(trace) => kept.push(trace),
                None => {
                    let at = by_device
                        .iter()
                        .position(|t| (t.device, t.conversation, t.turn) == candidate.key.id());
                    if let Some(at) = at {
                        kept.push(by_device.swap_remove(at));
                    }
                }
            }
        }
        by_device.sort_by_key(|t| (t.device, t.conversation, t.turn));
        kept.extend(by_device);
        kept
    }
}

/// What a turn is ranked by. `Ord`: `Less` ranks earlier (stuttered worse).
#[derive(Clone, Copy, Debug)]
struct RankKey {
    /// Audio the user missed: silence (any cause) plus dropped audio.
    missing_ms: f64,
    underruns: u32,
    turn_ms: Option<f64>,
    first_audio_ms: Option<f64>,
    device: u32,
    conversation: u32,
    turn: u32,
}

impl RankKey {
    fn of(trace: &TurnTrace) -> Self {
        Self {
            missing_ms: trace.underrun_ms + trace.dropped_ms(),
            underruns: trace.underruns,
            turn_ms: trace.turn_ms,
            first_audio_ms: trace.first_audio_ms,
            device: trace.device,
            conversation: trace.conversation,
            turn: trace.turn,
        }
    }

    /// The turn this key ranks.
    fn id(&self) -> (u32, u32, u32) {
        (self.device, self.conversation, self.turn)
    }
}

/// Larger first; `None` counts as the lowest value.
fn desc_opt(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

impl Ord for RankKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .missing_ms
            .total_cmp(&self.missing_ms)
            .then_with(|| other.underruns.cmp(&self.underruns))
            .then_with(|| desc_opt(self.turn_ms, other.turn_ms))
            .then_with(|| desc_opt(self.first_audio_ms, other.first_audio_ms))
            .then_with(|| self.id().cmp(&other.id()))
    }
}

impl PartialOrd for RankKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for RankKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for RankKey {}

/// A heap member; `trace` is `None` when the trace lives in `by_device`.
#[derive(Debug)]
struct Candidate {
    key: RankKey,
    trace: Option<TurnTrace>,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Candidate {}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(device: u32, turn: u32, underrun_ms: f64, underruns: u32, turn_ms: Option<f64>) -> TurnTrace {
        TurnTrace {
            device,
            device_id: format!("aa:bb:cc:dd:ee:{device:02x}"),
            conversation: 0,
            turn,
            failure: None,
            clip: "hello".into(),
            sample_rate: 24000,
            outcome: "ok".into(),
            underrun_ms,
            underruns,
            overflow_drops: 0,
            first_audio_ms: Some(800.0),
            turn_ms,
            entries: Vec::new(),
            gaps: Vec::new(),
        }
    }

    fn ids(kept: &[TurnTrace]) -> Vec<(u32, u32)> {
        kept.iter().map(|t| (t.device, t.turn)).collect()
    }

    #[test]
    fn worst_keeps_exactly_n_of_1000() {
        let mut recorder = Recorder::new(vec![RecordRule::Worst(5)]);
        assert!(recorder.is_active());
        // Underrun ms is a permutation of 0..1000 so the top 5 are known.
        for i in 0..1000u32 {
            let underrun_ms = f64::from((i * 7919) % 1000);
            recorder.offer(trace(i % 50, i / 50, underrun_ms, 1, Some(3000.0)));
            assert!(recorder.heap.len() <= 5, "memory stays bounded");
        }
        let kept = recorder.into_kept();
        let got: Vec<f64> = kept.iter().map(|t| t.underrun_ms).collect();
        assert_eq!(got, vec![999.0, 998.0, 997.0, 996.0, 995.0]);
    }

    #[test]
    fn worst_ranks_by_count_then_slowness() {
        let mut recorder = Recorder::new(vec![RecordRule::Worst(4)]);
        recorder.offer(trace(1, 0, 100.0, 1, Some(5000.0)));
        recorder.offer(trace(2, 0, 100.0, 3, Some(1000.0)));
        recorder.offer(trace(3, 0, 100.0, 1, None));
        recorder.offer(trace(4, 0, 100.0, 1, Some(6000.0)));
        recorder.offer(trace(5, 0, 0.0, 0, Some(99_000.0)));
        recorder.offer(trace(6, 0, 200.0, 1, Some(10.0)));
        assert_eq!(ids(&recorder.into_kept()), vec![(6, 0), (2, 0), (4, 0), (1, 0)]);
    }

    #[test]
    fn audio_the_device_dropped_counts_as_stutter_for_the_worst_turns() {
        use crate::record::trace::{Fate, TraceEntry, TraceItem};
        let mut dropping = trace(7, 0, 0.0, 0, Some(1000.0));
        dropping.entries = (0..3)
            .map(|i| TraceEntry {
                at_ms: f64::from(i),
                queue_depth: 40,
                item: TraceItem::Frame {
                    packet: bytes::Bytes::new(),
                    fate: Fate::Dropped,
                    play_start_ms: None,
                    duration_ms: 60.0,
                },
            })
            .collect();
        assert_eq!(dropping.dropped_ms(), 180.0);
        let mut recorder = Recorder::new(vec![RecordRule::Worst(2)]);
        recorder.offer(trace(1, 0, 100.0, 1, Some(1000.0)));
        recorder.offer(dropping);
        recorder.offer(trace(2, 0, 150.0, 2, Some(1000.0)));
        assert_eq!(ids(&recorder.into_kept()), vec![(7, 0), (2, 0)]);
    }

    #[test]
    fn worst_ties_are_deterministic() {
        let order_a: Vec<u32> = (0..20).collect();
        let order_b: Vec<u32> = (0..20).rev().collect();
        let run = |order: &[u32]| {
            let mut recorder = Recorder::new(vec![RecordRule::Worst(3)]);
            for &d in order {
                recorder.offer(trace(d, 7, 50.0, 2, Some(4000.0)));
            }
            ids(&recorder.into_kept())
        };
        assert_eq!(run(&order_a), vec![(0, 7), (1, 7), (2, 7)]);
        assert_eq!(run(&order_b), run(&order_a));
    }

    #[test]
    fn device_rule_keeps_all_its_turns() {
        let mut recorder = Recorder::new(vec![RecordRule::Device("aa:bb:cc:dd:ee:03".into())]);
        assert!(recorder.wants_device("aa:bb:cc:dd:ee:03"));
        assert!(!recorder.wants_device("aa:bb:cc:dd:ee:04"));
        for turn in (0..30).rev() {
            for device in 0..10 {
                recorder.offer(trace(device, turn, 0.0, 0, Some(1000.0)));
            }
        }
        let kept = recorder.into_kept();
        assert_eq!(ids(&kept), (0..30).map(|turn| (3, turn)).collect::<Vec<_>>());
    }

    #[test]
    fn both_rules_keep_each_trace_once() {
        let mut recorder = Recorder::new(vec![
            RecordRule::Worst(2),
            RecordRule::Device("aa:bb:cc:dd:ee:01".into()),
        ]);
        for turn in 0..3 {
            recorder.offer(trace(1, turn, f64::from(turn) * 10.0, 1, Some(1000.0)));
            recorder.offer(trace(2, turn, 5.0, 1, Some(1000.0)));
        }
        recorder.offer(trace(9, 0, 500.0, 4, Some(1000.0)));
        // Worst: (9,0) then (1,2) which is also a device-rule turn; then the
        // remaining device turns (1,0), (1,1) in order.
        assert_eq!(ids(&recorder.into_kept()), vec![(9, 0), (1, 2), (1, 0), (1, 1)]);
    }

    #[test]
    fn same_turn_number_in_two_conversations_is_kept_twice() {
        let mut recorder = Recorder::new(vec![
            RecordRule::Worst(1),
            RecordRule::Device("aa:bb:cc:dd:ee:01".into()),
        ]);
        let mut first = trace(1, 0, 300.0, 2, Some(1000.0));
        first.conversation = 0;
        let mut second = trace(1, 0, 10.0, 1, Some(1000.0));
        second.conversation = 1;
        recorder.offer(second);
        recorder.offer(first);
        let kept: Vec<(u32, u32)> = recorder.into_kept().iter().map(|t| (t.conversation, t.turn)).collect();
        assert_eq!(kept, vec![(0, 0), (1, 0)]);
    }

    #[test]
    fn no_rules_is_inactive_and_keeps_nothing() {
        let mut recorder = Recorder::new(vec![RecordRule::Worst(0)]);
        assert!(!recorder.is_active());
        recorder.offer(trace(1, 0, 100.0, 1, None));
        assert!(recorder.into_kept().is_empty());
    }
}
