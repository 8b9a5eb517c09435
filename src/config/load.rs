//! Resolving the load shape of a fleet file: device groups (counts or
//! weights, behaviour), and what drives conversations (each device on its
//! own, a closed-loop step plan of concurrent speakers, or open arrivals).

use super::plan::{GroupPlan, IdleForm, Load, Overrides, StagePlan, StartBy, Stop};
use super::{FleetFile, GroupSection, StageSpec, StartChoice};
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
                    } => {
                        if *speakers == 0 || duration.0.is_zero() {
                            return err("stages", "a stage needs at least 1 speaker and a duration above 0");
                        }
                        (*speakers, duration.0, name.clone())
                    }
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
    let per_device_until_end = matches!((load, stop), (Load::PerDevice, Stop::Duration(_)));
    // `--duration` without `--turns` on the command line: every talking
    // device keeps taking turns until the end, whatever the file's `turns`.
    let cli_until_end = per_device_until_end && ov.duration.is_some() && ov.turns.is_none();
    let default_turns = match ov.turns.or(raw.turns) {
        _ if cli_until_end => None,
        Some(t) => Some(t),
        None if per_device_until_end => None,
        None => Some(2),
    };
    let sections = match &raw.group {
        Some(g) if !g.is_empty() => g.clone(),
        _ => vec![GroupSection::default()],
    };
    let implicit = raw.group.as_ref().is_none_or(|g| g.is_empty());
    let counts = if implicit {
        let most_speakers = match load {
            Load::Stages(s) => s.iter().map(|s| s.speakers).max(),
            _ => None,
        };
        vec![ov.devices.or(raw.devices).or(most_speakers).unwrap_or(20)]
    } else {
        group_counts(&sections, ov.devices.or(raw.devices), ov.devices.is_some())?
    };
    let mut out = Vec::with_capacity(sections.len());
    for (i, (g, count)) in sections.iter().zip(counts).enumerate() {
        let key = |k: &str| {
            if implicit {
                k.to_string()
            } else {
                format!("group[{i}].{k}")
            }
        };
        let mut group = resolve_group(g, raw, i, count, default_turns, &key)?;
        if cli_until_end && group.talks() {
            group.turns = None;
        }
        out.push(group);
    }
    Ok(out)
}

/// Default think time of wake-word groups: the user answers the greeting
/// after the server's post-greeting mute (2 s plus its lag).
pub const WAKE_WORD_THINK: Duration = Duration::from_millis(2500);

/// Each `[[group]]`'s device count: its `count`, or its `weight`'s share of
/// what the top-level `devices` leaves after the counted groups (largest
/// remainder, so the shares add up exactly). Counts that exceed `devices`,
/// or fall short of it with no weighted group to take the rest, and weights
/// that do not add up to 1 are errors, never silent changes.
fn group_counts(sections: &[GroupSection], total: Option<u32>, total_from_cli: bool) -> Result<Vec<u32>, Invalid> {
    let devices_key = if total_from_cli { "--devices" } else { "devices" };
    let mut counted: u64 = 0;
    for (i, g) in sections.iter().enumerate() {
        match (g.count, g.weight) {
            (Some(_), Some(_)) => {
                return err(
                    &format!("group[{i}].weight"),
                    "give a group `count` or `weight`, not both",
                );
            }
            (Some(c), None) => counted += u64::from(c),
            (None, _) => {}
        }
    }
    let weighted: Vec<usize> = (0..sections.len()).filter(|&i| sections[i].count.is_none()).collect();
    let Some(total) = total else {
        if let Some(&i) = weighted.first() {
            return err(
                &format!("group[{i}].weight"),
                "a weighted group needs the top-level `devices`",
            );
        }
        return Ok(sections.iter().map(|g| g.count.unwrap_or(0)).collect());
    };
    if counted > u64::from(total) {
        return err(
            "group",
            format!("the groups' `count`s add up to {counted} devices, more than `{devices_key}` = {total}"),
        );
    }
    let rest = total - counted as u32;
    if weighted.is_empty() {
        if rest > 0 {
            return err(
                "group",
                format!(
                    "the groups' `count`s add up to {counted} devices but `{devices_key}` = {total}: make them agree, or give a group a `weight` to take the rest"
                ),
            );
        }
        return Ok(sections.iter().map(|g| g.count.unwrap_or(0)).collect());
    }
    let mut weights = Vec::with_capacity(weighted.len());
    for &i in &weighted {
        let w = match sections[i].weight {
            Some(w) => w,
            None if weighted.len() == 1 => 1.0,
            None => return err(&format!("group[{i}]"), "needs a `count` or a `weight`"),
        };
        if !(w.is_finite() && w > 0.0 && w <= 1.0) {
            return err(
                &format!("group[{i}].weight"),
                format!("must be above 0 and at most 1, got {w}"),
            );
        }
        weights.push(w);
    }
    let sum: f64 = weights.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return err(
            &format!("group[{}].weight", weighted[0]),
            format!("the groups' weights add up to {sum}, not 1"),
        );
    }
    let shares = apportion(rest, &weights);
    let mut counts: Vec<u32> = sections.iter().map(|g| g.count.unwrap_or(0)).collect();
    for (&i, n) in weighted.iter().zip(shares) {
        counts[i] = n;
    }
    Ok(counts)
}

/// Splits `total` by `weights` (summing to 1) into whole numbers that add up
/// to `total`: floors first, then one more to the largest remainders.
fn apportion(total: u32, weights: &[f64]) -> Vec<u32> {
    let exact: Vec<f64> = weights.iter().map(|w| f64::from(total) * w).collect();
    let mut shares: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
    let given: u64 = shares.iter().map(|&n| u64::from(n)).sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let left = u64::from(total).saturating_sub(given) as usize;
    for &i in order.iter().cycle().take(left) {
        shares[i] += 1;
    }
    shares
}

fn resolve_group(
    g: &GroupSection,
    raw: &FleetFile,
    i: usize,
    count: u32,
    default_turns: Option<u32>,
    key: &dyn Fn(&str) -> String,
) -> Result<GroupPlan, Invalid> {
    let mode = g.mode.unwrap_or(ListenMode::Auto);
    let start = match g.start.unwrap_or(StartChoice::Button) {
        StartChoice::Button => StartBy::Button,
        StartChoice::WakeWord => {
            StartBy::WakeWord(g.wake_word.clone().unwrap_or_else(|| DEFAULT_WAKE_WORD.to_string()))
        }
    };
    let idle = g.idle.unwrap_or(IdleForm::Silent);
    let barge_in = g.barge_in.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&barge_in) {
        return err(&key("barge_in"), "is a probability between 0 and 1");
    }
    let pause = g.pause.map(|s| s.0);
    if pause.is_some_and(|p| p.is_zero()) {
        return err(&key("pause"), "must be longer than 0ms");
    }
    let clips = g
        .clips
        .clone()
        .or_else(|| raw.clips.clone())
        .unwrap_or_else(|| vec!["*".to_string()]);
    if clips.is_empty() {
        return err(&key("clips"), "must name at least one clip (or \"*\")");
    }
    let think_time = g.think_time.or(raw.think_time).unwrap_or(match start {
        // The real server mutes the uplink for ~2 s after its greeting
        // (PROTOCOL.md §13.1): the default user answers after it.
        StartBy::WakeWord(_) => Dist::Fixed(WAKE_WORD_THINK),
        StartBy::Button => Dist::Fixed(Duration::from_secs(1)),
    });
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
        think_time,
        barge_in,
        idle,
        transport: g.transport,
        conversations: g.conversations.unwrap_or(1),
        idle_time: g.idle_time.unwrap_or(Dist::Fixed(Duration::from_secs(10))),
        // Filled in with the top-level `[device]` and `network` (conditions::apply).
        network: None,
        device_profile: String::new(),
        playback: Default::default(),
        pause,
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

    #[test]
    fn shares_add_up_exactly() {
        assert_eq!(apportion(10, &[1.0 / 3.0; 3]), vec![4, 3, 3]);
        assert_eq!(apportion(480, &[0.8, 0.15, 0.05]), vec![384, 72, 24]);
        assert_eq!(apportion(1, &[0.5, 0.5]), vec![1, 0]);
        assert_eq!(apportion(0, &[1.0]), vec![0]);
    }

    fn sections(text: &str) -> Vec<GroupSection> {
        super::super::FleetFile::parse(text, "t").unwrap().group.unwrap()
    }

    #[test]
    fn counts_above_devices_and_weights_off_one_are_errors() {
        let g = sections("[[group]]\ncount = 30\n");
        assert!(
            group_counts(&g, Some(20), false)
                .unwrap_err()
                .1
                .contains("more than `devices` = 20")
        );
        assert!(
            group_counts(&g, Some(40), false)
                .unwrap_err()
                .1
                .contains("make them agree")
        );
        assert_eq!(group_counts(&g, Some(30), false), Ok(vec![30]));
        let g = sections("[[group]]\nweight = 0.5\n[[group]]\nweight = 0.3\n");
        let e = group_counts(&g, Some(10), false).unwrap_err();
        assert_eq!(e.0, "group[0].weight");
        assert!(e.1.contains("add up to 0.8"), "{}", e.1);
        let g = sections("[[group]]\nweight = 0.5\n[[group]]\nweight = 0.5\n[[group]]\ncount = 3\n");
        assert_eq!(group_counts(&g, Some(10), true), Ok(vec![4, 3, 3]));
        let e = group_counts(&g, Some(2), true).unwrap_err();
        assert!(e.1.contains("`--devices` = 2"), "{}", e.1);
    }
}
