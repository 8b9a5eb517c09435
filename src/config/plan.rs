//! The validated run plan: every default filled in, every value checked.

use super::{ConfigError, FleetFile};
use crate::audio::playback::PlaybackConfig;
use crate::capacity::sizing::{Tier, default_tiers};
use crate::capacity::slo::Slo;
use crate::device::profile;
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
    /// How stage speakers time their turns.
    pub shape: Shape,
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
    pub fn from_file(raw: FleetFile, file: &str, ov: &Overrides) -> Result<Plan, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        let target = match ov.url.clone().or(raw.url.clone()) {
            Some(url) if url.starts_with("ws://") => Target::Url(url),
            Some(url) if url.starts_with("wss://") => {
                return Err(invalid(
                    "url",
                    format!(
                        "`{url}`: wss:// (TLS) is not supported yet; use ws:// (xiaozhi servers serve plain WebSocket on port 8000)"
                    ),
                ));
            }
            Some(url) => return Err(invalid("url", format!("must start with ws://, got `{url}`"))),
            None => Target::BuiltInMock,
        };
        let ramp_per_sec = raw.ramp.unwrap_or(10.0);
        if !(ramp_per_sec.is_finite() && ramp_per_sec > 0.0) {
            return Err(invalid(
                "ramp",
                format!("must be a positive number of devices per second, got {ramp_per_sec}"),
            ));
        }
        let stop = match (ov.turns, ov.duration) {
            (_, Some(d)) => Stop::Duration(d),
            (Some(t), None) => Stop::Turns(t),
            (None, None) => match (raw.duration, raw.turns) {
                (Some(d), _) => Stop::Duration(d.0),
                (None, t) => Stop::Turns(t.unwrap_or(2)),
            },
        };
        match stop {
            Stop::Turns(0) => return Err(invalid("turns", "must be at least 1".into())),
            Stop::Duration(d) if d.is_zero() => return Err(invalid("duration", "must be longer than 0s".into())),
            _ => {}
        }
        let version = raw.protocol_version.unwrap_or(1);
        let protocol_version = ProtocolVersion::try_from(version)
            .map_err(|_| invalid("protocol_version", format!("must be 1, 2 or 3, got {version}")))?;
        let load = super::load::resolve_load(&raw, ov, stop).map_err(|(k, m)| invalid(&k, m))?;
        let groups = super::load::resolve_groups(&raw, ov, &load, stop).map_err(|(k, m)| invalid(&k, m))?;
        let devices = groups.iter().map(|g| g.count).sum::<u32>();
        if devices == 0 {
            return Err(invalid("devices", "must be at least 1".into()));
        }
        if let Load::Stages(stages) = &load {
            let talkers: u32 = groups.iter().filter(|g| g.talks()).map(|g| g.count).sum();
            let most = stages.iter().map(|s| s.speakers).max().unwrap_or(0);
            if most > talkers {
                return Err(invalid(
                    "stages",
                    format!(
                        "ask for {most} concurrent speakers but only {talkers} devices can talk (groups with turns > 0)"
                    ),
                ));
            }
        }
        let mock = raw
            .mock
            .unwrap_or_default()
            .resolve()
            .map_err(|(key, message)| invalid(&format!("mock.{key}"), message))?;
        let dev = raw.device.unwrap_or_default();
        let profile_name = dev.profile.unwrap_or_else(|| profile::DEFAULT_PROFILE.to_string());
        let base = profile::profile(&profile_name).ok_or_else(|| {
            invalid(
                "device.profile",
                format!("unknown profile `{profile_name}` (known: {})", profile::profile_names()),
            )
        })?;
        let playback = PlaybackConfig {
            queue_capacity: dev.queue_frames.unwrap_or(base.playback.queue_capacity),
            start_threshold: dev.start_threshold.unwrap_or(base.playback.start_threshold),
        };
        if playback.queue_capacity == 0 {
            return Err(invalid("device.queue_frames", "must be at least 1".into()));
        }
        let rec = raw.record.unwrap_or_default();
        let mut record = ov.record.clone();
        if record.is_empty() {
            record.extend(rec.worst.filter(|&n| n > 0).map(RecordRule::Worst));
            record.extend(rec.devices.unwrap_or_default().into_iter().map(RecordRule::Device));
        }
        let record_dir = ov.record_dir.clone().or(rec.dir.map(PathBuf::from));
        let shape = match (ov.shape, raw.shape.as_deref()) {
            (Some(s), _) => s,
            (None, Some(text)) => Shape::parse(text).map_err(|m| invalid("shape", m))?,
            (None, None) => Shape::Steady,
        };
        let secs = |s: Option<crate::units::Span>, d: u64| s.map(|s| s.0).unwrap_or(Duration::from_secs(d));
        Ok(Plan {
            name: file.to_string(),
            target,
            devices,
            ramp_per_sec,
            stop,
            groups,
            load,
            total_turns: raw.total_turns.filter(|&n| n > 0),
            audio_dir: raw.audio_dir.map(PathBuf::from),
            seed: ov.seed.or(raw.seed).unwrap_or(1),
            protocol_version,
            token: raw.token.filter(|t| !t.is_empty()),
            timeouts: Timeouts {
                hello: secs(raw.hello_timeout, 10),
                no_reply: secs(raw.no_reply_timeout, 15),
                reply: secs(raw.reply_timeout, 60),
                grace: secs(raw.grace, 30),
            },
            mock,
            profile: profile_name,
            playback,
            record,
            record_dir,
            slos: match raw.slo {
                Some(v) if !v.is_empty() => v.into_iter().map(|s| s.rule).collect(),
                _ => Slo::defaults(),
            },
            tiers: match raw.tier {
                Some(v) if !v.is_empty() => v
                    .into_iter()
                    .map(|t| Tier {
                        name: t.name,
                        cpu_cores: t.cores,
                        memory_gb: t.memory_gb,
                    })
                    .collect(),
                _ => default_tiers(),
            },
            shape,
        })
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
        assert_eq!(err, "t.toml: `devices` must be at least 1");
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
