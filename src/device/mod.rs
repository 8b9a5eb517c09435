//! One virtual device: a stable identity, a WebSocket connection it owns
//! alone, and a loop of turns (listen → paced speech → silence until the
//! answer → play the answer → next turn), as the ESP32 firmware does it in
//! auto mode (PROTOCOL.md §6, §8.3).

mod identity;
mod idle;
pub mod profile;
mod session;
mod trace;
mod turn;

pub use identity::{identity_for, rng_for};
pub use session::{Command, DeviceContext, DeviceSettings, GroupRun, Note, run_device};
