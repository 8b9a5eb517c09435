//! Value checks that keep a plan runnable (no timeout of zero, no ramp so
//! slow its schedule overflows, no worker pool larger than a semaphore can
//! hold) and the warnings a plan earns without being wrong (a ramp that
//! outlasts the run). Errors are `(key, message)`; `Plan::from_file` adds
//! the file and line.

use super::TierSection;
use super::plan::{Load, Plan, Stop, Timeouts};
use crate::mock::MockConfig;
use crate::units::format_duration;
use std::time::Duration;

type Invalid = (String, String);

/// The slowest ramp accepted: one device every 1000 s.
pub const MIN_RAMP: f64 = 0.001;
/// The fastest ramp accepted (devices per second).
pub const MAX_RAMP: f64 = 1_000_000.0;
/// The most concurrent jobs a mock stage may be limited to.
pub const MAX_WORKERS: usize = 1_000_000;
/// A ramp longer than this earns a warning.
pub const LONG_RAMP: Duration = Duration::from_secs(3600);

fn invalid<T>(key: &str, message: impl Into<String>) -> Result<T, Invalid> {
    Err((key.to_string(), message.into()))
}

/// `ramp`: devices connected per second.
pub fn ramp(per_sec: f64) -> Result<f64, Invalid> {
    if !(per_sec.is_finite() && (MIN_RAMP..=MAX_RAMP).contains(&per_sec)) {
        return invalid(
            "ramp",
            format!("must be between {MIN_RAMP} and {MAX_RAMP} devices per second, got {per_sec}"),
        );
    }
    Ok(per_sec)
}

/// Device time limits: none may be zero (a zero limit fails every turn).
/// `grace` may be zero: turns in progress at the end are cancelled at once.
pub fn timeouts(t: &Timeouts) -> Result<(), Invalid> {
    for (key, value) in [
        ("hello_timeout", t.hello),
        ("no_reply_timeout", t.no_reply),
        ("reply_timeout", t.reply),
    ] {
        if value.is_zero() {
            return invalid(key, "must be longer than 0s (it is a time limit)");
        }
    }
    Ok(())
}

/// Limits of the mock's settings that its own resolver does not check.
pub fn mock(m: &MockConfig) -> Result<(), Invalid> {
    for (key, workers) in [
        ("mock.asr_workers", m.asr_workers),
        ("mock.llm_workers", m.llm_workers),
        ("mock.tts_workers", m.tts_workers),
    ] {
        if workers.is_some_and(|n| n > MAX_WORKERS) {
            return invalid(key, format!("must be at most {MAX_WORKERS} (0 = unbounded)"));
        }
    }
    Ok(())
}

/// `[[tier]]`: machine sizes must be positive.
pub fn tiers(tiers: &[TierSection]) -> Result<(), Invalid> {
    for (i, t) in tiers.iter().enumerate() {
        for (name, v) in [("cores", t.cores), ("memory_gb", t.memory_gb)] {
            if !(v.is_finite() && v > 0.0) {
                return invalid(
                    &format!("tier[{i}].{name}"),
                    format!("must be a positive number, got {v}"),
                );
            }
        }
    }
    Ok(())
}

/// How long connecting every device takes at the plan's ramp.
pub fn ramp_time(plan: &Plan) -> Duration {
    crate::units::secs_capped(f64::from(plan.devices) / plan.ramp_per_sec)
}

/// Warnings about a plan that is valid but probably not what was meant.
pub fn warnings(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let ramp = ramp_time(plan);
    let connecting = format!(
        "connecting all {} devices at {} per second (`ramp`) takes {}",
        plan.devices,
        plan.ramp_per_sec,
        format_duration(ramp)
    );
    let run_length = match (&plan.load, plan.stop) {
        (Load::Stages(_), _) => None,
        (_, Stop::Duration(d)) => Some(d),
        _ => None,
    };
    match run_length {
        Some(d) if ramp > d => out.push(format!(
            "{connecting}, longer than the run ({}): the last devices never connect; raise `ramp` or `duration`",
            format_duration(d)
        )),
        _ if ramp > LONG_RAMP => out.push(format!("{connecting}, over an hour")),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_bounds() {
        assert!(ramp(1e-300).is_err());
        assert!(ramp(f64::NAN).is_err());
        assert!(ramp(0.0).is_err());
        assert_eq!(ramp(10.0), Ok(10.0));
    }

    #[test]
    fn zero_time_limits_are_rejected_by_key() {
        let t = Timeouts {
            hello: Duration::ZERO,
            no_reply: Duration::from_secs(1),
            reply: Duration::from_secs(1),
            grace: Duration::ZERO,
        };
        assert_eq!(timeouts(&t).unwrap_err().0, "hello_timeout");
        let t = Timeouts {
            hello: Duration::from_secs(1),
            ..t
        };
        assert_eq!(timeouts(&t), Ok(()), "grace 0 is allowed");
    }
}
