//! A device's life: connect with the firmware's handshake headers, send the
//! hello, wait for the server hello (sending no audio before it), then run
//! turns on the one connection until the plan or the run says stop.

use super::turn::TurnRunner;
use crate::audio::Clip;
use crate::audio::playback::PlaybackConfig;
use crate::config::Timeouts;
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

/// What every device of a run shares.
#[derive(Debug)]
pub struct DeviceSettings {
    pub url: String,
    pub protocol_version: ProtocolVersion,
    pub timeouts: Timeouts,
    pub think_time: crate::dist::Dist,
    /// Turns per device; `None` = until the run ends.
    pub turns: Option<u32>,
    pub clips: Vec<Arc<Clip>>,
    pub silence: Bytes,
    /// The board's playback model.
    pub playback: PlaybackConfig,
    /// Trace every turn (a `worst=N` rule is on).
    pub record_all: bool,
    /// Trace every turn of these devices.
    pub record_devices: Vec<String>,
}

/// One device's own inputs.
pub struct DeviceContext {
    pub index: u32,
    pub identity: DeviceIdentity,
    pub rng: ChaCha8Rng,
    pub settings: Arc<DeviceSettings>,
    pub events: EventSender,
    /// Cancelled when no new turn may start (run duration over).
    pub no_new_turns: CancellationToken,
    /// Cancelled when everything must stop now (grace over, Ctrl-C).
    pub cancel: CancellationToken,
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// Runs one device to the end. Never panics on server behaviour: every
/// problem becomes a failed turn with a kind.
pub async fn run_device(mut ctx: DeviceContext) {
    let mut turn_no = 0u32;
    let opened = tokio::select! {
        r = open(&ctx) => r,
        _ = ctx.cancel.cancelled() => return,
    };
    let (mut ws, session_id, rate) = match opened {
        Ok(o) => {
            ctx.events.send(Event::Connected {
                connect: o.connect,
                hello: o.hello,
            });
            (o.ws, o.session_id, o.sample_rate)
        }
        Err(kind) => {
            let rec = failed_before_turn(&ctx, kind);
            ctx.events.send(Event::Turn(Box::new(rec), Tally::default(), None));
            return;
        }
    };
    let mut runner = TurnRunner::new(&ctx, session_id, rate);
    loop {
        let budget_done = ctx.settings.turns.is_some_and(|t| turn_no >= t);
        if budget_done || ctx.no_new_turns.is_cancelled() || ctx.cancel.is_cancelled() {
            break;
        }
        let clip = pick_clip(&mut ctx);
        let think = if turn_no == 0 {
            Duration::ZERO
        } else {
            ctx.settings.think_time.sample(&mut ctx.rng)
        };
        ctx.events.send(Event::TurnStarted);
        let end = runner.run(&mut ws, &ctx, turn_no, &clip, think).await;
        ctx.events
            .send(Event::Turn(Box::new(end.record), runner.tally.take(), end.trace));
        turn_no += 1;
        if end.connection_lost {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    ctx.events.send(Event::Flush(runner.tally.take()));
    ctx.events.send(Event::Disconnected);
}

fn pick_clip(ctx: &mut DeviceContext) -> Arc<Clip> {
    let clips = &ctx.settings.clips;
    clips[ctx.rng.random_range(0..clips.len())].clone()
}

fn failed_before_turn(ctx: &DeviceContext, kind: FailureKind) -> TurnRecord {
    TurnRecord {
        device: ctx.index,
        turn: 0,
        clip: String::new(),
        outcome: TurnOutcome::Failed(kind),
        stt: None,
        llm: None,
        tts_start: None,
        first_audio: None,
        turn_time: None,
        first_play: None,
        frames_received: 0,
        think_frames: 0,
        uplink_frames: 0,
        playback: None,
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
