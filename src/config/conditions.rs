//! The fleet file's network and device conditions: `network = "wifi-poor"`
//! (a named profile, or `"none"`) or a `[network]` table of custom values
//! on top of a profile, at the top level and per `[[group]]`; and each
//! group's `[group.device]` decode queue on top of the top-level
//! `[device]`. Resolved into [`GroupPlan::network`] and
//! [`GroupPlan::playback`]; a group without its own takes the top level's.

use super::plan::GroupPlan;
use super::{DeviceSection, FleetFile, GroupSection};
use crate::audio::playback::PlaybackConfig;
use crate::dist::Dist;
use crate::network::profiles::{self, LinkConditions};
use crate::units::Span;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A key (as errors write it) and what is wrong with its value.
type Invalid = (String, String);

/// `network` as written: a profile name, or a table of custom values.
#[derive(Clone, Debug, PartialEq)]
pub enum NetworkSpec {
    /// `network = "wifi-poor"` (checked against the profiles as it is read).
    Name(String),
    /// `[network]` / `[group.network]`.
    Table(Box<NetworkSection>),
}

/// `[network]`: a profile (`profile`, default `lan`) with any of its
/// numbers replaced. Both directions take the same values but the rates.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// The profile the values below change (default `lan`: perfect).
    pub profile: Option<String>,
    /// One-way latency every message has (`40ms`).
    pub latency: Option<Span>,
    /// Added to `latency`, drawn per message (`exp(10ms)`, `lognormal(20ms, 1)`).
    pub jitter: Option<Dist>,
    /// Probability a message is lost (0 to 1): a delay over TCP, a gap over UDP.
    pub loss: Option<f64>,
    /// Server → device cap: kbit/s as a number, or `"2mbit"`, `"512kbit"`, `"none"`.
    pub down_rate: Option<Rate>,
    /// Device → server cap, written like `down_rate`.
    pub up_rate: Option<Rate>,
    /// Bytes that may go at once before a cap applies.
    pub burst: Option<u32>,
    /// Length of a periodic freeze (`300ms`; `0s`: none).
    pub stall: Option<Span>,
    /// How often the freeze comes (`30s`).
    pub stall_every: Option<Span>,
    /// First TCP retransmission timeout (`200ms`).
    pub rto: Option<Span>,
}

/// A bandwidth cap as written: kbit/s, or `"2mbit"`, `"512kbit"`, `"none"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate(pub Option<f64>);

const RATE_USAGE: &str = "must be kbit/s as a number, or \"2mbit\", \"512kbit\" or \"none\"";

impl Rate {
    fn parse(text: &str) -> Result<Rate, String> {
        let t = text.trim().to_ascii_lowercase();
        if t == "none" {
            return Ok(Rate(None));
        }
        let t = t.strip_suffix("/s").or_else(|| t.strip_suffix("ps")).unwrap_or(&t);
        let (num, scale) = if let Some(n) = t.strip_suffix("mbit") {
            (n, 1000.0)
        } else if let Some(n) = t.strip_suffix("kbit") {
            (n, 1.0)
        } else {
            (t, 1.0)
        };
        match num.trim().parse::<f64>() {
            Ok(n) => Rate::kbit(n * scale),
            Err(_) => Err(format!("{RATE_USAGE}; got \"{text}\"")),
        }
    }

    fn kbit(n: f64) -> Result<Rate, String> {
        if n.is_finite() && n > 0.0 {
            Ok(Rate(Some(n * 1000.0 / 8.0)))
        } else {
            Err(format!("{RATE_USAGE}; got {n}"))
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(RATE_USAGE)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Rate, E> {
                Rate::parse(v).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Rate, E> {
                Rate::kbit(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Rate, E> {
                Rate::kbit(v as f64).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for NetworkSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NetworkSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a profile name ({}) or a table", profiles::choices())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NetworkSpec, E> {
                profiles::resolve(v).map_err(E::custom)?;
                Ok(NetworkSpec::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<NetworkSpec, A::Error> {
                let section = NetworkSection::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(NetworkSpec::Table(Box::new(section)))
            }
        }
        d.deserialize_any(V)
    }
}

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
