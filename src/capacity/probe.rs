//! The first stage's size, chosen from a short probe of how long a turn
//! takes, so that the stage can reach its minimum of turns within its
//! window instead of being stretched (up to 3×) and then left out.
//!
//! On the real server a turn takes about 10 s: one speaker ends only 6 turns
//! in a 60 s window, so the default first stage (1 speaker, at least 20
//! turns) was stretched to 180 s and then inconclusive, three minutes lost
//! per allotment. The rule ([`first_stage`], pure): a speaker whose cycle
//! (turn plus think time) is `c` ends at least `⌊window / c⌋` turns in a
//! window, so the first stage needs `⌈min_turns / ⌊window / c⌋⌉` speakers
//! (`⌈min_turns × c / window⌉` when a cycle is longer than the window), and
//! never fewer than the operator's `--start`. Later stages only grow from
//! there (the search doubles), so they are not stretched either.
//!
//! The probe ([`probed_start`]): one speaker for [`PROBE_WINDOW`] (at least
//! [`PROBE_TURNS`] turns, so stretched like any stage when turns are slow);
//! its cycle is the window's length over the turns it ended. It runs only
//! when `--start` speakers would need more than one turn each. A start it
//! raises is a hint, not a floor: should that stage fail, the search halves.

use super::run::{CapacityOptions, run_stage_on};
use crate::config::Plan;
use crate::rig::Rig;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The probe's measure window (stretched up to 3× for [`PROBE_TURNS`]).
pub const PROBE_WINDOW: Duration = Duration::from_secs(20);
/// Turns the probe speaker should end in its window.
pub const PROBE_TURNS: u64 = 2;

/// The first stage and how it was chosen (printed on the console).
#[derive(Debug, Clone, PartialEq)]
pub struct FirstStage {
    pub speakers: u32,
    pub reason: String,
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 0.05 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// The first stage's speakers for a measured `cycle` (see module docs),
/// capped at `max_speakers`.
pub fn first_stage(cycle: Duration, window: Duration, min_turns: u64, start: u32, max_speakers: u32) -> FirstStage {
    let (c, w) = (cycle.as_secs_f64(), window.as_secs_f64());
    let each = if c > 0.0 {
        (w / c + 1e-9).floor() as u64
    } else {
        min_turns
    };
    let needed = match each {
        0 => ((min_turns as f64) * c / w).ceil() as u64,
        each => min_turns.div_ceil(each),
    };
    let needed = u32::try_from(needed).unwrap_or(u32::MAX).max(1);
    let speakers = needed.max(start).min(max_speakers.max(1));
    let per = match each {
        0 => format!(
            "longer than the {} window, so a speaker may end none in it",
            secs(window)
        ),
        1 => format!("so each speaker ends at least 1 turn in a {} window", secs(window)),
        n => format!("so each speaker ends at least {n} turns in a {} window", secs(window)),
    };
    let choice = if speakers > start {
        format!("First stage: {speakers} speakers (not {start})")
    } else {
        format!("First stage: {speakers} speakers, as given")
    };
    let capped = if speakers < needed {
        format!(" (capped by --max-speakers; {needed} would end the {min_turns} turns needed)")
    } else {
        format!(": {speakers} end the {min_turns} turns a stage needs without stretching its window")
    };
    FirstStage {
        speakers,
        reason: format!(
            "{choice}. A probe speaker's turns took {} each (turn and think time), {per}{capped}.",
            secs(cycle)
        ),
    }
}

/// Whether `start` speakers need a probe: more than one turn each.
pub fn needs_probe(start: u32, min_turns: u64) -> bool {
    min_turns > u64::from(start.max(1))
}

/// `opts` with the first stage chosen by a one-speaker probe (see module
/// docs); `say` gets how the start was chosen. Unchanged when no probe is
/// needed, or the probe ended no turn or was interrupted.
pub async fn probed_start(
    rig: &mut Rig,
    plan: &Plan,
    opts: &CapacityOptions,
    interrupt: CancellationToken,
    say: impl Fn(&str),
) -> anyhow::Result<CapacityOptions> {
    let mut out = opts.clone();
    if !needs_probe(opts.search.start, opts.min_turns) {
        return Ok(out);
    }
    let label = "probe · 1 speaker";
    let budget = (PROBE_WINDOW, PROBE_TURNS);
    let run = run_stage_on(rig, plan, 1, budget, label, interrupt).await?;
    if run.interrupted {
        return Ok(out);
    }
    let ended = run.window.completed;
    if ended == 0 {
        say(&format!(
            "First stage: {} speakers, as given (a probe speaker ended no turn in {}).",
            opts.search.start,
            secs(Duration::from_secs_f64(run.duration_s))
        ));
        return Ok(out);
    }
    let cycle = Duration::from_secs_f64(run.duration_s / ended as f64);
    let first = first_stage(
        cycle,
        opts.stage_duration,
        opts.min_turns,
        opts.search.start,
        opts.search.max_speakers,
    );
    say(&first.reason);
    if first.speakers > out.search.start {
        // A start taken from the probe is a hint: below a failing one the
        // search halves rather than report a knee of 0.
        out.search.start = first.speakers;
        out.search.descend = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn speakers(cycle_s: f64, window: Duration, min_turns: u64, start: u32) -> u32 {
        first_stage(Duration::from_secs_f64(cycle_s), window, min_turns, start, 1000).speakers
    }

    #[test]
    fn ten_second_turns_start_at_four_speakers_for_twenty_turns_a_minute() {
        let first = first_stage(Duration::from_secs(10), MINUTE, 20, 1, 1000);
        assert_eq!(
            first,
            FirstStage {
                speakers: 4,
                reason: "First stage: 4 speakers (not 1). A probe speaker's turns took 10 s each (turn and think \
                         time), so each speaker ends at least 6 turns in a 60 s window: 4 end the 20 turns a stage \
                         needs without stretching its window."
                    .into()
            }
        );
    }

    #[test]
    fn whole_turns_per_speaker_decide_the_count() {
        // 12 s: 5 turns each → 4 speakers; 12.5 s: 4 each → 5; 2 s: 30 each → 1.
        assert_eq!(speakers(12.0, MINUTE, 20, 1), 4);
        assert_eq!(speakers(12.5, MINUTE, 20, 1), 5);
        assert_eq!(speakers(2.0, MINUTE, 20, 1), 1);
        assert_eq!(speakers(10.0, MINUTE, 0, 1), 1, "no minimum, no growth");
    }

    #[test]
    fn a_cycle_longer_than_the_window_counts_turns_spread_over_speakers() {
        let first = first_stage(Duration::from_secs(90), MINUTE, 20, 1, 1000);
        assert_eq!(first.speakers, 30, "⌈20 × 90 / 60⌉");
        assert!(
            first
                .reason
                .contains("longer than the 60 s window, so a speaker may end none in it"),
            "{}",
            first.reason
        );
    }

    #[test]
    fn the_operators_start_is_a_floor_and_max_speakers_a_cap() {
        let given = first_stage(Duration::from_secs(10), MINUTE, 20, 24, 1000);
        assert_eq!(given.speakers, 24);
        assert!(
            given.reason.starts_with("First stage: 24 speakers, as given."),
            "{}",
            given.reason
        );
        let capped = first_stage(Duration::from_secs(10), MINUTE, 20, 1, 3);
        assert_eq!(capped.speakers, 3);
        assert!(
            capped
                .reason
                .ends_with("(capped by --max-speakers; 4 would end the 20 turns needed)."),
            "{}",
            capped.reason
        );
    }

    #[test]
    fn a_probe_runs_only_when_the_start_needs_several_turns_each() {
        assert!(needs_probe(1, 20));
        assert!(!needs_probe(24, 20));
        assert!(!needs_probe(20, 20));
        assert!(!needs_probe(1, 0));
    }
}
