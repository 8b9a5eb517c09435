//! Durations and rates as operators write them (`300ms`, `1.5s`, `2m`,
//! `0.5/s`), with serde support so fleet files can use them directly.
//!
//! Every parser here bounds what it accepts ([`MAX_DURATION`], [`MAX_RATE`]),
//! so that whatever it returns can be added to an `Instant`, multiplied by a
//! frame count or turned into a mean gap without overflowing: bad input is
//! an error with the offending text, never a panic further down.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// The longest duration accepted anywhere (365 days): longer values are
/// typos, and the bound keeps every `Instant + duration` far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// The highest rate accepted (events per second).
pub const MAX_RATE: f64 = 1_000_000.0;

/// A duration parsed from `250ms`, `2s`, `1.5s`, `1m30s` or a bare number of
/// seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// Parses a human duration: humantime syntax plus fractional seconds (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return secs_to_duration(secs, text);
    }
    if let Some(num) = t.strip_suffix("ms") {
        if let Ok(ms) = num.trim().parse::<f64>() {
            return secs_to_duration(ms / 1000.0, text);
        }
    } else if let Some(num) = t.strip_suffix('s')
        && let Ok(secs) = num.trim().parse::<f64>()
    {
        return secs_to_duration(secs, text);
    }
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 300ms, 2s, 1.5s, 1m"))?;
    if d > MAX_DURATION {
        return Err(too_long(text));
    }
    Ok(d)
}

fn too_long(text: &str) -> String {
    format!("`{text}` is longer than the longest accepted duration (365 days)")
}

fn secs_to_duration(secs: f64, text: &str) -> Result<Duration, String> {
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("`{text}` is not a non-negative duration"));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(too_long(text));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Seconds as a duration, clamped to `0..=MAX_DURATION` (NaN gives 0): for
/// values computed from accepted inputs, such as a random draw from a
/// long-tailed distribution, that must never panic.
pub fn secs_capped(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else if secs >= MAX_DURATION.as_secs_f64() {
        MAX_DURATION
    } else {
        Duration::from_secs_f64(secs)
    }
}

/// Formats a duration the way it is written in fleet files.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) && ms > 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl Span {
    /// Reads a string, or a bare number taken as seconds, as text.
    pub(crate) fn deserialize_text_or_number<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        Ok(match Raw::deserialize(de)? {
            Raw::Text(t) => t,
            Raw::Number(n) => n.to_string(),
        })
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = Span::deserialize_text_or_number(de)?;
        parse_duration(&text).map(Span).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// Parses a rate such as `0.5/s`, `30/min` or a bare number per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => (t, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a rate; write e.g. 0.5/s or 30/min"))?;
    let per_secs = match per {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(format!("`{text}`: unknown rate unit `{per}` (use /s, /min or /h)")),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{text}` is not a non-negative rate"));
    }
    let per_sec = n / per_secs;
    if per_sec > MAX_RATE {
        return Err(format!("`{text}` is above the highest accepted rate ({MAX_RATE}/s)"));
    }
    if per_sec > 0.0 && 1.0 / per_sec > MAX_DURATION.as_secs_f64() {
        return Err(format!("`{text}` is slower than once in 365 days"));
    }
    Ok(per_sec)
}

/// Parses a memory size (`8G`, `8GB`, `512M`, `1.5GiB`, bare number = MB) into MB (MiB).
pub fn parse_size_mb(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write e.g. 8G or 512M"))?;
    let mb = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => n,
        "g" | "gb" | "gib" => n * 1024.0,
        "t" | "tb" | "tib" => n * 1024.0 * 1024.0,
        "k" | "kb" | "kib" => n / 1024.0,
        u => return Err(format!("`{text}`: unknown size unit `{u}` (use M or G)")),
    };
    if !(mb.is_finite() && mb > 0.0) {
        return Err(format!("`{text}` is not a positive size"));
    }
    Ok(mb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_operator_forms() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn absurd_durations_are_errors_not_panics() {
        for t in [
            "1e30s",
            "1e30",
            "1e30ms",
            "inf",
            "NaN",
            "400days",
            "18446744073709551615s",
        ] {
            assert!(parse_duration(t).is_err(), "{t}");
        }
        assert_eq!(parse_duration("365days"), Ok(MAX_DURATION));
    }

    #[test]
    fn capped_seconds_never_panic() {
        assert_eq!(secs_capped(f64::NAN), Duration::ZERO);
        assert_eq!(secs_capped(-1.0), Duration::ZERO);
        assert_eq!(secs_capped(1e300), MAX_DURATION);
        assert_eq!(secs_capped(1.5), Duration::from_millis(1500));
    }

    #[test]
    fn durations_format_back() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn sizes_parse_to_megabytes() {
        assert_eq!(parse_size_mb("8G"), Ok(8192.0));
        assert_eq!(parse_size_mb("512M"), Ok(512.0));
        assert_eq!(parse_size_mb("1.5GiB"), Ok(1536.0));
        assert!(parse_size_mb("8X").is_err());
        assert!(parse_size_mb("0").is_err());
        assert!(parse_size_mb(&format!("1{}G", "0".repeat(400))).is_err());
    }

    #[test]
    fn rates_parse_per_second_and_minute() {
        assert_eq!(parse_rate("0.5/s"), Ok(0.5));
        assert_eq!(parse_rate("30/min"), Ok(0.5));
        assert_eq!(parse_rate("2"), Ok(2.0));
        assert!(parse_rate("2/fortnight").is_err());
        assert!(parse_rate("x/s").is_err());
        assert!(parse_rate("1e-300/s").is_err());
        assert!(parse_rate("1e300/s").is_err());
    }
}
