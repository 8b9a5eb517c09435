//! The driver's side of the burst and poisson shapes (see
//! [`crate::fleet::shape`]): opening the measure window when the shape is
//! ready, one-turn conversations, burst rounds, Poisson arrivals, and what
//! a conversation's end means under each shape.

use super::{Driver, StagePhase};
use crate::config::Load;
use crate::device::Command;
use crate::fleet::shape::ShapeState;
use crate::metrics::Event;
use crate::metrics::event::StageMark;
use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

impl Driver<'_> {
    /// Opens the stage's measure window, once the shape is ready (poisson:
    /// one warm-up turn per speaker measured; burst: the first round).
    pub(super) fn open_window(&mut self, now: Instant) {
        let plan = self.plan;
        let Load::Stages(stages) = &plan.load else { return };
        let s = &stages[self.stage];
        let seed = plan.seed ^ (self.stage as u64 + 1);
        let ready = match &mut self.shape {
            ShapeState::Steady | ShapeState::Burst(_) => true,
            ShapeState::Poisson(p) => p.ready(s.speakers) && p.begin(s.speakers, seed, now).is_some(),
        };
        if !ready {
            self.phase = StagePhase::Warm;
            return;
        }
        self.events.stage(StageMark::Measure {
            name: s.name.clone(),
            speakers: self.shard.share_u32(s.speakers),
        });
        self.ramp.measuring();
        self.check_ramp();
        self.window_turns_from = self.turns_ended;
        self.extensions = 0;
        self.phase = StagePhase::Measure {
            end_at: now + s.duration,
        };
        if matches!(self.shape, ShapeState::Burst(_)) {
            self.start_round();
        }
    }

    /// A one-turn conversation on device `i` (burst rounds, poisson).
    pub(super) fn talk_once(&mut self, i: u32) {
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return;
        };
        if slot.busy || self.no_new_turns.is_cancelled() {
            return;
        }
        let command = Command::Converse {
            turns: Some(1),
            until: CancellationToken::new(),
        };
        if slot.commands.try_send(command).is_ok() {
            slot.busy = true;
            if let ShapeState::Poisson(p) = &mut self.shape {
                p.started(i, Instant::now());
            }
        }
    }

    /// Burst: every speaker starts a turn now.
    fn start_round(&mut self) {
        let speakers: Vec<u32> = (0..self.slots.len())
            .filter(|&i| self.slots[i].speaker.is_some() && !self.slots[i].busy)
            .map(|i| i as u32)
            .collect();
        for i in speakers {
            self.talk_once(i);
        }
        if let ShapeState::Burst(b) = &mut self.shape {
            b.in_round = true;
            b.round_at = None;
            b.rounds += 1;
        }
    }

    /// The shape's timer: the next burst round, or a Poisson arrival.
    pub(super) fn shape_step(&mut self) {
        match &mut self.shape {
            ShapeState::Steady => {}
            ShapeState::Burst(_) => self.start_round(),
            ShapeState::Poisson(p) => {
                p.advance();
                let free: Vec<u32> = (0..self.slots.len())
                    .filter(|&i| !self.slots[i].busy && self.groups[self.slots[i].group].plan.talks())
                    .map(|i| i as u32)
                    .collect();
                if free.is_empty() {
                    self.events.send(Event::MissedArrival);
                    return;
                }
                let pick = free[self.rng.random_range(0..free.len())];
                self.talk_once(pick);
            }
        }
    }

    /// A conversation ended under the burst or poisson shape.
    pub(super) fn shape_conversation_ended(&mut self, i: u32, now: Instant) {
        let slot = &self.slots[i as usize];
        let speaking = slot.speaker.as_ref().is_some_and(|t| !t.is_cancelled());
        let all_done = !self.slots.iter().any(|s| s.speaker.is_some() && s.busy);
        let group = slot.group;
        match &mut self.shape {
            ShapeState::Steady => {}
            ShapeState::Burst(b) => {
                if b.in_round && all_done {
                    b.in_round = false;
                    // One think time for the whole room.
                    let gap = self.groups[group].plan.think_time.sample(&mut self.rng);
                    b.round_at = Some(now + gap);
                }
            }
            ShapeState::Poisson(p) => {
                let warming = p.ended(i, now);
                if warming && speaking {
                    self.talk_once(i);
                    if matches!(self.phase, StagePhase::Warm) {
                        self.open_window(now);
                    }
                }
            }
        }
    }
}
