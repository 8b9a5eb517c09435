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
    /// Find the most concurrent speakers the server holds within the SLOs,
    /// and whether its CPU/memory allotment is enough.
    #[command(after_help = "Examples:
  xiaozhi-fleet capacity fleets/capacity-mock.toml --target-speakers 20 --server-cpus 4 --server-memory 8G
  xiaozhi-fleet capacity fleets/steps-10-20-40.toml --url ws://192.168.1.20:8000/xiaozhi/v1/ \\
      --watch-docker xiaozhi-esp32-server --target-speakers 20 --report capacity.json
  xiaozhi-fleet capacity --url ws://127.0.0.1:8000/xiaozhi/v1/ --watch-pid 4242 --slo 'first_audio.p95<=1.5s'
  xiaozhi-fleet capacity fleets/capacity-scaling.toml --cpus 0.25,0.5,1 --stage-duration 10s
  xiaozhi-fleet capacity fleets/capacity-mock.toml --shape burst --report burst.json --report burst.txt

Each stage holds N speakers: ramp, reset, measure --stage-duration (extended up to 3×
while fewer than --min-turns turns finished, else the stage is inconclusive), judge the
SLOs. The search doubles N while stages pass, then bisects. With --cpus the watched
server (or the mock child) is limited to each allotment in turn and the verdict reads
the scaling curve; the original limit is restored at the end, on Ctrl-C and on errors.
Exit codes: 0 done, 1 the verdict is INSUFFICIENT or the target fails its SLOs,
2 error (bad input, nothing could connect), 130 interrupted (the report is still
written, with the knee from the completed stages).")]
    Capacity(CapacityArgs),
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
    #[command(flatten)]
    pub watch: WatchArgs,
    /// No live status line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Watching the server under test.
#[derive(Debug, Default, Args)]
pub struct WatchArgs {
    /// Watch this process (CPU, memory, threads, busiest thread); repeatable.
    #[arg(long)]
    pub watch_pid: Vec<u32>,
    /// Watch this cgroup directory (v1 or v2), e.g. /sys/fs/cgroup/system.slice/docker-<id>.scope.
    #[arg(long)]
    pub watch_cgroup: Vec<PathBuf>,
    /// Watch this Docker container (name or id) through /var/run/docker.sock.
    #[arg(long)]
    pub watch_docker: Vec<String>,
    /// Sampling interval.
    #[arg(long, value_parser = duration, default_value = "1s")]
    pub watch_interval: Duration,
    /// The server's CPU allotment in cores (when the cgroup/Docker does not say).
    #[arg(long)]
    pub server_cpus: Option<f64>,
    /// The server's memory allotment, e.g. 8G (when the cgroup/Docker does not say).
    #[arg(long, value_parser = size_mb)]
    pub server_memory: Option<f64>,
}

#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// Fleet file (TOML): clips, behaviour, SLOs, tiers, mock settings.
    pub fleet: Option<PathBuf>,
    /// Server WebSocket URL (default: the built-in mock as a child process).
    #[arg(long)]
    pub url: Option<String>,
    /// An SLO such as first_audio.p95<=2s, stutter_ratio<=0.01; replaces the defaults; repeatable.
    #[arg(long)]
    pub slo: Vec<String>,
    /// First stage's speakers.
    #[arg(long, default_value_t = 1)]
    pub start: u32,
    /// Stop bisecting at this many speakers (default: 1 below 20, else 5%).
    #[arg(long)]
    pub resolution: Option<u32>,
    /// Measure window per stage.
    #[arg(long, value_parser = duration, default_value = "60s")]
    pub stage_duration: Duration,
    /// Size the server for this many concurrent speakers.
    #[arg(long)]
    pub target_speakers: Option<u32>,
    /// Safety cap on speakers.
    #[arg(long, default_value_t = 1000)]
    pub max_speakers: u32,
    /// Write the report here (.json = JSON, else the text summary); repeatable.
    #[arg(long)]
    pub report: Vec<PathBuf>,
    /// Search the knee at each of these CPU allotments (cores, fractions
    /// allowed), setting the watched server's limit before each and putting
    /// the original back at the end: e.g. --cpus 0.5,1,2.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub cpus: Vec<f64>,
    /// How speakers time their turns: steady (closed loop, the default),
    /// burst (everyone at the same moment: the worst case) or poisson (open
    /// arrivals keeping N speakers busy on average).
    #[arg(long, value_parser = shape)]
    pub shape: Option<xiaozhi_fleet::config::Shape>,
    /// Finished turns a stage needs in its window; a short window is
    /// extended (up to 3×), then the stage is inconclusive.
    #[arg(long, default_value_t = 20)]
    pub min_turns: u64,
    /// No live progress line during stages.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
}

fn shape(s: &str) -> Result<xiaozhi_fleet::config::Shape, String> {
    xiaozhi_fleet::config::Shape::parse(s)
}

fn size_mb(s: &str) -> Result<f64, String> {
    xiaozhi_fleet::units::parse_size_mb(s)
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
