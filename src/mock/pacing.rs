//! How the real server (PY) paces TTS audio to a device, as a pure struct
//! driven by `now` (PROTOCOL.md §7.2):
//!
//! 1. the first 5 frames of a turn go out at once, as TTS produces them;
//! 2. later frames go through a queue on a virtual 60 ms clock anchored when
//!    the first queued frame is sent (so frame 6 leaves at once and the
//!    server stays ~5 frames ahead of playback);
//! 3. if the queue ran empty and the next frame comes ≥ 60 ms later, the
//!    clock re-anchors so that frame is due now: no catch-up burst, so the
//!    lead a late sentence cost the device is never rebuilt;
//! 4. sentence 1's `sentence_start` goes out at once; later ones ride the
//!    queue and leave just before their sentence's first frame.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Frames sent back to back at the start of each turn (PY `PRE_BUFFER_COUNT`).
pub const PRE_BUFFER_FRAMES: u32 = 5;
/// The pacing clock's step (PY `AUDIO_FRAME_DURATION`).
pub const PACE: Duration = Duration::from_millis(60);

/// Something the pacer hands to the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    Frame(Bytes),
    SentenceStart(String),
}

/// Per-connection pacing state; reset at every new turn.
#[derive(Debug, Default)]
pub struct DownlinkPacer {
    burst_left: u32,
    queue: VecDeque<Outgoing>,
    anchor: Option<Instant>,
    /// Index of the next queued frame on the virtual clock.
    k: u32,
    emptied_at: Option<Instant>,
}

impl DownlinkPacer {
    /// A pacer for a new turn (fresh 5-frame burst, clock unanchored).
    pub fn new_turn() -> Self {
        DownlinkPacer {
            burst_left: PRE_BUFFER_FRAMES,
            ..DownlinkPacer::default()
        }
    }

    /// True when nothing waits in the queue.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Offers an item at `now`; whatever may leave now is appended to `out`.
    pub fn push(&mut self, now: Instant, item: Outgoing, out: &mut Vec<Outgoing>) {
        let in_burst = self.burst_left > 0 && self.queue.is_empty();
        match item {
            Outgoing::Frame(_) if in_burst => {
                self.burst_left -= 1;
                out.push(item);
                return;
            }
            Outgoing::SentenceStart(_) if in_burst => {
                out.push(item);
                return;
            }
            Outgoing::Frame(_) if !self.has_frames() => {
                self.burst_left = 0;
                match (self.anchor, self.emptied_at) {
                    (None, _) => {
                        self.anchor = Some(now);
                        self.k = 0;
                    }
                    (Some(_), Some(e)) if now.saturating_duration_since(e) >= PACE => {
                        self.anchor = Some(now - PACE * self.k);
                    }
                    _ => {}
                }
            }
            _ => self.burst_left = 0,
        }
        self.queue.push_back(item);
        self.pop_due(now, out);
    }

    fn has_frames(&self) -> bool {
        self.queue.iter().any(|i| matches!(i, Outgoing::Frame(_)))
    }

    /// When the next queued frame is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.queue.front(), self.anchor) {
            (Some(Outgoing::Frame(_)), Some(a)) => Some(a + PACE * self.k),
            _ => None,
        }
    }

    /// Moves everything due at `now` to `out`.
    pub fn pop_due(&mut self, now: Instant, out: &mut Vec<Outgoing>) {
        while let Some(front) = self.queue.front() {
            let is_frame = match front {
                Outgoing::SentenceStart(_) => false,
                Outgoing::Frame(_) => match self.anchor {
                    Some(a) if a + PACE * self.k <= now => {
                        self.k += 1;
                        true
                    }
                    _ => break,
                },
            };
            if let Some(item) = self.queue.pop_front() {
                out.push(item);
            }
            // "Emptied" is when the last *frame* left: a zero-duration
            // sentence marker passing through must not restart the gap.
            if is_frame && !self.has_frames() {
                self.emptied_at = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Outgoing {
        Outgoing::Frame(Bytes::from_static(b"x"))
    }

    /// Drives the pacer like the session does and returns send times in ms.
    fn schedule(pacer: &mut DownlinkPacer, t0: Instant, arrivals: &[(u64, Outgoing)]) -> Vec<(u64, bool)> {
        let mut sent = Vec::new();
        let mut out = Vec::new();
        let mut now = t0;
        let mut i = 0;
        for _ in 0..10_000 {
            let next_arrival = arrivals.get(i).map(|(ms, _)| t0 + Duration::from_millis(*ms));
            let next = match (next_arrival, pacer.next_deadline()) {
                (Some(a), Some(d)) => a.min(d),
                (Some(a), None) => a,
                (None, Some(d)) => d,
                (None, None) => break,
            };
            now = now.max(next);
            if next_arrival == Some(next) {
                pacer.push(now, arrivals[i].1.clone(), &mut out);
                i += 1;
            } else {
                pacer.pop_due(now, &mut out);
            }
            for o in out.drain(..) {
                sent.push(((now - t0).as_millis() as u64, matches!(o, Outgoing::Frame(_))));
            }
        }
        sent
    }

    #[test]
    fn whole_sentence_sends_six_frames_at_once_then_one_per_60ms() {
        let t0 = Instant::now();
        let mut p = DownlinkPacer::new_turn();
        let arrivals: Vec<(u64, Outgoing)> = (0..10).map(|_| (0, frame())).collect();
        let times: Vec<u64> = schedule(&mut p, t0, &arrivals).into_iter().map(|(t, _)| t).collect();
        assert_eq!(times, vec![0, 0, 0, 0, 0, 0, 60, 120, 180, 240]);
    }

    #[test]
    fn late_sentence_reanchors_without_catch_up() {
        let t0 = Instant::now();
        let mut p = DownlinkPacer::new_turn();
        let mut arrivals: Vec<(u64, Outgoing)> = (0..8).map(|_| (0, frame())).collect();
        // Queue empties at 120 ms (frame 8); sentence 2 arrives at 1000 ms.
        arrivals.push((1000, Outgoing::SentenceStart("two".into())));
        arrivals.extend((0..3).map(|_| (1000, frame())));
        let sent = schedule(&mut p, t0, &arrivals);
        let tail: Vec<(u64, bool)> = sent[8..].to_vec();
        assert_eq!(tail, vec![(1000, false), (1000, true), (1060, true), (1120, true)]);
    }

    #[test]
    fn later_sentence_start_rides_the_queue() {
        let t0 = Instant::now();
        let mut p = DownlinkPacer::new_turn();
        let mut arrivals: Vec<(u64, Outgoing)> = vec![(0, Outgoing::SentenceStart("one".into()))];
        arrivals.extend((0..8).map(|_| (0, frame())));
        arrivals.push((0, Outgoing::SentenceStart("two".into())));
        arrivals.push((0, frame()));
        let sent = schedule(&mut p, t0, &arrivals);
        // one, 6 frames at 0, frames at 60 and 120, then "two" right after, then its frame at 180.
        assert_eq!(sent[0], (0, false));
        assert_eq!(&sent[7..], &[(60, true), (120, true), (120, false), (180, true)]);
    }

    #[test]
    fn short_gap_waits_for_the_normal_slot() {
        let t0 = Instant::now();
        let mut p = DownlinkPacer::new_turn();
        let mut arrivals: Vec<(u64, Outgoing)> = (0..7).map(|_| (0, frame())).collect();
        // Queue empties at 60 ms; next frame arrives at 100 ms (< 60 ms later): due at 120.
        arrivals.push((100, frame()));
        let sent = schedule(&mut p, t0, &arrivals);
        assert_eq!(sent.last(), Some(&(120, true)));
    }
}
