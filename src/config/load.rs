//! Resolving the load shape of a fleet file: device groups (counts or
//! weights, behaviour), and what drives conversations (each device on its
//! own, a closed-loop step plan of concurrent speakers, or open arrivals).

use super::plan::{GroupPlan, IdleForm, Load, Overrides, StagePlan, StartBy, Stop};
use super::{FleetFile, GroupSection, StageSpec};
use crate::dist::Dist;
use crate::protocol::ListenMode;
use crate::units::{parse_duration, parse_rate};
use std::time::Duration;

type Invalid = (String, String);

/// The wake word the firmware ships with.
pub const DEFAULT_WAKE_WORD: &str = "你好小智";
/// Stage length when `--speakers` gives none.
const DEFAULT_STAGE: Duration = Duration::from_secs(60);

fn err<T>(key: &str, msg: impl Into<String>) -> Result<T, Invalid> {
    Err((key.to_string(), msg.into()))
}

/// Parses `"10 for 60s"`.
pub fn parse_stage(text: &str) -> Result<(u32, Duration), String> {
    let usage = format!("`{text}`: write a stage as \"<speakers> for <duration>\", e.g. \"10 for 60s\"");
    let (n, d) = text.split_once(" for ").ok_or_else(|| usage.clone())?;
    let speakers: u32 = n.trim().parse().map_err(|_| usage.clone())?;
    let duration = parse_duration(d)?;
    if speakers == 0 || duration.is_zero() {
        return Err(format!(
            "`{text}`: a stage needs at least 1 speaker and a duration above 0"
        ));
    }
    Ok((speakers, duration))
}

/// The load model, from `--speakers`, `speakers`, `stages` or `arrivals`.
pub fn resolve_load(raw: &FleetFile, ov: &Overrides, stop: Stop) -> Result<Load, Invalid> {
    let stage_len = match stop {
        Stop::Duration(d) => d,
        Stop::Turns(_) => DEFAULT_STAGE,
    };
    if let Some(n) = ov.speakers.or(raw.speakers) {
        if n == 0 {
            return err("speakers", "must be at least 1");
        }
        let stage = StagePlan {
            name: format!("{n} speakers"),
            speakers: n,
            duration: stage_len,
            min_turns: 0,
        };
        return Ok(Load::Stages(vec![stage]));
    }
    if let Some(specs) = &raw.stages {
        if raw.arrivals.is_some() {
            return err(
                "arrivals",
                "cannot be combined with `stages` (closed loop vs open model)",
            );
        }
        let stages = specs
            .iter()
            .map(|s| {
                let (speakers, duration, name) = match s {
                    StageSpec::Text(t) => {
                        let (n, d) = parse_stage(t).map_err(|m| ("stages".to_string(), m))?;
                        (n, d, None)
                    }
                    StageSpec::Table {
                        speakers,
                        duration,
                        name,
                    } => (*speakers, duration.0, name.clone()),
                };
                Ok(StagePlan {
                    name: name.unwrap_or_else(|| format!("{speakers} speakers")),
                    speakers,
                    duration,
                    min_turns: 0,
                })
            })
            .collect::<Result<Vec<_>, Invalid>>()?;
        if stages.is_empty() {
            return err("stages", "lists no stage");
        }
        return Ok(Load::Stages(stages));
    }
    if let Some(rate) = &raw.arrivals {
        let per_sec = parse_rate(rate).map_err(|m| ("arrivals".to_string(), m))?;
        if per_sec <= 0.0 {
            return err("arrivals", "must be above 0");
        }
        if !matches!(stop, Stop::Duration(_)) && raw.total_turns.is_none() {
            return err("arrivals", "needs `duration` or `total_turns` to know when to stop");
        }
        return Ok(Load::Arrivals { per_sec });
    }
    Ok(Load::PerDevice)
}

/// Device groups: `[[group]]` tables, or one group from the top-level keys.
pub fn resolve_groups(raw: &FleetFile, ov: &Overrides, load: &Load, stop: Stop) -> Result<Vec<GroupPlan>, Invalid> {
    // With a duration and no `turns`, self-driven devices talk until the end.
    let until_end = matches!((load, stop), (Load::PerDevice, Stop::Duration(_)));
    let default_turns = match ov.turns.or(raw.turns) {
        Some(t) => Some(t),
        None if until_end => None,
        None => Some(2),
    };
    let sections = match &raw.group {
        Some(g) if !g.is_empty() => g.clone(),
        _ => vec![GroupSection::default()],
    };
    let implicit = raw.group.as_ref().is_none_or(|g| g.is_empty());
    let total = ov.devices.or(raw.devices);
    let most_speakers = match load {
        Load::Stages(s) => s.iter().map(|s| s.speakers).max(),
        _ => None,
    };
    let weight_sum: f64 = sections
        .iter()
        .filter(|g| g.count.is_none())
        .map(|g| g.weight.unwrap_or(1.0))
        .sum();
    let counted: u32 = sections.iter().filter_map(|g| g.count).sum();
    let mut out = Vec::with_capacity(sections.len());
    for (i, g) in sections.iter().enumerate() {
        let key = |k: &str| {
            if implicit {
                k.to_string()
            } else {
                format!("group[{i}].{k}")
            }
        };
        let count = match (g.count, implicit) {
            (Some(c), _) => c,
            (None, true) => total.or(most_speakers).unwrap_or(20),
            (None, false) => {
                let total = total.ok_or_else(|| {
                    (
                        key("weight"),
                        "a weighted group needs the top-level `devices`".to_string(),
                    )
                })?;
                let w = g.weight.unwrap_or(1.0);
                if !(w.is_finite() && w > 0.0) {
                    return err(&key("weight"), "must be a positive number");
                }
                (total.saturating_sub(counted) as f64 * w / weight_sum).round() as u32
            }
        };
        out.push(resolve_group(g, raw, i, count, default_turns, &key)?);
    }
    Ok(out)
}

fn resolve_group(
    g: &GroupSection,
    raw: &FleetFile,
    i: usize,
    count: u32,
    default_turns: Option<u32>,
    key: &dyn Fn(&str) -> String,
) -> Result<GroupPlan, Invalid> {
    let mode = match g.mode.as_deref().unwrap_or("auto") {
        "auto" => ListenMode::Auto,
        "manual" => ListenMode::Manual,
        "realtime" => ListenMode::Realtime,
        m => return err(&key("mode"), format!("must be auto, manual or realtime; got `{m}`")),
    };
    let start = match g.start.as_deref().unwrap_or("button") {
        "button" => StartBy::Button,
        "wake_word" => StartBy::WakeWord(g.wake_word.clone().unwrap_or_else(|| DEFAULT_WAKE_WORD.to_string())),
        s => return err(&key("start"), format!("must be button or wake_word; got `{s}`")),
    };
    let idle = match g.idle.as_deref().unwrap_or("silent") {
        "listening" => IdleForm::Listening,
        "silent" => IdleForm::Silent,
        "disconnected" => IdleForm::Disconnected,
        s => {
            return err(
                &key("idle"),
                format!("must be listening, silent or disconnected; got `{s}`"),
            );
        }
    };
    let barge_in = g.barge_in.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&barge_in) {
        return err(&key("barge_in"), "is a probability between 0 and 1");
    }
    let clips = g
        .clips
        .clone()
        .or_else(|| raw.clips.clone())
        .unwrap_or_else(|| vec!["*".to_string()]);
    if clips.is_empty() {
        return err(&key("clips"), "must name at least one clip (or \"*\")");
    }
    Ok(GroupPlan {
        name: g.name.clone().unwrap_or_else(|| {
            if i == 0 {
                "devices".into()
            } else {
                format!("group {}", i + 1)
            }
        }),
        count,
        clips,
        mode,
        start,
        turns: g.turns.or(default_turns),
        think_time: g
            .think_time
            .or(raw.think_time)
            .unwrap_or(Dist::Fixed(Duration::from_secs(1))),
        barge_in,
        idle,
        conversations: g.conversations.unwrap_or(1),
        idle_time: g.idle_time.unwrap_or(Dist::Fixed(Duration::from_secs(10))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_text_parses() {
        assert_eq!(parse_stage("10 for 60s"), Ok((10, Duration::from_secs(60))));
        assert!(parse_stage("10 during 60s").is_err());
        assert!(parse_stage("0 for 60s").is_err());
    }
}
