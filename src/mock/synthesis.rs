//! The TTS provider's pace, as a pure struct driven by `now`: when each
//! frame of a sentence has been synthesised and may enter the downlink
//! pacer ([`super::pacing`]).
//!
//! A real-time factor (`tts_rtf`) is audio produced per unit of synthesis
//! time: at 0.8 a 60 ms frame takes 75 ms to make. A streaming provider
//! hands each frame over as soon as it is made, and synthesises one
//! sentence after another: a sentence starts when it is ready (the LLM
//! handed it over) or when the previous one is finished, whichever is
//! later. Its `sentence_start` goes out when its synthesis starts; frame
//! `k` after `k + 1` frames' worth of synthesis. At 1 or more the provider
//! is never the bottleneck and a sentence's frames are all there when it
//! is ready (the mock's behaviour without a factor).

use super::pacing::{Outgoing, PACE};
use crate::protocol::packet_duration;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// How long synthesising `audio` takes at real-time factor `rtf` (`None`:
/// no time, the factor is 1 or more).
pub fn synthesis_time(audio: Duration, rtf: f64) -> Option<Duration> {
    (rtf > 0.0 && rtf < 1.0).then(|| Duration::from_nanos((audio.as_nanos() as f64 / rtf).round() as u64))
}

/// One connection's synthesis queue; cleared when an answer is cut.
#[derive(Debug)]
pub struct Synthesis {
    rtf: f64,
    /// When the sentence being synthesised is finished.
    busy_until: Option<Instant>,
    /// Items with the instant they are available, in order.
    queue: VecDeque<(Instant, Outgoing)>,
}

impl Synthesis {
    /// A provider at real-time factor `rtf` (1 or more: instant).
    pub fn new(rtf: f64) -> Self {
        Synthesis {
            rtf,
            busy_until: None,
            queue: VecDeque::new(),
        }
    }

    /// A sentence ready at `ready`: schedules its `sentence_start` and frames.
    pub fn sentence(&mut self, ready: Instant, text: String, frames: &[Bytes]) {
        let start = self.busy_until.map_or(ready, |b| b.max(ready));
        self.queue.push_back((start, Outgoing::SentenceStart(text)));
        let mut at = start;
        for f in frames {
            let audio = packet_duration(f).unwrap_or(PACE);
            if let Some(took) = synthesis_time(audio, self.rtf) {
                at += took;
            }
            self.queue.push_back((at, Outgoing::Frame(f.clone())));
        }
        self.busy_until = Some(at);
    }

    /// When the next item becomes available, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.front().map(|(at, _)| *at)
    }

    /// Moves every item available at `now` to `out`, in order.
    pub fn pop_due(&mut self, now: Instant, out: &mut Vec<Outgoing>) {
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, item)) = self.queue.pop_front() {
                out.push(item);
            }
        }
    }

    /// True when nothing is left to synthesise.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// The answer was cut (abort, barge-in, a fault): forget its sentences.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.busy_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 60 ms Opus packet (TOC config 11: SILK wideband 60 ms, one frame).
    fn frame() -> Bytes {
        Bytes::from_static(&[0x58, 0x00])
    }

    /// Available instants (ms after `t0`) and whether each is a frame.
    fn drain(s: &mut Synthesis, t0: Instant) -> Vec<(u64, bool)> {
        let mut got = Vec::new();
        for _ in 0..1000 {
            let Some(at) = s.next_deadline() else { break };
            let mut out = Vec::new();
            s.pop_due(at, &mut out);
            for o in out {
                got.push(((at - t0).as_millis() as u64, matches!(o, Outgoing::Frame(_))));
            }
        }
        got
    }

    #[test]
    fn each_frame_takes_frame_over_rtf_to_make() {
        assert_eq!(packet_duration(&frame()).unwrap(), PACE);
        assert_eq!(synthesis_time(PACE, 0.8), Some(Duration::from_millis(75)));
        assert_eq!(synthesis_time(PACE, 0.5), Some(Duration::from_millis(120)));
        assert_eq!(synthesis_time(PACE, 1.0), None);
        assert_eq!(synthesis_time(PACE, 2.0), None);
    }

    #[test]
    fn frames_stream_one_per_75_ms_at_rtf_0_8() {
        let t0 = Instant::now();
        let mut s = Synthesis::new(0.8);
        s.sentence(t0, "one".into(), &[frame(), frame(), frame()]);
        assert_eq!(
            drain(&mut s, t0),
            vec![(0, false), (75, true), (150, true), (225, true)]
        );
        assert!(s.is_idle());
    }

    #[test]
    fn a_sentence_ready_early_waits_for_the_previous_one() {
        let t0 = Instant::now();
        let mut s = Synthesis::new(0.8);
        s.sentence(t0, "one".into(), &[frame(), frame()]);
        // Ready at 100 ms, but the provider is busy with sentence 1 until 150 ms.
        s.sentence(t0 + Duration::from_millis(100), "two".into(), &[frame()]);
        // Ready at 500 ms, after the provider went idle: starts then.
        s.sentence(t0 + Duration::from_millis(500), "three".into(), &[frame()]);
        assert_eq!(
            drain(&mut s, t0),
            vec![
                (0, false),
                (75, true),
                (150, true),
                (150, false),
                (225, true),
                (500, false),
                (575, true)
            ]
        );
    }

    #[test]
    fn at_rtf_one_or_more_a_sentence_is_all_there_when_ready() {
        let t0 = Instant::now();
        for rtf in [1.0, 1.5] {
            let mut s = Synthesis::new(rtf);
            s.sentence(t0 + Duration::from_millis(40), "one".into(), &[frame(), frame()]);
            assert_eq!(
                drain(&mut s, t0),
                vec![(40, false), (40, true), (40, true)],
                "rtf {rtf}"
            );
        }
    }

    #[test]
    fn clearing_forgets_the_queue_and_the_busy_provider() {
        let t0 = Instant::now();
        let mut s = Synthesis::new(0.8);
        s.sentence(t0, "one".into(), &[frame(), frame()]);
        let mut out = Vec::new();
        s.pop_due(t0 + Duration::from_millis(80), &mut out);
        assert_eq!(out.len(), 2);
        s.clear();
        assert!(s.is_idle() && s.next_deadline().is_none());
        let t1 = t0 + Duration::from_millis(90);
        s.sentence(t1, "next".into(), &[frame()]);
        assert_eq!(drain(&mut s, t0), vec![(90, false), (165, true)]);
    }
}
