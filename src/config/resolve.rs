//! Resolving the parts of a plan that are not its load shape: when it
//! stops, how many devices, the board's playback model, recording rules,
//! time limits and machine tiers. Errors are `(key, message)`, the key
//! being the command-line flag when a flag set the value.

use super::check;
use super::plan::{GroupPlan, Load, Overrides, Stop, Timeouts};
use super::{FleetFile, RecordSection, TierSection};
use crate::capacity::sizing::{Tier, default_tiers};
use crate::record::RecordRule;
use std::path::PathBuf;
use std::time::Duration;

type Invalid = (String, String);

/// The name of a value in errors: the command-line flag when the flag set it.
fn flag(from_cli: bool, key: &'static str) -> String {
    if from_cli { format!("--{key}") } else { key.to_string() }
}

/// When the run ends: the command line's `--duration`/`--turns`, else the file's.
pub fn stop(raw: &FleetFile, ov: &Overrides) -> Result<Stop, Invalid> {
    let stop = match (ov.turns, ov.duration) {
        (_, Some(d)) => Stop::Duration(d),
        (Some(t), None) => Stop::Turns(t),
        (None, None) => match (raw.duration, raw.turns) {
            (Some(d), _) => Stop::Duration(d.0),
            (None, t) => Stop::Turns(t.unwrap_or(2)),
        },
    };
    match stop {
        Stop::Turns(0) => Err((flag(ov.turns.is_some(), "turns"), "must be at least 1".into())),
        Stop::Duration(d) if d.is_zero() => {
            Err((flag(ov.duration.is_some(), "duration"), "must be longer than 0s".into()))
        }
        _ => Ok(stop),
    }
}

/// The fleet's size, checked against the step plan's largest stage.
pub fn device_count(groups: &[GroupPlan], load: &Load, ov: &Overrides) -> Result<u32, Invalid> {
    let devices = match groups.iter().try_fold(0u32, |n, g| n.checked_add(g.count)) {
        Some(0) => return Err((flag(ov.devices.is_some(), "devices"), "must be at least 1".into())),
        Some(n) => n,
        None => return Err(("group".into(), "counts add up to more than 4294967295 devices".into())),
    };
    if let Load::Stages(stages) = load {
        let talkers: u32 = groups.iter().filter(|g| g.talks()).map(|g| g.count).sum();
        let most = stages.iter().map(|s| s.speakers).max().unwrap_or(0);
        if most > talkers {
            return Err((
                "stages".into(),
                format!(
                    "ask for {most} concurrent speakers but only {talkers} devices can talk (groups with turns > 0)"
                ),
            ));
        }
    }
    Ok(devices)
}

/// Recording rules (`--record` replaces the file's) and directory.
pub fn record(rec: RecordSection, ov: &Overrides) -> (Vec<RecordRule>, Option<PathBuf>) {
    let mut record = ov.record.clone();
    if record.is_empty() {
        record.extend(rec.worst.filter(|&n| n > 0).map(RecordRule::Worst));
        record.extend(rec.devices.unwrap_or_default().into_iter().map(RecordRule::Device));
    }
    (record, ov.record_dir.clone().or(rec.dir.map(PathBuf::from)))
}

/// Device time limits, with their defaults; none may be zero.
pub fn timeouts(raw: &FleetFile) -> Result<Timeouts, Invalid> {
    let secs = |s: Option<crate::units::Span>, d: u64| s.map(|s| s.0).unwrap_or(Duration::from_secs(d));
    let timeouts = Timeouts {
        hello: secs(raw.hello_timeout, 10),
        no_reply: secs(raw.no_reply_timeout, 15),
        reply: secs(raw.reply_timeout, 60),
        grace: secs(raw.grace, 30),
    };
    check::timeouts(&timeouts)?;
    Ok(timeouts)
}

/// `[[tier]]`s, or the operators' guide's when none are given.
pub fn tiers(tiers: Option<Vec<TierSection>>) -> Result<Vec<Tier>, Invalid> {
    match tiers.filter(|v| !v.is_empty()) {
        Some(v) => {
            check::tiers(&v)?;
            Ok(v.into_iter()
                .map(|t| Tier {
                    name: t.name,
                    cpu_cores: t.cores,
                    memory_gb: t.memory_gb,
                })
                .collect())
        }
        None => Ok(default_tiers()),
    }
}
