//! The validated run plan: every default filled in, every value checked.

use super::{ConfigError, FleetFile, check, resolve};
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

/// What a device does between conversations (PROTOCOL.md §8.3, §9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Conversations per device when the device drives itself.
    pub conversations: u32,
    pub idle_time: Dist,
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

/// How the speakers of a stage time their turns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

    /// Parses a written name.
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

impl Plan {
    /// Validates a parsed fleet file; `file` names it in errors.
    pub fn from_file(mut raw: FleetFile, file: &str, ov: &Overrides) -> Result<Plan, ConfigError> {
        let source = raw.source.take();
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            line: source.as_deref().and_then(|t| super::locate::key_line(t, key)),
            key: key.to_string(),
            message,
        };
        let pair = |(k, m): (String, String)| invalid(&k, m);
        let target = match ov.url.clone().or(raw.url.clone()) {
            Some(url) if url.starts_with("ws://") || url.starts_with("wss://") => Target::Url(url),
            Some(url) => return Err(invalid("url", format!("must start with ws:// or wss://, got `{url}`"))),
            None => Target::BuiltInMock,
        };
        let ramp_per_sec = check::ramp(raw.ramp.unwrap_or(10.0)).map_err(pair)?;
        let stop = resolve::stop(&raw, ov).map_err(pair)?;
        let version = raw.protocol_version.unwrap_or(1);
        let protocol_version = ProtocolVersion::try_from(version)
            .map_err(|_| invalid("protocol_version", format!("must be 1, 2 or 3, got {version}")))?;
        let load = super::load::resolve_load(&raw, ov, stop).map_err(pair)?;
        let groups = super::load::resolve_groups(&raw, ov, &load, stop).map_err(pair)?;
        let devices = resolve::device_count(&groups, &load, ov).map_err(pair)?;
        let mock = raw
            .mock
            .take()
            .unwrap_or_default()
            .resolve()
            .map_err(|(key, message)| invalid(&format!("mock.{key}"), message))?;
        check::mock(&mock).map_err(pair)?;
        let (profile, playback) = resolve::playback(raw.device.take().unwrap_or_default()).map_err(pair)?;
        let (record, record_dir) = resolve::record(raw.record.take().unwrap_or_default(), ov);
        let timeouts = resolve::timeouts(&raw).map_err(pair)?;
        let tiers = resolve::tiers(raw.tier.take()).map_err(pair)?;
        let transcript_check = match raw.transcript_check.take() {
            None => TranscriptCheckPlan::Auto,
            Some(super::TranscriptCheckSpec::Word(w)) if w == "auto" => TranscriptCheckPlan::Auto,
            Some(super::TranscriptCheckSpec::Word(w)) if w == "off" => TranscriptCheckPlan::Off,
            Some(super::TranscriptCheckSpec::Cer(c)) if (0.0..=1.0).contains(&c) => TranscriptCheckPlan::MaxCer(c),
            Some(other) => {
                return Err(invalid(
                    "transcript_check",
                    format!("must be \"auto\", \"off\" or a character error rate between 0 and 1; got {other}"),
                ));
            }
        };
        let shape = match (ov.shape, raw.shape.as_deref()) {
            (Some(s), _) => s,
            (None, Some(text)) => Shape::parse(text).map_err(|m| invalid("shape", m))?,
            (None, None) => Shape::Steady,
        };
        let providers = raw
            .providers
            .take()
            .unwrap_or_default()
            .resolve()
            .map_err(|(key, message)| invalid(&format!("providers.{key}"), message))?;
        // `audio_dir` is relative to the fleet file, wherever the tool runs.
        let audio_dir = raw.audio_dir.take().map(|d| match &raw.dir {
            Some(base) => base.join(d),
            None => PathBuf::from(d),
        });
        let mut plan = Plan {
            name: file.to_string(),
            target,
            devices,
            ramp_per_sec,
            stop,
            groups,
            load,
            total_turns: raw.total_turns.filter(|&n| n > 0),
            audio_dir,
            seed: ov.seed.or(raw.seed).unwrap_or(1),
            protocol_version,
            token: raw.token.take().filter(|t| !t.is_empty()),
            timeouts,
            mock,
            profile,
            playback,
            record,
            record_dir,
            slos: match raw.slo.take() {
                Some(v) if !v.is_empty() => v.into_iter().map(|s| s.rule).collect(),
                _ => Slo::defaults(),
            },
            tiers,
            tls: ov.tls.clone(),
            transcript_check,
            providers,
            shape,
            warnings: Vec::new(),
            shard: Default::default(),
            source_addrs: Vec::new(),
        };
        plan.warnings = check::warnings(&plan);
        Ok(plan)
    }

    /// Reads, parses and validates a fleet file (or the built-in default).
    pub fn load(path: Option<&std::path::Path>, ov: &Overrides) -> Result<Plan, ConfigError> {
        match path {
            Some(p) => Plan::from_file(FleetFile::read(p)?, &p.display().to_string(), ov),
            None => {
                let name = super::DEFAULT_FLEET_NAME;
                Plan::from_file(FleetFile::parse(super::DEFAULT_FLEET, name)?, name, ov)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
