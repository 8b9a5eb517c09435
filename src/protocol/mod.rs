//! The xiaozhi device ⇄ server wire protocol (see /work/shared/PROTOCOL.md).
//!
//! * Upgrade: `GET` with `Connection: Upgrade` exactly, plus `Authorization`
//!   (`Bearer <token>`), `Protocol-Version`, `Device-Id`, `Client-Id`
//!   ([`handshake`]); PY also accepts the ids as query parameters.
//! * Text frames are JSON ([`message`]): the device sends `hello` first and
//!   waits ≤ 10 s for a server `hello` with `transport: "websocket"`; then
//!   `listen`/`abort`/`mcp` up, `stt`/`llm`/`tts`/`mcp` down.
//! * Binary frames carry one Opus packet each, raw (v1) or behind a 16-byte
//!   (v2) or 4-byte (v3) header ([`framing`]); uplink is 16 kHz mono 60 ms,
//!   downlink durations come from the packet's TOC byte ([`toc`]).
//! * MCP JSON-RPC rides inside `mcp` messages: the server discovers the
//!   device's tools right after the hello ([`message::mcp_reply`]).
//! * Over MQTT + UDP, audio rides in AES-128-CTR datagrams behind a 16-byte
//!   clear header ([`udp`]).

pub mod framing;
pub mod handshake;
pub mod message;
pub mod toc;
pub mod udp;

pub use framing::{AudioFrame, FramingError, ProtocolVersion, decode, encode, encode_into};
pub use handshake::{ClientHeaders, DeviceIdentity, HandshakeError, client_request, read_client_headers};
pub use message::{
    AudioParams, ClientHello, ClientMessage, Features, Listen, ListenMode, ListenState, MessageError,
    ServerAudioParams, ServerHello, ServerMessage, Tts, mcp_initialize_request, mcp_reply, mcp_tools_list_request,
};
pub use toc::{TocError, packet_duration};
