//! `diagnose`'s arguments: the base fleet and server, and the matrix to run
//! (which speaker counts, network profiles, transport and device queue).

use super::{TlsArgs, WatchArgs, duration};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Base fleet file (clips, think time, mock settings); the built-in
    /// diagnose fleet when omitted.
    pub fleet: Option<PathBuf>,
    /// Server WebSocket URL (default: the built-in mock).
    #[arg(long)]
    pub url: Option<String>,
    /// OTA version-check URL: devices boot through it (needed for MQTT).
    #[arg(long, value_name = "URL")]
    pub ota: Option<String>,
    /// Seed for device ids, clip choice, schedules and network draws.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long each cell of the matrix talks.
    #[arg(long, value_parser = duration, default_value = "40s")]
    pub cell_duration: Duration,
    /// Speakers in the baseline cell.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub baseline_devices: u32,
    /// Further speaker counts to try, one cell each.
    #[arg(long, value_delimiter = ',', default_value = "5,10")]
    pub devices: Vec<u32>,
    /// The baseline's network profile.
    #[arg(long, default_value = "lan")]
    pub baseline_network: String,
    /// Network profiles to try, one cell each (lan, wifi-good, wifi-poor,
    /// 4g, edge-of-range); `none` to try none.
    #[arg(long, value_delimiter = ',', default_value = "wifi-poor,4g")]
    pub networks: Vec<String>,
    /// The baseline's transport: websocket or mqtt (mqtt needs --ota).
    #[arg(long, default_value = "websocket", value_parser = ["websocket", "mqtt"])]
    pub transport: String,
    /// Also try the other transport (needs an OTA URL that offers MQTT, or the built-in mock).
    #[arg(long)]
    pub other_transport: bool,
    /// Try a memory-tight device whose decode queue holds this many frames
    /// (the firmware holds 40); 0 skips the cell.
    #[arg(long, default_value_t = 10)]
    pub queue: u32,
    /// Write the diagnosis here: .html (the matrix page) or .json; repeatable.
    #[arg(long)]
    pub report: Vec<PathBuf>,
    /// No live progress line in the cells.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}
