//! xiaozhi-fleet: a fleet of virtual xiaozhi ESP32 voice devices.
//!
//! Each virtual device speaks the real device protocol over WebSocket
//! (hello, `listen`, paced 60 ms Opus packets, TTS playback) against a
//! xiaozhi server, so the server does its real ASR → LLM → TTS work, and the
//! fleet measures what a user would feel: time to first audio, turn time and
//! (later) stutter. A built-in mock server speaks the server side the same
//! way, for demos, tests and for separating server overhead from slow AI
//! providers.
//!
//! # Layout
//!
//! - [`config`]: fleet file (TOML) → validated [`config::Plan`].
//! - [`protocol`]: typed JSON messages, binary framing, handshake headers, Opus TOC.
//! - [`audio`]: clip loading and Opus encoding, the voiced-packet rule, the uplink pacer.
//! - [`device`]: one virtual device: identity, connection, turns.
//! - [`fleet`]: ramp, spawning, run deadline and cancellation; shards, runtime and open-file limits.
//! - [`metrics`]: per-turn events, the collector that owns all histograms, snapshots.
//! - [`report`]: JSON report and the console summary.
//! - [`mock`]: the built-in xiaozhi server.
//! - [`providers`]: stand-ins for a real server's AI providers (LLM, TTS, ASR).
//! - [`server`]: watching the server under test (`/proc`, cgroups, Docker).
//! - [`dist`]: seeded duration distributions (think time, TTS delays).
//! - [`units`]: parsing of durations and rates as operators write them.
//! - [`alarm`]: the deadline timer the device and mock `select!` loops keep across iterations.

pub mod alarm;
pub mod app;
pub mod audio;
pub mod capacity;
pub mod config;
pub mod device;
pub mod dist;
pub mod fleet;
pub mod metrics;
pub mod mock;
pub mod protocol;
pub mod providers;
pub mod record;
pub mod report;
pub mod server;
pub mod units;
