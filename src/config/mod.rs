//! Fleet files: the raw TOML shape ([`FleetFile`]), its errors with file,
//! line and key, and the validated [`Plan`] the rest of the tool runs.
//!
//! Two layers, as in ripgrep: serde reads the file into plain structs that
//! reject unknown keys and unknown choices (serde enums); [`Plan::from_file`]
//! then checks values and fills in defaults, so nothing downstream sees an
//! `Option` it has to guess about.
//!
//! Files, in the order they depend on each other: `plan` (the validated
//! types, and nothing else), `check` and `load` and `resolve` (value checks
//! and resolutions, each from raw sections to plan types), `build` (runs
//! them in order into a [`Plan`]), `locate` (the line of a key, for errors).

mod build;
mod check;
pub mod conditions;
mod load;
mod locate;
pub mod network_section;
pub mod plan;
mod resolve;

pub use load::parse_stage;
pub use plan::{
    GroupPlan, IdleForm, Load, Plan, Shape, StagePlan, StartBy, Stop, Target, Timeouts, TranscriptCheckPlan,
    TransportChoice,
};

use crate::mock::MockSettings;
use crate::protocol::ListenMode;
use crate::units::Span;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The fleet file used when none is given: also shipped as `fleets/smoke.toml`.
pub const DEFAULT_FLEET: &str = include_str!("../../fleets/smoke.toml");
/// The name the embedded default fleet reports itself under.
pub const DEFAULT_FLEET_NAME: &str = "smoke (built in)";

/// A fleet file as written. Every key is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// Server WebSocket URL; absent means "start the built-in mock".
    pub url: Option<String>,
    /// OTA version-check URL (http://); devices connect where it answers.
    pub ota: Option<String>,
    /// How many virtual devices.
    pub devices: Option<u32>,
    /// Devices connected per second during the ramp.
    pub ramp: Option<f64>,
    /// Turns per device (stop condition when `duration` is absent).
    pub turns: Option<u32>,
    /// Run length; devices keep talking until it ends.
    pub duration: Option<Span>,
    /// Silence streamed between the end of one answer and the next question
    /// (`2s`, `uniform(1s, 5s)`, `exp(3s)`, `lognormal(2s, 0.5)`).
    pub think_time: Option<crate::dist::Dist>,
    /// Clip names or globs from the audio manifest (`*` = all).
    pub clips: Option<Vec<String>>,
    /// A directory with `manifest.toml` and WAVs to use instead of the built-in clips.
    pub audio_dir: Option<String>,
    /// Seed for device ids, clip choice and schedules.
    pub seed: Option<u64>,
    /// Binary framing version 1, 2 or 3 (real servers speak 1).
    pub protocol_version: Option<u8>,
    /// Token sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// How long a device waits for the server hello.
    pub hello_timeout: Option<Span>,
    /// End of speech → `tts start` limit (else the turn fails `no_reply`).
    pub no_reply_timeout: Option<Span>,
    /// `tts start` → `tts stop` limit (else the turn fails `reply_timeout`).
    pub reply_timeout: Option<Span>,
    /// When the run's duration ends, how long turns in progress may finish.
    pub grace: Option<Span>,
    /// The simulated board's playback model.
    pub device: Option<DeviceSection>,
    /// Network conditions of every group without its own: a profile name or a table.
    pub network: Option<network_section::NetworkSpec>,
    /// Which turns to keep as recordings.
    pub record: Option<RecordSection>,
    /// Device groups (scenarios); without any, one group from the keys above.
    pub group: Option<Vec<GroupSection>>,
    /// Closed-loop step plan: `["10 for 60s", "20 for 60s"]` (concurrent speakers).
    pub stages: Option<Vec<StageSpec>>,
    /// Short form of one stage: hold this many concurrent speakers for `duration`.
    pub speakers: Option<u32>,
    /// Open model: conversations arrive at this rate (`0.5/s`, `30/min`).
    pub arrivals: Option<String>,
    /// How stage speakers time their turns: `steady`, `burst` or `poisson`.
    pub shape: Option<Shape>,
    /// Stop after this many turns in total (any load model).
    pub total_turns: Option<u64>,
    /// SLOs for `capacity` (default: p95 first audio ≤ 2 s, stutter ≤ 1%, failed ≤ 1%).
    pub slo: Option<Vec<SloSection>>,
    /// Machine sizes for the sizing verdict (default: the operators' guide).
    pub tier: Option<Vec<TierSection>>,
    /// Settings of the built-in mock server.
    pub mock: Option<MockSettings>,
    /// Check `stt` against each clip's transcript: `"auto"` (on against the
    /// built-in mock, off against real servers), `"off"`, or the largest
    /// character error rate that counts as heard right (e.g. `0.3`).
    pub transcript_check: Option<TranscriptCheckSpec>,
    /// The file's text, to name the line of a value found invalid later.
    #[serde(skip)]
    pub source: Option<String>,
    /// The file's directory: `audio_dir` is resolved against it.
    #[serde(skip)]
    pub dir: Option<PathBuf>,
    /// Stand-ins for a real server's AI providers (LLM, TTS, ASR).
    pub providers: Option<crate::providers::ProvidersSettings>,
}

/// How a group's devices start a conversation, as written: `button` or
/// `wake_word` (the word itself is the group's `wake_word`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartChoice {
    Button,
    WakeWord,
}

/// `transcript_check` as written: `"auto"`, `"off"` or a number (the
/// largest character error rate; its range is checked with the plan).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TranscriptCheckSpec {
    Auto,
    Off,
    Cer(f64),
}

impl<'de> Deserialize<'de> for TranscriptCheckSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Spec;
        impl serde::de::Visitor<'_> for Spec {
            type Value = TranscriptCheckSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(TRANSCRIPT_CHECK_CHOICES)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "auto" => Ok(TranscriptCheckSpec::Auto),
                    "off" => Ok(TranscriptCheckSpec::Off),
                    other => Err(E::custom(format!("{TRANSCRIPT_CHECK_CHOICES}; got \"{other}\""))),
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(TranscriptCheckSpec::Cer(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TranscriptCheckSpec::Cer(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(TranscriptCheckSpec::Cer(v as f64))
            }
        }
        d.deserialize_any(Spec)
    }
}

/// What `transcript_check` accepts, in the words of its errors.
pub(crate) const TRANSCRIPT_CHECK_CHOICES: &str = "must be \"auto\", \"off\" or a character error rate between 0 and 1";

/// `[[slo]]`: one rule, e.g. `rule = "first_audio.p95<=2s"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSection {
    pub rule: crate::capacity::slo::Slo,
}

/// `[[tier]]`: a machine size one can buy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSection {
    pub name: String,
    pub cores: f64,
    pub memory_gb: f64,
}

/// `[[group]]`: devices that behave alike.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub name: Option<String>,
    /// Exact number of devices...
    pub count: Option<u32>,
    /// ...or a share of the top-level `devices`.
    pub weight: Option<f64>,
    /// Clip names or globs.
    pub clips: Option<Vec<String>>,
    /// `auto` (server VAD), `manual` (push-to-talk, `listen stop`), `realtime` (mic always on).
    pub mode: Option<ListenMode>,
    /// `button` or `wake_word`.
    pub start: Option<StartChoice>,
    /// The wake word sent with `listen detect` (default 你好小智).
    pub wake_word: Option<String>,
    /// Turns per conversation (0: never talks, only idles).
    pub turns: Option<u32>,
    pub think_time: Option<crate::dist::Dist>,
    /// Probability that the user interrupts an answer (`abort`) and speaks again.
    pub barge_in: Option<f64>,
    /// Between conversations: `listening`, `silent` or `disconnected`.
    pub idle: Option<IdleForm>,
    /// `websocket` or `mqtt` (MQTT + UDP; needs `ota`); absent: the OTA answer decides.
    pub transport: Option<TransportChoice>,
    /// Conversations per device when no stages/arrivals drive the load.
    pub conversations: Option<u32>,
    /// Idle time between those conversations.
    pub idle_time: Option<crate::dist::Dist>,
    /// This group's network conditions (else the top-level `network`).
    pub network: Option<network_section::NetworkSpec>,
    /// This group's board (else the top-level `[device]`).
    pub device: Option<DeviceSection>,
    /// A pause in the middle of each clip (`1.5s`): longer than the server's
    /// VAD silence window, it splits the sentence into two turns.
    pub pause: Option<Span>,
}

/// A stage written as `"10 for 60s"` or as a table.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum StageSpec {
    Text(String),
    Table {
        speakers: u32,
        duration: Span,
        name: Option<String>,
    },
}

/// `[device]`: a named profile plus overrides.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    /// Profile name (default `esp32-s3-default`).
    pub profile: Option<String>,
    /// Decode-queue capacity in frames (firmware: 40).
    pub queue_frames: Option<usize>,
    /// Frames buffered before playout starts (firmware: 0).
    pub start_threshold: Option<usize>,
    /// Decode-queue depth in frames (firmware: 40); wins over `queue_frames`.
    pub queue: Option<usize>,
    /// A frame arriving at a full queue: `drop` (firmware) or `wait`.
    pub overflow: Option<crate::audio::playback::Overflow>,
}

/// `[record]`: keep WAVs and timelines of some turns.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSection {
    /// Keep the N turns that stuttered worst (then the slowest).
    pub worst: Option<usize>,
    /// Keep every turn of these device ids.
    pub devices: Option<Vec<String>>,
    /// Directory for the run's recordings (default `runs/<time>`).
    pub dir: Option<String>,
}

/// A fleet file that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or a key/value the schema rejects, with its position.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A value that parses but makes no sense (e.g. `devices = 0`), with
    /// the line of its key when the file holds it.
    #[error("{file}{}: `{key}` {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        file: String,
        line: Option<usize>,
        key: String,
        message: String,
    },
}

impl FleetFile {
    /// Parses fleet-file text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<FleetFile, ConfigError> {
        let mut parsed: FleetFile = toml::from_str(text).map_err(|e| syntax_error(text, file, &e))?;
        parsed.source = Some(text.to_string());
        Ok(parsed)
    }

    /// Reads and parses a fleet file from disk.
    pub fn read(path: &Path) -> Result<FleetFile, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut parsed = Self::parse(&text, &file)?;
        parsed.dir = Some(path.parent().map_or_else(PathBuf::new, Path::to_path_buf));
        Ok(parsed)
    }
}

/// Turns a TOML error into file:line:column plus the message, which for
/// unknown keys names the key and lists the accepted ones. A value that is
/// not one of a key's choices (a serde enum) names the key, the choices
/// and what was written, like the plan's own checks.
pub(crate) fn syntax_error(text: &str, file: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    let choice = bad_choice(e.message().trim()).zip(e.span().and_then(|s| locate::key_at(text, s.start)));
    if let Some((message, key)) = choice {
        return ConfigError::Invalid {
            file: file.to_string(),
            line: Some(line),
            key,
            message,
        };
    }
    ConfigError::Syntax {
        file: file.to_string(),
        line,
        column,
        message: e.message().trim().to_string(),
    }
}

/// serde's "unknown variant `x`, expected one of `a`, `b`, `c`" as "must
/// be a, b or c; got `x`"; a deserializer's own "must be …" as it is;
/// `None` for any other message.
fn bad_choice(message: &str) -> Option<String> {
    if message.starts_with("must be ") {
        return Some(message.to_string());
    }
    let (got, expected) = message.strip_prefix("unknown variant `")?.split_once("`, expected ")?;
    let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let list = match names.as_slice() {
        [] => return None,
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    Some(format!("must be {list}; got `{got}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_key_names_file_line_and_key() {
        let text = "devices = 3\nturnz = 2\n";
        let err = FleetFile::parse(text, "fleets/x.toml").unwrap_err().to_string();
        assert!(err.starts_with("fleets/x.toml:2:1:"), "{err}");
        assert!(err.contains("turnz"), "{err}");
    }

    #[test]
    fn misspelt_mock_key_points_into_the_mock_table() {
        let text = "devices = 3\n\n[mock]\nasr_dealy = \"1s\"\n";
        let err = FleetFile::parse(text, "f.toml").unwrap_err().to_string();
        assert!(err.starts_with("f.toml:4:1:"), "{err}");
        assert!(err.contains("asr_dealy"), "{err}");
    }

    #[test]
    fn bad_duration_is_reported_with_its_line() {
        let err = FleetFile::parse("think_time = \"soon\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.toml:1:"), "{err}");
        assert!(err.contains("soon"), "{err}");
    }

    /// What parsing `text` as `f.toml` says is wrong.
    fn parse_error(text: &str) -> String {
        FleetFile::parse(text, "f.toml").unwrap_err().to_string()
    }

    #[test]
    fn unknown_choice_names_file_line_key_and_the_choices() {
        let text = "devices = 4\n\n[[group]]\ncount = 2\n\n[[group]]\ncount = 2\nmode = \"push\"\n";
        assert_eq!(
            parse_error(text),
            "f.toml:8: `group[1].mode` must be auto, manual or realtime; got `push`"
        );
        assert_eq!(
            parse_error("[[group]]\nstart = \"clap\"\n"),
            "f.toml:2: `group[0].start` must be button or wake_word; got `clap`"
        );
        assert_eq!(
            parse_error("[[group]]\nidle = \"asleep\"\n"),
            "f.toml:2: `group[0].idle` must be listening, silent or disconnected; got `asleep`"
        );
        assert_eq!(
            parse_error("speakers = 3\nshape = \"wave\"\n"),
            "f.toml:2: `shape` must be steady, burst or poisson; got `wave`"
        );
    }

    #[test]
    fn unknown_choice_in_a_nested_table_names_its_full_key() {
        assert_eq!(
            parse_error("[mock]\nasr_delay = \"1s\"\ndownlink = \"trickle\"\n"),
            "f.toml:3: `mock.downlink` must be realtime, burst, jitter or stall; got `trickle`"
        );
        assert_eq!(
            parse_error("[mock]\ncpu_burn_threads = \"all\"\n"),
            "f.toml:2: `mock.cpu_burn_threads` must be pool or single; got `all`"
        );
        assert_eq!(
            parse_error("[providers.llm]\npick = \"random\"\n"),
            "f.toml:2: `providers.llm.pick` must be seed or turn; got `random`"
        );
    }

    #[test]
    fn transcript_check_word_that_is_no_choice_names_the_key() {
        assert_eq!(
            parse_error("transcript_check = \"on\"\n"),
            "f.toml:1: `transcript_check` must be \"auto\", \"off\" or a character error rate between 0 and 1; got \"on\""
        );
        let raw = FleetFile::parse("transcript_check = 0.3\n", "f.toml").unwrap();
        assert_eq!(raw.transcript_check, Some(TranscriptCheckSpec::Cer(0.3)));
        let raw = FleetFile::parse("transcript_check = \"off\"\n", "f.toml").unwrap();
        assert_eq!(raw.transcript_check, Some(TranscriptCheckSpec::Off));
    }

    #[test]
    fn default_fleet_parses() {
        let file = FleetFile::parse(DEFAULT_FLEET, DEFAULT_FLEET_NAME).unwrap();
        assert!(file.url.is_none());
    }
}
