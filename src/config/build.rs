//! Building the [`Plan`] from a parsed fleet file: the checks and
//! resolutions of the sibling modules run in order, each error named by
//! file, line and key.

use super::plan::{Overrides, Plan, Target, TranscriptCheckPlan, TransportChoice};
use super::{
    ConfigError, DEFAULT_FLEET, DEFAULT_FLEET_NAME, FleetFile, TRANSCRIPT_CHECK_CHOICES, TranscriptCheckSpec, check,
    conditions, load, locate, resolve,
};
use crate::capacity::slo::Slo;
use crate::fleet::shard::Shard;
use crate::protocol::ProtocolVersion;
use std::path::PathBuf;

impl Plan {
    /// Validates a parsed fleet file; `file` names it in errors.
    pub fn from_file(mut raw: FleetFile, file: &str, ov: &Overrides) -> Result<Plan, ConfigError> {
        let source = raw.source.take();
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            line: source.as_deref().and_then(|t| locate::key_line(t, key)),
            key: key.to_string(),
            message,
        };
        let pair = |(k, m): (String, String)| invalid(&k, m);
        let ota = match ov.ota.clone().or(raw.ota.clone()) {
            Some(u) if !u.starts_with("http://") && !u.starts_with("https://") => {
                return Err(invalid(
                    "ota",
                    format!("must start with http:// or https://, got `{u}`"),
                ));
            }
            other => other,
        };
        let target = match ov.url.clone().or(raw.url.clone()) {
            Some(url) if url.starts_with("ws://") || url.starts_with("wss://") => Target::Url(url),
            Some(url) => return Err(invalid("url", format!("must start with ws:// or wss://, got `{url}`"))),
            None if ota.is_some() => Target::OtaAnswer,
            None => Target::BuiltInMock,
        };
        let ramp_per_sec = check::ramp(raw.ramp.unwrap_or(10.0)).map_err(pair)?;
        let stop = resolve::stop(&raw, ov).map_err(pair)?;
        let version = raw.protocol_version.unwrap_or(1);
        let protocol_version = ProtocolVersion::try_from(version)
            .map_err(|_| invalid("protocol_version", format!("must be 1, 2 or 3, got {version}")))?;
        let load = load::resolve_load(&raw, ov, stop).map_err(pair)?;
        let mut groups = load::resolve_groups(&raw, ov, &load, stop).map_err(pair)?;
        if ota.is_none()
            && let Some(i) = groups.iter().position(|g| g.transport == Some(TransportChoice::Mqtt))
        {
            return Err(invalid(
                &format!("group[{i}].transport"),
                "is mqtt, which needs an OTA URL (`ota = \"http://…\"` or --ota): the MQTT credentials come from the OTA answer"
                    .to_string(),
            ));
        }
        let devices = resolve::device_count(&groups, &load, ov).map_err(pair)?;
        let mock = raw
            .mock
            .take()
            .unwrap_or_default()
            .resolve()
            .map_err(|(key, message)| invalid(&format!("mock.{key}"), message))?;
        check::mock(&mock).map_err(pair)?;
        let board = crate::device::profile::PROFILES[0];
        let board = (board.name, board.playback);
        let (profile, playback) =
            conditions::device(&raw.device.take().unwrap_or_default(), board, "device").map_err(pair)?;
        conditions::apply(&raw, &mut groups, &profile, playback).map_err(pair)?;
        let (record, record_dir) = resolve::record(raw.record.take().unwrap_or_default(), ov);
        let timeouts = resolve::timeouts(&raw).map_err(pair)?;
        let tiers = resolve::tiers(raw.tier.take()).map_err(pair)?;
        let transcript_check = match raw.transcript_check.take() {
            None | Some(TranscriptCheckSpec::Auto) => TranscriptCheckPlan::Auto,
            Some(TranscriptCheckSpec::Off) => TranscriptCheckPlan::Off,
            Some(TranscriptCheckSpec::Cer(c)) if (0.0..=1.0).contains(&c) => TranscriptCheckPlan::MaxCer(c),
            Some(TranscriptCheckSpec::Cer(c)) => {
                return Err(invalid(
                    "transcript_check",
                    format!("{TRANSCRIPT_CHECK_CHOICES}; got {c}"),
                ));
            }
        };
        let shape = ov.shape.or(raw.shape).unwrap_or_default();
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
            ota,
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
                let name = DEFAULT_FLEET_NAME;
                Plan::from_file(FleetFile::parse(DEFAULT_FLEET, name)?, name, ov)
            }
        }
    }

    /// Makes the plan run only `shard` of itself (`--shard I/N`).
    pub fn apply_shard(&mut self, shard: Shard) -> Result<(), String> {
        if shard.share_u32(self.devices) == 0 {
            return Err(format!(
                "a fleet of {} device(s) leaves this shard none: use at most {} shards",
                self.devices, self.devices
            ));
        }
        self.shard = shard;
        Ok(())
    }
}
