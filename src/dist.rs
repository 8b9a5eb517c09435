//! Seeded random durations as operators write them: `300ms` (fixed),
//! `uniform(200ms, 3s)`, `exp(1s)` (exponential with that mean),
//! `lognormal(1s, 0.5)` (median and shape σ). Used for think times and the
//! mock's per-sentence TTS delays; every draw comes from a caller's seeded
//! RNG, so a run can be repeated.
//!
//! Parsing bounds every form (durations up to [`MAX_DURATION`], σ up to
//! [`MAX_SIGMA`], a mean up to [`MAX_DURATION`]) and every draw is clamped to
//! `0..=MAX_DURATION`, so no accepted distribution can make a caller panic.

use crate::units::{MAX_DURATION, format_duration, parse_duration, secs_capped};
use rand::Rng;
use rand_distr::{Exp1, StandardNormal};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// The largest lognormal shape accepted: σ = 3 already spreads one standard
/// deviation over a factor of 20 either side of the median.
pub const MAX_SIGMA: f64 = 3.0;

/// A distribution of durations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    Fixed(Duration),
    Uniform(Duration, Duration),
    Exponential(Duration),
    LogNormal { median: Duration, sigma: f64 },
}

impl Dist {
    /// Parses the written forms (see module docs).
    pub fn parse(text: &str) -> Result<Dist, String> {
        let t = text.trim();
        let Some((name, rest)) = t.split_once('(') else {
            return parse_duration(t).map(Dist::Fixed);
        };
        let args: Vec<&str> = rest
            .strip_suffix(')')
            .ok_or_else(|| format!("`{text}`: missing `)`"))?
            .split(',')
            .map(str::trim)
            .collect();
        let usage = "write 1s, uniform(200ms, 3s), exp(1s) or lognormal(1s, 0.5)";
        match (name.trim(), args.as_slice()) {
            ("uniform", [a, b]) => {
                let (a, b) = (parse_duration(a)?, parse_duration(b)?);
                if a > b {
                    return Err(format!("`{text}`: the lower bound is above the upper one"));
                }
                Ok(Dist::Uniform(a, b))
            }
            ("exp", [m]) => Ok(Dist::Exponential(parse_duration(m)?)),
            ("lognormal", [m, s]) => {
                let sigma: f64 = s.parse().map_err(|_| format!("`{text}`: σ must be a number"))?;
                if !(sigma.is_finite() && (0.0..=MAX_SIGMA).contains(&sigma)) {
                    return Err(format!("`{text}`: σ must be between 0 and {MAX_SIGMA}"));
                }
                let dist = Dist::LogNormal {
                    median: parse_duration(m)?,
                    sigma,
                };
                if dist.mean_secs() > MAX_DURATION.as_secs_f64() {
                    return Err(format!("`{text}`: its mean is longer than 365 days"));
                }
                Ok(dist)
            }
            _ => Err(format!("`{text}` is not a duration distribution; {usage}")),
        }
    }

    /// Draws one duration.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Dist::Fixed(d) => d,
            Dist::Uniform(a, b) if a == b => a,
            Dist::Uniform(a, b) => secs_capped(rng.random_range(a.as_secs_f64()..=b.as_secs_f64())),
            Dist::Exponential(mean) => {
                let e: f64 = rng.sample(Exp1);
                secs_capped(mean.as_secs_f64() * e)
            }
            Dist::LogNormal { median, sigma } => {
                let z: f64 = rng.sample(StandardNormal);
                secs_capped(median.as_secs_f64() * (sigma * z).exp())
            }
        }
    }

    /// The mean of the distribution (at most [`MAX_DURATION`]).
    pub fn mean(&self) -> Duration {
        match *self {
            // Exact where it can be: both bounds are at most MAX_DURATION.
            Dist::Fixed(d) | Dist::Exponential(d) => d,
            Dist::Uniform(a, b) => (a + b) / 2,
            Dist::LogNormal { .. } => secs_capped(self.mean_secs()),
        }
    }

    fn mean_secs(&self) -> f64 {
        match *self {
            Dist::Fixed(d) | Dist::Exponential(d) => d.as_secs_f64(),
            Dist::Uniform(a, b) => (a.as_secs_f64() + b.as_secs_f64()) / 2.0,
            Dist::LogNormal { median, sigma } => median.as_secs_f64() * (sigma * sigma / 2.0).exp(),
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dist::Fixed(d) => write!(f, "{}", format_duration(*d)),
            Dist::Uniform(a, b) => write!(f, "uniform({}, {})", format_duration(*a), format_duration(*b)),
            Dist::Exponential(m) => write!(f, "exp({})", format_duration(*m)),
            Dist::LogNormal { median, sigma } => write!(f, "lognormal({}, {sigma})", format_duration(*median)),
        }
    }
}

impl<'de> Deserialize<'de> for Dist {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let s = crate::units::Span::deserialize_text_or_number(de)?;
        Dist::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn parses_every_form() {
        assert_eq!(Dist::parse("2s"), Ok(Dist::Fixed(Duration::from_secs(2))));
        assert_eq!(
            Dist::parse("uniform(200ms, 3s)"),
            Ok(Dist::Uniform(Duration::from_millis(200), Duration::from_secs(3)))
        );
        assert_eq!(Dist::parse("exp(1s)"), Ok(Dist::Exponential(Duration::from_secs(1))));
        assert!(matches!(Dist::parse("lognormal(1s, 0.5)"), Ok(Dist::LogNormal { .. })));
        assert!(Dist::parse("gauss(1s)").is_err());
        assert!(Dist::parse("uniform(3s, 1s)").is_err());
    }

    #[test]
    fn absurd_shapes_are_errors() {
        for t in [
            "lognormal(1s, 5000)",
            "lognormal(1s, inf)",
            "lognormal(300days, 3)",
            "exp(1e30s)",
        ] {
            assert!(Dist::parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn long_tails_are_clamped_not_panics() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d = Dist::parse("lognormal(300days, 0.5)").unwrap();
        for _ in 0..1000 {
            assert!(d.sample(&mut rng) <= MAX_DURATION);
        }
    }

    #[test]
    fn display_round_trips() {
        for t in ["2s", "uniform(200ms, 3s)", "exp(1s)", "lognormal(1s, 0.5)"] {
            assert_eq!(Dist::parse(t).unwrap().to_string(), t);
        }
    }

    #[test]
    fn sample_means_match_within_a_few_percent() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for d in ["uniform(1s, 3s)", "exp(2s)", "lognormal(1s, 0.5)"] {
            let dist = Dist::parse(d).unwrap();
            let n = 20_000;
            let mean: f64 = (0..n).map(|_| dist.sample(&mut rng).as_secs_f64()).sum::<f64>() / n as f64;
            let want = dist.mean().as_secs_f64();
            assert!((mean - want).abs() / want < 0.03, "{d}: {mean} vs {want}");
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let d = Dist::parse("exp(1s)").unwrap();
        let a: Vec<Duration> = (0..5)
            .map({
                let mut r = ChaCha8Rng::seed_from_u64(1);
                move |_| d.sample(&mut r)
            })
            .collect();
        let b: Vec<Duration> = (0..5)
            .map({
                let mut r = ChaCha8Rng::seed_from_u64(1);
                move |_| d.sample(&mut r)
            })
            .collect();
        assert_eq!(a, b);
    }
}
