//! `network` as a fleet file writes it: a profile name (checked as it is
//! read, so a wrong one names its line and the choices) or a `[network]`
//! table of custom values, and the bandwidth caps' written forms. Turned
//! into conditions by `conditions`.

use crate::dist::Dist;
use crate::network::profiles;
use crate::units::Span;
use serde::{Deserialize, Deserializer};

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
