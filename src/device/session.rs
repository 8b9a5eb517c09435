//! A device's life: connect with the firmware's handshake headers, send the
//! hello, wait for the server hello (sending no audio before it), then run
//! turns on the one connection until the plan or the run says stop.

use super::idle::idle;
use super::turn::{TurnRunner, TurnSpec, new_record};
use crate::audio::Clip;
use crate::audio::playback::PlaybackConfig;
use crate::config::Timeouts;
use crate::config::{GroupPlan, IdleForm, StartBy};
use crate::metrics::collector::EventSender;
use crate::metrics::{Event, FailureKind, Tally, TurnOutcome, TurnRecord};
use crate::protocol::{ClientHello, ClientMessage, DeviceIdentity, ProtocolVersion, ServerMessage, client_request};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// The socket type a device owns.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// WebSocket read buffer: the default 128 KiB is zero-filled per read and
/// costs ~128 KiB RSS per device; 4 KiB fits this traffic (ARCHITECTURE.md).
const READ_BUFFER: usize = 4 * 1024;
/// Shortest and longest time into an answer before a barge-in `abort`.
const BARGE_IN_AFTER: (Duration, Duration) = (Duration::from_millis(500), Duration::from_millis(2000));

/// What every device of a run shares.
#[derive(Debug)]
pub struct DeviceSettings {
    pub url: String,
    pub protocol_version: ProtocolVersion,
    pub timeouts: Timeouts,
    pub silence: Bytes,
    /// The board's playback model.
    pub playback: PlaybackConfig,
    /// Trace every turn (a `worst=N` rule is on).
    pub record_all: bool,
    /// Trace every turn of these devices.
    pub record_devices: Vec<String>,
}

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
    /// Conversations this device has held so far (the current one's number).
    pub conversation: u32,
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// An open connection and its turn state.
pub(crate) struct Conn {
    pub ws: Socket,
    pub runner: TurnRunner,
}

/// Runs one device to the end. Never panics on server behaviour: every
/// problem becomes a failed turn (or a counted idle close).
pub async fn run_device(mut ctx: DeviceContext) {
    let mut conn: Option<Conn> = None;
    if ctx.group.plan.idle != IdleForm::Disconnected {
        conn = connect(&ctx, None).await;
    }
    loop {
        let cmd = idle(&mut ctx, &mut conn).await;
        let Some(Command::Converse { turns, until }) = cmd else {
            break;
        };
        if conn.is_none() {
            conn = connect(&ctx, Some(0)).await;
        }
        if let Some(c) = conn.as_mut()
            && !converse(&mut ctx, c, turns, &until).await
        {
            disconnect(&ctx, conn.take());
        }
        let _ = ctx.notes.send(Note::ConversationEnded(ctx.index)).await;
        ctx.conversation += 1;
    }
    if let Some(mut c) = conn.take() {
        let _ = tokio::time::timeout(Duration::from_secs(1), c.ws.close(None)).await;
        disconnect(&ctx, Some(c));
    }
}

/// Opens and greets a connection. A failure during a conversation
/// (`turn` is `Some`) is a failed turn; outside one it is counted alone.
async fn connect(ctx: &DeviceContext, turn: Option<u32>) -> Option<Conn> {
    let opened = tokio::select! {
        r = open(ctx) => r,
        _ = ctx.cancel.cancelled() => return None,
    };
    match opened {
        Ok(o) => {
            ctx.events.send(Event::Connected {
                connect: o.connect,
                hello: o.hello,
            });
            let runner = TurnRunner::new(ctx, o.session_id, o.sample_rate);
            Some(Conn { ws: o.ws, runner })
        }
        Err(kind) => {
            match turn {
                Some(t) => {
                    let rec = failed_before_turn(ctx, t, kind);
                    ctx.events.send(Event::Turn(Box::new(rec), Tally::default(), None));
                }
                None => ctx.events.send(Event::ConnectFailed(kind)),
            }
            None
        }
    }
}

/// Forgets a connection, flushing its counters.
pub(crate) fn disconnect(ctx: &DeviceContext, conn: Option<Conn>) {
    if let Some(mut c) = conn {
        ctx.events.send(Event::Flush(c.runner.tally.take()));
        ctx.events.send(Event::Disconnected);
    }
}

/// A conversation: optional wake-word greeting, then turns. Returns false
/// when the connection was lost.
async fn converse(ctx: &mut DeviceContext, c: &mut Conn, turns: Option<u32>, until: &CancellationToken) -> bool {
    let group = ctx.group.clone();
    let g = &group.plan;
    c.runner.new_conversation();
    if let StartBy::WakeWord(word) = &g.start {
        let spec = TurnSpec {
            turn_no: 0,
            clip: None,
            think: Duration::ZERO,
            mode: g.mode,
            detect: Some(word),
            barge_after: None,
        };
        let end = c.runner.run(&mut c.ws, ctx, spec).await;
        if let TurnOutcome::Failed(_) = end.record.outcome {
            ctx.events.send(Event::TurnStarted);
            ctx.events
                .send(Event::Turn(Box::new(end.record), c.runner.tally.take(), None));
        }
        if end.connection_lost {
            return false;
        }
    }
    let mut turn_no = 0u32;
    let mut think_next = false;
    loop {
        let stop = turns.is_some_and(|t| turn_no >= t) || until.is_cancelled();
        if stop || ctx.no_new_turns.is_cancelled() || ctx.cancel.is_cancelled() {
            return true;
        }
        let clip = group.clips[ctx.rng.random_range(0..group.clips.len())].clone();
        let think = if think_next {
            g.think_time.sample(&mut ctx.rng)
        } else {
            Duration::ZERO
        };
        let barge = ctx.rng.random_bool(g.barge_in);
        let barge_after = barge.then(|| ctx.rng.random_range(BARGE_IN_AFTER.0..=BARGE_IN_AFTER.1));
        let spec = TurnSpec {
            turn_no,
            clip: Some(&clip),
            think,
            mode: g.mode,
            detect: None,
            barge_after,
        };
        ctx.events.send(Event::TurnStarted);
        let end = c.runner.run(&mut c.ws, ctx, spec).await;
        // A user who interrupts speaks again at once.
        think_next = end.record.outcome != TurnOutcome::Interrupted;
        ctx.events
            .send(Event::Turn(Box::new(end.record), c.runner.tally.take(), end.trace));
        let _ = ctx.notes.send(Note::TurnEnded(ctx.index)).await;
        turn_no += 1;
        if end.connection_lost {
            return false;
        }
    }
}

fn failed_before_turn(ctx: &DeviceContext, turn: u32, kind: FailureKind) -> TurnRecord {
    TurnRecord {
        outcome: TurnOutcome::Failed(kind),
        ..new_record(ctx, turn, "", 0)
    }
}

/// An open, greeted connection.
struct Opened {
    ws: Socket,
    connect: Duration,
    hello: Duration,
    session_id: String,
    /// Downlink rate from the server hello (firmware default 24000).
    sample_rate: u32,
}

/// Connects and completes the hello.
async fn open(ctx: &DeviceContext) -> Result<Opened, FailureKind> {
    let s = &ctx.settings;
    let request = client_request(&s.url, &ctx.identity, s.protocol_version).map_err(|_| FailureKind::Connect)?;
    let started = Instant::now();
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), true);
    let mut ws = match tokio::time::timeout(s.timeouts.hello, connecting).await {
        Err(_) => return Err(FailureKind::Connect),
        Ok(Err(e)) => return Err(classify_connect_error(&e)),
        Ok(Ok((ws, _response))) => ws,
    };
    let connect = started.elapsed();
    let hello = ClientMessage::Hello(ClientHello::firmware(s.protocol_version.as_u8()));
    let hello_sent = Instant::now();
    ws.send(Message::text(hello.to_json()))
        .await
        .map_err(|_| FailureKind::Closed)?;
    let deadline = hello_sent + s.timeouts.hello;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = tokio::time::sleep_until(deadline) => return Err(FailureKind::HelloTimeout),
        };
        match msg {
            Some(Ok(Message::Text(text))) => {
                if let Ok(ServerMessage::Hello(h)) = ServerMessage::parse(&text) {
                    match h.transport.as_deref() {
                        Some("websocket") => {
                            return Ok(Opened {
                                hello: hello_sent.elapsed(),
                                session_id: h.session_id.clone().unwrap_or_default(),
                                sample_rate: h.downlink_sample_rate(),
                                ws,
                                connect,
                            });
                        }
                        // The firmware ignores other transports and crashes on a
                        // missing one; either way the server is broken.
                        _ => return Err(FailureKind::Protocol),
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Err(FailureKind::Closed),
        }
    }
}

fn classify_connect_error(e: &tungstenite::Error) -> FailureKind {
    match e {
        tungstenite::Error::Io(_) | tungstenite::Error::Tls(_) | tungstenite::Error::Url(_) => FailureKind::Connect,
        _ => FailureKind::Handshake,
    }
}
