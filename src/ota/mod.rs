//! OTA bootstrap and activation, sans-IO (PROTOCOL.md §1.4): what a device
//! sends to the OTA endpoint before it opens its WebSocket, what it makes of
//! the answer, and its activation loop. No HTTP client here: the pieces take
//! and return plain data and instants, for a shell to drive.
//!
//! - `request`: the version-check and activate requests (headers, body).
//! - `answer`: the answer of either server kind → [`OtaAnswer`] or [`OtaError`].
//! - `address`: checks of the WebSocket URL and the MQTT endpoint.
//! - `bootstrap`: the decision: transport (`mqtt` wins), pending activation,
//!   firmware upgrade rule.
//! - `mqtt_id`: the MQTT client id / username PY's OTA derives from the device.
//! - `activation`: the activate-polling loop as a state machine.
//! - `error`: why an answer is refused.

pub mod activation;
pub mod address;
pub mod answer;
pub mod bootstrap;
pub mod error;
pub mod mqtt_id;
pub mod request;

pub use activation::{ActivateNow, ActivationFailure, ActivationLoop, ActivationOutcome};
pub use answer::{Activation, OtaAnswer, parse_answer};
pub use bootstrap::{Bootstrap, Transport, decide};
pub use error::OtaError;
pub use request::{HttpRequest, OtaProfile};
