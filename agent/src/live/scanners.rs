//! MQTT inputs on the store's local broker: BLE scanner nodes (ESPresense, Theengs /
//! OpenMQTTGateway, `mqtt_room`), door counters and pushed POS transactions.
//!
//! One client subscribes to:
//! * each `[[sources.scanner_mqtt]]` topic filter, and the nodes' status topics derived from it
//!   ([`status_filter`]: ESPresense `…/rooms/+/status`, Theengs `…/<gateway>/LWT`);
//! * [`DOOR_TOPIC`] (`storefront/local/door/#`): door-counter JSON, one record or a batch;
//! * [`POS_TOPIC`] (`storefront/local/pos/#`): pushed transactions, one object (or a page).
//!
//! [`MqttInputs::handle`] turns one message into events and counts it in [`LiveHealth`]:
//! accepted, or rejected with its [`InputRejection`](storefront_inputs::InputRejection) reason.
//! A scanner reading's raw identity (a MAC address or alias) is pseudonymised in that function
//! and goes no further: not into a log line, a channel, or the health counters. Rejections are
//! logged by reason and field only; topics of scanner messages (they carry MACs) are never
//! logged.
//!
//! The client speaks MQTT v5 to announce a maximum packet size: an oversized message (even a
//! retained one) is dropped by the broker, not sent to end the connection on every reconnect.
//!
//! Scanner subscriptions use QoS 0 (a lost RSSI sample is harmless; a busy store sends
//! thousands a second), door and POS QoS 1.
//!
//! Architecture invariant: `eventloop.poll()` is only ever cancelled by shutdown. A select
//! branch that fires while the client is connecting would cancel the handshake and start it
//! over, forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use storefront_config::{ScannerFormat, ScannerMqttSource};
use storefront_inputs::{InputError, ScannerMessage, parse_scanner};
use storefront_protocol::privacy::Pseudonymizer;
use storefront_protocol::{DeviceId, Event, Sighting, Timestamp};
use tokio::sync::{mpsc, watch};

use super::health::{Input, LiveHealth};
use super::{KnownSources, door_records, pushed_transactions};
use crate::clock::SharedClock;
use crate::daemon::source::SourceMessage;

/// Door counters publish here (one record or a JSON array; see `storefront_inputs::door`).
pub const DOOR_TOPIC: &str = "storefront/local/door/#";
/// POS systems push transactions here (see `storefront_inputs::pos`).
pub const POS_TOPIC: &str = "storefront/local/pos/#";
/// Largest MQTT packet this client takes, announced to the broker as the MQTT v5 Maximum Packet
/// Size: the broker drops bigger messages for this client (mosquitto logs each). Payloads
/// between the parsers' 64 KiB and this still arrive, and are counted as `oversized`.
const MAX_INCOMING_PACKET: u32 = 256 * 1024;
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// A connection up this long was a good one: the next failure starts the backoff over.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
const UNREACHABLE_LOG_EVERY: Duration = Duration::from_secs(60);

/// The status topic filter of nodes publishing readings on `topic`, when the format has one and
/// the filter has the documented shape.
pub fn status_filter(format: ScannerFormat, topic: &str) -> Option<String> {
    match format {
        ScannerFormat::Espresense => {
            let prefix = ["/devices/#", "/devices/+/+"]
                .iter()
                .find_map(|suffix| topic.strip_suffix(suffix))?;
            Some(format!("{prefix}/rooms/+/status"))
        }
        ScannerFormat::Theengs => {
            let prefix = ["/BTtoMQTT/#", "/BTtoMQTT/+", "/BTtoMQTT"]
                .iter()
                .find_map(|suffix| topic.strip_suffix(suffix))?;
            Some(format!("{prefix}/LWT"))
        }
        ScannerFormat::MqttRoom => None,
    }
}

struct ScannerRoute {
    source: ScannerMqttSource,
    status: Option<String>,
}

/// Routes, parses, pseudonymises and counts MQTT input messages. Pure but for the counters.
pub struct MqttInputs {
    scanners: Vec<ScannerRoute>,
    known: KnownSources,
    door_topic: String,
    pos_topic: String,
    pseudonymizer: watch::Receiver<Pseudonymizer>,
    health: Arc<LiveHealth>,
}

impl MqttInputs {
    /// Routes for `sources`; readings, statuses and door records are taken only from the
    /// scanners and sensors `known` names.
    pub fn new(
        sources: &[ScannerMqttSource],
        known: KnownSources,
        pseudonymizer: watch::Receiver<Pseudonymizer>,
        health: Arc<LiveHealth>,
    ) -> MqttInputs {
        MqttInputs {
            scanners: sources
                .iter()
                .map(|source| ScannerRoute {
                    status: status_filter(source.format, &source.topic),
                    source: source.clone(),
                })
                .collect(),
            known,
            door_topic: DOOR_TOPIC.to_owned(),
            pos_topic: POS_TOPIC.to_owned(),
            pseudonymizer,
            health,
        }
    }

    /// Every topic filter to subscribe to, with its QoS.
    pub fn filters(&self) -> Vec<(String, QoS)> {
        let mut filters = Vec::new();
        for route in &self.scanners {
            filters.push((route.source.topic.clone(), QoS::AtMostOnce));
            if let Some(status) = &route.status {
                filters.push((status.clone(), QoS::AtLeastOnce));
            }
        }
        filters.push((self.door_topic.clone(), QoS::AtLeastOnce));
        filters.push((self.pos_topic.clone(), QoS::AtLeastOnce));
        filters.dedup();
        filters
    }

    /// Handles one message received at `now_ms` (the live clock, epoch milliseconds): the events it
    /// gives are appended to `events`; it is counted as accepted or rejected either way.
    pub fn handle(&self, topic: &str, payload: &[u8], now_ms: i64, events: &mut Vec<Event>) {
        let now = Timestamp(now_ms);
        if rumqttc::matches(topic, &self.door_topic) {
            match door_records(payload, now_ms, &self.known, &self.health) {
                Ok(records) => {
                    self.health.accepted(Input::DoorMqtt, records.len());
                    events.extend(records.into_iter().map(Event::Door));
                }
                Err(error) => self.health.rejected(Input::DoorMqtt, &error),
            }
            return;
        }
        if rumqttc::matches(topic, &self.pos_topic) {
            match pushed_transactions(payload, now_ms) {
                Ok(transactions) => {
                    self.health.accepted(Input::PosMqtt, transactions.len());
                    events.extend(transactions.into_iter().map(Event::Transaction));
                }
                Err(error) => self.health.rejected(Input::PosMqtt, &error),
            }
            return;
        }
        let route = self.scanners.iter().find(|route| {
            rumqttc::matches(topic, &route.source.topic)
                || route
                    .status
                    .as_deref()
                    .is_some_and(|status| rumqttc::matches(topic, status))
        });
        let Some(route) = route else {
            self.health.rejected(
                Input::ScannerMqtt,
                &InputError::UnknownTopic {
                    expected: "a configured scanner, door or POS topic",
                },
            );
            return;
        };
        let message = parse_scanner(route.source.format, topic, payload).and_then(|message| {
            let node = match &message {
                ScannerMessage::Reading(reading) => &reading.node,
                ScannerMessage::NodeStatus { node, .. } => node,
            };
            let scanner = route.source.scanner_id(node);
            if self.known.scanner(scanner) {
                Ok((scanner.to_owned(), message))
            } else {
                Err(InputError::UnknownSource { what: "scanner" })
            }
        });
        match message {
            Ok((scanner, ScannerMessage::Reading(reading))) => {
                let device = pseudonym(&self.pseudonymizer.borrow(), &reading.identity);
                // `reading.identity` is dropped with `reading` at the end of this arm.
                self.health.node_reading(&scanner, now_ms);
                self.health.accepted(Input::ScannerMqtt, 1);
                events.push(Event::Sighting(Sighting {
                    t: now,
                    scanner,
                    device,
                    rssi: reading.rssi,
                    tx_power: reading.tx_power,
                    addr: reading.address_kind,
                }));
            }
            Ok((scanner, ScannerMessage::NodeStatus { online, .. })) => {
                self.health.node_status(&scanner, online, now_ms);
                self.health.accepted(Input::ScannerMqtt, 0);
            }
            Err(error) => self.health.rejected(Input::ScannerMqtt, &error),
        }
    }
}

/// The pseudonym of a scanner node's device id. A MAC address (the parser writes them
/// `aa:bb:cc:dd:ee:ff`) is hashed as its 6 bytes, as the local BLE scanner hashes addresses, so
/// one device heard by both gets one pseudonym; other ids are hashed as their UTF-8 bytes.
pub fn pseudonym(pseudonymizer: &Pseudonymizer, identity: &str) -> DeviceId {
    match canonical_mac(identity) {
        Some(mac) => pseudonymizer.pseudonym(&mac),
        None => pseudonymizer.pseudonym(identity.as_bytes()),
    }
}

fn canonical_mac(s: &str) -> Option<[u8; 6]> {
    let bytes = s.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, octet) in mac.iter_mut().enumerate() {
        let at = i * 3;
        if i < 5 && bytes[at + 2] != b':' {
            return None;
        }
        let high = char::from(bytes[at]).to_digit(16)?;
        let low = char::from(bytes[at + 1]).to_digit(16)?;
        *octet = (high * 16 + low) as u8;
    }
    Some(mac)
}

/// Where and as whom the MQTT input client connects.
#[derive(Clone)]
pub struct MqttConnection {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub credentials: Option<(String, String)>,
    pub tls: Option<rumqttc::TlsConfiguration>,
    pub keep_alive: Duration,
}

/// The reconnect delay. It doubles with every failure and starts over only after a connection
/// that lasted: one the broker ends right after its ConnAck (a packet this client refuses, a
/// duplicate client id) must not reconnect in a tight loop.
#[derive(Debug)]
struct Reconnect {
    delay: Duration,
    connected_at: Option<Instant>,
}

impl Reconnect {
    fn new() -> Reconnect {
        Reconnect {
            delay: RECONNECT_MIN,
            connected_at: None,
        }
    }

    fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The delay before the next attempt, after a failure at `now`.
    fn failed(&mut self, now: Instant) -> Duration {
        if self
            .connected_at
            .take()
            .is_some_and(|since| now.duration_since(since) >= STABLE_CONNECTION)
        {
            self.delay = RECONNECT_MIN;
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(RECONNECT_MAX);
        delay
    }
}

fn qos(qos: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// Runs the MQTT inputs until `shutdown` (or until the core is gone). Connection failures are
/// logged (the first, then once a minute) and retried with backoff; it never returns early.
pub async fn run_mqtt(
    connection: MqttConnection,
    inputs: MqttInputs,
    clock: SharedClock,
    out: mpsc::Sender<SourceMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{AsyncClient, Event as MqttEvent, MqttOptions};

    let health = inputs.health.clone();
    let mut options = MqttOptions::new(&connection.client_id, &connection.host, connection.port);
    options.set_keep_alive(connection.keep_alive);
    options.set_clean_start(true);
    // Announced in CONNECT: the broker drops bigger messages for this client instead of
    // sending what would end the connection (and, retained, end it again on every reconnect).
    options.set_max_packet_size(Some(MAX_INCOMING_PACKET));
    if let Some((user, password)) = &connection.credentials {
        options.set_credentials(user, password);
    }
    if let Some(tls) = connection.tls.clone() {
        options.set_transport(rumqttc::Transport::tls_with_config(tls));
    }
    let filters = inputs.filters();
    let (client, mut eventloop) = AsyncClient::new(options, filters.len() + 16);
    let mut reconnect = Reconnect::new();
    let mut unreachable_since: Option<Instant> = None;
    let mut last_log = Instant::now();
    let mut events = Vec::new();
    loop {
        // Only shutdown may cancel `poll` (see the module docs).
        let event = tokio::select! {
            event = eventloop.poll() => event,
            _ = shutdown.changed() => break,
        };
        match event {
            Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                // MQTT topics are UTF-8; a broker that sends anything else sends nothing usable.
                let topic = std::str::from_utf8(&publish.topic).unwrap_or("");
                inputs.handle(topic, &publish.payload, clock.now_ms(), &mut events);
                for event in events.drain(..) {
                    let sent = tokio::select! {
                        sent = out.send(SourceMessage::Event(event, None)) => sent.is_ok(),
                        _ = shutdown.changed() => return,
                    };
                    if !sent {
                        health.undelivered(1);
                        tracing::info!("The core has stopped: MQTT inputs stop");
                        return;
                    }
                }
            }
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                reconnect.connected(Instant::now());
                health.mqtt_connected(true);
                match unreachable_since.take() {
                    Some(since) => tracing::info!(
                        down_seconds = since.elapsed().as_secs(),
                        "Local broker reachable again"
                    ),
                    None => {
                        tracing::info!(host = %connection.host, port = connection.port, subscriptions = filters.len(), "MQTT inputs connected")
                    }
                }
                // Every connect: a broker restarted without persistence forgot the session.
                for (filter, level) in &filters {
                    if let Err(error) = client.try_subscribe(filter, qos(*level)) {
                        tracing::error!(%error, filter, "Cannot subscribe");
                    }
                }
            }
            Ok(_) => {}
            Err(error) => {
                health.mqtt_connection_error();
                let now = Instant::now();
                let delay = reconnect.failed(now);
                match unreachable_since {
                    None => {
                        unreachable_since = Some(now);
                        last_log = now;
                        tracing::warn!(%error, host = %connection.host, port = connection.port, "Local broker unreachable: MQTT inputs retry with backoff");
                    }
                    Some(since) if now.duration_since(last_log) >= UNREACHABLE_LOG_EVERY => {
                        last_log = now;
                        tracing::warn!(%error, down_seconds = now.duration_since(since).as_secs(), "Local broker still unreachable");
                    }
                    Some(_) => tracing::debug!(%error, ?delay, "Local broker unreachable"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    health.mqtt_connected(false);
    let _ = client.try_disconnect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_topics_follow_the_configured_prefix() {
        assert_eq!(
            status_filter(ScannerFormat::Espresense, "espresense/devices/#").as_deref(),
            Some("espresense/rooms/+/status")
        );
        assert_eq!(
            status_filter(ScannerFormat::Theengs, "home/+/BTtoMQTT/#").as_deref(),
            Some("home/+/LWT")
        );
        assert_eq!(
            status_filter(ScannerFormat::Theengs, "store1/gw-entrance/BTtoMQTT/#").as_deref(),
            Some("store1/gw-entrance/LWT")
        );
        assert_eq!(
            status_filter(ScannerFormat::MqttRoom, "room_presence/#"),
            None
        );
    }

    #[test]
    fn a_mac_is_hashed_as_its_six_bytes() {
        let p = Pseudonymizer::new(&[3; 32]);
        assert_eq!(
            pseudonym(&p, "aa:bb:cc:dd:ee:ff"),
            p.pseudonym(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        assert_eq!(
            pseudonym(&p, "watch:darrell"),
            p.pseudonym(b"watch:darrell")
        );
    }

    #[test]
    fn a_connection_dropped_right_after_its_connack_does_not_reset_the_backoff() {
        let mut reconnect = Reconnect::new();
        let start = Instant::now();
        let mut delays = Vec::new();
        for i in 0..8 {
            let now = start + Duration::from_secs(i);
            reconnect.connected(now);
            delays.push(reconnect.failed(now + Duration::from_millis(5)));
        }
        assert!(delays.windows(2).all(|d| d[1] >= d[0]), "{delays:?}");
        assert_eq!(*delays.last().unwrap(), RECONNECT_MAX);
        // A connection that lasted starts the backoff over.
        reconnect.connected(start);
        assert_eq!(reconnect.failed(start + STABLE_CONNECTION), RECONNECT_MIN);
    }
}
