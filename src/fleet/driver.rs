//! The load driver: one task that spawns devices on the ramp schedule and
//! decides who talks when. Per-device load: every talking device runs its
//! group's conversations itself. Step plan: hold N concurrent speakers per
//! stage (closed loop), ramping new speakers in at the ramp rate, then
//! marking the measure window for the collector. Open model: conversations
//! arrive on a seeded Poisson clock; with no idle device free, the arrival is
//! counted as missed, never queued. A measure window with fewer turns than
//! the stage's `min_turns` is extended (at most to 3×); the stage's
//! speakers follow the plan's shape (steady, burst rounds or Poisson
//! arrivals, see [`super::shape`]).
//!
//! With `--shard I/N` the driver runs only its part (see [`super::shard`]):
//! its own devices at their global start instants, its share of each
//! stage's speakers (ramped at its share of the rate), every `N`-th arrival.
//! It also decides when the ramp is over: every own device started and
//! connected or failed to, and with stages the first stage's speakers all
//! talking. Send lag from then on is what the self-check judges.

use super::arrivals::ArrivalClock;
use super::generator::RampEnd;
use super::ramp::RampCount;
use super::shape::ShapeState;
use super::shard::Shard;
use crate::config::{Load, Plan, Stop};
use crate::device::{Command, DeviceContext, DeviceSettings, GroupRun, Note, identity_for, rng_for, run_device};
use crate::metrics::Event;
use crate::metrics::collector::EventSender;
use crate::metrics::event::StageMark;
use crate::units::secs_capped;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Commands waiting per device (a device takes one at a time).
const COMMAND_CAPACITY: usize = 4;
/// Notes in flight from all devices to the driver.
const NOTE_CAPACITY: usize = 65_536;
/// A speaker whose conversation ended early (failure) is restarted after this.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
/// A short measure window is extended at most this many times (3× in all).
const MAX_EXTENSIONS: u32 = 2;

/// A spawned device as the driver sees it.
struct Slot {
    commands: mpsc::Sender<Command>,
    group: usize,
    busy: bool,
    /// Per-device load: conversations still to hold.
    left: u32,
    /// Closed loop: the token that retires this speaker.
    speaker: Option<CancellationToken>,
    /// Conversations started (each draws its idle gap from its own stream).
    conversations: u32,
}

/// How the drive ended.
pub(crate) struct Driven {
    pub interrupted: bool,
    /// Where the ramp ended, if it did before the run.
    pub ramp: Option<RampEnd>,
}

/// Where the step plan is.
enum StagePhase {
    /// Activating speakers one by one.
    Ramp {
        need: u32,
        next_at: Instant,
    },
    /// Every speaker active; the shape's warm-up still runs (poisson).
    Warm,
    /// Measuring until `end_at`.
    Measure {
        end_at: Instant,
    },
    Done,
}

pub(crate) struct Driver<'a> {
    plan: &'a Plan,
    settings: Arc<DeviceSettings>,
    groups: Vec<Arc<GroupRun>>,
    events: EventSender,
    interrupt: CancellationToken,
    no_new_turns: CancellationToken,
    cancel: CancellationToken,
    slots: Vec<Slot>,
    tasks: JoinSet<()>,
    notes_tx: mpsc::Sender<Note>,
    notes_rx: mpsc::Receiver<Note>,
    scheduled: BinaryHeap<Reverse<(Instant, u32)>>,
    rng: ChaCha8Rng,
    start: Instant,
    turns_ended: u64,
    stage: usize,
    phase: StagePhase,
    arrivals: Option<(ArrivalClock, Instant)>,
    /// Arrivals so far, this shard's or not.
    arrival_no: u64,
    shard: Shard,
    /// Devices this shard runs.
    own: u32,
    ramp: RampCount,
    shape: ShapeState,
    /// `turns_ended` when the measure window opened, and its extensions.
    window_turns_from: u64,
    extensions: u32,
}

/// A diagnostics event for a device coming to life (`-vv`, `RUST_LOG=debug`).
fn log_spawn(index: u32, device_id: &str, url: &str, group: &crate::config::GroupPlan) {
    if group.idle == crate::config::IdleForm::Disconnected {
        tracing::debug!(
            device = index,
            device_id,
            url,
            "device started; connects when a conversation starts"
        );
    } else {
        tracing::debug!(device = index, device_id, url, "device connecting");
    }
}

/// The stream device `index` draws the idle gap after conversation
/// `conversation` from.
fn gap_rng(seed: u64, index: u32, conversation: u32) -> ChaCha8Rng {
    rng_for(seed ^ 0x1D1E_6A9F ^ (u64::from(conversation) << 32), index)
}

async fn until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl<'a> Driver<'a> {
    pub fn new(
        plan: &'a Plan,
        settings: Arc<DeviceSettings>,
        groups: Vec<Arc<GroupRun>>,
        events: EventSender,
        interrupt: CancellationToken,
    ) -> Self {
        let (notes_tx, notes_rx) = mpsc::channel(NOTE_CAPACITY);
        let start = Instant::now();
        let arrivals = match plan.load {
            Load::Arrivals { per_sec } => {
                let mut clock = ArrivalClock::new(per_sec, plan.seed);
                let first = start + clock.next_gap();
                Some((clock, first))
            }
            _ => None,
        };
        let phase = match &plan.load {
            Load::Stages(_) => StagePhase::Ramp {
                need: 0,
                next_at: start,
            },
            _ => StagePhase::Done,
        };
        let shard = plan.shard;
        let ramp = RampCount::new(matches!(plan.load, Load::Stages(_)));
        Driver {
            plan,
            settings,
            groups,
            events,
            interrupt,
            no_new_turns: CancellationToken::new(),
            cancel: CancellationToken::new(),
            slots: Vec::new(),
            tasks: JoinSet::new(),
            notes_tx,
            notes_rx,
            scheduled: BinaryHeap::new(),
            rng: ChaCha8Rng::seed_from_u64(plan.seed ^ 0xD21E),
            start,
            turns_ended: 0,
            stage: 0,
            phase,
            arrivals,
            arrival_no: 0,
            shard,
            own: shard.share_u32(plan.devices),
            ramp,
            shape: ShapeState::new(plan.shape),
            window_turns_from: 0,
            extensions: 0,
        }
    }

    /// The instant this shard's next device is due, if any is left.
    fn next_spawn_at(&self) -> Option<Instant> {
        let k = self.slots.len() as u32;
        (k < self.own).then(|| self.start + secs_capped(self.shard.device(k) as f64 / self.plan.ramp_per_sec))
    }

    /// Ends the ramp once every own device has settled (and, with stages,
    /// the first stage is being measured).
    fn check_ramp(&mut self) {
        if self.ramp.try_end(self.slots.len() as u32, self.own) {
            self.settings.ramp_over.store(true, Ordering::Relaxed);
            tracing::info!(
                devices = self.own,
                seconds = self.start.elapsed().as_secs_f64(),
                "ramp over: every device started"
            );
        }
    }

    /// Drives the run to its end.
    pub async fn run(mut self) -> Driven {
        if let Load::Stages(_) = &self.plan.load {
            self.start_stage();
        }
        self.check_ramp();
        let end_at = match (&self.plan.load, self.plan.stop) {
            (Load::Stages(_), _) => None,
            (_, Stop::Duration(d)) => Some(self.start + d),
            _ => None,
        };
        let interrupted = loop {
            if self.finished() {
                break false;
            }
            let spawn_at = self.next_spawn_at();
            let sched_at = self.scheduled.peek().map(|Reverse((t, _))| *t);
            let stage_at = match self.phase {
                StagePhase::Ramp { next_at, .. } => Some(next_at),
                StagePhase::Measure { end_at } => Some(end_at),
                StagePhase::Warm | StagePhase::Done => None,
            };
            let shape_at = self.shape.next_at();
            let arrival_at = self.arrivals.as_ref().map(|a| a.1);
            tokio::select! {
                _ = self.interrupt.cancelled() => break true,
                _ = until(end_at) => break false,
                _ = until(spawn_at) => self.spawn(),
                Some(note) = self.notes_rx.recv() => self.on_note(note),
                _ = until(sched_at) => {
                    if let Some(Reverse((_, i))) = self.scheduled.pop() {
                        self.converse(i, None);
                    }
                }
                _ = until(stage_at) => self.stage_step(),
                _ = until(arrival_at) => self.arrive(),
                _ = until(shape_at) => self.shape_step(),
            }
        };
        let ramp = self.ramp.end();
        Driven {
            interrupted: self.wind_down(interrupted).await,
            ramp,
        }
    }

    /// True when the load has nothing more to start.
    fn finished(&self) -> bool {
        if self
            .plan
            .total_turns
            .is_some_and(|n| self.turns_ended >= self.shard.share(n))
        {
            return true;
        }
        let all_spawned = self.slots.len() as u32 >= self.own;
        match (&self.plan.load, self.plan.stop) {
            (Load::Stages(_), _) => matches!(self.phase, StagePhase::Done),
            (Load::PerDevice, Stop::Turns(_)) => {
                all_spawned && self.scheduled.is_empty() && self.slots.iter().all(|s| !s.busy && s.left == 0)
            }
            _ => false,
        }
    }

    fn spawn(&mut self) {
        // Below u32::MAX: a global index is below the plan's device count.
        let index = self.shard.device(self.slots.len() as u32) as u32;
        let group = self.group_of(index);
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        let identity = identity_for(self.plan.seed, index, self.plan.token.clone());
        log_spawn(index, &identity.device_id, &self.settings.url, &self.groups[group].plan);
        self.tasks.spawn(run_device(DeviceContext {
            index,
            identity,
            rng: rng_for(self.plan.seed, index),
            settings: self.settings.clone(),
            group: self.groups[group].clone(),
            events: self.events.clone(),
            notes: self.notes_tx.clone(),
            commands: rx,
            no_new_turns: self.no_new_turns.clone(),
            cancel: self.cancel.clone(),
        }));
        let g = &self.groups[group].plan;
        let talks = g.talks();
        let per_device = matches!(self.plan.load, Load::PerDevice);
        self.slots.push(Slot {
            commands: tx,
            group,
            busy: false,
            left: if per_device && talks { g.conversations } else { 0 },
            speaker: None,
            conversations: 0,
        });
        if per_device && talks {
            self.converse(index, None);
        }
    }

    fn group_of(&self, index: u32) -> usize {
        let mut upto = 0;
        for (i, g) in self.plan.groups.iter().enumerate() {
            upto += g.count;
            if index < upto {
                return i;
            }
        }
        self.plan.groups.len() - 1
    }

    /// Starts a conversation on device `i` (a speaker's: until retired).
    fn converse(&mut self, i: u32, speaker: Option<CancellationToken>) {
        let Some(slot) = self.slots.get_mut(self.shard.local(i) as usize) else {
            return;
        };
        if slot.busy || self.no_new_turns.is_cancelled() {
            return;
        }
        let turns = self.groups[slot.group].plan.turns;
        let (turns, until) = match speaker {
            Some(token) => (None, token),
            None => {
                slot.left = slot.left.saturating_sub(1);
                (turns, CancellationToken::new())
            }
        };
        if slot.commands.try_send(Command::Converse { turns, until }).is_ok() {
            slot.busy = true;
            slot.conversations += 1;
        }
    }

    fn on_note(&mut self, note: Note) {
        match note {
            Note::TurnEnded(_) => self.turns_ended += 1,
            Note::Settled { connected, .. } => {
                self.ramp.settled(connected);
                self.check_ramp();
            }
            Note::ConversationEnded(i) => {
                let now = Instant::now();
                let Some(slot) = self.slots.get_mut(self.shard.local(i) as usize) else {
                    return;
                };
                slot.busy = false;
                if !matches!(self.shape, ShapeState::Steady) && matches!(self.plan.load, Load::Stages(_)) {
                    return self.shape_conversation_ended(self.shard.local(i), now);
                }
                if let Some(token) = slot.speaker.clone().filter(|t| !t.is_cancelled()) {
                    // A speaker that dropped out (failure, close) is restarted.
                    self.scheduled.push(Reverse((now + RESTART_BACKOFF, i)));
                    let _ = token;
                } else if slot.left > 0 {
                    // From the device's own stream, so a shard draws what
                    // the unsharded run would.
                    let g = &self.groups[slot.group].plan;
                    let gap = g.idle_time.sample(&mut gap_rng(self.plan.seed, i, slot.conversations));
                    self.scheduled.push(Reverse((now + gap, i)));
                }
            }
        }
    }

    fn arrive(&mut self) {
        let Some((clock, at)) = self.arrivals.as_mut() else {
            return;
        };
        *at += clock.next_gap();
        self.arrival_no += 1;
        if !self.shard.owns(self.arrival_no - 1) {
            return;
        }
        let free: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.busy && self.groups[s.group].plan.talks())
            .map(|(k, _)| self.shard.device(k as u32) as u32)
            .collect();
        if free.is_empty() {
            self.events.send(Event::MissedArrival);
            return;
        }
        let pick = free[self.rng.random_range(0..free.len())];
        self.converse(pick, None);
    }

    fn start_stage(&mut self) {
        let Load::Stages(stages) = &self.plan.load else { return };
        let Some(stage) = stages.get(self.stage) else {
            self.phase = StagePhase::Done;
            return;
        };
        let target = self.shard.share_u32(stage.speakers) as usize;
        let mut active: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].speaker.is_some())
            .collect();
        while active.len() > target {
            if let Some(i) = active.pop()
                && let Some(t) = self.slots[i].speaker.take()
            {
                t.cancel();
            }
        }
        self.phase = StagePhase::Ramp {
            need: (target - active.len().min(target)) as u32,
            next_at: Instant::now(),
        };
        self.shape = ShapeState::new(self.plan.shape);
        if matches!(self.shape, ShapeState::Poisson(_)) {
            // Speakers kept from the last stage warm up again too.
            for i in active.into_iter().take(target) {
                self.talk_once(i as u32);
            }
        }
        self.stage_step();
    }

    /// Activates the next speaker, or opens / closes the measure window.
    fn stage_step(&mut self) {
        let Load::Stages(stages) = &self.plan.load else { return };
        let now = Instant::now();
        match self.phase {
            StagePhase::Ramp { need: 0, .. } | StagePhase::Warm => self.open_window(now),
            StagePhase::Ramp { need, .. } => {
                // This shard's part of the ramp rate.
                let step = secs_capped(f64::from(self.shard.count) / self.plan.ramp_per_sec);
                let pick = (0..self.slots.len()).find(|&i| {
                    let s = &self.slots[i];
                    s.speaker.is_none() && !s.busy && self.groups[s.group].plan.talks()
                });
                let Some(k) = pick else {
                    // Not spawned yet (or still finishing): try again shortly.
                    self.phase = StagePhase::Ramp {
                        need,
                        next_at: now + step,
                    };
                    return;
                };
                let token = CancellationToken::new();
                self.slots[k].speaker = Some(token.clone());
                match self.shape {
                    ShapeState::Steady => self.converse(self.shard.device(k as u32) as u32, Some(token)),
                    // Bursts start together when every speaker is in.
                    ShapeState::Burst(_) => {}
                    ShapeState::Poisson(_) => self.talk_once(k as u32),
                }
                let next_at = if need > 1 { now + step } else { now };
                self.phase = StagePhase::Ramp {
                    need: need - 1,
                    next_at,
                };
            }
            StagePhase::Measure { .. } => {
                let s = &stages[self.stage];
                let ended = self.turns_ended - self.window_turns_from;
                if ended < s.min_turns && self.extensions < MAX_EXTENSIONS {
                    self.extensions += 1;
                    self.phase = StagePhase::Measure {
                        end_at: now + s.duration,
                    };
                    return;
                }
                self.events.stage(StageMark::End);
                self.stage += 1;
                self.start_stage();
            }
            StagePhase::Done => {}
        }
    }

    /// Ends the run: no new turns, a grace period for turns in progress,
    /// then stop everything. Returns whether the run was interrupted.
    async fn wind_down(mut self, mut interrupted: bool) -> bool {
        self.no_new_turns.cancel();
        for s in &self.slots {
            if let Some(t) = &s.speaker {
                t.cancel();
            }
        }
        if interrupted {
            self.cancel.cancel();
        }
        let hard_stop = Instant::now() + self.plan.timeouts.grace;
        loop {
            tokio::select! {
                next = self.tasks.join_next() => if next.is_none() { break },
                Some(_) = self.notes_rx.recv() => {}
                _ = tokio::time::sleep_until(hard_stop), if !self.cancel.is_cancelled() => self.cancel.cancel(),
                _ = self.interrupt.cancelled(), if !interrupted => {
                    interrupted = true;
                    self.cancel.cancel();
                }
            }
        }
        interrupted
    }
}

mod shapes;
