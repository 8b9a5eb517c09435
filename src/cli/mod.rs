//! Command-line interface (clap derive): raw arguments only. Validation
//! happens in the library's config layer.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use xiaozhi_fleet::record::RecordRule;

mod diagnose;
pub use diagnose::DiagnoseArgs;

fn duration(s: &str) -> Result<Duration, String> {
    xiaozhi_fleet::units::parse_duration(s)
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err(format!("`{s}` must be longer than 0s")),
        d => Ok(d),
    }
}

/// The exit-code table, the same for every command (README "Exit codes").
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    done
  1    an SLO or the sizing verdict failed, or diagnose found stutter
  2    usage or configuration error, an output cannot be written, nothing could
       connect, or every turn failed
  130  interrupted by Ctrl-C, SIGTERM or SIGHUP (every report is still written,
       marked interrupted; a second signal stops at once)"
    };
}

/// Simulate a fleet of xiaozhi ESP32 voice devices against a xiaozhi server
/// and measure what users would feel: time to first audio, turn time, and
/// whether the generator kept real-time pace.
#[derive(Debug, Parser)]
#[command(
    name = "xiaozhi-fleet",
    version,
    args_conflicts_with_subcommands = true,
    after_help = concat!("Without a command, the options are `run`'s: `xiaozhi-fleet --report r.json` is
`xiaozhi-fleet run --report r.json`.

Examples:
  xiaozhi-fleet                                  # default fleet vs the built-in mock
  xiaozhi-fleet --devices 20 --duration 30s --report r.json
  xiaozhi-fleet run --speakers 10 --duration 2m --url ws://192.168.1.20:8000/xiaozhi/v1/
  xiaozhi-fleet run fleets/steps-10-20-40.toml --report steps.json
  xiaozhi-fleet run fleets/ten-speakers.toml --url ws://10.0.0.5:8000/xiaozhi/v1/
  xiaozhi-fleet run --speakers 10 --duration 2m --slo 'first_audio.p95<=1.5s' --report r.html --report r.csv
  xiaozhi-fleet run --duration 5m --dashboard 127.0.0.1:8089 --prometheus 127.0.0.1:9464
  xiaozhi-fleet report r.json --report r.html
  xiaozhi-fleet merge a.json b.json -o all.json --report all.html
  xiaozhi-fleet mock-server --listen 127.0.0.1:8000
  xiaozhi-fleet validate fleets/smoke.toml
  RUST_LOG=debug xiaozhi-fleet run --devices 2    # diagnostics on stderr (or -v, -vv)
  xiaozhi-fleet providers --listen 0.0.0.0:18080   # stand-ins for a real server's LLM/TTS/ASR
  xiaozhi-fleet provision --manager-api http://192.168.1.20:8002/xiaozhi --token T --agent AGENT_ID
  xiaozhi-fleet diagnose --url ws://192.168.1.20:8000/xiaozhi/v1/ --report diagnosis.html

", exit_codes!())
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `run`'s options, for `xiaozhi-fleet [OPTIONS] [FLEET]` without a command.
    #[command(flatten)]
    pub run: RunArgs,
    /// Diagnostics on stderr: -v info, -vv debug (every connection attempt
    /// and failure), -vvv trace. Without it, RUST_LOG chooses (default: warnings).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Runtime worker threads (default: every core this process may use);
    /// 1 runs everything on one thread, e.g. under `taskset -c 0`.
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a fleet (default when no command is given).
    #[command(after_help = concat!("Examples:
  xiaozhi-fleet run                                   # built-in default fleet and mock server
  xiaozhi-fleet run --devices 20 --duration 30s --report r.json
  xiaozhi-fleet run --speakers 10 --duration 2m --url ws://192.168.1.20:8000/xiaozhi/v1/
  xiaozhi-fleet run fleets/steps-10-20-40.toml --report steps.json
  xiaozhi-fleet run fleets/ten-speakers.toml --url ws://192.168.1.20:8000/xiaozhi/v1/
  xiaozhi-fleet run fleets/stutter-repro.toml --record worst=3 --report r.json --record-dir runs/repro
  xiaozhi-fleet run --speakers 10 --duration 2m --slo 'first_audio.p95<=1.5s' --slo 'stutter_ratio<=0.01'
  xiaozhi-fleet run --duration 10m --report r.json --report r.csv --report r.html --report r.md
  xiaozhi-fleet run --duration 5m --dashboard 127.0.0.1:8089 --prometheus 127.0.0.1:9464
  xiaozhi-fleet run big.toml --url ws://10.0.0.5:8000/xiaozhi/v1/ --shard 0/4 --report shard-0.json
  taskset -c 0 xiaozhi-fleet run --threads 1 --speakers 3000 --url ws://127.0.0.1:8000/xiaozhi/v1/

With no URL (flag or fleet file), the built-in mock server is started on
127.0.0.1. --duration without --turns keeps every device talking until the
end. Report formats by extension: .json, .csv (one row per turn, written as
turns finish), .html (charts, opens offline), .md/.txt (the summary). Report
paths and the recording directory are checked before the run.

", exit_codes!()))]
    Run(RunArgs),
    /// Run the built-in xiaozhi mock server.
    #[command(after_help = concat!("Examples:
  xiaozhi-fleet mock-server --listen 127.0.0.1:8000
  xiaozhi-fleet mock-server --listen 127.0.0.1:8000 --config fleets/ten-speakers.toml
  xiaozhi-fleet mock-server --listen 127.0.0.1:8443 --tls-cert cert.pem --tls-key key.pem

--config reads the [mock] table of a fleet file (delays, worker limits, VAD window,
[[mock.fault]] fault injection). With --tls-cert and --tls-key (PEM) it serves wss://.
The server runs until stopped; a stop by Ctrl-C, SIGTERM or SIGHUP is its normal end (0).

", exit_codes!()))]
    MockServer(MockArgs),
    /// Find the most concurrent speakers the server holds within the SLOs,
    /// and whether its CPU/memory allotment is enough.
    #[command(after_help = concat!("Examples:
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
Interrupted: the report is still written, with the knee from the completed stages.

", exit_codes!()))]
    Capacity(CapacityArgs),
    /// Serve stand-ins for a real xiaozhi server's AI providers (LLM, TTS, ASR),
    /// to load-test the server without paying for cloud AI.
    #[command(after_help = "Examples:
  xiaozhi-fleet providers --listen 0.0.0.0:18080
  xiaozhi-fleet providers --listen 0.0.0.0:18080 --config fleets/real-server-stand-ins.toml

Endpoints: POST /v1/chat/completions (OpenAI LLM), POST /v1/audio/speech (OpenAI TTS,
wav or pcm), POST /v1/audio/transcriptions (OpenAI ASR), WebSocket / (FunASR runtime
protocol, the server's fun_server ASR), GET /stats (counters and latencies).
--config reads the [providers] table of a fleet file (delays, worker limits, replies).
Point the server's config.yaml at them: see docs/real-server.md.")]
    Providers(ProvidersArgs),
    /// Re-render a saved JSON report (run, capacity or merged) in other formats.
    #[command(after_help = "Examples:
  xiaozhi-fleet report r.json --report r.html
  xiaozhi-fleet report capacity.json --report capacity.html --report capacity.md")]
    Report(ReportArgs),
    /// Merge run reports from several machines (shards of one test) exactly:
    /// counts add, percentiles come from the merged histograms, series are
    /// aligned on wall-clock time.
    #[command(after_help = "Example:
  xiaozhi-fleet merge host1.json host2.json host3.json -o all.json --report all.html")]
    Merge(MergeArgs),
    /// Register the fleet's devices with a full deployment's admin API
    /// (manager-api) once, so that `run` with the same seed finds them bound.
    #[command(after_help = concat!("Examples:
  xiaozhi-fleet provision --manager-api http://192.168.1.20:8002/xiaozhi --token T --agent AGENT_ID --devices 100
  XF_MANAGER_TOKEN=T xiaozhi-fleet provision fleets/ten-speakers.toml --manager-api http://192.168.1.20:8002/xiaozhi --agent AGENT_ID
  xiaozhi-fleet provision --by-code --ota http://192.168.1.20:8002/xiaozhi/ota/ \\
      --manager-api http://192.168.1.20:8002/xiaozhi --token T --agent AGENT_ID --devices 100

The devices are the ones `run` uses for the same fleet, --devices and --seed. By default
each is bound by MAC (POST /device/manual-add); --by-code asks the OTA endpoint for the
device's activation code and binds with it (POST /device/bind/AGENT/CODE). Running it
again is safe: devices bound already count as such. The token (a logged-in user's, from
the admin web page) is sent as `Authorization: Bearer` and never printed; give it with
--token or the XF_MANAGER_TOKEN environment variable. Exit 2 if any device failed.

", exit_codes!()))]
    Provision(ProvisionArgs),
    /// Find what brings stutter: a short matrix of runs that changes one
    /// factor at a time from a baseline (speakers, network, transport,
    /// device queue), then a verdict naming the cause and what to try.
    #[command(after_help = concat!("Examples:
  xiaozhi-fleet diagnose                                 # against the built-in mock
  xiaozhi-fleet diagnose --url ws://192.168.1.20:8000/xiaozhi/v1/ --report diagnosis.html
  xiaozhi-fleet diagnose --url ws://192.168.1.20:8000/xiaozhi/v1/ --watch-docker xiaozhi-esp32-server
  xiaozhi-fleet diagnose --ota http://192.168.1.20:8002/xiaozhi/ota/ --other-transport
  xiaozhi-fleet diagnose --devices 5,10,20 --networks wifi-poor --queue 0 --cell-duration 60s

The baseline is 2 speakers on a perfect link (lan) over WebSocket with the
firmware's 40-frame decode queue. Each further cell changes one thing: 5 and 10
speakers, the wifi-poor and 4g network profiles (docs/network-profiles.md), the
other transport (--other-transport), a 10-frame decode queue. Every gap the
devices hear is attributed to the server (audio late at the socket), the
network (held by the simulated link) or the device (dropped by a full queue).
A cell with fewer than 6 turns with audio is left out, and the reason shown.
Exit 1 when stutter was found (the verdict names where), 0 when none.

", exit_codes!()))]
    Diagnose(DiagnoseArgs),
    /// Check a fleet file and print the resolved plan (exit 2 if invalid).
    #[command(after_help = concat!("Example:\n  xiaozhi-fleet validate fleets/smoke.toml\n\n", exit_codes!()))]
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
    /// OTA version-check URL, e.g. http://host:8003/xiaozhi/ota/: each device asks it
    /// before its first connection and connects where it answers (--url not needed).
    #[arg(long, value_name = "URL")]
    pub ota: Option<String>,
    /// Number of virtual devices.
    #[arg(long)]
    pub devices: Option<u32>,
    /// Run for this long (e.g. 30s, 5m); without --turns every device keeps
    /// taking turns until then (the fleet file's `turns` is ignored).
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
    /// Write a report here, format by extension: .json, .csv (one row per
    /// turn, streamed), .html, .md, .txt; repeatable. Checked for
    /// writability before the run.
    #[arg(long)]
    pub report: Vec<PathBuf>,
    /// An SLO gate such as first_audio.p95<=1.5s or stutter_ratio<=0.01
    /// (exit 1 when one fails); repeatable; replaces the fleet file's [[slo]].
    #[arg(long)]
    pub slo: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics during the run, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<String>,
    /// Serve a live web dashboard at http://ADDR/ during the run, e.g. 127.0.0.1:8089.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
    /// Keep WAV + timeline of turns: worst=N (stuttered worst, then slowest)
    /// or device=ID (every turn of one device); repeatable.
    #[arg(long, value_parser = record_rule)]
    pub record: Vec<RecordRule>,
    /// Directory for recordings (default runs/<date-time>); checked for
    /// writability before the run.
    #[arg(long)]
    pub record_dir: Option<PathBuf>,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Start the AI provider stand-ins here (e.g. 0.0.0.0:18080) and report their figures.
    #[arg(long, value_name = "ADDR")]
    pub providers: Option<String>,
    /// No live status line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Run shard I of N (0 <= I < N): devices whose index is I mod N, that
    /// share of each stage's speakers and of the arrivals; N shards together
    /// make the whole run (merge their JSON reports with `merge`).
    #[arg(long, value_name = "I/N", value_parser = shard)]
    pub shard: Option<xiaozhi_fleet::fleet::shard::Shard>,
    /// Connect from these local addresses, in turn (repeatable or
    /// comma-separated); default: the system's choice, spread over
    /// 127.0.0.x for fleets of thousands against a loopback server.
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub source_addr: Vec<std::net::IpAddr>,
}

fn shard(s: &str) -> Result<xiaozhi_fleet::fleet::shard::Shard, String> {
    xiaozhi_fleet::fleet::shard::Shard::parse(s)
}

/// Trusting a wss:// server or an https:// OTA endpoint.
#[derive(Debug, Default, Args)]
pub struct TlsArgs {
    /// Trust the CA certificate(s) in this PEM file (besides the system's) for wss:// and https:// OTA URLs.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate for wss:// and https:// OTA URLs (self-signed test servers; not for production).
    #[arg(long)]
    pub insecure: bool,
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
    #[arg(long, value_parser = positive_duration, default_value = "1s")]
    pub watch_interval: Duration,
    /// The server's CPU allotment in cores (when the cgroup/Docker does not say).
    #[arg(long, value_parser = cores)]
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
    /// OTA version-check URL (http://): each device asks it before its first
    /// connection and connects where it answers (--url not needed).
    #[arg(long, value_name = "URL")]
    pub ota: Option<String>,
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
    /// Write a report here, format by extension: .json, .html (knee curve),
    /// .csv (one row per stage), .md, .txt; repeatable.
    #[arg(long)]
    pub report: Vec<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics during the search:
    /// the stage in progress (speakers, CPU allotment, shape) as labels and
    /// every finished stage as a point of the knee curve.
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<String>,
    /// Serve a live web dashboard at http://ADDR/ during the search: the
    /// stage in progress and the knee curve growing as stages finish.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
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
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Start the AI provider stand-ins here (e.g. 0.0.0.0:18080) and report their figures.
    #[arg(long, value_name = "ADDR")]
    pub providers: Option<String>,
    /// Search once per stand-in LLM first-token delay, e.g. 300ms,1s (needs --providers and --url).
    #[arg(long, value_name = "LIST")]
    pub llm_delay: Option<String>,
}

fn cores(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n <= 100_000.0 => Ok(n),
        _ => Err(format!("`{s}` is not a number of cores (e.g. 4 or 0.5)")),
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A JSON report written by run, capacity or merge.
    pub input: PathBuf,
    /// Write it here, format by extension (.html, .md, .txt, .json; .csv for capacity); repeatable.
    #[arg(long, required = true)]
    pub report: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// JSON run reports to merge (two or more).
    #[arg(required = true, num_args = 2..)]
    pub inputs: Vec<PathBuf>,
    /// The merged JSON report.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Also write the merged report in other formats (.html, .md, .txt); repeatable.
    #[arg(long)]
    pub report: Vec<PathBuf>,
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
    /// Serve wss:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Read resolved settings (JSON) from standard input: how `capacity`
    /// hands its mock child the settings it already checked.
    #[arg(long, hide = true, conflicts_with = "config")]
    pub settings_stdin: bool,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Fleet file (TOML): its devices, seed and OTA URL; the default fleet when omitted.
    pub fleet: Option<PathBuf>,
    /// The admin API's base URL with its context path, e.g. http://host:8002/xiaozhi.
    #[arg(long, value_name = "URL")]
    pub manager_api: String,
    /// A logged-in user's token (default: $XF_MANAGER_TOKEN); never printed.
    #[arg(long, value_parser = token)]
    pub token: Option<xiaozhi_fleet::provision::Token>,
    /// The agent (agentId) to bind the devices to.
    #[arg(long)]
    pub agent: String,
    /// Bind by the activation code of each device's OTA answer (needs --ota
    /// or the fleet file's `ota`) instead of by MAC.
    #[arg(long)]
    pub by_code: bool,
    /// OTA version-check URL, for --by-code.
    #[arg(long, value_name = "URL")]
    pub ota: Option<String>,
    /// Number of devices (as `run --devices`).
    #[arg(long)]
    pub devices: Option<u32>,
    /// Seed of the device identities (as `run --seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Devices registered at the same time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

fn token(s: &str) -> Result<xiaozhi_fleet::provision::Token, String> {
    Ok(xiaozhi_fleet::provision::Token::new(s))
}

#[derive(Debug, Args)]
pub struct ProvidersArgs {
    /// Address to listen on (the server's config.yaml points here).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: String,
    /// Fleet file whose [providers] table configures the stand-ins.
    #[arg(long)]
    pub config: Option<PathBuf>,
}
