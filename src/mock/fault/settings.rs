//! [`FaultSettings`]: one `[[mock.fault]]` table as written, and its
//! checks: which keys each kind takes, `p` or a list of indices, value
//! ranges. Errors are `(key, message)` relative to the table, so the
//! fleet-file loader can name the file and line.

use super::{AFTER_FRAMES, Fault, FaultKind, PER_DATAGRAM, Pick, SLOW_HANDSHAKE_DELAY, UDP_LATE_DELAY};
use crate::units::Span;
use serde::Deserialize;

/// One `[[mock.fault]]` table as written. Unknown keys and kinds are
/// errors with the file's line (serde).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    pub kind: FaultKind,
    /// Probability per eligible connection, utterance or answer.
    pub p: Option<f64>,
    /// Utterance (or, for gateway turn faults, answer) indices on each
    /// session (0-based), for turn faults.
    pub turns: Option<Vec<u32>>,
    /// Accept indices (0-based), for connection faults.
    pub connections: Option<Vec<u64>>,
    /// `reject_upgrade`: the HTTP status (default 401).
    pub status: Option<u16>,
    /// `reject_upgrade`: the response body.
    pub body: Option<String>,
    /// `slow_handshake`: how long the upgrade goes unanswered (default 15 s);
    /// `udp_late`: how late a struck datagram is sent (default 300 ms).
    pub delay: Option<Span>,
    /// Mid-answer kinds: strike after this many frames of the answer (default 8).
    pub after_frames: Option<u32>,
    /// UDP downlink kinds: probability per datagram of a picked answer (default 0.1).
    pub per_datagram: Option<f64>,
}

impl FaultSettings {
    /// A table of `kind` with no other key (tests and code).
    pub fn of(kind: FaultKind) -> FaultSettings {
        FaultSettings {
            kind,
            p: None,
            turns: None,
            connections: None,
            status: None,
            body: None,
            delay: None,
            after_frames: None,
            per_datagram: None,
        }
    }

    /// Checks the table; errors are `(key, message)` relative to `fault[i]`.
    pub fn resolve(self) -> Result<Fault, (String, String)> {
        let kind = self.kind;
        self.check_keys()?;
        let indices = self
            .turns
            .map(|t| t.into_iter().map(u64::from).collect::<Vec<_>>())
            .or(self.connections);
        let pick = match (self.p, indices) {
            (Some(_), Some(_)) => {
                return Err(("p".into(), "give either `p` or a list of indices, not both".into()));
            }
            (Some(p), None) if (0.0..=1.0).contains(&p) => Pick::Probability(p),
            (Some(p), None) => return Err(("p".into(), format!("must be between 0 and 1; got {p}"))),
            (None, Some(i)) => Pick::Indices(i),
            (None, None) => {
                let list = if kind.per_connection() { "connections" } else { "turns" };
                return Err(("p".into(), format!("missing: give `p = 0.05` or `{list} = [..]`")));
            }
        };
        let status = self.status.unwrap_or(401);
        if !(400..=599).contains(&status) {
            return Err((
                "status".into(),
                format!("must be an HTTP error status (400–599); got {status}"),
            ));
        }
        let after_frames = self.after_frames.unwrap_or(AFTER_FRAMES);
        if after_frames == 0 {
            return Err(("after_frames".into(), "must be at least 1".into()));
        }
        let per_datagram = self.per_datagram.unwrap_or(PER_DATAGRAM);
        if !(0.0..=1.0).contains(&per_datagram) {
            return Err((
                "per_datagram".into(),
                format!("must be between 0 and 1; got {per_datagram}"),
            ));
        }
        let default_delay = if kind == FaultKind::UdpLate {
            UDP_LATE_DELAY
        } else {
            SLOW_HANDSHAKE_DELAY
        };
        Ok(Fault {
            kind,
            pick,
            body: self.body.unwrap_or_else(|| default_body(status)),
            status,
            delay: self.delay.map(|d| d.0).unwrap_or(default_delay),
            after_frames,
            per_datagram,
        })
    }

    /// Keys that belong to other kinds are errors naming the key.
    fn check_keys(&self) -> Result<(), (String, String)> {
        let kind = self.kind;
        let only = |present: bool, key: &str, which: &str| {
            if present {
                Err((
                    key.to_string(),
                    format!("applies only to {which}, not to `{}`", kind.name()),
                ))
            } else {
                Ok(())
            }
        };
        if kind != FaultKind::RejectUpgrade {
            only(self.status.is_some(), "status", "reject_upgrade")?;
            only(self.body.is_some(), "body", "reject_upgrade")?;
        }
        if !matches!(kind, FaultKind::SlowHandshake | FaultKind::UdpLate) {
            only(self.delay.is_some(), "delay", "slow_handshake and udp_late")?;
        }
        if !kind.mid_answer() {
            only(
                self.after_frames.is_some(),
                "after_frames",
                "stall_audio, close_mid_tts, early_tts_stop, bad_binary, bad_json and mqtt_disconnect",
            )?;
        }
        if !kind.per_datagram() {
            only(
                self.per_datagram.is_some(),
                "per_datagram",
                "udp_loss, udp_reorder, udp_duplicate and udp_late",
            )?;
        }
        if kind.per_connection() {
            only(self.turns.is_some(), "turns", "turn faults (use `connections`)")
        } else {
            only(
                self.connections.is_some(),
                "connections",
                "connection faults (use `turns`)",
            )
        }
    }
}

fn default_body(status: u16) -> String {
    match status {
        401 => "401 Unauthorized: token required".into(),
        403 => "403 Forbidden".into(),
        503 => "503 Service Unavailable: server busy".into(),
        s => format!("{s} mock rejection"),
    }
}
