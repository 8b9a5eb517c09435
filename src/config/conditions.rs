//! The fleet file's network and device conditions: `network = "wifi-poor"`
//! (a named profile, or `"none"`) or a `[network]` table of custom values
//! on top of a profile, at the top level and per `[[group]]`; and each
//! group's `[group.device]` decode queue on top of the top-level
//! `[device]`. Resolved into [`GroupPlan::network`] and
//! [`GroupPlan::playback`]; a group without its own takes the top level's.

use super::network_section::NetworkSpec;
use super::plan::GroupPlan;
use super::{DeviceSection, FleetFile, GroupSection};
use crate::audio::playback::PlaybackConfig;
use crate::network::LinkConditions;
use crate::network::profiles;
use crate::units::Span;
use std::time::Duration;

/// A key (as errors write it) and what is wrong with its value.
type Invalid = (String, String);

/// A spec's conditions (`None`: perfect, no delay line); `key` is where it
/// was written (`network`, `group[1].network`).
pub fn network(spec: &NetworkSpec, key: &str) -> Result<Option<LinkConditions>, Invalid> {
    let t = match spec {
        NetworkSpec::Name(name) => return profiles::resolve(name).map_err(|m| (key.to_string(), m)),
        NetworkSpec::Table(t) => t,
    };
    let bad = |k: &str, m: String| (format!("{key}.{k}"), m);
    let base = t.profile.as_deref().unwrap_or("lan");
    let mut link = match base {
        "none" => profiles::profile("lan"),
        other => profiles::profile(other),
    }
    .ok_or_else(|| bad("profile", format!("must be {}; got `{base}`", profiles::choices())))?;
    if let Some(loss) = t.loss
        && !(0.0..1.0).contains(&loss)
    {
        return Err(bad("loss", format!("must be at least 0 and below 1; got {loss}")));
    }
    let stall = match (t.stall, t.stall_every) {
        (None, None) => link.down.stall,
        (Some(Span(len)), _) if len.is_zero() => None,
        (Some(Span(len)), every) => {
            let every = every.map(|s| s.0).or(link.down.stall.map(|s| s.0));
            match every {
                Some(e) if e > len => Some((e, len)),
                Some(e) => {
                    return Err(bad(
                        "stall_every",
                        format!("must be longer than `stall` ({}); got {}", Span(len), Span(e)),
                    ));
                }
                None => return Err(bad("stall", "needs `stall_every` (how often it comes)".into())),
            }
        }
        (None, Some(Span(every))) => match link.down.stall {
            Some((_, len)) if every > len => Some((every, len)),
            _ => return Err(bad("stall_every", "needs `stall` (how long a freeze lasts)".into())),
        },
    };
    if let Some(Span(rto)) = t.rto
        && rto < Duration::from_millis(1)
    {
        return Err(bad("rto", "must be at least 1ms".into()));
    }
    for (dir, rate) in [(&mut link.down, t.down_rate), (&mut link.up, t.up_rate)] {
        dir.base = t.latency.map_or(dir.base, |s| s.0);
        dir.jitter = t.jitter.unwrap_or(dir.jitter);
        dir.loss = t.loss.unwrap_or(dir.loss);
        dir.rate = rate.map_or(dir.rate, |r| r.0);
        dir.burst = t.burst.unwrap_or(dir.burst);
        dir.stall = stall;
        dir.rto = t.rto.map_or(dir.rto, |s| s.0);
    }
    link.name = format!("custom (from {base})");
    Ok((!link.is_perfect()).then_some(link))
}

/// A `[device]` section over `base` (profile name and playback): the
/// profile it names, then its own values; `key` is where it was written.
pub fn device(
    dev: &DeviceSection,
    base: (&str, PlaybackConfig),
    key: &str,
) -> Result<(String, PlaybackConfig), Invalid> {
    let (mut name, mut playback) = (base.0.to_string(), base.1);
    if let Some(p) = &dev.profile {
        let Some(known) = crate::device::profile::profile(p) else {
            return Err((
                format!("{key}.profile"),
                format!(
                    "unknown profile `{p}` (known: {})",
                    crate::device::profile::profile_names()
                ),
            ));
        };
        name = p.clone();
        playback = known.playback;
    }
    let (queue, queue_key) = match (dev.queue, dev.queue_frames) {
        (Some(q), _) => (Some(q), "queue"),
        (None, q) => (q, "queue_frames"),
    };
    playback.queue_capacity = queue.unwrap_or(playback.queue_capacity);
    playback.start_threshold = dev.start_threshold.unwrap_or(playback.start_threshold);
    playback.overflow = dev.overflow.unwrap_or(playback.overflow);
    if playback.queue_capacity == 0 {
        return Err((format!("{key}.{queue_key}"), "must be at least 1".into()));
    }
    Ok((name, playback))
}

/// Fills every group's network and device from its own sections, else
/// the top level's (`profile`, `playback`: the top-level `[device]`).
pub fn apply(
    raw: &FleetFile,
    groups: &mut [GroupPlan],
    profile: &str,
    playback: PlaybackConfig,
) -> Result<(), Invalid> {
    let top = match &raw.network {
        Some(spec) => network(spec, "network")?,
        None => None,
    };
    let sections: &[GroupSection] = raw.group.as_deref().unwrap_or_default();
    for (i, g) in groups.iter_mut().enumerate() {
        let own = sections.get(i);
        g.network = match own.and_then(|s| s.network.as_ref()) {
            Some(spec) => network(spec, &format!("group[{i}].network"))?,
            None => top.clone(),
        };
        (g.device_profile, g.playback) = match own.and_then(|s| s.device.as_ref()) {
            Some(dev) => device(dev, (profile, playback), &format!("group[{i}].device"))?,
            None => (profile.to_string(), playback),
        };
    }
    Ok(())
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;
