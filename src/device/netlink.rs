//! The shell's side of the injected network conditions: a device
//! connection's [`DeviceLink`] over tungstenite messages. What the socket
//! yields is held (or lost) on its way to the core, which gets each
//! message at its release instant with the instant it reached the socket
//! ([`DeviceCore::handle_binary_from`]), so playback blames the network
//! for the time it was held; what the core sends is held on its way to
//! the socket. Over MQTT + UDP binary messages are datagrams (lossy,
//! unordered) and text rides the MQTT TCP connection; over a WebSocket
//! everything is one TCP stream.
//!
//! Only groups with conditions make one; a perfect link costs nothing.

use super::core::{DeviceCore, close_failure, error_failure};
use crate::metrics::Failure;
use crate::network::link::DeviceLink;
use crate::network::{Carrier, LinkConditions};
use futures_util::{Sink, SinkExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

/// What the link holds on the way in.
#[derive(Debug)]
pub(crate) enum Arrival {
    Message(Message),
    /// The connection closed or broke (after everything before it).
    Gone(Failure),
}

/// One connection's delay line.
#[derive(Debug)]
pub(crate) struct NetLink {
    line: DeviceLink<Arrival, Message>,
    /// What binary messages travel over.
    binary: Carrier,
    /// The core has seen this instant: nothing is handed to it earlier
    /// (a release that fell due while no pump ran comes at the next one).
    floor: Instant,
}

/// Hands one socket event to the core: `now` when it reached the core, `wire` when it reached the socket.
pub(crate) fn feed(core: &mut DeviceCore, now: Instant, wire: Instant, m: Option<Result<Message, tungstenite::Error>>) {
    match m {
        Some(Ok(Message::Text(t))) => core.handle_text(now, t.as_str()),
        Some(Ok(Message::Binary(b))) => core.handle_binary_from(now, wire, &b),
        Some(Ok(Message::Close(frame))) => core.handle_gone(now, close_failure(frame.as_ref())),
        // Pings are answered by tungstenite; pongs and raw frames need nothing.
        Some(Ok(_)) => {}
        Some(Err(e)) => core.handle_gone(now, error_failure(&e)),
        None => core.handle_gone(now, close_failure(None)),
    }
}

impl NetLink {
    /// A link under `cond` from `start`; `udp_audio`: binary messages are datagrams (MQTT + UDP).
    pub fn new(cond: &LinkConditions, seed: u64, start: Instant, udp_audio: bool) -> NetLink {
        NetLink {
            line: DeviceLink::new(cond, seed, start),
            binary: if udp_audio { Carrier::Udp } else { Carrier::Tcp },
            floor: start,
        }
    }

    fn carrier(&self, m: &Message) -> Carrier {
        match m {
            Message::Binary(_) => self.binary,
            _ => Carrier::Tcp,
        }
    }

    /// Whether the socket may still be read (not closed nor broken).
    pub fn reading(&self) -> bool {
        !self.line.read_closed
    }

    /// When the next held message is due either way.
    pub fn next_release(&self) -> Option<Instant> {
        self.line.next_release()
    }

    /// Datagrams the link lost (to the device, from it).
    pub fn lost(&self) -> (u32, u32) {
        (self.line.counts.lost_down, self.line.counts.lost_up)
    }

    /// A socket event at `now`: held on its way to the core.
    pub fn arrive(&mut self, now: Instant, m: Option<Result<Message, tungstenite::Error>>) {
        let m = match m {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => m,
            Some(Ok(Message::Close(frame))) => {
                return self.line.receive_end(now, Arrival::Gone(close_failure(frame.as_ref())));
            }
            Some(Ok(_)) => return,
            Some(Err(e)) => return self.line.receive_end(now, Arrival::Gone(error_failure(&e))),
            None => return self.line.receive_end(now, Arrival::Gone(close_failure(None))),
        };
        let carrier = self.carrier(&m);
        self.line.receive(now, carrier, m.len(), Arrival::Message(m));
    }

    /// A message the core sends at `now`: held on its way to the server
    /// (or lost, a datagram); [`NetLink::send_due`] writes it when due.
    pub fn depart(&mut self, now: Instant, m: Message) {
        let carrier = self.carrier(&m);
        self.line.send(now, carrier, m.len(), m);
    }

    /// Sends `m` from the core through the link: held, then written to
    /// `ws` with whatever else is due.
    pub async fn send<S>(&mut self, ws: &mut S, m: Message) -> Result<(), tungstenite::Error>
    where
        S: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let now = Instant::now();
        self.depart(now, m);
        self.send_due(ws, now, false).await
    }

    /// The core has been handed `at` (a pump starts, a timeout was handled).
    pub fn not_before(&mut self, at: Instant) {
        self.floor = self.floor.max(at);
    }

    /// Hands the core what is due by `now`, each at its release instant
    /// (or the last instant the core saw, if later).
    pub fn deliver_due(&mut self, core: &mut DeviceCore, now: Instant) {
        while let Some((release, wire, arrival)) = self.line.inbound.pop_due(now) {
            let release = release.max(self.floor);
            match arrival {
                Arrival::Message(m) => feed(core, release, wire, Some(Ok(m))),
                Arrival::Gone(f) => core.handle_gone(release, f),
            }
        }
    }

    /// Writes to `ws` what is due by `now` (everything when `all`: the device hangs up).
    pub async fn send_due<S>(&mut self, ws: &mut S, now: Instant, all: bool) -> Result<(), tungstenite::Error>
    where
        S: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let until = if all {
            self.line.outbound.last().unwrap_or(now).max(now)
        } else {
            now
        };
        while let Some((_, _, m)) = self.line.outbound.pop_due(until) {
            ws.send(m).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::profiles::profile;
    use bytes::Bytes;
    use std::time::Duration;

    /// Datagrams lost (down, up) after 500 messages each way of the kind `make` builds.
    fn lost_after(udp_audio: bool, make: impl Fn() -> Message) -> (u32, u32) {
        let t0 = Instant::now();
        let mut n = NetLink::new(&profile("edge-of-range").unwrap(), 3, t0, udp_audio);
        for i in 0..500u32 {
            let at = t0 + Duration::from_millis(60) * i;
            n.arrive(at, Some(Ok(make())));
            n.depart(at, make());
        }
        n.lost()
    }

    #[test]
    fn only_audio_over_mqtt_udp_is_lost_everything_else_is_delayed() {
        let audio = || Message::Binary(Bytes::from_static(&[0; 120]));
        let text = || Message::text("{\"type\":\"tts\",\"state\":\"sentence_start\"}");
        let (down, up) = lost_after(true, audio);
        // edge-of-range loses 8%: about 40 of 500 each way.
        assert!((20..70).contains(&down) && (20..70).contains(&up), "{down} {up}");
        assert_eq!(lost_after(true, text), (0, 0), "JSON rides the MQTT TCP connection");
        assert_eq!(lost_after(false, audio), (0, 0), "a WebSocket is one TCP stream");
    }

    #[test]
    fn a_closed_socket_is_read_no_more_and_its_end_follows_what_is_on_its_way() {
        let t0 = Instant::now();
        let mut n = NetLink::new(&profile("4g").unwrap(), 1, t0, false);
        n.arrive(t0, Some(Ok(Message::text("{}"))));
        assert!(n.reading());
        n.arrive(t0, None);
        assert!(!n.reading());
        let first = n.next_release().unwrap();
        assert!(first > t0, "held by the 4g latency");
    }
}
