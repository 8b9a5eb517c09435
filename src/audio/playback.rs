//! Device-side TTS playout model: the firmware's decode queue and speaker as a
//! pure virtual clock, so the simulator can tell what a real user would hear.
//! It owns the per-turn playback accounting (underruns, sentence gaps,
//! overflow drops, queue peak, drain instant). It never sleeps nor reads the
//! clock: every call takes the `now` of its event, in non-decreasing order.
//!
//! Model, after PROTOCOL.md §8.2 (firmware 78/xiaozhi-esp32
//! `main/audio/audio_service.h`: decode queue of 2400 / 60 = 40 packets):
//! a bounded decode queue that excludes the frame being played; no jitter
//! buffer (the first frame plays at once, each next one when the previous is
//! done, for its own duration); a full queue rejects the arriving frame; no
//! catch-up after a gap (a late frame plays as soon as it arrives).
//!
//! An *underrun* is a gap after playout began: the speaker finished a frame at
//! `t` with an empty queue and the next frame arrived at `t' > t`; it lasts
//! `t' − t` (arriving exactly at `t` is no gap; silence after the last frame
//! is none either). If the late frame opens a new sentence (a `sentence_start`
//! came between the two frames) it is also a *sentence gap* (§7.2 step 4).
//!
//! Optional start threshold (not in the firmware; default 0): frames are held
//! until `start_threshold` of them (clamped to the capacity) wait, or until
//! [`Playback::stop`]; only the turn's start is delayed, with no re-buffering
//! after an underrun. The caller owns the device state (§5.4, §8.3): it feeds
//! frames only while *speaking*, calls [`Playback::start_turn`] on entering
//! *speaking*, and reads [`Playback::drained_at`] before [`Playback::finish`].

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Decode queue capacity of the firmware: 2400 ms / 60 ms (PROTOCOL.md §8.1).
pub const DEFAULT_QUEUE_CAPACITY: usize = 40;

/// Shape of the simulated device's playout path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaybackConfig {
    /// Frames that may wait in the decode queue, excluding the one playing.
    pub queue_capacity: usize,
    /// Frames to buffer before playout starts (0 = play the first frame at once).
    pub start_threshold: usize,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            start_threshold: 0,
        }
    }
}

/// What happened to one received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameFate {
    /// Started playing at the instant it arrived.
    Played,
    /// Accepted into the decode queue behind other audio.
    Queued,
    /// Rejected because the decode queue was full.
    Dropped,
}

/// One gap in playout.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnderrunSpan {
    /// When the speaker ran dry.
    #[serde(skip)]
    pub start: Instant,
    /// When the late frame arrived and playout resumed.
    #[serde(skip)]
    pub end: Instant,
    /// Offset of `start` from the turn's first played frame, in ms.
    pub at_ms: f64,
    /// `end − start`, in ms.
    pub duration_ms: f64,
    /// The late frame was the first frame of a new sentence.
    pub between_sentences: bool,
    /// Part of the gap during which the late frame had not reached the
    /// device's socket yet: the server sent it late (pacing, synthesis).
    pub server_ms: f64,
    /// Part of the gap during which the late frame had reached the socket
    /// but was held by the injected network conditions.
    pub network_ms: f64,
    /// The larger of the two parts (the server's on a tie).
    pub cause: GapCause,
}

/// Where a gap's late frame was late (STUTTER.md, "where a gap can arise").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// Already late when it reached the device's socket.
    #[default]
    Server,
    /// On time at the socket, made late by the injected network conditions.
    Network,
}

impl UnderrunSpan {
    /// Length of the gap.
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// Playback statistics of one turn (`tts start` … `tts stop`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TurnPlayback {
    /// Frames accepted (played or queued).
    pub frames: u32,
    /// Number of gaps in playout.
    pub underruns: u32,
    /// Total length of all gaps.
    pub underrun_ms: f64,
    /// Part of `underrun_ms` between one sentence's audio and the next one's.
    pub sentence_gap_ms: f64,
    /// Frames rejected by a full decode queue.
    pub overflow_drops: u32,
    /// Audio those rejected frames held: stutter caused by the device.
    pub dropped_ms: f64,
    /// Part of `underrun_ms` the server caused (frames late at the socket).
    pub server_gap_ms: f64,
    /// Part of `underrun_ms` the injected network conditions caused.
    pub network_gap_ms: f64,
    /// Peak number of frames waiting in the decode queue.
    pub max_queue_frames: u32,
    /// Sum of the durations of the accepted frames.
    pub tts_audio_ms: f64,
    /// When the first frame started playing.
    #[serde(skip)]
    pub first_play_at: Option<Instant>,
    /// Every gap, in order.
    pub underrun_spans: Vec<UnderrunSpan>,
}

impl TurnPlayback {
    /// Whether the user heard a stutter: at least one gap of at least `frame`.
    pub fn stutters(&self, frame: Duration) -> bool {
        self.underrun_spans.iter().any(|s| s.duration() >= frame)
    }
}

/// The decode queue and speaker of one simulated device.
#[derive(Clone, Debug, Default)]
pub struct Playback {
    config: PlaybackConfig,
    /// (start, end) of the frames playing or waiting, in play order.
    scheduled: VecDeque<(Instant, Instant)>,
    /// Frames (duration, sentence) held back by the start threshold.
    pending: VecDeque<(Duration, u32)>,
    /// End of all audio handed to the speaker so far.
    play_end: Option<Instant>,
    /// Sentence counter, bumped by `sentence_start`.
    sentence: u32,
    /// Sentence of the last frame handed to the speaker.
    last_sentence: u32,
    stopped: bool,
    /// When the frame being handled reached the socket.
    wire: Option<Instant>,
    stats: TurnPlayback,
}

impl Playback {
    /// An idle player with an empty queue.
    pub fn new(config: PlaybackConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// `tts start`: entering *speaking* flushes the queue and resets the turn.
    pub fn start_turn(&mut self, _now: Instant) {
        *self = Self::new(self.config);
    }

    /// `tts sentence_start`: marks a sentence boundary (for `sentence_gap_ms`).
    pub fn sentence_start(&mut self, _now: Instant) {
        self.sentence += 1;
    }

    /// A binary TTS frame of `duration` arrived at `now` while speaking
    /// (straight from the socket: no network conditions between).
    pub fn frame(&mut self, now: Instant, duration: Duration) -> FrameFate {
        self.frame_from(now, now, duration)
    }

    /// A binary TTS frame of `duration` that reached the device's socket at
    /// `wire` and the device at `now` (`wire <= now`; the difference is what
    /// the injected network conditions held it). A gap it closes is split
    /// between the server (until `wire`) and the network (after).
    pub fn frame_from(&mut self, now: Instant, wire: Instant, duration: Duration) -> FrameFate {
        self.wire = Some(wire.min(now));
        self.advance(now);
        let threshold = self.config.start_threshold.min(self.config.queue_capacity);
        let holding = threshold > 0 && !self.stopped && self.first_play_at().is_none();
        let fate = if holding {
            self.hold(now, duration, threshold)
        } else {
            self.play(now, duration)
        };
        if fate != FrameFate::Dropped {
            self.stats.frames += 1;
            self.stats.tts_audio_ms += ms(duration);
            let depth = u32::try_from(self.queue_depth(now)).unwrap_or(u32::MAX);
            self.stats.max_queue_frames = self.stats.max_queue_frames.max(depth);
        }
        fate
    }

    /// `tts stop` (or abort): no more audio for this turn. Starts playout of
    /// frames still held back by the start threshold; later frames (if the
    /// caller still feeds any) play without threshold.
    pub fn stop(&mut self, now: Instant) {
        self.stopped = true;
        if self.first_play_at().is_none() && !self.pending.is_empty() {
            self.begin_playout(now);
        }
    }

    /// Instant at which everything received so far will have finished
    /// playing (`None` while nothing has started playing).
    pub fn drained_at(&self) -> Option<Instant> {
        self.play_end
    }

    /// Instant at which playout began (first frame started playing).
    pub fn first_play_at(&self) -> Option<Instant> {
        self.stats.first_play_at
    }

    /// When the last frame handed to the speaker starts playing (`None`
    /// while frames are held back by the start threshold).
    pub fn last_play_start(&self) -> Option<Instant> {
        self.scheduled.back().map(|s| s.0)
    }

    /// Frames waiting in the decode queue at `now`, excluding the one playing.
    pub fn queue_depth(&self, now: Instant) -> usize {
        self.pending.len() + self.scheduled.iter().filter(|s| s.0 > now).count()
    }

    /// Finish the turn and return its stats; the player is reset.
    pub fn finish(&mut self) -> TurnPlayback {
        let stats = std::mem::take(&mut self.stats);
        *self = Self::new(self.config);
        stats
    }

    /// Forget frames that finished playing by `now`.
    fn advance(&mut self, now: Instant) {
        while self.scheduled.front().is_some_and(|s| s.1 <= now) {
            self.scheduled.pop_front();
        }
    }

    /// Playout has begun (or needs no threshold): play at once or queue.
    fn play(&mut self, now: Instant, duration: Duration) -> FrameFate {
        self.stats.first_play_at.get_or_insert(now);
        let play_end = self.play_end.unwrap_or(now);
        if play_end > now && self.queue_depth(now) >= self.config.queue_capacity {
            self.stats.overflow_drops += 1;
            self.stats.dropped_ms += ms(duration);
            return FrameFate::Dropped;
        }
        if now > play_end {
            self.record_underrun(play_end, now);
        }
        self.schedule(play_end.max(now), duration, self.sentence);
        self.fate_of_last(now)
    }

    /// Start threshold not reached yet: buffer, and start playout when it is.
    fn hold(&mut self, now: Instant, duration: Duration, threshold: usize) -> FrameFate {
        if self.pending.len() >= self.config.queue_capacity {
            self.stats.overflow_drops += 1;
            self.stats.dropped_ms += ms(duration);
            return FrameFate::Dropped;
        }
        self.pending.push_back((duration, self.sentence));
        if self.pending.len() < threshold {
            return FrameFate::Queued;
        }
        self.begin_playout(now);
        self.fate_of_last(now)
    }

    /// Whether the last frame handed to the speaker starts at `now`.
    fn fate_of_last(&self, now: Instant) -> FrameFate {
        match self.scheduled.back() {
            Some(s) if s.0 > now => FrameFate::Queued,
            _ => FrameFate::Played,
        }
    }

    /// Hand every buffered frame to the speaker, the first one at `now`.
    fn begin_playout(&mut self, now: Instant) {
        self.stats.first_play_at = Some(now);
        let mut at = now;
        while let Some((duration, sentence)) = self.pending.pop_front() {
            at = self.schedule(at, duration, sentence);
        }
    }

    /// Play a frame from `start`; returns its end.
    fn schedule(&mut self, start: Instant, duration: Duration, sentence: u32) -> Instant {
        let end = start + duration;
        self.scheduled.push_back((start, end));
        self.play_end = Some(end);
        self.last_sentence = sentence;
        end
    }

    /// The speaker was silent from `start` until a frame arrived at `end`.
    fn record_underrun(&mut self, start: Instant, end: Instant) {
        let gap = end.saturating_duration_since(start);
        let between_sentences = self.sentence != self.last_sentence;
        self.stats.underruns += 1;
        self.stats.underrun_ms += ms(gap);
        if between_sentences {
            self.stats.sentence_gap_ms += ms(gap);
        }
        // Until the frame reached the socket the server was late; after, the network.
        let server = self
            .wire
            .unwrap_or(end)
            .clamp(start, end)
            .saturating_duration_since(start);
        let network = gap - server;
        self.stats.server_gap_ms += ms(server);
        self.stats.network_gap_ms += ms(network);
        let cause = if network > server {
            GapCause::Network
        } else {
            GapCause::Server
        };
        let first = self.stats.first_play_at.unwrap_or(start);
        self.stats.underrun_spans.push(UnderrunSpan {
            start,
            end,
            at_ms: ms(start.saturating_duration_since(first)),
            duration_ms: ms(gap),
            between_sentences,
            server_ms: ms(server),
            network_ms: ms(network),
            cause,
        });
    }
}

/// Milliseconds as f64 (exact for whole milliseconds, so sums of them are too).
fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(60);

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn with(queue_capacity: usize, start_threshold: usize) -> (Playback, Instant) {
        let t0 = Instant::now();
        let mut p = Playback::new(PlaybackConfig {
            queue_capacity,
            start_threshold,
        });
        p.start_turn(t0);
        (p, t0)
    }

    fn burst(p: &mut Playback, at: Instant, n: usize) -> Vec<FrameFate> {
        (0..n).map(|_| p.frame(at, FRAME)).collect()
    }

    /// PY pacing (PROTOCOL.md §7.2): frames 1–6 at `start`, then one every 60 ms.
    fn py_paced(p: &mut Playback, start: Instant, frames: u32) {
        for k in 0..frames {
            let at = start + FRAME * k.saturating_sub(5);
            assert_ne!(p.frame(at, FRAME), FrameFate::Dropped);
        }
    }

    #[test]
    fn realtime_pacing_has_no_underrun_or_drop() {
        let (mut p, t0) = with(40, 0);
        py_paced(&mut p, t0, 46);
        assert_eq!(p.drained_at(), Some(t0 + d(46 * 60)));
        let s = p.finish();
        assert_eq!((s.underruns, s.overflow_drops, s.frames), (0, 0, 46));
        assert_eq!((s.underrun_ms, s.tts_audio_ms), (0.0, 2760.0));
    }

    #[test]
    fn five_frame_burst_is_neither_underrun_nor_overflow() {
        let (mut p, t0) = with(40, 0);
        let (play, q) = (FrameFate::Played, FrameFate::Queued);
        assert_eq!(burst(&mut p, t0, 6), [play, q, q, q, q, q]);
        assert_eq!(p.queue_depth(t0), 5);
        for k in 1..=20 {
            assert_eq!(p.frame(t0 + FRAME * k, FRAME), FrameFate::Queued);
            assert_eq!(p.queue_depth(t0 + FRAME * k), 5);
        }
        let s = p.finish();
        assert_eq!((s.underruns, s.overflow_drops), (0, 0));
        assert_eq!(s.max_queue_frames, 5);
    }

    #[test]
    fn stall_after_ten_frames_gives_one_underrun_of_stall_minus_buffered() {
        let (mut p, t0) = with(40, 0);
        py_paced(&mut p, t0, 10);
        let tenth = t0 + d(4 * 60);
        assert_eq!(p.drained_at().map(|end| end - tenth), Some(d(360)));
        let resume = tenth + d(500);
        for k in 0..10 {
            assert_eq!(p.frame(resume + FRAME * k, FRAME), FrameFate::Played);
        }
        let s = p.finish();
        assert_eq!((s.underruns, s.sentence_gap_ms), (1, 0.0));
        assert_eq!(s.underrun_ms, (500 - 360) as f64);
        let span = &s.underrun_spans[0];
        assert_eq!((span.duration(), span.at_ms), (d(140), 600.0));
        assert!(!span.between_sentences);
        let json = serde_json::to_value(&s).unwrap_or_default();
        assert_eq!(json["underrun_spans"][0]["duration_ms"], 140.0);
        assert!(json.get("first_play_at").is_none());
        assert!(json["underrun_spans"][0].get("start").is_none());
    }

    #[test]
    fn burst_larger_than_queue_drops_m_minus_41() {
        for (m, drops) in [(60, 19), (41, 0)] {
            let (mut p, t0) = with(40, 0);
            burst(&mut p, t0, m);
            let s = p.finish();
            assert_eq!((s.overflow_drops, s.frames, s.underruns), (drops, 41, 0));
            assert_eq!(s.max_queue_frames, 40);
        }
    }

    #[test]
    fn late_second_sentence_counts_as_sentence_gap() {
        let (mut p, t0) = with(40, 0);
        p.sentence_start(t0);
        py_paced(&mut p, t0, 20);
        let due = t0 + d(15 * 60);
        assert_eq!(p.drained_at().map(|end| end - due), Some(d(300)));
        let late = due + d(800);
        p.sentence_start(late);
        for k in 0..20 {
            p.frame(late + FRAME * k, FRAME);
        }
        p.stop(late + d(20 * 60 + 420));
        let s = p.finish();
        assert_eq!((s.underruns, s.sentence_gap_ms), (1, (800 - 300) as f64));
        assert_eq!(s.underrun_ms, s.sentence_gap_ms);
        assert!(s.underrun_spans[0].between_sentences);
    }

    #[test]
    fn zero_gap_is_not_underrun() {
        let (mut p, t0) = with(40, 0);
        assert_eq!(p.frame(t0, FRAME), FrameFate::Played);
        assert_eq!(p.frame(t0 + FRAME, FRAME), FrameFate::Played);
        let s = p.finish();
        assert_eq!((s.underruns, s.underrun_spans.len()), (0, 0));
    }

    #[test]
    fn frames_dropped_after_queue_full_are_counted() {
        let (mut p, t0) = with(3, 0);
        assert!(!burst(&mut p, t0, 4).contains(&FrameFate::Dropped));
        assert_eq!(p.frame(t0, FRAME), FrameFate::Dropped);
        assert_eq!(p.frame(t0 + FRAME, FRAME), FrameFate::Queued);
        assert_eq!(p.frame(t0 + FRAME, FRAME), FrameFate::Dropped);
        let s = p.finish();
        assert_eq!((s.overflow_drops, s.frames, s.tts_audio_ms), (2, 5, 300.0));
    }

    #[test]
    fn start_turn_flushes_queue() {
        let (mut p, t0) = with(40, 0);
        burst(&mut p, t0, 10);
        p.start_turn(t0 + d(100));
        assert_eq!((p.drained_at(), p.first_play_at()), (None, None));
        assert_eq!(p.queue_depth(t0 + d(100)), 0);
        assert_eq!(p.frame(t0 + d(200), FRAME), FrameFate::Played);
        assert_eq!(p.drained_at(), Some(t0 + d(260)));
        let s = p.finish();
        assert_eq!((s.frames, s.underruns), (1, 0));
    }

    #[test]
    fn stutter_needs_a_full_frame_of_silence() {
        let (mut p, t0) = with(40, 0);
        p.frame(t0, FRAME);
        p.frame(t0 + d(119), FRAME);
        let s = p.clone().finish();
        assert_eq!((s.underruns, s.underrun_ms), (1, 59.0));
        assert!(!s.stutters(FRAME));
        p.frame(t0 + d(179 + 60), FRAME);
        let s = p.finish();
        assert_eq!((s.underruns, s.underrun_ms), (2, 119.0));
        assert!(s.stutters(FRAME));
    }

    #[test]
    fn max_queue_frames_tracks_peak() {
        let (mut p, t0) = with(40, 0);
        burst(&mut p, t0, 8);
        assert_eq!(p.queue_depth(t0 + d(120)), 5);
        assert_eq!(p.queue_depth(t0 + d(479)), 0);
        p.frame(t0 + d(300), FRAME);
        assert_eq!(p.queue_depth(t0 + d(300)), 3);
        assert_eq!(p.finish().max_queue_frames, 7);
    }

    #[test]
    fn drained_at_is_end_of_last_frame() {
        let (mut p, t0) = with(40, 0);
        assert_eq!(p.drained_at(), None);
        p.frame(t0, FRAME);
        p.frame(t0, d(20));
        assert_eq!(p.drained_at(), Some(t0 + d(80)));
        p.frame(t0 + d(200), d(40));
        p.stop(t0 + d(200));
        assert_eq!(p.drained_at(), Some(t0 + d(240)));
        let s = p.finish();
        assert_eq!((s.underruns, s.underrun_ms), (1, 120.0));
        assert_eq!(s.tts_audio_ms, 120.0);
    }

    #[test]
    fn start_threshold_delays_playout() {
        let (mut p, t0) = with(40, 3);
        assert_eq!(p.frame(t0, FRAME), FrameFate::Queued);
        assert_eq!(p.frame(t0 + d(10), FRAME), FrameFate::Queued);
        assert_eq!((p.first_play_at(), p.drained_at()), (None, None));
        assert_eq!(p.queue_depth(t0 + d(10)), 2);
        assert_eq!(p.frame(t0 + d(20), FRAME), FrameFate::Queued);
        assert_eq!(p.first_play_at(), Some(t0 + d(20)));
        assert_eq!(p.drained_at(), Some(t0 + d(200)));
        assert_eq!(p.queue_depth(t0 + d(20)), 2);
        // Fewer frames than the threshold: `tts stop` starts playout.
        let (mut p, t0) = with(40, 5);
        burst(&mut p, t0, 2);
        p.stop(t0 + d(100));
        assert_eq!(p.first_play_at(), Some(t0 + d(100)));
        assert_eq!(p.drained_at(), Some(t0 + d(220)));
        // Threshold 1 behaves like the firmware.
        let (mut p, t0) = with(40, 1);
        assert_eq!(p.frame(t0, FRAME), FrameFate::Played);
    }

    #[test]
    fn a_gap_is_split_between_server_and_network_at_the_socket_instant() {
        let (mut p, t0) = with(40, 0);
        p.frame(t0, FRAME);
        // Speaker dry at 60; the frame reached the socket at 100, the device at 160.
        p.frame_from(t0 + d(160), t0 + d(100), FRAME);
        // Dry at 220; on time at the socket (200), held by the network until 300.
        p.frame_from(t0 + d(300), t0 + d(200), FRAME);
        // Dry at 360; straight from the socket at 400: all the server's.
        p.frame(t0 + d(400), FRAME);
        let s = p.finish();
        assert_eq!((s.underruns, s.underrun_ms), (3, 220.0));
        assert_eq!((s.server_gap_ms, s.network_gap_ms), (80.0, 140.0));
        let parts: Vec<_> = s
            .underrun_spans
            .iter()
            .map(|u| (u.server_ms, u.network_ms, u.cause))
            .collect();
        assert_eq!(
            parts,
            [
                (40.0, 60.0, GapCause::Network),
                (0.0, 80.0, GapCause::Network),
                (40.0, 0.0, GapCause::Server),
            ]
        );
    }

    #[test]
    fn frames_a_full_queue_rejects_count_as_audio_the_device_dropped() {
        let (mut p, t0) = with(2, 0);
        let fates = burst(&mut p, t0, 5);
        assert_eq!(fates.iter().filter(|f| **f == FrameFate::Dropped).count(), 2);
        let s = p.finish();
        assert_eq!((s.overflow_drops, s.dropped_ms), (2, 120.0));
        assert_eq!((s.server_gap_ms, s.network_gap_ms), (0.0, 0.0));
    }
}
