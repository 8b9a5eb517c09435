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
    /// What a frame arriving at a full queue meets.
    pub overflow: Overflow,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            start_threshold: 0,
            overflow: Overflow::Drop,
        }
    }
}

/// What becomes of a frame that finds the decode queue full; written
/// `drop` or `wait` (`[device] overflow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Rejected and counted (`overflow_drops`, `dropped_ms`): the audio is
    /// lost, a gap the device caused.
    #[default]
    Drop,
    /// The receiving task blocks until a slot frees (the firmware's
    /// blocking push): the frame plays after the queue, nothing is lost,
    /// and the sender is held back instead.
    Wait,
}

impl Overflow {
    /// The choice as fleet files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::Drop => "drop",
            Overflow::Wait => "wait",
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

    /// The queue's shape.
    pub fn config(&self) -> PlaybackConfig {
        self.config
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
            // A waiting frame is not in the queue yet: the peak is at most its capacity.
            let depth = self.queue_depth(now).min(self.config.queue_capacity);
            let depth = u32::try_from(depth).unwrap_or(u32::MAX);
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
        if play_end > now && self.queue_depth(now) >= self.config.queue_capacity && self.drops() {
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
        if self.pending.len() >= self.config.queue_capacity && self.drops() {
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

    /// Whether a full queue rejects the arriving frame (else it waits for a slot).
    fn drops(&self) -> bool {
        self.config.overflow == Overflow::Drop
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
#[path = "playback_tests.rs"]
mod tests;
