//! xiaozhi-fleet: a fleet of virtual xiaozhi ESP32 voice devices.
//!
//! Each virtual device speaks the real device protocol over WebSocket, or
//! over MQTT + UDP through a gateway as the OTA answer says (hello, `listen`, paced 60 ms Opus packets, TTS playback) against a
//! xiaozhi server, so the server does its real ASR → LLM → TTS work, and the
//! fleet measures what a user would feel: time to first audio, turn time and
//! stutter. A built-in mock server speaks the server side the same
//! way, for demos, tests and for separating server overhead from slow AI
//! providers.
//!
//! # Layout
//!
//! - [`config`]: fleet file (TOML) → validated [`config::Plan`].
//! - [`protocol`]: typed JSON messages, binary framing, handshake headers, Opus TOC.
//! - [`audio`]: clip loading and Opus encoding, clip-name globs, the voiced-packet rule,
//!   the uplink pacer, the playback (decode-queue) model.
//! - [`ota`]: OTA bootstrap and activation, sans-IO: the version-check request, the answer
//!   of either server kind, the transport decision, the activation loop.
//! - [`device`]: one virtual device: the protocol as a sans-IO core (turns,
//!   attribution of every message, failures with their reasons), its async
//!   shell, connecting (TCP, TLS, upgrade; or the lifelong MQTT link and a UDP
//!   audio channel per conversation), conversations and reconnects.
//! - [`fleet`]: ramp, spawning, run deadline and cancellation; step plans, open-model
//!   arrivals and stage shapes; shards, runtime and open-file limits, the generator's self-check.
//! - [`metrics`]: per-turn events, the collector that owns all histograms, snapshots,
//!   the folding rules of a turn into totals, and stutter per cause (server, network, device).
//! - [`report`]: the report in every format (JSON, streamed CSV, HTML with charts, text),
//!   SLO gates on `run`, exact merges, and the live outputs (Prometheus `/metrics`,
//!   web dashboard).
//! - [`mock`]: the built-in xiaozhi server: a sans-IO session core (VAD,
//!   answers, the TTS provider's pace, PY's pacing, the wake-word hold, injected
//!   faults) and its shell.
//! - [`providers`]: stand-ins for a real server's AI providers (LLM, TTS, ASR).
//! - [`watch`]: watching the server under test (`/proc`, cgroups, Docker), and setting
//!   (then restoring) its CPU limit for `capacity --cpus`.
//! - [`network`]: network conditions (latency and jitter, loss over TCP and UDP, bandwidth
//!   caps, stalls) as a sans-IO model of one link direction.
//! - [`dist`]: seeded duration distributions (think time, TTS delays).
//! - [`units`]: parsing of durations and rates as operators write them.
//! - [`rig`]: the one assembly of a run: the server end (URL, in-process
//!   mock or mock child), the AI provider stand-ins, the watcher and the
//!   live outputs around one fleet run (`run`) or one per stage (`capacity`).
//! - [`app`]: the commands behind the CLI (run, mock-server, validate,
//!   capacity, providers, provision), signals, logging and output files.
//! - [`provision`]: registering a fleet's device identities with a full deployment's
//!   admin API (bind by MAC or by activation code), idempotently.
//! - [`capacity`]: the capacity search, SLOs and the sizing verdict.
//! - [`record`]: recordings (WAV + timeline) of the turns worth hearing, each gap
//!   marked with its cause (WAV cue points, an Audacity label track).
//! - [`alarm`]: the deadline timer the device and mock `select!` loops keep across iterations.
//!
//! Files name each other in one direction only: no import circle, as
//! `tests/it/structure` checks (its rule is written there).

pub mod alarm;
pub mod app;
pub mod audio;
pub mod capacity;
pub mod config;
pub mod device;
pub mod diagnose;
pub mod dist;
pub mod fleet;
pub mod metrics;
pub mod mock;
pub mod network;
pub mod ota;
pub mod protocol;
pub mod providers;
pub mod provision;
pub mod record;
pub mod report;
pub mod rig;
pub mod units;
pub mod watch;
