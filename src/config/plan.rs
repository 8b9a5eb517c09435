//! The validated run plan: every default filled in, every value checked.

use crate::audio::playback::PlaybackConfig;
use crate::capacity::sizing::Tier;
use crate::capacity::slo::Slo;
use crate::dist::Dist;
use crate::mock::MockConfig;
use crate::protocol::ListenMode;
use crate::protocol::ProtocolVersion;
use crate::record::RecordRule;
use std::path::PathBuf;
use std::time::Duration;

/// Where the fleet connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A real (or separately started) server at this WebSocket URL.
    Url(String),
    /// Start the built-in mock in-process on 127.0.0.1, port 0.
    BuiltInMock,
    /// No WebSocket URL: each device connects where the answer of its OTA
    /// version check ([`Plan::ota`]) sends it.
    OtaAnswer,
}

/// When the run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Each device does this many turns, then closes.
    Turns(u32),
    /// Devices keep taking turns until the duration ends (then a grace period).
    Duration(Duration),
}

/// Device-side time limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connect + upgrade limit, and server-hello wait (firmware: 10 s).
    pub hello: Duration,
    /// End of speech → `tts start`.
    pub no_reply: Duration,
    /// `tts start` → `tts stop`.
    pub reply: Duration,
    /// Time turns in progress get to finish when the run's duration ends.
    pub grace: Duration,
}

/// How a device starts a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartBy {
    /// A button press: `listen start` straight away.
    Button,
    /// `listen detect` with this wake word, the server's greeting, then `listen start`.
    WakeWord(String),
}

/// What a device does between conversations (PROTOCOL.md §8.3, §9.1);
/// written `listening`, `silent` or `disconnected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleForm {
    /// Connected in auto mode, streaming silence, until the server's
    /// no-voice timeout closes it.
    Listening,
    /// Connected, sending nothing.
    Silent,
    /// No connection; a conversation opens one (connect + hello).
    Disconnected,
}

impl IdleForm {
    /// The form as fleet files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            IdleForm::Listening => "listening",
            IdleForm::Silent => "silent",
            IdleForm::Disconnected => "disconnected",
        }
    }
}

/// How a group's devices reach the server; written `websocket` or `mqtt`.
/// Absent: what the OTA answer offers (`mqtt` wins, as in the firmware),
/// or the run's WebSocket URL without OTA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportChoice {
    /// JSON and audio on one WebSocket (the OTA answer's `websocket`, or the run's URL).
    Websocket,
    /// MQTT + UDP through a gateway (PROTOCOL.md §11), with the OTA answer's credentials.
    Mqtt,
}

impl TransportChoice {
    /// The choice as fleet files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportChoice::Websocket => "websocket",
            TransportChoice::Mqtt => "mqtt",
        }
    }
}

/// Devices that behave alike.
#[derive(Clone, Debug)]
pub struct GroupPlan {
    pub name: String,
    pub count: u32,
    pub clips: Vec<String>,
    pub mode: ListenMode,
    pub start: StartBy,
    /// Turns per conversation; `Some(0)` = the group only idles; `None` =
    /// until the run ends (per-device load with a duration and no `turns`).
    pub turns: Option<u32>,
    pub think_time: Dist,
    pub barge_in: f64,
    pub idle: IdleForm,
    /// `None`: as the OTA answer says.
    pub transport: Option<TransportChoice>,
    /// Conversations per device when the device drives itself.
    pub conversations: u32,
    pub idle_time: Dist,
    /// Injected network conditions; `None`: a perfect link (no delay line).
    pub network: Option<crate::network::LinkConditions>,
    /// The board: profile name and playback model (the top-level `[device]` unless the group has its own).
    pub device_profile: String,
    pub playback: PlaybackConfig,
    /// A pause the speaker makes in the middle of each clip.
    pub pause: Option<Duration>,
}

impl GroupPlan {
    /// Whether devices of this group ever talk.
    pub fn talks(&self) -> bool {
        self.turns != Some(0)
    }
}

/// One closed-loop stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlan {
    pub name: String,
    /// Concurrent speakers to hold.
    pub speakers: u32,
    /// Measure window (after the ramp-up).
    pub duration: Duration,
    /// While fewer turns than this ended in the window, it is extended by
    /// `duration` (at most to 3×); 0 = never.
    pub min_turns: u64,
}

/// How the speakers of a stage time their turns; written `steady`,
/// `burst` or `poisson`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Closed loop: each speaker talks again after its think time; phases
    /// spread by the ramp and the think-time distribution.
    #[default]
    Steady,
    /// Every speaker starts each turn at the same moment; the next round
    /// when all are done (a classroom, a demo: the worst case).
    Burst,
    /// Open model: one-turn conversations arrive as a Poisson process at the
    /// rate that keeps N speakers busy on average (measured in warm-up).
    Poisson,
}

impl Shape {
    /// The name as written (`steady`, `burst`, `poisson`).
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Steady => "steady",
            Shape::Burst => "burst",
            Shape::Poisson => "poisson",
        }
    }

    /// Parses a written name (`--shape`; the fleet file's `shape` goes through serde).
    pub fn parse(text: &str) -> Result<Shape, String> {
        match text.trim() {
            "steady" => Ok(Shape::Steady),
            "burst" => Ok(Shape::Burst),
            "poisson" => Ok(Shape::Poisson),
            other => Err(format!("must be steady, burst or poisson; got `{other}`")),
        }
    }
}

/// What drives conversations.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    /// Every device runs its group's conversations on its own.
    PerDevice,
    /// Hold N concurrent speakers per stage (closed loop).
    Stages(Vec<StagePlan>),
    /// Conversations arrive as a seeded Poisson process (open model).
    Arrivals { per_sec: f64 },
}

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Fleet file name (for the report).
    pub name: String,
    pub target: Target,
    /// The OTA version-check URL (`--ota`, `ota = "…"`): every device asks
    /// it before its first connection and connects where it answers.
    pub ota: Option<String>,
    pub devices: u32,
    /// Devices connected per second.
    pub ramp_per_sec: f64,
    pub stop: Stop,
    /// Device groups, in device-index order.
    pub groups: Vec<GroupPlan>,
    pub load: Load,
    /// Stop after this many turns in total.
    pub total_turns: Option<u64>,
    pub audio_dir: Option<PathBuf>,
    pub seed: u64,
    pub protocol_version: ProtocolVersion,
    pub token: Option<String>,
    pub timeouts: Timeouts,
    /// Settings for the built-in mock (used when `target` is the mock).
    pub mock: MockConfig,
    /// Device profile name and the playback model it resolves to.
    pub profile: String,
    pub playback: PlaybackConfig,
    /// Recording rules (empty = record nothing).
    pub record: Vec<RecordRule>,
    pub record_dir: Option<PathBuf>,
    /// SLOs for capacity searches.
    pub slos: Vec<Slo>,
    /// Machine sizes for the sizing verdict.
    pub tiers: Vec<Tier>,
    /// How to trust a `wss://` server's certificate.
    pub tls: crate::device::tls::TlsOptions,
    /// Whether devices check `stt` against their clip's transcript.
    pub transcript_check: TranscriptCheckPlan,
    /// Valid but probably unintended (a ramp that outlasts the run): shown
    /// by `validate` and `run`.
    pub warnings: Vec<String>,
    /// The AI provider stand-ins; started when `providers.listen` is set.
    pub providers: crate::providers::ProvidersConfig,
    /// This process's part of the run (`--shard I/N`; `0/1`: all of it).
    pub shard: crate::fleet::shard::Shard,
    /// Local addresses devices connect from (`--source-addr`); empty: the
    /// system picks, spread over 127.0.0.x for large loopback fleets.
    pub source_addrs: Vec<std::net::IpAddr>,
    /// How stage speakers time their turns.
    pub shape: Shape,
}

/// Whether devices check `stt` against the clip they spoke.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TranscriptCheckPlan {
    /// On against the built-in mock (which answers with the clip's exact
    /// transcript), off against other servers (their ASR words things its
    /// own way).
    Auto,
    Off,
    /// On, with this largest character error rate.
    MaxCer(f64),
}

/// The character error rate `auto` allows against the built-in mock.
pub const DEFAULT_MAX_CER: f64 = 0.2;

impl TranscriptCheckPlan {
    /// The limit in force against the built-in mock with the bundled clips
    /// (`mock`: it recognises them and answers with their transcripts) or
    /// anything else.
    pub fn max_cer(self, mock: bool) -> Option<f64> {
        match self {
            TranscriptCheckPlan::Auto => mock.then_some(DEFAULT_MAX_CER),
            TranscriptCheckPlan::Off => None,
            TranscriptCheckPlan::MaxCer(c) => Some(c),
        }
    }
}

/// Command-line values that replace the fleet file's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub url: Option<String>,
    /// `--ota URL`: replaces the file's `ota`.
    pub ota: Option<String>,
    pub devices: Option<u32>,
    pub duration: Option<Duration>,
    pub turns: Option<u32>,
    pub seed: Option<u64>,
    /// `--speakers N`: hold N concurrent speakers for the duration.
    pub speakers: Option<u32>,
    /// `--record` rules; they replace the file's `[record]` rules.
    pub record: Vec<RecordRule>,
    pub record_dir: Option<PathBuf>,
    /// `--ca-cert FILE` / `--insecure` for wss:// servers.
    pub tls: crate::device::tls::TlsOptions,
    /// `--shape`: replaces the file's `shape`.
    pub shape: Option<Shape>,
}

/// Parses a `--record` value: `worst=N` or `device=ID`.
pub fn parse_record_rule(text: &str) -> Result<RecordRule, String> {
    match text.split_once('=') {
        Some(("worst", n)) => n
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .map(RecordRule::Worst)
            .ok_or_else(|| format!("`{text}`: worst=N needs a positive number")),
        Some(("device", id)) if !id.trim().is_empty() => Ok(RecordRule::Device(id.trim().to_lowercase())),
        _ => Err(format!("`{text}`: write worst=N or device=ID (a MAC-shaped device id)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, FleetFile};

    fn plan(text: &str) -> Result<Plan, ConfigError> {
        Plan::from_file(FleetFile::parse(text, "t.toml")?, "t.toml", &Overrides::default())
    }

    #[test]
    fn empty_file_gets_defaults_and_the_mock() {
        let p = plan("").unwrap();
        assert_eq!(p.target, Target::BuiltInMock);
        assert_eq!(p.devices, 20);
        assert_eq!(p.stop, Stop::Turns(2));
        assert_eq!(p.protocol_version, ProtocolVersion::V1);
    }

    #[test]
    fn mqtt_transport_needs_an_ota_url_and_says_where_credentials_come_from() {
        let text = "devices = 2\n\n[[group]]\ncount = 1\n\n[[group]]\ncount = 1\ntransport = \"mqtt\"\n";
        let err = plan(text).unwrap_err().to_string();
        assert_eq!(
            err,
            "t.toml:8: `group[1].transport` is mqtt, which needs an OTA URL (`ota = \"http://…\"` or --ota): the MQTT credentials come from the OTA answer"
        );
        let with_ota = format!("ota = \"http://127.0.0.1:1/xiaozhi/ota/\"\n{text}");
        let p = plan(&with_ota).unwrap();
        assert_eq!(p.groups[0].transport, None);
        assert_eq!(p.groups[1].transport, Some(TransportChoice::Mqtt));
        let ws = plan("devices = 1\n[[group]]\ntransport = \"websocket\"\n").unwrap();
        assert_eq!(ws.groups[0].transport, Some(TransportChoice::Websocket));
    }

    #[test]
    fn unknown_transport_names_file_line_key_and_the_choices() {
        let err = plan("devices = 1\n[[group]]\ntransport = \"udp\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "t.toml:3: `group[0].transport` must be websocket or mqtt; got `udp`"
        );
    }

    #[test]
    fn a_group_pause_is_read_and_a_zero_one_names_file_line_and_key() {
        let p = plan("devices = 2\n[[group]]\ncount = 1\npause = \"1.5s\"\n[[group]]\ncount = 1\n").unwrap();
        let pauses: Vec<_> = p.groups.iter().map(|g| g.pause).collect();
        assert_eq!(pauses, [Some(Duration::from_millis(1500)), None]);
        let err = plan("devices = 1\n[[group]]\npause = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "t.toml:3: `group[0].pause` must be longer than 0ms");
        let err = plan("devices = 1\n[[group]]\npause = \"long\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.toml:3:") && err.contains("`long` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn zero_devices_is_rejected_by_name() {
        let err = plan("devices = 0").unwrap_err().to_string();
        assert_eq!(err, "t.toml:1: `devices` must be at least 1");
    }

    #[test]
    fn url_must_be_websocket() {
        let err = plan("url = \"http://x\"").unwrap_err().to_string();
        assert!(err.contains("`url`"), "{err}");
    }

    #[test]
    fn protocol_version_four_is_rejected() {
        assert!(plan("protocol_version = 4").is_err());
    }

    #[test]
    fn command_line_overrides_win() {
        let raw = FleetFile::parse("devices = 3\nturns = 5\n", "t").unwrap();
        let ov = Overrides {
            devices: Some(7),
            duration: Some(Duration::from_secs(30)),
            url: Some("ws://127.0.0.1:1/".into()),
            ..Overrides::default()
        };
        let p = Plan::from_file(raw, "t", &ov).unwrap();
        assert_eq!(p.devices, 7);
        assert_eq!(p.stop, Stop::Duration(Duration::from_secs(30)));
        assert_eq!(p.target, Target::Url("ws://127.0.0.1:1/".into()));
    }
}
