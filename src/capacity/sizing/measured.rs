//! What the stages showed, before any modelling: the largest stage, the
//! first failing one and the knee below it ([`Measured`]), and the facts
//! the verdict and the tier are judged on ([`Judged`]).

use super::model::{Allotment, Saturation, SizingError, StageServer};

/// What the stages showed, before any modelling.
pub(super) struct Measured<'a> {
    pub(super) max_measured: u32,
    pub(super) first_fail: Option<u32>,
    pub(super) knee: u32,
    /// The first failing stage, or the largest if none failed.
    pub(super) judged: &'a StageServer,
}

impl<'a> Measured<'a> {
    pub(super) fn of(stages: &'a [StageServer]) -> Result<Self, SizingError> {
        let mut sorted: Vec<&StageServer> = stages.iter().collect();
        sorted.sort_by_key(|s| s.speakers);
        let last = *sorted.last().ok_or(SizingError::NoStages)?;
        if last.speakers == 0 {
            return Err(SizingError::NoStages);
        }
        let failing = sorted.iter().find(|s| !s.passed).copied();
        let first_fail = failing.map(|s| s.speakers);
        let knee = sorted
            .iter()
            .filter(|s| s.passed && first_fail.is_none_or(|f| s.speakers < f))
            .map(|s| s.speakers)
            .max()
            .unwrap_or(0);
        Ok(Self {
            max_measured: last.speakers,
            first_fail,
            knee,
            judged: failing.unwrap_or(last),
        })
    }
}

/// The measured facts the verdict and the tier are judged on.
pub(super) struct Judged<'a> {
    pub(super) m: &'a Measured<'a>,
    pub(super) saturated: Saturation,
    /// The server's own known limits.
    pub(super) supply: Allotment,
    /// The CPU allotment the judged stages ran at.
    pub(super) judged_cores: Option<f64>,
    pub(super) target: u32,
}
