//! End-of-utterance detection as the real server's VAD does it, as a pure
//! function of packet arrivals (PROTOCOL.md §4.2, §9.2).
//!
//! Each uplink packet is voiced or silent by the shared rule in
//! [`crate::audio::voice`]. The utterance ends on the arrival of the first
//! packet that comes `window` or more after the last voiced packet
//! (wall-clock, like PY). Before voice, only the last 10 packets are kept as
//! pre-roll; an utterance of `min_frames` packets or fewer (pre-roll +
//! speech + trailing silence) is discarded without an answer. In manual mode
//! every packet counts as voice and only `listen stop` ends the utterance.

use std::time::Duration;
use tokio::time::Instant;

/// Pre-roll packets kept before voice starts (PY: 10).
const PREROLL: u32 = 10;

/// What a packet (or `listen stop`) decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VadDecision {
    /// Keep listening.
    Continue,
    /// An utterance of this many packets ended: answer it.
    Utterance(u32),
    /// An utterance ended but was too short: no answer (PY says nothing).
    TooShort(u32),
}

/// Per-connection VAD state.
#[derive(Clone, Debug)]
pub struct Vad {
    window: Duration,
    min_frames: u32,
    manual: bool,
    preroll: u32,
    active: bool,
    frames: u32,
    last_voice_at: Option<Instant>,
}

impl Vad {
    pub fn new(window: Duration, min_frames: u32) -> Self {
        Vad {
            window,
            min_frames,
            manual: false,
            preroll: 0,
            active: false,
            frames: 0,
            last_voice_at: None,
        }
    }

    /// `listen start`: clears buffers; `manual` bypasses the VAD.
    pub fn reset(&mut self, manual: bool) {
        *self = Vad {
            manual,
            ..Vad::new(self.window, self.min_frames)
        };
    }

    /// True while an utterance is being collected.
    pub fn in_utterance(&self) -> bool {
        self.active
    }

    /// A packet arrived at `now`.
    pub fn packet(&mut self, now: Instant, voiced: bool) -> VadDecision {
        self.step(now, voiced, true)
    }

    /// A packet arrived inside the wake-word mute (PROTOCOL.md §13.1): the
    /// VAD still tracks voice and silence, but the audio is discarded, so
    /// it adds nothing to the utterance (not even pre-roll).
    pub fn muted_packet(&mut self, now: Instant, voiced: bool) -> VadDecision {
        self.step(now, voiced, false)
    }

    fn step(&mut self, now: Instant, voiced: bool, kept: bool) -> VadDecision {
        let kept = u32::from(kept);
        if self.manual || voiced {
            if !self.active {
                self.active = true;
                self.frames = self.preroll * kept;
            }
            self.frames += kept;
            self.last_voice_at = Some(now);
            return VadDecision::Continue;
        }
        match self.last_voice_at.filter(|_| self.active) {
            None => {
                self.preroll = (self.preroll + kept).min(PREROLL);
                VadDecision::Continue
            }
            Some(last) => {
                self.frames += kept;
                if now.saturating_duration_since(last) >= self.window {
                    self.finish()
                } else {
                    VadDecision::Continue
                }
            }
        }
    }

    /// `listen stop`: ends the utterance now, whatever was heard.
    pub fn force_end(&mut self) -> VadDecision {
        if self.active {
            self.finish()
        } else {
            VadDecision::Continue
        }
    }

    fn finish(&mut self) -> VadDecision {
        let frames = self.frames;
        let manual = self.manual;
        self.reset(manual);
        if frames > self.min_frames {
            VadDecision::Utterance(frames)
        } else {
            VadDecision::TooShort(frames)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Duration = Duration::from_millis(60);

    fn feed(vad: &mut Vad, t0: Instant, pattern: &[bool]) -> Vec<(usize, VadDecision)> {
        pattern
            .iter()
            .enumerate()
            .map(|(i, &v)| (i, vad.packet(t0 + F * i as u32, v)))
            .filter(|(_, d)| *d != VadDecision::Continue)
            .collect()
    }

    #[test]
    fn utterance_ends_on_first_packet_window_after_last_voice() {
        let mut vad = Vad::new(Duration::from_millis(300), 15);
        let mut p = vec![true; 20];
        p.extend([false; 10]);
        // Last voice at index 19 (1140 ms); first packet ≥ 300 ms later is index 24.
        assert_eq!(
            feed(&mut vad, Instant::now(), &p),
            vec![(24, VadDecision::Utterance(25))]
        );
    }

    #[test]
    fn preroll_counts_up_to_ten_packets() {
        let mut vad = Vad::new(Duration::from_millis(300), 15);
        let mut p = vec![false; 30];
        p.extend([true; 5]);
        p.extend([false; 5]);
        // 10 pre-roll + 5 voice + 5 silence = 20 > 15.
        assert_eq!(
            feed(&mut vad, Instant::now(), &p),
            vec![(39, VadDecision::Utterance(20))]
        );
    }

    #[test]
    fn short_utterance_gets_no_answer() {
        let mut vad = Vad::new(Duration::from_millis(300), 15);
        let mut p = vec![true; 5];
        p.extend([false; 6]);
        // Last voice at 240 ms; the packet at 540 ms ends it: 5 voiced + 5 silent.
        assert_eq!(feed(&mut vad, Instant::now(), &p), vec![(9, VadDecision::TooShort(10))]);
    }

    #[test]
    fn pauses_shorter_than_the_window_do_not_end_speech() {
        let mut vad = Vad::new(Duration::from_millis(300), 15);
        let mut p = vec![true; 10];
        p.extend([false; 4]);
        p.extend([true; 10]);
        assert!(feed(&mut vad, Instant::now(), &p).is_empty());
        assert!(vad.in_utterance());
    }

    #[test]
    fn muted_packets_track_voice_but_add_no_audio() {
        let mut vad = Vad::new(Duration::from_millis(300), 15);
        let t0 = Instant::now();
        // 20 voiced packets, the first 12 inside the mute, then silence.
        let mut d = Vec::new();
        for i in 0..30u32 {
            let now = t0 + F * i;
            let voiced = i < 20;
            d.push(if i < 12 {
                vad.muted_packet(now, voiced)
            } else {
                vad.packet(now, voiced)
            });
        }
        // 8 kept voiced + 5 silent packets up to the end: too short (≤ 15).
        assert_eq!(d[24], VadDecision::TooShort(13));
    }

    #[test]
    fn manual_mode_ends_only_on_listen_stop() {
        let mut vad = Vad::new(Duration::from_millis(300), 15);
        vad.reset(true);
        assert!(feed(&mut vad, Instant::now(), &[false; 40]).is_empty());
        assert_eq!(vad.force_end(), VadDecision::Utterance(40));
        assert_eq!(vad.force_end(), VadDecision::Continue);
    }
}
