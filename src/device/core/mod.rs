//! The device as a sans-IO state machine (like quinn-proto or str0m): it
//! owns the connection's protocol state, the turn in progress (phase,
//! deadlines, uplink pacer, playback model, turn record) and the counters,
//! and it never touches a socket or a clock. Its shell (`super::shell`)
//! feeds it what arrived with the instant it arrived ([`DeviceCore::handle_text`],
//! [`DeviceCore::handle_binary`], [`DeviceCore::handle_gone`]), wakes it at
//! [`DeviceCore::next_deadline`] ([`DeviceCore::handle_timeout`]), and carries
//! out what [`DeviceCore::poll_output`] returns.
//!
//! The rules that keep the numbers right live here, each with a scripted
//! test: a turn's timings come only from its own answer (messages that
//! cannot belong to it are counted as stray, never turned into a latency,
//! and no latency is ever clamped); the firmware's states decide what is
//! played (PROTOCOL.md §5.4, §8.3); every failure carries its reason.

mod answers;
mod inbound;
mod link;
#[cfg(test)]
mod tests;
mod turn;
mod turn_flow;
mod udp;

pub(crate) use link::{close_failure, error_failure};
pub(crate) use turn::{TurnEnd, TurnSpec};
pub(crate) use udp::Transport;

use super::settings::DeviceSettings;
use super::trace::TurnTracer;
use crate::audio::Pacer;
use crate::audio::playback::Playback;
use crate::metrics::{Failure, Tally};
use crate::protocol::{ClientMessage, Listen, ListenMode, ProtocolVersion};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use turn::Turn;
use udp::{Opened, UdpChannel};

/// What the core asks its shell to do, or tells it.
#[derive(Debug)]
pub(crate) enum Output {
    /// Send a text frame.
    Text(String),
    /// Send a binary frame (an uplink packet).
    Binary(Bytes),
    /// Hang up (close the WebSocket).
    Close,
    /// The server hello arrived: the connection is ready for turns.
    Ready { hello: Duration },
    /// A turn ended.
    TurnEnded(Box<TurnEnd>),
    /// The connection is gone outside a turn (while waiting for the hello,
    /// or idle), and why.
    Gone(Failure),
    /// Counters to hand to the collector now (the send-lag samples reached
    /// what a device keeps; see [`Tally::is_full`]).
    Flush(Box<Tally>),
}

/// Where the connection is.
#[derive(Debug)]
enum Link {
    /// Not opened yet.
    Closed,
    /// Hello sent; waiting for the server's.
    Hello {
        sent_at: Instant,
        deadline: Instant,
        /// The last plain-text frame the server sent (PY's auth notice).
        said: Option<String>,
    },
    /// Greeted: turns may run.
    Open,
    /// Closed by either side; nothing more will happen.
    Gone,
}

/// The core's view of one virtual device on one connection at a time.
pub(crate) struct DeviceCore {
    settings: Arc<DeviceSettings>,
    /// The binary protocol version spoken: the run's, or the OTA answer's.
    version: ProtocolVersion,
    /// WebSocket, or MQTT + UDP.
    transport: Transport,
    /// The UDP audio channel of the current MQTT session (boxed: the key
    /// schedule is not carried by WebSocket devices).
    udp: Option<Box<UdpChannel>>,
    index: u32,
    link: Link,
    session_id: String,
    /// Boxed: idle devices (most of a fleet) do not carry a turn's state.
    turn: Option<Box<Turn>>,
    /// Idle-listening microphone (silence), between conversations.
    idle_mic: Option<Pacer>,
    /// The server is playing an answer to nobody's turn while idle (its
    /// no-voice goodbye): heard, neither a turn nor stray.
    idle_answer: bool,
    /// A `tts start` that could not be ours was seen: the rest of that
    /// answer (up to its `tts stop`) is stray too.
    stale_answer: bool,
    /// The realtime-mode microphone stream, which spans turns.
    stream: Option<Pacer>,
    /// When the last wake-word greeting's `tts stop` arrived.
    greeting_stop_at: Option<Instant>,
    playback: Playback,
    tracer: TurnTracer,
    pub tally: Tally,
    out: VecDeque<Output>,
}

impl DeviceCore {
    /// A device with no connection yet.
    pub fn new(settings: Arc<DeviceSettings>, index: u32, device_id: &str) -> Self {
        let on = settings.record_all || settings.record_devices.iter().any(|d| d == device_id);
        DeviceCore {
            playback: Playback::new(settings.playback),
            tracer: TurnTracer::new(on, device_id.to_string(), 0),
            version: settings.protocol_version,
            transport: Transport::WebSocket,
            udp: None,
            settings,
            index,
            link: Link::Closed,
            session_id: String::new(),
            turn: None,
            idle_mic: None,
            idle_answer: false,
            stale_answer: false,
            stream: None,
            greeting_stop_at: None,
            tally: Tally::default(),
            out: VecDeque::new(),
        }
    }

    /// Speaks `version` from the next connection on (the OTA answer's).
    pub fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// Uses `transport` from the next connection on. Over UDP the audio is
    /// raw Opus (binary protocol v1) inside the datagrams.
    pub fn set_transport(&mut self, transport: Transport) {
        self.transport = transport;
        if transport == Transport::Udp {
            self.version = ProtocolVersion::V1;
        }
    }

    /// The socket is open (upgrade done): send the hello and wait for the
    /// server's. Forgets everything about a previous connection.
    pub fn open(&mut self, now: Instant) {
        let hello = ClientMessage::Hello(self.transport.client_hello(self.version.as_u8()));
        self.out.push_back(Output::Text(hello.to_json()));
        self.link = Link::Hello {
            sent_at: now,
            deadline: now + self.settings.timeouts.hello,
            said: None,
        };
        self.session_id.clear();
        self.udp = None;
        self.turn = None;
        self.idle_mic = None;
        self.idle_answer = false;
        self.stale_answer = false;
        self.stream = None;
        self.playback = Playback::new(self.playback.config());
    }

    /// Plays through `config` from now on (the group's board).
    pub fn set_playback(&mut self, config: crate::audio::playback::PlaybackConfig) {
        self.playback = Playback::new(config);
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// True while greeted and not gone.
    pub fn is_open(&self) -> bool {
        matches!(self.link, Link::Open)
    }

    /// A new conversation: the realtime microphone stream starts afresh.
    pub fn new_conversation(&mut self) {
        self.stream = None;
        self.greeting_stop_at = None;
    }

    /// Idle in the `listening` form: `listen start` (auto) and silence
    /// until the next turn or the server's no-voice close.
    pub fn idle_listen(&mut self, now: Instant) {
        if self.is_open() && self.turn.is_none() && self.idle_mic.is_none() {
            let m = ClientMessage::Listen(Listen::start(&self.session_id, ListenMode::Auto));
            self.out.push_back(Output::Text(m.to_json()));
            self.idle_mic = Some(Pacer::new(now));
        }
    }

    /// Starts a turn (the connection must be open).
    pub fn start_turn(&mut self, now: Instant, spec: TurnSpec) {
        self.idle_mic = None;
        self.idle_answer = false;
        self.begin_turn(now, spec);
    }

    /// The run is stopping now: a turn in progress ends `cancelled`.
    pub fn cancel(&mut self, now: Instant) {
        if self.turn.is_some() {
            self.end_turn(now, crate::metrics::TurnOutcome::Cancelled, None, false);
        }
        self.idle_mic = None;
    }

    /// When the core next needs [`DeviceCore::handle_timeout`].
    pub fn next_deadline(&self) -> Option<Instant> {
        let link = match &self.link {
            Link::Hello { deadline, .. } => Some(*deadline),
            _ => None,
        };
        let idle = self.idle_mic.map(|p| p.next_deadline());
        let turn = self.turn.as_ref().and_then(|t| t.next_deadline());
        [link, idle, turn].into_iter().flatten().min()
    }

    /// Fires every deadline that is due at `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Bounded: each pass consumes one deadline; a stalled shell that
        // wakes very late sends at most this many catch-up packets at once.
        for _ in 0..10_000 {
            match self.next_deadline() {
                Some(d) if d <= now => self.fire(now),
                _ => return,
            }
        }
    }

    fn fire(&mut self, now: Instant) {
        if let Link::Hello { deadline, .. } = self.link
            && deadline <= now
        {
            let limit = self.settings.timeouts.hello;
            self.gone_outside_turn(Failure::new(
                crate::metrics::FailureKind::HelloTimeout,
                format!("no server hello within {}", humantime::format_duration(limit)),
            ));
            return;
        }
        if let Some(mic) = self.idle_mic.as_mut()
            && mic.next_deadline() <= now
        {
            let due = mic.advance();
            let silence = self.settings.silence.clone();
            self.send_audio(now, &silence, due);
            return;
        }
        self.fire_turn(now);
    }

    /// Sends one uplink packet scheduled for `due`, counting its lateness.
    fn send_audio(&mut self, now: Instant, packet: &Bytes, due: Instant) {
        let payload = match (self.transport, self.version) {
            (Transport::Udp, _) => match self.udp.as_mut() {
                Some(ch) => Bytes::from(ch.seal(packet)),
                // No channel before the hello: nothing to send on.
                None => return,
            },
            (_, ProtocolVersion::V1) => packet.clone(),
            (_, v) => crate::protocol::encode(v, packet, 0).map_or_else(|_| packet.clone(), Bytes::from),
        };
        let lag = now.saturating_duration_since(due);
        if self.settings.ramp_over.load(Ordering::Relaxed) {
            self.tally.send_lag.record(lag);
        } else {
            self.tally.ramp_send_lag.record(lag);
        }
        self.tally.frames_sent += 1;
        self.tally.bytes_sent += payload.len() as u64;
        self.out.push_back(Output::Binary(payload));
        if self.tally.is_full() {
            self.out.push_back(Output::Flush(Box::new(self.tally.take())));
        }
    }

    fn send_text(&mut self, m: ClientMessage) {
        self.out.push_back(Output::Text(m.to_json()));
    }

    /// The connection ended while no turn ran.
    fn gone_outside_turn(&mut self, failure: Failure) {
        if !matches!(self.link, Link::Gone) {
            self.link = Link::Gone;
            self.idle_mic = None;
            self.out.push_back(Output::Close);
            self.out.push_back(Output::Gone(failure));
        }
    }
}
