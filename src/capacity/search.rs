//! The capacity search: which speaker counts to run, and when to stop.
//!
//! This file owns a pure state machine. The caller asks [`Search::next`] for
//! the next stage, runs it, and hands the verdict back with
//! [`Search::record`]; nothing here runs load, reads clocks or sleeps.
//!
//! The rule: test `start`; while stages pass, double (1, 2, 4, 8, …) up to
//! `max_speakers`; after the first failure, bisect between the last pass and
//! the first fail until `fail − pass ≤ resolution(pass)`. The result is the
//! last pass (0 if even `start` failed). With `descend` (a start taken from
//! an earlier knee, not from the operator), a failing start is halved until
//! a stage passes, then the bracket is bisected as usual. A stage whose peak memory reached 90 %
//! of the limit, or whose load generator could not keep up, stops the search
//! at once with the best pass so far. An `inconclusive` stage (too few turns
//! to judge) is neither pass nor fail: before any failure the search keeps
//! doubling from it (more speakers, more turns); while bisecting it ends the
//! search with the best pass so far.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// How close the bracket [pass, fail] must get before the search stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// 1 speaker while the last pass is below 20, else 5 % of the last pass,
    /// rounded up (so at least 1).
    #[default]
    Auto,
    /// A fixed width in speakers (0 is treated as 1).
    Fixed(u32),
}

impl Resolution {
    /// The bracket width accepted when the last pass is `pass`.
    pub fn width(self, pass: u32) -> u32 {
        match self {
            Self::Auto if pass < 20 => 1,
            Self::Auto => pass.div_ceil(20).max(1),
            Self::Fixed(w) => w.max(1),
        }
    }
}

/// Search settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchConfig {
    /// First speaker count tried (0 is treated as 1; capped at `max_speakers`).
    pub start: u32,
    pub resolution: Resolution,
    /// Safety cap: the search never runs more speakers than this.
    pub max_speakers: u32,
    /// Below a failing start, halve until a stage passes (see module docs).
    #[serde(default)]
    pub descend: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            start: 1,
            resolution: Resolution::Auto,
            max_speakers: 1000,
            descend: false,
        }
    }
}

/// What one stage reported back to the search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageOutcome {
    /// Every SLO held.
    pub passed: bool,
    /// Peak memory reached 90 % of the container's limit: the next, larger
    /// stage would risk the OOM killer. A stage that passed still counts.
    pub memory_near_limit: bool,
    /// The load generator itself was the bottleneck, so this stage measured
    /// nothing about the server: it counts neither as pass nor as fail.
    pub generator_invalid: bool,
    /// Too few turns to judge: neither pass nor fail.
    #[serde(default)]
    pub inconclusive: bool,
}

/// Why the search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Converged,
    MemoryNearLimit,
    GeneratorInvalid,
    StartFailed,
    HitMaxSpeakers,
    /// A stage while bisecting (or at the cap) had too few turns to judge.
    Inconclusive,
}

/// The answer of a finished search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The largest speaker count that passed (0 if none did).
    pub max_speakers: u32,
    pub stages_run: u32,
    pub stop_reason: StopReason,
    /// The smallest speaker count that failed, if any did.
    pub first_fail: Option<u32>,
}

impl SearchResult {
    /// The knee as reports give it: `None` when no stage could be judged
    /// (only inconclusive stages, or failures with only inconclusive stages
    /// below them), so an unknown knee never reads as 0 speakers.
    pub fn knee(&self) -> Option<u32> {
        match (self.max_speakers, self.first_fail, self.stop_reason) {
            (0, None, _) | (0, Some(_), StopReason::Inconclusive) => None,
            (n, ..) => Some(n),
        }
    }
}

/// A knee in the operator's words: the count, or why there is none.
pub fn knee_text(knee: Option<u32>) -> String {
    knee.map_or("unknown (no stage could be judged)".to_string(), |k| k.to_string())
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Run(u32),
    Done(SearchResult),
}

/// The search state machine. See the module docs for the rule.
#[derive(Debug, Clone)]
pub struct Search {
    cfg: SearchConfig,
    best_pass: Option<u32>,
    first_fail: Option<u32>,
    stages_run: u32,
    tested: BTreeSet<u32>,
    history: Vec<(u32, StageOutcome)>,
    early_stop: Option<StopReason>,
    /// The largest inconclusive count.
    inconclusive: Option<u32>,
}

impl Search {
    /// A new search; `start` is clamped into `1..=max(max_speakers, 1)`.
    pub fn new(cfg: SearchConfig) -> Self {
        let max_speakers = cfg.max_speakers.max(1);
        let cfg = SearchConfig {
            start: cfg.start.clamp(1, max_speakers),
            max_speakers,
            ..cfg
        };
        Self {
            cfg,
            best_pass: None,
            first_fail: None,
            stages_run: 0,
            tested: BTreeSet::new(),
            history: Vec::new(),
            early_stop: None,
            inconclusive: None,
        }
    }

    /// The effective configuration (after clamping).
    pub fn config(&self) -> SearchConfig {
        self.cfg
    }

    /// Every recorded stage, in order.
    pub fn history(&self) -> &[(u32, StageOutcome)] {
        &self.history
    }

    /// The next stage to run, or the final answer.
    pub fn next(&self) -> Step {
        if let Some(reason) = self.early_stop {
            return self.done(reason);
        }
        if self.stages_run == 0 {
            return Step::Run(self.cfg.start);
        }
        let lower = self
            .best_pass
            .max(self.inconclusive.filter(|_| self.first_fail.is_none()));
        let Some(pass) = lower else {
            // Failures, and below them only stages too short to judge: the
            // knee is unknown, not 0.
            if self.inconclusive.is_some() {
                return self.done(StopReason::Inconclusive);
            }
            if let Some(fail) = self.first_fail.filter(|f| self.cfg.descend && *f > 1) {
                return self.run_untested(fail / 2);
            }
            // Only failures so far, and nothing below `start` is ever tried.
            return self.done(StopReason::StartFailed);
        };
        match self.first_fail {
            None if self.best_pass.is_none() && pass >= self.cfg.max_speakers => self.done(StopReason::Inconclusive),
            None if pass >= self.cfg.max_speakers => self.done(StopReason::HitMaxSpeakers),
            None => self.run_untested(pass.saturating_mul(2).min(self.cfg.max_speakers)),
            Some(fail) if fail <= pass => self.done(StopReason::Converged),
            Some(fail) if fail - pass <= self.cfg.resolution.width(pass) => self.done(StopReason::Converged),
            Some(fail) => self.run_untested(pass + (fail - pass) / 2),
        }
    }

    /// Records the outcome of a stage of `speakers`. Call it with the count
    /// [`Search::next`] asked for; outcomes after the search ended are ignored.
    pub fn record(&mut self, speakers: u32, outcome: StageOutcome) {
        if matches!(self.next(), Step::Done(_)) {
            return;
        }
        self.stages_run += 1;
        self.tested.insert(speakers);
        self.history.push((speakers, outcome));
        if outcome.generator_invalid {
            self.early_stop = Some(StopReason::GeneratorInvalid);
            return;
        }
        if outcome.inconclusive {
            self.inconclusive = self.inconclusive.max(Some(speakers));
            if self.first_fail.is_some() {
                self.early_stop = Some(StopReason::Inconclusive);
            }
            return;
        }
        if outcome.passed {
            self.best_pass = Some(self.best_pass.map_or(speakers, |p| p.max(speakers)));
        } else {
            self.first_fail = Some(self.first_fail.map_or(speakers, |f| f.min(speakers)));
        }
        if outcome.memory_near_limit {
            self.early_stop = Some(StopReason::MemoryNearLimit);
        }
    }

    /// Runs `n` unless it was already measured (only possible when `record`
    /// was fed counts other than those asked for); then the bracket is final.
    fn run_untested(&self, n: u32) -> Step {
        if self.tested.contains(&n) {
            self.done(StopReason::Converged)
        } else {
            Step::Run(n)
        }
    }

    fn done(&self, stop_reason: StopReason) -> Step {
        Step::Done(SearchResult {
            max_speakers: self.best_pass.unwrap_or(0),
            stages_run: self.stages_run,
            stop_reason,
            first_fail: self.first_fail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(passed: bool) -> StageOutcome {
        StageOutcome {
            passed,
            ..StageOutcome::default()
        }
    }

    /// Drives a search to the end; returns the result and the counts run.
    fn drive(cfg: SearchConfig, outcome: impl Fn(u32) -> StageOutcome) -> (SearchResult, Vec<u32>) {
        let mut search = Search::new(cfg);
        let mut ran = Vec::new();
        loop {
            match search.next() {
                Step::Run(n) => {
                    assert!(ran.len() < 200, "search does not terminate: {ran:?}");
                    ran.push(n);
                    search.record(n, outcome(n));
                }
                Step::Done(result) => return (result, ran),
            }
        }
    }

    fn cfg(start: u32) -> SearchConfig {
        SearchConfig {
            start,
            ..SearchConfig::default()
        }
    }

    #[test]
    fn resolution_widths() {
        let auto = Resolution::Auto;
        assert_eq!(
            [0, 1, 19, 20, 21, 40, 41, 100].map(|p| auto.width(p)),
            [1, 1, 1, 1, 2, 2, 3, 5]
        );
        assert_eq!(Resolution::Fixed(0).width(50), 1);
        assert_eq!(Resolution::Fixed(4).width(5), 4);
    }

    #[test]
    fn true_knee_is_found_within_resolution_for_many_starts() {
        for start in [1, 2, 3, 5, 8] {
            for knee in 0..=60u32 {
                let (result, ran) = drive(cfg(start), |n| pass(n <= knee));
                let ctx = format!("start {start} knee {knee}: {result:?} ran {ran:?}");
                let unique: BTreeSet<u32> = ran.iter().copied().collect();
                assert_eq!(unique.len(), ran.len(), "ran a count twice; {ctx}");
                assert_eq!(result.stages_run as usize, ran.len(), "{ctx}");
                if knee < start {
                    assert_eq!(result.max_speakers, 0, "{ctx}");
                    assert_eq!(result.stop_reason, StopReason::StartFailed, "{ctx}");
                    continue;
                }
                let found = result.max_speakers;
                assert_eq!(result.stop_reason, StopReason::Converged, "{ctx}");
                assert!(found <= knee, "{ctx}");
                assert!(knee - found < Resolution::Auto.width(found), "{ctx}");
                if knee < 20 {
                    assert_eq!(found, knee, "{ctx}");
                }
                let bound = 2.0 * f64::from(knee.max(1)).log2() + 3.0;
                assert!(f64::from(result.stages_run) <= bound, "{ctx}");
            }
        }
    }

    #[test]
    fn doubling_then_bisecting_sequence() {
        let (result, ran) = drive(cfg(1), |n| pass(n <= 12));
        assert_eq!(ran, [1, 2, 4, 8, 16, 12, 14, 13]);
        assert_eq!(result.max_speakers, 12);
        assert_eq!(result.first_fail, Some(13));
        assert_eq!(result.stages_run, 8);
    }

    #[test]
    fn start_failing_gives_zero() {
        let (result, ran) = drive(cfg(4), |_| pass(false));
        assert_eq!(ran, [4]);
        assert_eq!(
            result,
            SearchResult {
                max_speakers: 0,
                stages_run: 1,
                stop_reason: StopReason::StartFailed,
                first_fail: Some(4)
            }
        );
    }

    #[test]
    fn memory_near_limit_stops_at_once() {
        let outcome = |n: u32| StageOutcome {
            passed: n <= 30,
            memory_near_limit: n >= 8,
            generator_invalid: false,
            inconclusive: false,
        };
        let (result, ran) = drive(cfg(1), outcome);
        assert_eq!(ran, [1, 2, 4, 8]);
        assert_eq!(result.stop_reason, StopReason::MemoryNearLimit);
        assert_eq!(result.max_speakers, 8, "a passing stage still counts");
        let failing = |n: u32| StageOutcome {
            passed: n < 8,
            memory_near_limit: n >= 8,
            generator_invalid: false,
            inconclusive: false,
        };
        let (result, _) = drive(cfg(1), failing);
        assert_eq!((result.max_speakers, result.first_fail), (4, Some(8)));
    }

    #[test]
    fn generator_invalid_stops_without_counting_the_stage() {
        let outcome = |n: u32| StageOutcome {
            passed: true,
            memory_near_limit: false,
            generator_invalid: n >= 16,
            inconclusive: false,
        };
        let (result, ran) = drive(cfg(1), outcome);
        assert_eq!(ran, [1, 2, 4, 8, 16]);
        assert_eq!(
            result,
            SearchResult {
                max_speakers: 8,
                stages_run: 5,
                stop_reason: StopReason::GeneratorInvalid,
                first_fail: None
            }
        );
    }

    #[test]
    fn hits_the_safety_cap() {
        let cfg = SearchConfig {
            max_speakers: 100,
            ..SearchConfig::default()
        };
        let (result, ran) = drive(cfg, |_| pass(true));
        assert_eq!(ran, [1, 2, 4, 8, 16, 32, 64, 100]);
        assert_eq!(result.stop_reason, StopReason::HitMaxSpeakers);
        assert_eq!(result.max_speakers, 100);
        let (capped, _) = drive(cfg, |n| pass(n <= 80));
        assert_eq!(capped.stop_reason, StopReason::Converged);
        assert!((77..=80).contains(&capped.max_speakers), "{capped:?}");
    }

    #[test]
    fn fixed_resolution_and_clamped_start() {
        let cfg = SearchConfig {
            start: 0,
            resolution: Resolution::Fixed(4),
            max_speakers: 1000,
            descend: false,
        };
        let (result, ran) = drive(cfg, |n| pass(n <= 10));
        assert_eq!(ran, [1, 2, 4, 8, 16, 12]);
        assert_eq!(result.max_speakers, 8);
        let big_start = SearchConfig {
            start: 5000,
            ..SearchConfig::default()
        };
        assert_eq!(Search::new(big_start).next(), Step::Run(1000));
    }

    fn short(_n: u32) -> StageOutcome {
        StageOutcome {
            inconclusive: true,
            ..StageOutcome::default()
        }
    }

    #[test]
    fn inconclusive_start_keeps_doubling() {
        // 1 and 2 speakers give too few turns; 4 and 8 pass; 16 fails.
        let outcome = |n: u32| match n {
            1 | 2 => short(n),
            n => pass(n <= 10),
        };
        let (result, ran) = drive(cfg(1), outcome);
        assert_eq!(ran, [1, 2, 4, 8, 16, 12, 10, 11]);
        assert_eq!((result.max_speakers, result.stop_reason), (10, StopReason::Converged));
    }

    #[test]
    fn inconclusive_while_bisecting_stops_with_the_best_pass() {
        let outcome = |n: u32| if n == 12 { short(n) } else { pass(n <= 13) };
        let (result, ran) = drive(cfg(1), outcome);
        assert_eq!(ran, [1, 2, 4, 8, 16, 12]);
        assert_eq!(
            (result.max_speakers, result.first_fail, result.stop_reason),
            (8, Some(16), StopReason::Inconclusive)
        );
        let capped = SearchConfig {
            max_speakers: 2,
            ..SearchConfig::default()
        };
        let (result, ran) = drive(capped, short);
        assert_eq!(
            (ran, result.stop_reason, result.max_speakers),
            (vec![1, 2], StopReason::Inconclusive, 0)
        );
    }

    #[test]
    fn knee_is_unknown_when_no_stage_was_judged() {
        let (only_short, _) = drive(
            SearchConfig {
                max_speakers: 2,
                ..SearchConfig::default()
            },
            short,
        );
        assert_eq!(only_short.knee(), None);
        let short_then_fail = |n: u32| if n <= 2 { short(n) } else { pass(false) };
        let (result, ran) = drive(cfg(1), short_then_fail);
        assert_eq!((ran, result.stop_reason), (vec![1, 2, 4], StopReason::Inconclusive));
        assert_eq!(result.knee(), None, "failures above unjudged stages: unknown, not 0");
        let (start_failed, _) = drive(cfg(4), |_| pass(false));
        assert_eq!(start_failed.knee(), Some(0), "even the start failed: a knee of 0");
        let (found, _) = drive(cfg(1), |n| pass(n <= 12));
        assert_eq!(found.knee(), Some(12));
    }

    #[test]
    fn descend_halves_below_a_failing_start_then_bisects() {
        let cfg = SearchConfig {
            start: 33,
            descend: true,
            ..SearchConfig::default()
        };
        let (result, ran) = drive(cfg, |n| pass(n <= 30));
        assert_eq!(ran, [33, 16, 24, 28, 30, 31]);
        assert_eq!((result.max_speakers, result.stop_reason), (30, StopReason::Converged));
        let (result, ran) = drive(cfg, |_| pass(false));
        assert_eq!(ran, [33, 16, 8, 4, 2, 1]);
        assert_eq!((result.max_speakers, result.stop_reason), (0, StopReason::StartFailed));
        let plain = SearchConfig { descend: false, ..cfg };
        assert_eq!(
            drive(plain, |n| pass(n <= 30)).1,
            [33],
            "an operator's --start is a floor"
        );
    }

    #[test]
    fn records_after_done_are_ignored() {
        let mut search = Search::new(cfg(1));
        search.record(1, pass(false));
        let before = search.next();
        search.record(2, pass(true));
        assert_eq!(search.next(), before);
        assert_eq!(search.history().len(), 1);
    }
}
