//! A device's delay line, both ways, sans-IO: what the shell puts between
//! its socket and its core when the group has network conditions. A
//! message read from the socket (down) or produced by the core (up) goes
//! through its direction's [`Direction`] and waits in a [`Held`] queue
//! until its release instant; the shell sleeps until
//! [`DeviceLink::next_release`] (a paused tokio clock jumps there) and
//! takes what is due. Messages of one carrier leave in the order they
//! came: TCP by its own rules, UDP because a device's link is one FIFO
//! hop (a Wi-Fi or LTE queue; RLC and 802.11 deliver in order), so a
//! datagram delayed by jitter holds the ones behind it rather than being
//! overtaken. UDP datagrams may be lost (never queued).
//!
//! Over MQTT + UDP two carriers share the link: JSON over the MQTT TCP
//! connection, audio in UDP datagrams; each has its own directions (and
//! its own cap: the text is a few hundred bytes a turn). A WebSocket
//! carries everything over one TCP connection.
//!
//! Devices on a perfect link (`lan`) have no `DeviceLink` at all: the
//! shell hands socket messages straight to the core, as before.

use super::{Carrier, Direction, Fate, LinkConditions};
use std::collections::VecDeque;
use tokio::time::Instant;

/// Messages waiting for their release instant, in release order (equal
/// instants in arrival order).
#[derive(Debug)]
pub struct Held<T> {
    /// (release, sent, message).
    items: VecDeque<(Instant, Instant, T)>,
}

impl<T> Default for Held<T> {
    fn default() -> Self {
        Held { items: VecDeque::new() }
    }
}

impl<T> Held<T> {
    /// Holds `item`, sent at `sent`, until `release`.
    pub fn insert(&mut self, release: Instant, sent: Instant, item: T) {
        let at = self.items.partition_point(|(r, _, _)| *r <= release);
        self.items.insert(at, (release, sent, item));
    }

    /// The earliest release instant.
    pub fn next(&self) -> Option<Instant> {
        self.items.front().map(|i| i.0)
    }

    /// The latest release instant (what a message that must come after all of them waits for).
    pub fn last(&self) -> Option<Instant> {
        self.items.back().map(|i| i.0)
    }

    /// The next message due by `now`: (release, sent, message).
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Instant, T)> {
        if self.next()? <= now {
            self.items.pop_front()
        } else {
            None
        }
    }

    /// Everything still held, in release order.
    pub fn take_all(&mut self) -> impl Iterator<Item = (Instant, Instant, T)> + use<T> {
        std::mem::take(&mut self.items).into_iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// One direction per carrier.
#[derive(Debug)]
struct Way {
    tcp: Direction,
    udp: Direction,
    /// When the last datagram comes out (datagrams keep their order).
    udp_last: Option<Instant>,
}

impl Way {
    fn new(tcp: Direction, udp: Direction) -> Way {
        Way {
            tcp,
            udp,
            udp_last: None,
        }
    }

    /// When a message of `bytes` sent at `now` comes out, `None`: lost.
    fn send(&mut self, carrier: Carrier, now: Instant, bytes: usize) -> Option<Instant> {
        let dir = match carrier {
            Carrier::Tcp => &mut self.tcp,
            Carrier::Udp => &mut self.udp,
        };
        let Fate::Deliver { at, .. } = dir.send(now, bytes) else {
            return None;
        };
        if carrier == Carrier::Tcp {
            return Some(at);
        }
        let at = self.udp_last.map_or(at, |last| at.max(last));
        self.udp_last = Some(at);
        Some(at)
    }
}

/// Counts of what the link did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Datagrams to the device the link lost.
    pub lost_down: u32,
    /// Datagrams from the device the link lost.
    pub lost_up: u32,
}

/// The delay line of one device connection: `In` are messages read from
/// the socket on their way to the core, `Out` the core's on their way to
/// the socket.
#[derive(Debug)]
pub struct DeviceLink<In, Out> {
    down: Way,
    up: Way,
    /// Read from the socket, not yet handed to the core.
    pub inbound: Held<In>,
    /// From the core, not yet written to the socket.
    pub outbound: Held<Out>,
    pub counts: LinkCounts,
    /// The socket said it is closed or broken: read nothing more from it.
    pub read_closed: bool,
}

impl<In, Out> DeviceLink<In, Out> {
    /// A link under `cond` from `start`, its draws seeded by `seed` (each
    /// direction and carrier from its own stream).
    pub fn new(cond: &LinkConditions, seed: u64, start: Instant) -> Self {
        let dir = |c: &super::Conditions, carrier, k: u64| {
            Direction::new(
                c.clone(),
                carrier,
                seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                start,
            )
        };
        DeviceLink {
            down: Way::new(dir(&cond.down, Carrier::Tcp, 1), dir(&cond.down, Carrier::Udp, 2)),
            up: Way::new(dir(&cond.up, Carrier::Tcp, 3), dir(&cond.up, Carrier::Udp, 4)),
            inbound: Held::default(),
            outbound: Held::default(),
            counts: LinkCounts::default(),
            read_closed: false,
        }
    }

    /// A message of `bytes` read from the socket at `now` over `carrier`:
    /// held until the core may have it; false when the link lost it.
    pub fn receive(&mut self, now: Instant, carrier: Carrier, bytes: usize, item: In) -> bool {
        match self.down.send(carrier, now, bytes) {
            Some(at) => {
                self.inbound.insert(at, now, item);
                true
            }
            None => {
                self.counts.lost_down += 1;
                false
            }
        }
    }

    /// The connection ended at `now` (`item` says how): handed to the core
    /// after everything already on its way, and nothing more is read.
    pub fn receive_end(&mut self, now: Instant, item: In) {
        let at = self.inbound.last().map_or(now, |l| l.max(now));
        self.inbound.insert(at, now, item);
        self.read_closed = true;
    }

    /// A message of `bytes` the core sends at `now` over `carrier`: held
    /// until it reaches the server; false when the link lost it.
    pub fn send(&mut self, now: Instant, carrier: Carrier, bytes: usize, item: Out) -> bool {
        match self.up.send(carrier, now, bytes) {
            Some(at) => {
                self.outbound.insert(at, now, item);
                true
            }
            None => {
                self.counts.lost_up += 1;
                false
            }
        }
    }

    /// When the next held message is due either way.
    pub fn next_release(&self) -> Option<Instant> {
        match (self.inbound.next(), self.outbound.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::profiles::profile;
    use std::time::Duration;

    const FRAME: Duration = Duration::from_millis(60);

    #[test]
    fn held_messages_come_out_in_release_order_when_due() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut h = Held::default();
        h.insert(ms(30), t0, "b");
        h.insert(ms(10), t0, "a");
        h.insert(ms(30), ms(1), "c");
        assert_eq!(h.next(), Some(ms(10)));
        assert_eq!(h.last(), Some(ms(30)));
        assert_eq!(h.pop_due(ms(9)), None);
        assert_eq!(h.pop_due(ms(30)), Some((ms(10), t0, "a")));
        assert_eq!(h.pop_due(ms(30)), Some((ms(30), t0, "b")));
        assert_eq!(h.pop_due(ms(30)), Some((ms(30), ms(1), "c")));
        assert!(h.is_empty());
    }

    /// Feeds `n` frames 60 ms apart down the link; returns the order they come out in and when.
    fn down(carrier: Carrier, n: u32, seed: u64) -> (Vec<(u32, Instant, Instant)>, LinkCounts) {
        let t0 = Instant::now();
        let mut link: DeviceLink<u32, ()> = DeviceLink::new(&profile("wifi-poor").unwrap(), seed, t0);
        let mut out = Vec::new();
        for i in 0..n {
            let now = t0 + FRAME * i;
            while let Some((release, sent, k)) = link.inbound.pop_due(now) {
                out.push((k, release, sent));
            }
            link.receive(now, carrier, 200, i);
        }
        out.extend(link.inbound.take_all().map(|(r, s, k)| (k, r, s)));
        (out, link.counts)
    }

    #[test]
    fn over_tcp_every_frame_comes_out_in_order_no_earlier_than_sent() {
        let (out, counts) = down(Carrier::Tcp, 2_000, 5);
        assert_eq!(out.len(), 2_000);
        assert_eq!(counts, LinkCounts::default());
        assert!(out.iter().enumerate().all(|(i, o)| o.0 == i as u32 && o.1 >= o.2));
        assert!(out.windows(2).all(|w| w[0].1 <= w[1].1));
        // Some frames were held past the next one's sending (late enough to stutter).
        assert!(out.iter().any(|o| o.1 - o.2 > FRAME));
    }

    #[test]
    fn over_udp_lost_datagrams_are_counted_and_the_rest_keep_their_order() {
        let (out, counts) = down(Carrier::Udp, 2_000, 5);
        assert_eq!(out.len() as u32 + counts.lost_down, 2_000);
        // About wifi-poor's 2%.
        assert!((20..60).contains(&counts.lost_down), "{counts:?}");
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "overtaken");
        // Jitter held some past the next one's sending: it waited, not overtaken.
        assert!(out.iter().any(|o| o.1 - o.2 > FRAME));
        // Same seed, same run (as offsets from each run's start).
        let offsets =
            |o: &[(u32, Instant, Instant)]| -> Vec<(u32, Duration)> { o.iter().map(|x| (x.0, x.1 - x.2)).collect() };
        assert!(
            offsets(&down(Carrier::Udp, 2_000, 5).0) == offsets(&out),
            "same seed, another run"
        );
    }

    #[test]
    fn the_end_of_a_connection_comes_after_everything_on_its_way() {
        let t0 = Instant::now();
        let mut link: DeviceLink<&str, ()> = DeviceLink::new(&profile("4g").unwrap(), 1, t0);
        link.receive(t0, Carrier::Tcp, 200, "frame");
        link.receive_end(t0, "closed");
        assert!(link.read_closed);
        let order: Vec<&str> = link.inbound.take_all().map(|i| i.2).collect();
        assert_eq!(order, ["frame", "closed"]);
    }

    #[test]
    fn the_next_release_is_the_earlier_of_both_ways() {
        let t0 = Instant::now();
        let mut link: DeviceLink<(), ()> = DeviceLink::new(&profile("4g").unwrap(), 1, t0);
        assert_eq!(link.next_release(), None);
        link.send(t0, Carrier::Tcp, 100, ());
        let up = link.outbound.next().unwrap();
        assert_eq!(link.next_release(), Some(up));
        link.receive(t0 + Duration::from_secs(1), Carrier::Tcp, 100, ());
        assert_eq!(link.next_release(), Some(up));
        assert!(up >= t0 + profile("4g").unwrap().up.base);
    }
}
