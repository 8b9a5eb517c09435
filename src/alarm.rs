//! A `select!` loop's deadline timer, kept across iterations: re-armed only
//! when the deadline changes, so a wake-up for a socket message (most of
//! them) costs no timer-wheel work, where a fresh `sleep_until` per
//! iteration would register and deregister a timer every time.

use std::pin::Pin;
use tokio::time::{Instant, Sleep};

/// A pinned [`Sleep`] and the deadline it is armed for (`None`: disarmed).
pub struct Alarm<'a> {
    sleep: Pin<&'a mut Sleep>,
    armed: Option<Instant>,
}

impl<'a> Alarm<'a> {
    /// An alarm over `sleep` (pin one with `tokio::pin!`), disarmed.
    pub fn new(sleep: Pin<&'a mut Sleep>) -> Self {
        Alarm { sleep, armed: None }
    }

    /// Arms for `at` (or disarms); the timer is touched only on a change.
    pub fn set(&mut self, at: Option<Instant>) {
        if at != self.armed {
            if let Some(t) = at {
                self.sleep.as_mut().reset(t);
            }
            self.armed = at;
        }
    }

    /// Completes at the armed deadline (never while disarmed), then disarms.
    pub async fn fired(&mut self) {
        if self.armed.is_none() {
            std::future::pending::<()>().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn fires_at_each_armed_deadline_and_never_while_disarmed() {
        let t0 = Instant::now();
        let sleep = tokio::time::sleep_until(t0);
        tokio::pin!(sleep);
        let mut alarm = Alarm::new(sleep);
        let ms = |n| t0 + Duration::from_millis(n);
        alarm.set(Some(ms(60)));
        alarm.fired().await;
        assert_eq!(Instant::now(), ms(60));
        // The same instant again after firing: fires at once (it is due).
        alarm.set(Some(ms(60)));
        alarm.fired().await;
        assert_eq!(Instant::now(), ms(60));
        alarm.set(Some(ms(200)));
        alarm.set(Some(ms(120)));
        alarm.fired().await;
        assert_eq!(Instant::now(), ms(120));
        alarm.set(None);
        let waited = tokio::time::timeout(Duration::from_secs(5), alarm.fired()).await;
        assert!(waited.is_err(), "a disarmed alarm never fires");
    }
}
