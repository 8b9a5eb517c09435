//! `diagnose`: which condition brings stutter, by experiment. This module
//! owns the matrix (a baseline and cells that each change one factor from
//! it: device count, network profile, transport, device queue), the
//! figures kept from each cell's run ([`CellResult`]), and the verdict in
//! the operator's terms ([`verdict`]); `app::diagnose` runs the cells and
//! [`html`] draws the page. Everything here is pure: a verdict is a
//! function of the cells' figures, tested with figures written by hand.
//!
//! The factors are the facts the server's maintainers ask for in every
//! stutter report (STUTTER.md): about 2 / 5 / 10 devices, over the internet
//! or not, MQTT or not, and the device itself.

pub mod html;
#[cfg(test)]
mod tests;
pub mod verdict;

use crate::config::TransportChoice;
use serde::Serialize;

/// Turns with audio a cell needs before its figures count.
pub const MIN_TURNS: u64 = 6;

/// What one cell changes from the baseline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "factor", content = "value", rename_all = "snake_case")]
pub enum Factor {
    /// Nothing: the reference every other cell is compared with.
    Baseline,
    /// Concurrent speakers.
    Devices(u32),
    /// A named network profile (`docs/network-profiles.md`) on every device.
    Network(String),
    /// MQTT + UDP through the gateway instead of one WebSocket.
    Transport(String),
    /// A decode queue of this many frames (the firmware holds 40).
    DeviceQueue(u32),
}

impl Factor {
    /// How the console and the page name the cell.
    pub fn label(&self) -> String {
        match self {
            Factor::Baseline => "baseline".into(),
            Factor::Devices(n) => format!("{n} devices"),
            Factor::Network(p) => format!("network {p}"),
            Factor::Transport(t) => format!("transport {t}"),
            Factor::DeviceQueue(q) => format!("device queue {q} frames"),
        }
    }

    /// The factor's family, for grouping rows ("devices", "network", ...).
    pub fn family(&self) -> &'static str {
        match self {
            Factor::Baseline => "baseline",
            Factor::Devices(_) => "devices",
            Factor::Network(_) => "network",
            Factor::Transport(_) => "transport",
            Factor::DeviceQueue(_) => "device",
        }
    }
}

/// One cell as run: the baseline with one factor changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CellSpec {
    pub factor: Factor,
    /// Concurrent speakers.
    pub devices: u32,
    /// Network profile name on every device.
    pub network: String,
    pub transport: TransportChoice,
    /// Decode-queue override; `None`: the device profile's own.
    pub queue: Option<u32>,
}

/// What the matrix varies, and from where.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixOptions {
    /// Speakers in the baseline (the maintainers' "about 2").
    pub baseline_devices: u32,
    /// Further speaker counts ("5, 10").
    pub devices: Vec<u32>,
    /// The baseline's network profile.
    pub baseline_network: String,
    /// Further network profiles.
    pub networks: Vec<String>,
    /// The baseline's transport.
    pub transport: TransportChoice,
    /// Also try the other transport (needs an OTA URL that offers it).
    pub other_transport: bool,
    /// Also try a memory-tight device with this decode queue.
    pub small_queue: Option<u32>,
}

impl Default for MatrixOptions {
    fn default() -> Self {
        MatrixOptions {
            baseline_devices: 2,
            devices: vec![5, 10],
            baseline_network: "lan".into(),
            networks: vec!["wifi-poor".into(), "4g".into()],
            transport: TransportChoice::Websocket,
            other_transport: false,
            small_queue: Some(10),
        }
    }
}

/// The cells, baseline first, each changing one factor.
pub fn matrix(o: &MatrixOptions) -> Vec<CellSpec> {
    let base = CellSpec {
        factor: Factor::Baseline,
        devices: o.baseline_devices,
        network: o.baseline_network.clone(),
        transport: o.transport,
        queue: None,
    };
    let mut cells = vec![base.clone()];
    for &n in o.devices.iter().filter(|&&n| n != o.baseline_devices) {
        cells.push(CellSpec {
            factor: Factor::Devices(n),
            devices: n,
            ..base.clone()
        });
    }
    for p in o.networks.iter().filter(|p| **p != o.baseline_network) {
        cells.push(CellSpec {
            factor: Factor::Network(p.clone()),
            network: p.clone(),
            ..base.clone()
        });
    }
    if o.other_transport {
        let other = match o.transport {
            TransportChoice::Websocket => TransportChoice::Mqtt,
            TransportChoice::Mqtt => TransportChoice::Websocket,
        };
        cells.push(CellSpec {
            factor: Factor::Transport(other.as_str().to_string()),
            transport: other,
            ..base.clone()
        });
    }
    if let Some(q) = o.small_queue {
        cells.push(CellSpec {
            factor: Factor::DeviceQueue(q),
            queue: Some(q),
            ..base
        });
    }
    cells
}

/// Where stutter came from (STUTTER.md's causes the tool can tell apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Frames already late at the device's socket: synthesis or the server's sending.
    Server,
    /// Frames on time at the socket, held by the network conditions.
    Network,
    /// Frames the device's full decode queue dropped.
    Device,
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Server => "server",
            Cause::Network => "network",
            Cause::Device => "device",
        }
    }
}

/// The figures one cell's run left.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CellResult {
    pub spec: CellSpec,
    /// Completed turns with audio (the stutter denominator).
    pub turns: u64,
    /// Failed turns.
    pub failed: u64,
    /// Turns the user heard stutter in: with gaps in playback of any length
    /// (15 ms in every 60 ms frame is heard as choppy speech) or with audio
    /// the device dropped; the largest of the report's counts (turns with a
    /// one-frame gap, turns with each cause), as it counts them apart.
    pub stutter_turns: u64,
    /// Gap time the server caused, ms, all turns.
    pub server_ms: f64,
    /// Gap time the network caused, ms.
    pub network_ms: f64,
    /// Audio the device's queue dropped, ms.
    pub device_ms: f64,
    /// p95 end of speech → first audio, ms.
    pub first_audio_p95_ms: Option<f64>,
    /// Peak server CPU in cores, when a watcher was given.
    pub server_cpu_cores: Option<f64>,
    /// Why the cell's figures cannot be used (too few turns, interrupted).
    pub inconclusive: Option<String>,
}

impl CellResult {
    /// Share of turns that stuttered.
    pub fn stutter_share(&self) -> f64 {
        if self.turns == 0 {
            0.0
        } else {
            self.stutter_turns as f64 / self.turns as f64
        }
    }

    /// Stutter per turn with audio, ms (all causes).
    pub fn ms_per_turn(&self) -> f64 {
        self.per_turn(self.server_ms + self.network_ms + self.device_ms)
    }

    /// `ms` spread over the cell's turns.
    pub fn per_turn(&self, ms: f64) -> f64 {
        if self.turns == 0 { 0.0 } else { ms / self.turns as f64 }
    }

    /// The cause with the most stutter time (`None` without any).
    pub fn main_cause(&self) -> Option<Cause> {
        let parts = [
            (Cause::Server, self.server_ms),
            (Cause::Network, self.network_ms),
            (Cause::Device, self.device_ms),
        ];
        parts
            .into_iter()
            .filter(|p| p.1 > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|p| p.0)
    }

    /// Marks the cell inconclusive when it has too few turns to stand on.
    pub fn check_turns(&mut self) {
        if self.inconclusive.is_none() && self.turns < MIN_TURNS {
            self.inconclusive = Some(format!(
                "only {} turn(s) with audio completed ({} failed); {MIN_TURNS} needed",
                self.turns, self.failed
            ));
        }
    }
}
