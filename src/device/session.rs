//! A device's life, as the load driver asks for it: connect (or not) while
//! idle, hold conversations (an optional wake-word greeting, then turns),
//! and reconnect like the firmware when the server or the network takes
//! the connection away mid-conversation (the next button press opens a new
//! connection and the conversation goes on), after a jittered, bounded
//! backoff. Every turn that was due is started and counted: a turn that
//! cannot get a connection fails with the reason.
//!
//! The protocol itself is the pure [`DeviceCore`]; this module only
//! sequences it and owns the socket through [`pump`].

use super::core::{DeviceCore, TurnEnd, TurnSpec};
use super::mqtt::MqttLink;
use super::netlink::NetLink;
use super::ota::{self, Endpoint};
use super::settings::DeviceSettings;
use super::shell::{Pumped, pump};
use super::socket::Socket;
use crate::audio::Clip;
use crate::config::{GroupPlan, IdleForm, StartBy};
use crate::metrics::collector::EventSender;
use crate::metrics::{Event, Failure, FailureKind, Tally, TurnOutcome, TurnRecord};
use crate::protocol::{DeviceIdentity, ListenMode};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod open;

/// Shortest and longest time into an answer before a barge-in `abort`.
const BARGE_IN_AFTER: (Duration, Duration) = (Duration::from_millis(500), Duration::from_millis(2000));
/// Reconnect backoff: the first wait, and the most it grows to.
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A group's behaviour plus its resolved clips.
#[derive(Debug)]
pub struct GroupRun {
    pub plan: GroupPlan,
    pub clips: Vec<Arc<Clip>>,
}

/// What the load driver asks of a device.
#[derive(Debug)]
pub enum Command {
    /// Hold a conversation of `turns` turns (`None`: until `until` is cancelled).
    Converse {
        turns: Option<u32>,
        until: CancellationToken,
    },
    /// Close and end.
    Stop,
}

/// What a device tells the load driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    TurnEnded(u32),
    ConversationEnded(u32),
    /// The device has started: connected (or failed to) when it idles
    /// connected, at once when it idles disconnected. The ramp is over
    /// when every device has said so.
    Settled {
        index: u32,
        connected: bool,
    },
}

/// One device's own inputs.
pub struct DeviceContext {
    pub index: u32,
    pub identity: DeviceIdentity,
    pub rng: ChaCha8Rng,
    pub settings: Arc<DeviceSettings>,
    pub group: Arc<GroupRun>,
    pub events: EventSender,
    pub notes: mpsc::Sender<Note>,
    pub commands: mpsc::Receiver<Command>,
    /// Cancelled when no new turn may start (run over): idle devices leave.
    pub no_new_turns: CancellationToken,
    /// Cancelled when everything must stop now (grace over, Ctrl-C).
    pub cancel: CancellationToken,
}

/// The wait before reconnect attempt `attempt` (1, 2, …): doubling from
/// [`BACKOFF_FIRST`] up to [`BACKOFF_MAX`], with "equal jitter" (half
/// fixed, half uniform) so a fleet that lost its server does not come back
/// in lock-step.
pub(crate) fn backoff(attempt: u32, rng: &mut impl Rng) -> Duration {
    let doubled = BACKOFF_FIRST.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let cap = doubled.min(BACKOFF_MAX);
    cap / 2 + cap.mul_f64(rng.random_range(0.0..0.5))
}

/// A device: its core, its socket when connected, its counters.
struct Device {
    ctx: DeviceContext,
    core: DeviceCore,
    ws: Option<Socket>,
    /// Where the OTA answer sent this device (`None`: not checked yet, or
    /// no OTA: the run's URL).
    endpoint: Option<Endpoint>,
    /// The lifelong MQTT control channel (MQTT + UDP devices), while no
    /// conversation holds it.
    mqtt: Option<Box<MqttLink>>,
    /// The connection's injected network conditions (`None`: a perfect link).
    net: Option<Box<NetLink>>,
    /// Connections opened so far (each link's draws are seeded by its number).
    connections: u32,
    /// The last connection was taken away (not hung up by the device).
    lost: bool,
    conversation: u32,
}

/// Runs one device to the end. Never panics on server behaviour: every
/// problem becomes a failed turn (or a counted idle close).
pub fn run_device(ctx: DeviceContext) -> impl Future<Output = ()> {
    // Not an `async fn`, and the device borrowed in place rather than moved
    // into `run`: a moved value is stored twice in the task (the capture
    // and the local), ~1 KiB more per device.
    let mut core = DeviceCore::new(ctx.settings.clone(), ctx.index, &ctx.identity.device_id);
    core.set_playback(ctx.group.plan.playback);
    let mut device = Device {
        ctx,
        core,
        ws: None,
        endpoint: None,
        mqtt: None,
        net: None,
        connections: 0,
        lost: false,
        conversation: 0,
    };
    async move { device.run().await }
}

impl Device {
    async fn run(&mut self) {
        let mut connected = false;
        if self.ctx.group.plan.idle != IdleForm::Disconnected {
            match self.connect().await {
                Ok(()) => connected = true,
                Err(f) => self.ctx.events.send(Event::ConnectFailed(f)),
            }
        }
        let index = self.ctx.index;
        let _ = self.ctx.notes.send(Note::Settled { index, connected }).await;
        while let Some(Command::Converse { turns, until }) = self.idle().await {
            self.converse(turns, &until).await;
            let _ = self.ctx.notes.send(Note::ConversationEnded(index)).await;
            self.conversation += 1;
        }
        self.hang_up().await;
    }

    /// The OTA version check, once (until it succeeds) before connecting,
    /// when the run has an OTA URL: the answer's token and protocol version
    /// become this device's.
    async fn check_ota(&mut self) -> Result<(), Failure> {
        let Some(client) = self.ctx.settings.ota.as_ref() else {
            return Ok(());
        };
        if self.endpoint.is_some() {
            return Ok(());
        }
        let limit = self.ctx.settings.timeouts.hello;
        // Boxed: the check (activation loop included) is needed once.
        let checked = tokio::select! {
            r = Box::pin(ota::check(client, &self.ctx.identity, limit)) => r,
            _ = self.ctx.cancel.cancelled() => return Err(Failure::new(FailureKind::Ota, "cancelled")),
        };
        let index = self.ctx.index;
        let checked = match checked {
            Ok(c) => c,
            Err(r) => {
                tracing::debug!(device = %self.ctx.identity.device_id, detail = %r.failure.detail, "OTA check failed");
                let code = r.waiting.map(String::into_boxed_str);
                self.ctx.events.send(Event::Activation { index, code });
                return Err(r.failure);
            }
        };
        self.ctx.events.send(Event::Activation { index, code: None });
        self.ctx.events.send(Event::OtaChecked(checked.took));
        let endpoint = checked.endpoint;
        if endpoint.token.is_some() {
            self.ctx.identity.token = endpoint.token.clone();
        }
        if let Some(v) = endpoint.version {
            self.core.set_protocol_version(v);
        }
        self.endpoint = Some(endpoint);
        Ok(())
    }

    /// Opens and greets a connection (after the OTA check, if any).
    async fn connect(&mut self) -> Result<(), Failure> {
        self.check_ota().await?;
        let (mut ws, connect) = self.open().await?;
        self.net = self.link_for(&ws);
        self.core.open(Instant::now());
        match pump(
            &mut self.core,
            &mut ws,
            self.net.as_deref_mut(),
            &self.ctx.cancel,
            &self.ctx.events,
            std::future::pending::<()>(),
        )
        .await
        {
            Pumped::Ready { hello } => {
                tracing::debug!(device = %self.ctx.identity.device_id, "connected");
                self.ctx.events.send(Event::Connected {
                    connect,
                    hello,
                    reconnect: std::mem::take(&mut self.lost),
                });
                self.ctx.events.connected(1);
                self.ws = Some(ws);
                Ok(())
            }
            Pumped::Gone(f) => {
                tracing::debug!(device = %self.ctx.identity.device_id, kind = f.kind.as_str(), detail = %f.detail, "hello failed");
                self.park(ws);
                Err(f)
            }
            _ => Err(Failure::new(FailureKind::Connect, "cancelled")),
        }
    }

    /// Forgets the connection (already closed or dead), flushing counters.
    fn drop_connection(&mut self, lost: bool) {
        if let Some(ws) = self.ws.take() {
            self.park(ws);
            self.ctx.events.connected(-1);
            self.lost |= lost;
        }
        if !self.core.tally.is_empty() {
            self.ctx.events.send(Event::Flush(self.core.tally.take()));
        }
    }

    async fn hang_up(&mut self) {
        // Closed in place (not moved into this future, which would double
        // the task's size for a socket it already holds).
        if let Some(ws) = self.ws.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(1), futures_util::SinkExt::close(ws)).await;
            if let Some(ws) = self.ws.take() {
                self.park(ws);
            }
            self.ctx.events.connected(-1);
        }
        if !self.core.tally.is_empty() {
            self.ctx.events.send_last(Event::Flush(self.core.tally.take())).await;
        }
    }

    /// Idles until a command arrives (`None`: the run is over for this device).
    async fn idle(&mut self) -> Option<Command> {
        loop {
            let Some(ws) = self.ws.as_mut() else {
                return tokio::select! {
                    cmd = self.ctx.commands.recv() => cmd,
                    _ = self.ctx.no_new_turns.cancelled() => None,
                    _ = self.ctx.cancel.cancelled() => None,
                };
            };
            if self.ctx.group.plan.idle == IdleForm::Listening {
                self.core.idle_listen(Instant::now());
            }
            let (commands, no_new_turns) = (&mut self.ctx.commands, &self.ctx.no_new_turns);
            let wait = async move {
                tokio::select! {
                    cmd = commands.recv() => cmd,
                    _ = no_new_turns.cancelled() => None,
                }
            };
            let net = self.net.as_deref_mut();
            match pump(&mut self.core, ws, net, &self.ctx.cancel, &self.ctx.events, wait).await {
                Pumped::Extra(cmd) => return cmd,
                Pumped::Gone(f) => {
                    tracing::debug!(device = %self.ctx.identity.device_id, detail = %f.detail, "idle connection closed by the server");
                    self.ctx.events.send(Event::IdleClosed);
                    self.drop_connection(true);
                }
                _ => return None,
            }
        }
    }

    fn stopping(&self, until: &CancellationToken) -> bool {
        until.is_cancelled() || self.ctx.no_new_turns.is_cancelled() || self.ctx.cancel.is_cancelled()
    }

    /// A conversation: optional wake-word greeting, then turns; lost
    /// connections are reopened after a backoff and the turns go on.
    async fn converse(&mut self, turns: Option<u32>, until: &CancellationToken) {
        self.core.new_conversation();
        let mut greet = matches!(self.ctx.group.plan.start, StartBy::WakeWord(_));
        let mut turn_no = 0u32;
        let mut think_next = false;
        let mut attempt = 0u32;
        while turns.is_none_or(|t| turn_no < t) && !self.stopping(until) {
            if attempt > 0 && !self.wait_backoff(attempt, until).await {
                return;
            }
            if self.ws.is_none()
                && let Err(f) = self.connect().await
            {
                if self.ctx.cancel.is_cancelled() {
                    return;
                }
                self.failed_before_turn(turn_no, f).await;
                turn_no += 1;
                attempt += 1;
                continue;
            }
            let spec = if greet {
                self.greeting_spec(turn_no)
            } else {
                self.turn_spec(turn_no, think_next)
            };
            let end = self.run_turn(spec).await;
            let lost = end.connection_lost;
            if end.greeting {
                // A greeting cut off by a lost connection is tried again on
                // the next one; otherwise the user answers it after thinking.
                greet = lost;
                think_next = true;
                if matches!(end.record.outcome, TurnOutcome::Failed(_)) {
                    self.report_turn(end, false).await;
                }
            } else {
                // A user who interrupts speaks again at once.
                think_next = end.record.outcome != TurnOutcome::Interrupted;
                let gave_up = matches!(
                    end.record.outcome,
                    TurnOutcome::Failed(FailureKind::NoReply | FailureKind::ReplyTimeout)
                );
                self.report_turn(end, true).await;
                turn_no += 1;
                if gave_up && !lost {
                    // A user who gets no answer presses the button: the
                    // firmware closes the connection, and the next press
                    // opens a new one (PROTOCOL.md §8.3). A late answer on
                    // the old session can then never reach the next turn.
                    self.hang_up().await;
                }
            }
            attempt = if lost { attempt + 1 } else { 0 };
        }
    }

    /// Waits out a reconnect backoff; false when the run or conversation ended.
    async fn wait_backoff(&mut self, attempt: u32, until: &CancellationToken) -> bool {
        if self.ws.is_some() {
            return true;
        }
        let wait = backoff(attempt, &mut self.ctx.rng);
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = until.cancelled() => false,
            _ = self.ctx.no_new_turns.cancelled() => false,
            _ = self.ctx.cancel.cancelled() => false,
        }
    }

    fn greeting_spec(&self, turn_no: u32) -> TurnSpec {
        let g = &self.ctx.group.plan;
        let StartBy::WakeWord(word) = &g.start else {
            unreachable!("greeting_spec is only called for wake-word groups")
        };
        TurnSpec {
            conversation: self.conversation,
            turn_no,
            clip: None,
            think: Duration::ZERO,
            // The firmware opens a wake-word session in auto mode (realtime
            // with AEC); manual devices have no wake word.
            mode: if g.mode == ListenMode::Realtime {
                ListenMode::Realtime
            } else {
                ListenMode::Auto
            },
            detect: Some(word.clone()),
            barge_after: None,
        }
    }

    fn turn_spec(&mut self, turn_no: u32, think_next: bool) -> TurnSpec {
        let group = self.ctx.group.clone();
        let g = &group.plan;
        let rng = &mut self.ctx.rng;
        let clip = group.clips[rng.random_range(0..group.clips.len())].clone();
        let think = if think_next {
            g.think_time.sample(rng)
        } else {
            Duration::ZERO
        };
        let barge = rng.random_bool(g.barge_in);
        let barge_after = barge.then(|| rng.random_range(BARGE_IN_AFTER.0..=BARGE_IN_AFTER.1));
        TurnSpec {
            conversation: self.conversation,
            turn_no,
            clip: Some(clip),
            think,
            mode: g.mode,
            detect: None,
            barge_after,
        }
    }

    /// Runs one turn on the open connection.
    async fn run_turn(&mut self, spec: TurnSpec) -> TurnEnd {
        let Some(ws) = self.ws.as_mut() else {
            unreachable!("run_turn needs a connection")
        };
        self.ctx.events.talking(1);
        self.core.start_turn(Instant::now(), spec);
        let end = loop {
            match pump(
                &mut self.core,
                ws,
                self.net.as_deref_mut(),
                &self.ctx.cancel,
                &self.ctx.events,
                std::future::pending::<()>(),
            )
            .await
            {
                Pumped::Turn(end) => break *end,
                // Nothing else ends a pump while a turn runs; should it,
                // the turn is cancelled and reported on the next pump.
                _ => self.core.cancel(Instant::now()),
            }
        };
        self.ctx.events.talking(-1);
        if end.connection_lost {
            tracing::debug!(device = %self.ctx.identity.device_id, detail = ?end.record.detail, "connection lost in a turn");
            self.drop_connection(true);
        }
        end
    }

    /// Sends a turn to the collector (and tells the driver when `counted`).
    async fn report_turn(&mut self, end: TurnEnd, counted: bool) {
        self.ctx
            .events
            .send(Event::Turn(Box::new(end.record), self.core.tally.take(), end.trace));
        if counted {
            let _ = self.ctx.notes.send(Note::TurnEnded(self.ctx.index)).await;
        }
    }

    /// A turn that could not get a connection.
    async fn failed_before_turn(&mut self, turn_no: u32, f: Failure) {
        let record = TurnRecord {
            outcome: TurnOutcome::Failed(f.kind),
            detail: Some(f.detail),
            ..TurnRecord::new(self.ctx.index, self.conversation, turn_no, "")
        };
        self.ctx
            .events
            .send(Event::Turn(Box::new(record), Tally::default(), None));
        let _ = self.ctx.notes.send(Note::TurnEnded(self.ctx.index)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_from_one_second_to_ten_with_half_of_it_jittered() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (attempt, cap) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (40, 10.0)] {
            for _ in 0..200 {
                let d = backoff(attempt, &mut rng).as_secs_f64();
                assert!(
                    d >= cap / 2.0 && d < cap,
                    "attempt {attempt}: {d} s not in [{}, {cap})",
                    cap / 2.0
                );
            }
        }
    }

    #[test]
    fn backoff_jitter_spreads_a_fleet_out() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let waits: Vec<u128> = (0..100).map(|_| backoff(3, &mut rng).as_millis()).collect();
        let distinct: std::collections::BTreeSet<u128> = waits.iter().copied().collect();
        assert!(distinct.len() > 50, "only {} distinct waits", distinct.len());
    }
}
