//! How a device opens its socket for a conversation: the route (run URL,
//! OTA WebSocket, OTA MQTT), then a WebSocket (DNS, TCP, TLS, upgrade) or a
//! conversation on the device's lifelong MQTT link, which it keeps between
//! conversations; and the connection's delay line when the group has
//! network conditions.

use super::Device;
use crate::device::connect::{self, Dial};
use crate::device::core::Transport;
use crate::device::mqtt::{self, MqttTarget};
use crate::device::mqtt_session::MqttSession;
use crate::device::netlink::NetLink;
use crate::device::route::{self, Route};
use crate::device::socket::Socket;
use crate::metrics::{Failure, FailureKind};
use std::time::Duration;

impl Device {
    /// Opens the socket the route names: a WebSocket (DNS, TCP, TLS,
    /// upgrade), or a conversation on the MQTT link (connected first if
    /// there is none). The time it took, when something was connected.
    pub(super) async fn open(&mut self) -> Result<(Socket, Option<Duration>), Failure> {
        let settings = &self.ctx.settings;
        let picked = route::pick(
            self.endpoint.as_ref(),
            self.ctx.group.plan.transport,
            &settings.url,
            settings.protocol_version,
            &self.ctx.identity.device_id,
        )?;
        let (url, version) = match picked {
            Route::Mqtt(target) => return self.open_mqtt(&target).await,
            Route::WebSocket { url, version } => (url, version),
        };
        let dial = Dial {
            url,
            version,
            identity: &self.ctx.identity,
            index: self.ctx.index,
        };
        // Boxed: the connect future (DNS, TCP, TLS, upgrade) is ~10 KiB and
        // needed once; inline, every idle device's task would carry it.
        let opened = tokio::select! {
            r = Box::pin(connect::open(settings, dial)) => r,
            _ = self.ctx.cancel.cancelled() => return Err(Failure::new(FailureKind::Connect, "cancelled")),
        };
        let opened = opened.inspect_err(|f| {
            tracing::debug!(device = %self.ctx.identity.device_id, kind = f.kind.as_str(), detail = %f.detail, "connect failed");
        })?;
        Ok((opened.ws, Some(opened.connect)))
    }

    /// A conversation over MQTT + UDP on this device's MQTT link.
    async fn open_mqtt(&mut self, target: &MqttTarget) -> Result<(Socket, Option<Duration>), Failure> {
        self.core.set_transport(Transport::Udp);
        if let Some(link) = self.mqtt.take().filter(|l| l.is_alive()) {
            return Ok((Socket::Mqtt(Box::new(MqttSession::new(*link))), None));
        }
        let limit = self.ctx.settings.timeouts.hello;
        let connected = tokio::select! {
            r = Box::pin(mqtt::connect(target, limit)) => r,
            _ = self.ctx.cancel.cancelled() => return Err(Failure::new(FailureKind::Connect, "cancelled")),
        };
        let (link, took) = connected.inspect_err(|f| {
            tracing::debug!(device = %self.ctx.identity.device_id, detail = %f.detail, "MQTT connect failed");
        })?;
        Ok((Socket::Mqtt(Box::new(MqttSession::new(link))), Some(took)))
    }

    /// The delay line of a new connection when the group has network
    /// conditions, seeded by the fleet's seed, this device and the
    /// connection's number.
    pub(super) fn link_for(&mut self, ws: &Socket) -> Option<Box<NetLink>> {
        let cond = self.ctx.group.plan.network.as_ref()?;
        let seed = crate::network::profiles::device_seed(self.ctx.settings.seed, self.ctx.index, self.connections);
        self.connections += 1;
        let udp_audio = matches!(ws, Socket::Mqtt(_));
        Some(Box::new(NetLink::new(
            cond,
            seed,
            tokio::time::Instant::now(),
            udp_audio,
        )))
    }

    /// Keeps the MQTT link of a finished conversation (if still connected).
    pub(super) fn park(&mut self, ws: Socket) {
        if let Some(net) = self.net.take() {
            let (down, up) = net.lost();
            tracing::debug!(device = %self.ctx.identity.device_id, down, up, "datagrams the injected network lost");
        }
        if let Socket::Mqtt(session) = ws {
            self.mqtt = session.into_link().map(Box::new);
        }
    }
}
