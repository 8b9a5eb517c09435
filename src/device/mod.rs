//! One virtual device: a stable identity, a WebSocket connection it owns
//! alone, and a loop of turns (listen → paced speech → silence until the
//! answer → play the answer → next turn), as the ESP32 firmware does it in
//! auto mode (PROTOCOL.md §6, §8.3).

mod identity;
pub mod profile;
mod session;
mod turn;

pub use identity::{identity_for, rng_for};
pub use session::{DeviceContext, DeviceSettings, run_device};
