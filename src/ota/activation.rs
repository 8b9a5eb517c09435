//! The firmware's activation loop as a sans-IO state machine (PROTOCOL.md
//! §1.4): `POST <ota>/activate` right away, then `202` (still pending)
//! → again 3 s after the answer, `200` → activated, anything else (another
//! status, or no answer) → again 10 s after; at most 10 tries.
//!
//! Inputs: [`ActivationLoop::start`], [`ActivationLoop::on_response`],
//! [`ActivationLoop::on_error`], [`ActivationLoop::handle_timeout`], each
//! with `now`. Outputs: [`ActivationLoop::poll_transmit`] ("send the
//! activate request now", built by `request::activate`),
//! [`ActivationLoop::next_deadline`] and [`ActivationLoop::outcome`].

use super::answer::Activation;
use std::time::Duration;
use tokio::time::Instant;

/// Wait after a `202` before the next try.
pub const PENDING_RETRY: Duration = Duration::from_secs(3);
/// Wait after any other answer, or none, before the next try.
pub const ERROR_RETRY: Duration = Duration::from_secs(10);
/// Tries per version check.
pub const MAX_TRIES: u32 = 10;

/// Why a try did not activate the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActivationFailure {
    /// The answer had a `code` but no `challenge`: nothing to post.
    NoChallenge,
    /// An HTTP status other than 200 and 202.
    HttpStatus(u16),
    /// No answer (connection refused, reset, timed out…).
    Transport(String),
}

/// How the loop ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActivationOutcome {
    /// `200`: bound; `elapsed` from `start` to the answer.
    Activated { tries: u32, elapsed: Duration },
    /// Every try answered `202`, the last one included: still waiting for
    /// a user to bind `code`.
    StillPending { code: Option<String>, tries: u32 },
    /// The last try failed for `reason`.
    Failed {
        reason: ActivationFailure,
        tries: u32,
        code: Option<String>,
    },
}

/// "Send the activate request now": the try's number, from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivateNow {
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    NotStarted,
    /// A request is due now.
    Ready,
    InFlight,
    /// The next try is due at this instant.
    Waiting(Instant),
    Done(ActivationOutcome),
}

/// One device's activation loop.
#[derive(Clone, Debug)]
pub struct ActivationLoop {
    code: Option<String>,
    has_challenge: bool,
    max_tries: u32,
    tries: u32,
    started: Option<Instant>,
    state: State,
}

impl ActivationLoop {
    /// The loop for a pending activation, with the firmware's 10 tries.
    pub fn new(activation: &Activation) -> Self {
        Self::with_max_tries(activation, MAX_TRIES)
    }

    /// The loop with another bound on tries (at least 1).
    pub fn with_max_tries(activation: &Activation, max_tries: u32) -> Self {
        Self {
            code: activation.code.clone(),
            has_challenge: activation.challenge.is_some(),
            max_tries: max_tries.max(1),
            tries: 0,
            started: None,
            state: State::NotStarted,
        }
    }

    /// Starts the loop: the first try is due at once. Without a challenge
    /// it ends at once with [`ActivationFailure::NoChallenge`].
    pub fn start(&mut self, now: Instant) {
        if self.state != State::NotStarted {
            return;
        }
        self.started = Some(now);
        self.state = if self.has_challenge {
            State::Ready
        } else {
            self.finished(ActivationFailure::NoChallenge)
        };
    }

    /// The activate request to send now, if one is due.
    pub fn poll_transmit(&mut self) -> Option<ActivateNow> {
        if self.state != State::Ready {
            return None;
        }
        self.tries += 1;
        self.state = State::InFlight;
        Some(ActivateNow { attempt: self.tries })
    }

    /// The HTTP status of the request in flight.
    pub fn on_response(&mut self, status: u16, now: Instant) {
        if self.state != State::InFlight {
            return;
        }
        self.state = match status {
            200 => {
                let elapsed = now - self.started.unwrap_or(now);
                State::Done(ActivationOutcome::Activated {
                    tries: self.tries,
                    elapsed,
                })
            }
            202 if self.tries >= self.max_tries => State::Done(ActivationOutcome::StillPending {
                code: self.code.clone(),
                tries: self.tries,
            }),
            202 => State::Waiting(now + PENDING_RETRY),
            other => self.retry_or_fail(ActivationFailure::HttpStatus(other), now),
        };
    }

    /// The request in flight got no answer.
    pub fn on_error(&mut self, reason: String, now: Instant) {
        if self.state == State::InFlight {
            self.state = self.retry_or_fail(ActivationFailure::Transport(reason), now);
        }
    }

    /// A deadline passed: the next try becomes due if its time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Waiting(at) = self.state
            && now >= at
        {
            self.state = State::Ready;
        }
    }

    /// When the loop next needs [`handle_timeout`](Self::handle_timeout).
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) => Some(at),
            _ => None,
        }
    }

    /// The final outcome, once the loop has ended.
    pub fn outcome(&self) -> Option<&ActivationOutcome> {
        match &self.state {
            State::Done(o) => Some(o),
            _ => None,
        }
    }

    fn retry_or_fail(&self, reason: ActivationFailure, now: Instant) -> State {
        if self.tries >= self.max_tries {
            self.finished(reason)
        } else {
            State::Waiting(now + ERROR_RETRY)
        }
    }

    fn finished(&self, reason: ActivationFailure) -> State {
        State::Done(ActivationOutcome::Failed {
            reason,
            tries: self.tries,
            code: self.code.clone(),
        })
    }
}

#[cfg(test)]
#[path = "activation_tests.rs"]
mod tests;
