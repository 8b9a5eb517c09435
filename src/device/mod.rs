//! One virtual device: a stable identity, a WebSocket connection it owns
//! alone, and conversations of turns (listen → paced speech → silence until
//! the answer → play the answer → next turn), as the ESP32 firmware does it
//! (PROTOCOL.md §6, §8.3).
//!
//! - [`core`]: the protocol as a sans-IO state machine (all the rules that
//!   decide what a number means), tested with scripted inputs and instants;
//! - `shell`: the one `select!` loop that runs the core on a socket;
//! - `connect`: DNS, TCP, TLS and the upgrade, with the reason for each failure;
//! - `socket`: the connection a device owns (plain, TLS or MQTT + UDP, boxed at its own size);
//! - `mqtt`: the lifelong MQTT control channel of the MQTT + UDP transport;
//! - `mqtt_session`: one conversation over MQTT + UDP, as the shell's socket;
//! - `ota`: the OTA version check before the first connection;
//! - `route`: where a device connects (run URL, OTA WebSocket, OTA MQTT);
//! - `session`: conversations, idling, reconnecting with backoff;
//! - `settings`: what every device of a run shares;
//! - `transcript`: checking `stt` against the clip's words.

mod connect;
pub(crate) mod core;
mod identity;
mod mqtt;
mod mqtt_session;
mod netlink;
pub mod ota;
pub mod profile;
mod route;
mod session;
mod settings;
mod shell;
mod socket;
pub mod tls;
mod trace;
pub mod transcript;

pub use identity::{identity_for, rng_for};
pub use session::{Command, DeviceContext, GroupRun, Note, run_device};
pub use settings::DeviceSettings;
