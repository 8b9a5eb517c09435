//! Command-line interface (clap derive): raw arguments only. Validation
//! happens in the library's config layer.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use xiaozhi_fleet::record::RecordRule;

fn duration(s: &str) -> Result<Duration, String> {
    xiaozhi_fleet::units::parse_duration(s)
}

/// Simulate a fleet of xiaozhi ESP32 voice devices against a xiaozhi server
/// and measure what users would feel: time to first audio, turn time, and
/// whether the generator kept real-time pace.
#[derive(Debug, Parser)]
#[command(
    name = "xiaozhi-fleet",
    version,
    after_help = "Examples:
  xiaozhi-fleet                                  # default fleet vs the built-in mock
  xiaozhi-fleet run --devices 20 --duration 30s --report r.json
  xiaozhi-fleet run --speakers 10 --duration 2m --url ws://192.168.1.20:8000/xiaozhi/v1/
  xiaozhi-fleet run fleets/steps-10-20-40.toml --report steps.json
  xiaozhi-fleet run fleets/ten-speakers.toml --url ws://10.0.0.5:8000/xiaozhi/v1/
  xiaozhi-fleet mock-server --listen 127.0.0.1:8000
  xiaozhi-fleet validate fleets/smoke.toml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a fleet (default when no command is given).
    #[command(after_help = "Examples:
  xiaozhi-fleet run                                   # built-in default fleet and mock server
  xiaozhi-fleet run --devices 20 --duration 30s --report r.json
  xiaozhi-fleet run --speakers 10 --duration 2m --url ws://192.168.1.20:8000/xiaozhi/v1/
  xiaozhi-fleet run fleets/steps-10-20-40.toml --report steps.json
  xiaozhi-fleet run fleets/ten-speakers.toml --url ws://192.168.1.20:8000/xiaozhi/v1/
  xiaozhi-fleet run fleets/stutter-repro.toml --record worst=3 --report r.json

With no URL (flag or fleet file), the built-in mock server is started on
127.0.0.1. Exit codes: 0 done, 2 error (bad config, nothing could connect),
130 interrupted (the report is still written).")]
    Run(RunArgs),
    /// Run the built-in xiaozhi mock server.
    #[command(after_help = "Examples:
  xiaozhi-fleet mock-server --listen 127.0.0.1:8000
  xiaozhi-fleet mock-server --listen 127.0.0.1:8000 --config fleets/ten-speakers.toml

--config reads the [mock] table of a fleet file (delays, worker limits, VAD window).")]
    MockServer(MockArgs),
    /// Check a fleet file and print the resolved plan (exit 2 if invalid).
    #[command(after_help = "Example:\n  xiaozhi-fleet validate fleets/smoke.toml")]
    Validate {
        /// Fleet file (TOML).
        fleet: PathBuf,
    },
}

#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Fleet file (TOML); the built-in default fleet when omitted.
    pub fleet: Option<PathBuf>,
    /// Server WebSocket URL, e.g. ws://host:8000/xiaozhi/v1/ (default: built-in mock).
    #[arg(long)]
    pub url: Option<String>,
    /// Number of virtual devices.
    #[arg(long)]
    pub devices: Option<u32>,
    /// Run for this long (e.g. 30s, 5m); devices keep taking turns until then.
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,
    /// Turns per conversation (without a duration: each device holds one conversation).
    #[arg(long)]
    pub turns: Option<u32>,
    /// Hold this many concurrent speakers (closed loop) for --duration (default 60s).
    #[arg(long)]
    pub speakers: Option<u32>,
    /// Seed for device ids, clip choice and schedules.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the report here (.json = JSON, else text); repeatable.
    #[arg(long)]
    pub report: Vec<PathBuf>,
    /// Keep WAV + timeline of turns: worst=N (stuttered worst, then slowest)
    /// or device=ID (every turn of one device); repeatable.
    #[arg(long, value_parser = record_rule)]
    pub record: Vec<RecordRule>,
    /// Directory for recordings (default runs/<date-time>).
    #[arg(long)]
    pub record_dir: Option<PathBuf>,
    /// No live status line.
    #[arg(long, short)]
    pub quiet: bool,
}

fn record_rule(s: &str) -> Result<RecordRule, String> {
    xiaozhi_fleet::config::plan::parse_record_rule(s)
}

#[derive(Debug, Args)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: String,
    /// Fleet file whose [mock] table configures the server.
    #[arg(long)]
    pub config: Option<PathBuf>,
}
