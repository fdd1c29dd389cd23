//! The sync task: publishes the outbox to HQ over MQTT and removes entries only when HQ acks
//! them at the application level. At-least-once on the wire; HQ's upsert by idempotency key
//! makes it exactly-once in HQ's tables.
//!
//! Protocol state (what is in flight, what to send next) lives in [`Inflight`]; the task around
//! it only moves bytes (rumqttc's split of `MqttState` and `EventLoop`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use anyhow::Result;
use rumqttc::{AsyncClient, Event as MqttEvent, LastWill, MqttOptions, Packet, QoS};
use storefront_protocol::Ack;
use storefront_protocol::topic::{StoreTopic, store_topic};
use storefront_storage::Store;
use tokio::sync::watch;
use tokio::time::Instant;

/// First and longest wait between reconnection attempts: an outage of hours costs one cheap
/// attempt every few seconds, and the backlog starts draining within seconds of the uplink.
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// How often a continuing outage is logged again.
const UNREACHABLE_LOG_EVERY: Duration = Duration::from_secs(300);
/// Publishing is paced in ticks of this length.
const PACE_TICK: Duration = Duration::from_millis(50);

/// What is published and not yet acked, by sequence number, with when it was last sent
/// (`None`: sent before the last reconnect, so due again now).
///
/// It is also the ack filter: an ack can only remove what this connection published and is
/// waiting on. Any client that can write the ack topic could otherwise delete summaries that
/// were never sent (the broker's ACL must still keep the topic HQ's alone: an ack forged for a
/// message in flight is indistinguishable from HQ's).
#[derive(Debug, Default)]
pub struct Inflight {
    sent: BTreeMap<u64, Option<Instant>>,
}

impl Inflight {
    /// After a (re)connect the broker may have lost everything: everything is due again. What
    /// was published stays awaiting its ack: HQ may still ack a copy it received before.
    pub fn forget(&mut self) {
        self.sent.values_mut().for_each(|sent| *sent = None);
    }

    /// Takes an ack: returns the sequence numbers it names that were published and awaiting
    /// their ack (only those may leave the outbox); the rest are not ours to remove.
    pub fn acked(&mut self, seqs: &[u64]) -> Vec<u64> {
        seqs.iter()
            .copied()
            .filter(|seq| self.sent.remove(seq).is_some())
            .collect()
    }

    /// Whether `seq` should be (re)sent now: never sent, sent before a reconnect, or sent
    /// longer ago than `ack_timeout`.
    pub fn due(&self, seq: u64, now: Instant, ack_timeout: Duration) -> bool {
        match self.sent.get(&seq) {
            None | Some(None) => true,
            Some(Some(sent)) => now.duration_since(*sent) >= ack_timeout,
        }
    }

    pub fn sent(&mut self, seq: u64, now: Instant) {
        self.sent.insert(seq, Some(now));
    }

    /// Messages sent on this connection and not yet acked (what counts against
    /// `max_inflight`).
    pub fn in_flight(&self) -> usize {
        self.sent.values().filter(|sent| sent.is_some()).count()
    }
}

/// Where and how to sync.
#[derive(Clone)]
pub struct SyncOptions {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub org: String,
    pub store_id: String,
    pub credentials: Option<(String, String)>,
    /// `mqtts://`: how to speak TLS to the broker.
    pub tls: Option<rumqttc::TlsConfiguration>,
    pub keep_alive: Duration,
    /// Publishes per second while draining a backlog.
    pub publish_per_second: u32,
    /// Unacked messages at most in flight.
    pub max_inflight: usize,
    /// Re-send a message not acked within this.
    pub ack_timeout: Duration,
}

/// Live sync figures, for logs, tests and the demo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub connected: bool,
    /// When HQ last acknowledged something (wall clock).
    pub last_ack: Option<storefront_protocol::Timestamp>,
    pub published: u64,
    pub acked: u64,
    /// Sequence numbers in acks that named nothing this agent was waiting on (forged, or
    /// duplicated by the broker): ignored.
    pub acks_ignored: u64,
    pub outbox_len: u64,
}

pub async fn run(
    options: SyncOptions,
    store: Arc<Store>,
    status: watch::Sender<SyncStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let summary_topic = store_topic(&options.org, &options.store_id, StoreTopic::Summary)?;
    let ack_topic = store_topic(&options.org, &options.store_id, StoreTopic::Ack)?;
    let status_topic = store_topic(&options.org, &options.store_id, StoreTopic::Status)?;
    let mut mqtt = MqttOptions::new(&options.client_id, &options.host, options.port);
    mqtt.set_keep_alive(options.keep_alive);
    mqtt.set_max_packet_size(
        storefront_protocol::MAX_MESSAGE_BYTES + 1024,
        storefront_protocol::MAX_MESSAGE_BYTES + 1024,
    );
    mqtt.set_last_will(LastWill::new(
        &status_topic,
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some((user, password)) = &options.credentials {
        mqtt.set_credentials(user, password);
    }
    if let Some(tls) = options.tls.clone() {
        mqtt.set_transport(rumqttc::Transport::tls_with_config(tls));
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, 256);
    let mut inflight = Inflight::default();
    let mut connected = false;
    let mut backoff = RECONNECT_MIN;
    let mut unreachable_since: Option<Instant> = None;
    let mut last_unreachable_log = Instant::now();
    // A token bucket refilled every tick: `publish_per_second` on average, in small bursts.
    let mut pace = tokio::time::interval(PACE_TICK);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let per_tick = f64::from(options.publish_per_second.max(1)) * PACE_TICK.as_secs_f64();
    let mut tokens = 0.0f64;
    let mut current = SyncStatus {
        outbox_len: store.outbox_len(),
        ..SyncStatus::default()
    };
    status.send_replace(current.clone());
    // Only the event loop, the pace tick (which waits while disconnected) and shutdown wake this
    // loop: a branch that fires while a connection is being set up would cancel the TLS
    // handshake in `poll` and start it over.
    loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    backoff = RECONNECT_MIN;
                    if let Some(since) = unreachable_since.take() {
                        tracing::info!(down_seconds = since.elapsed().as_secs(), "Broker reachable again");
                    }
                    inflight.forget();
                    // Subscribing again on every connect: a broker restarted without
                    // persistence has forgotten the session.
                    client.try_subscribe(&ack_topic, QoS::AtLeastOnce)?;
                    client.try_publish(&status_topic, QoS::AtLeastOnce, true, "online")?;
                    tracing::info!(host = %options.host, port = options.port, outbox = store.outbox_len(), "Connected to broker");
                }
                Ok(MqttEvent::Incoming(Packet::Publish(publish))) if publish.topic == ack_topic => {
                    match serde_json::from_slice::<Ack>(&publish.payload) {
                        Ok(ack) if ack.store_id == options.store_id => {
                            let awaited = inflight.acked(&ack.seqs);
                            let ignored = ack.seqs.len() - awaited.len();
                            if ignored > 0 {
                                if current.acks_ignored == 0 {
                                    tracing::warn!(ignored, "Ignoring acks for summaries not awaiting one (forged or duplicated); counted in storefront_sync_acks_ignored_total");
                                }
                                current.acks_ignored += ignored as u64;
                            }
                            if !awaited.is_empty() {
                                let removed = tokio::task::block_in_place(|| store.ack(&awaited))?;
                                current.acked += removed as u64;
                                current.last_ack = crate::clock::SystemClock.sane_now();
                            }
                        }
                        Ok(ack) => tracing::warn!(store = %ack.store_id, "Ignoring an ack for another store"),
                        Err(error) => tracing::warn!(%error, "Ignoring a malformed ack"),
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let now = Instant::now();
                    match unreachable_since {
                        None => {
                            unreachable_since = Some(now);
                            last_unreachable_log = now;
                            tracing::warn!(%error, outbox = store.outbox_len(), "Broker unreachable; retrying with backoff");
                        }
                        Some(since) if now.duration_since(last_unreachable_log) >= UNREACHABLE_LOG_EVERY => {
                            last_unreachable_log = now;
                            tracing::warn!(%error, down_seconds = now.duration_since(since).as_secs(), outbox = store.outbox_len(), "Broker still unreachable");
                        }
                        Some(_) => tracing::debug!(%error, ?backoff, "Broker unreachable"),
                    }
                    connected = false;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => break,
                    }
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                }
            },
            _ = pace.tick(), if connected => {
                let now = Instant::now();
                tokens = (tokens + per_tick).min(per_tick.max(1.0) * 2.0);
                let room = options.max_inflight.saturating_sub(inflight.in_flight());
                if tokens >= 1.0 && room > 0 && store.outbox_len() > 0 {
                    // The oldest due entries, in sequence order, as many as the bucket allows.
                    let mut entries = tokio::task::block_in_place(|| store.outbox(None, options.max_inflight))?;
                    entries.retain(|m| inflight.due(m.seq, now, options.ack_timeout));
                    for message in entries.into_iter().take(room) {
                        if tokens < 1.0 || client.try_publish(&summary_topic, QoS::AtLeastOnce, false, message.encode()).is_err() {
                            break;
                        }
                        tokens -= 1.0;
                        inflight.sent(message.seq, now);
                        current.published += 1;
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
        current.connected = connected;
        current.outbox_len = store.outbox_len();
        status.send_if_modified(|s| {
            let changed = *s != current;
            *s = current.clone();
            changed
        });
    }
    if connected {
        // A clean stop does not fire the last will: say it ourselves.
        let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, "offline");
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
    }
    tracing::info!(outbox = store.outbox_len(), "Sync stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_due_until_sent_and_again_after_the_ack_timeout() {
        let mut inflight = Inflight::default();
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        assert!(inflight.due(1, t0, timeout));
        inflight.sent(1, t0);
        assert!(!inflight.due(1, t0 + Duration::from_secs(29), timeout));
        assert!(inflight.due(1, t0 + Duration::from_secs(30), timeout));
        assert_eq!(inflight.acked(&[1]), vec![1]);
        assert_eq!(inflight.in_flight(), 0);
    }

    #[test]
    fn a_reconnect_makes_everything_due_again_and_still_awaiting_its_ack() {
        let mut inflight = Inflight::default();
        let t0 = Instant::now();
        inflight.sent(7, t0);
        inflight.forget();
        assert!(inflight.due(7, t0, Duration::from_secs(30)));
        assert_eq!(inflight.in_flight(), 0);
        assert_eq!(inflight.acked(&[7]), vec![7]);
    }

    #[test]
    fn an_ack_removes_only_what_was_published_and_awaits_it() {
        let mut inflight = Inflight::default();
        let t0 = Instant::now();
        inflight.sent(3, t0);
        // 1 and 2 were never published; 3 is awaited once (a repeated ack names nothing).
        assert_eq!(inflight.acked(&[1, 2, 3, 3]), vec![3]);
        assert!(inflight.acked(&[3]).is_empty());
    }
}
