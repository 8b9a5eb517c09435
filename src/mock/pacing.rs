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
//!
//! Fault modes for testing the device side ([`DownlinkMode`]): `burst`
//! sends everything as soon as it is produced (overflows the device's
//! queue), `jitter` delays each paced frame by a seeded random amount (order
//! kept), `stall` holds frame N+1 until `pause` after frame N, then resumes
//! the 60 ms pace from there (PY's re-anchoring: no catch-up).

use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
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

/// How the mock paces its downlink.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum DownlinkMode {
    /// The real server's pacing.
    #[default]
    Realtime,
    /// Everything at once, as produced.
    Burst,
    /// Each paced frame delayed by a random 0..=max (seeded), order kept.
    Jitter { max: Duration },
    /// After the `after`-th frame of a turn, the next one waits `pause`.
    Stall { after: u32, pause: Duration },
}

/// Per-connection pacing state; reset at every new turn.
#[derive(Debug)]
pub struct DownlinkPacer {
    mode: DownlinkMode,
    rng: ChaCha8Rng,
    burst_left: u32,
    /// Items with the extra delay drawn for them (jitter mode).
    queue: VecDeque<(Outgoing, Duration)>,
    anchor: Option<Instant>,
    /// Index of the next queued frame on the virtual clock.
    k: u32,
    emptied_at: Option<Instant>,
    /// Frames of this turn sent so far.
    sent: u32,
    /// No frame before this (stall mode), and re-anchor after it.
    not_before: Option<Instant>,
    last_sent: Option<Instant>,
}

impl DownlinkPacer {
    /// A pacer for a new turn (fresh 5-frame burst, clock unanchored).
    pub fn new_turn(mode: DownlinkMode, rng: ChaCha8Rng) -> Self {
        DownlinkPacer {
            mode,
            rng,
            burst_left: PRE_BUFFER_FRAMES,
            queue: VecDeque::new(),
            anchor: None,
            k: 0,
            emptied_at: None,
            sent: 0,
            not_before: None,
            last_sent: None,
        }
    }

    /// The same mode and random stream, for the next turn.
    pub fn next_turn(&mut self) {
        let rng = self.rng.clone();
        *self = DownlinkPacer::new_turn(self.mode, rng);
    }

    /// True when nothing waits in the queue.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Offers an item at `now`; whatever may leave now is appended to `out`.
    pub fn push(&mut self, now: Instant, item: Outgoing, out: &mut Vec<Outgoing>) {
        if self.mode == DownlinkMode::Burst {
            self.emit(now, item, out);
            return;
        }
        let in_burst = self.burst_left > 0 && self.queue.is_empty() && self.not_before.is_none();
        match item {
            Outgoing::Frame(_) if in_burst => {
                self.burst_left -= 1;
                self.emit(now, item, out);
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
        let extra = match (self.mode, &item) {
            (DownlinkMode::Jitter { max }, Outgoing::Frame(_)) if !max.is_zero() => {
                Duration::from_micros(self.rng.random_range(0..=max.as_micros() as u64))
            }
            _ => Duration::ZERO,
        };
        self.queue.push_back((item, extra));
        self.pop_due(now, out);
    }

    fn has_frames(&self) -> bool {
        self.queue.iter().any(|(i, _)| matches!(i, Outgoing::Frame(_)))
    }

    /// When the front frame may leave: its slot on the clock, plus its
    /// jitter, never before the previous frame or a stall's end.
    fn front_due(&self) -> Option<Instant> {
        match (self.queue.front(), self.anchor) {
            (Some((Outgoing::Frame(_), extra)), Some(a)) => {
                let mut due = a + PACE * self.k + *extra;
                if let Some(prev) = self.last_sent {
                    due = due.max(prev);
                }
                if let Some(nb) = self.not_before {
                    due = due.max(nb);
                }
                Some(due)
            }
            _ => None,
        }
    }

    /// When the next queued frame is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.front_due()
    }

    /// Moves everything due at `now` to `out`.
    pub fn pop_due(&mut self, now: Instant, out: &mut Vec<Outgoing>) {
        while let Some((front, _)) = self.queue.front() {
            let is_frame = matches!(front, Outgoing::Frame(_));
            if is_frame && self.front_due().is_none_or(|due| due > now) {
                break;
            }
            let Some((item, _)) = self.queue.pop_front() else { break };
            if is_frame {
                self.k += 1;
                self.emit(now, item, out);
                // "Emptied" is when the last *frame* left: a zero-duration
                // sentence marker passing through must not restart the gap.
                if !self.has_frames() {
                    self.emptied_at = Some(now);
                }
            } else {
                out.push(item);
            }
        }
    }

    /// Sends a frame (or marker) and applies the stall rule.
    fn emit(&mut self, now: Instant, item: Outgoing, out: &mut Vec<Outgoing>) {
        if matches!(item, Outgoing::Frame(_)) {
            if self.not_before.is_some_and(|nb| nb <= now) {
                // The stall is over: resume the pace from this frame.
                self.not_before = None;
                self.anchor = Some(now - PACE * self.k.saturating_sub(1));
            }
            self.sent += 1;
            self.last_sent = Some(now);
            if let DownlinkMode::Stall { after, pause } = self.mode
                && self.sent == after
            {
                self.not_before = Some(now + pause);
            }
        }
        out.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer() -> DownlinkPacer {
        DownlinkPacer::new_turn(DownlinkMode::Realtime, rand::SeedableRng::seed_from_u64(1))
    }

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
        let mut p = pacer();
        let arrivals: Vec<(u64, Outgoing)> = (0..10).map(|_| (0, frame())).collect();
        let times: Vec<u64> = schedule(&mut p, t0, &arrivals).into_iter().map(|(t, _)| t).collect();
        assert_eq!(times, vec![0, 0, 0, 0, 0, 0, 60, 120, 180, 240]);
    }

    #[test]
    fn late_sentence_reanchors_without_catch_up() {
        let t0 = Instant::now();
        let mut p = pacer();
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
        let mut p = pacer();
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
        let mut p = pacer();
        let mut arrivals: Vec<(u64, Outgoing)> = (0..7).map(|_| (0, frame())).collect();
        // Queue empties at 60 ms; next frame arrives at 100 ms (< 60 ms later): due at 120.
        arrivals.push((100, frame()));
        let sent = schedule(&mut p, t0, &arrivals);
        assert_eq!(sent.last(), Some(&(120, true)));
    }

    #[test]
    fn stall_holds_frame_n_plus_one_then_resumes_the_pace() {
        let t0 = Instant::now();
        let mode = DownlinkMode::Stall {
            after: 10,
            pause: Duration::from_millis(500),
        };
        let mut p = DownlinkPacer::new_turn(mode, rand::SeedableRng::seed_from_u64(1));
        let arrivals: Vec<(u64, Outgoing)> = (0..13).map(|_| (0, frame())).collect();
        let times: Vec<u64> = schedule(&mut p, t0, &arrivals).into_iter().map(|(t, _)| t).collect();
        // Frames 1–6 at 0, 7–10 at 60..240, 11 at 240 + 500, then 60 ms steps.
        assert_eq!(times, vec![0, 0, 0, 0, 0, 0, 60, 120, 180, 240, 740, 800, 860]);
    }

    #[test]
    fn burst_sends_everything_at_once() {
        let t0 = Instant::now();
        let mut p = DownlinkPacer::new_turn(DownlinkMode::Burst, rand::SeedableRng::seed_from_u64(1));
        let arrivals: Vec<(u64, Outgoing)> = (0..60).map(|_| (0, frame())).collect();
        assert!(schedule(&mut p, t0, &arrivals).iter().all(|(t, _)| *t == 0));
    }

    #[test]
    fn jitter_delays_frames_within_max_and_keeps_order() {
        let t0 = Instant::now();
        let max = Duration::from_millis(80);
        let mut p = DownlinkPacer::new_turn(DownlinkMode::Jitter { max }, rand::SeedableRng::seed_from_u64(9));
        let arrivals: Vec<(u64, Outgoing)> = (0..40).map(|_| (0, frame())).collect();
        let times: Vec<u64> = schedule(&mut p, t0, &arrivals).into_iter().map(|(t, _)| t).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        for (i, t) in times.iter().enumerate().skip(5) {
            let slot = 60 * (i as u64 - 5);
            assert!(*t >= slot && *t <= slot + 80 + 60, "frame {i} at {t}");
        }
        assert!(
            times.iter().skip(5).enumerate().any(|(i, t)| *t != 60 * i as u64),
            "no jitter at all"
        );
    }
}
