//! The collector: MQTT in, [`HqStore`] upserts, application-level acks out.
//!
//! Two tasks:
//! * the **connection task** polls rumqttc's `EventLoop`: it reconnects with capped
//!   exponential backoff when the broker goes away, subscribes again on every ConnAck (a
//!   restarted broker has lost the session), and forwards each publish into a bounded channel;
//! * the **collector loop** ([`Collector::run`]) checks each publish (topic, size, schema,
//!   key-vs-payload, topic store = key store), gathers accepted ones into a batch (up to
//!   `batch_max_messages` or `batch_max_wait`), upserts and flushes the batch on a blocking
//!   thread, and only then publishes one [`Ack`] per store.
//!
//! Architecture invariant: an ack is published only for seqs whose summary is stored (or was
//! already stored) and flushed. The collector never waits on the MQTT request channel
//! (`try_publish`), so it cannot deadlock with the connection task that feeds it; an ack that
//! cannot be queued is counted and the agent's re-send brings the message back.
//!
//! MQTT-level delivery: clean sessions and automatic PUBACKs. The end-to-end guarantee is the
//! agent's outbox plus HQ's application ack, not the broker's session: a message lost with a
//! broker restart or a collector crash is re-sent by the agent, and duplicates are harmless.
//!
//! Shutdown drain order: stop taking publishes → store, flush and ack what was received →
//! queue an MQTT DISCONNECT behind the acks → wait (bounded) for the connection task to send
//! them and end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS};
use storefront_protocol::topic::{StoreTopic, check_id, parse_summary_topic, store_topic};
use storefront_protocol::{
    Ack, MAX_MESSAGE_BYTES, SUMMARY_SCHEMA_VERSION, SyncMessage, SyncMessageError,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::HqError;
use crate::ratelog::{LogDecision, RateLimitedLog};
use crate::store::{HqStore, Upsert};

/// Largest MQTT packet the collector reads. Above [`MAX_MESSAGE_BYTES`] so that oversized
/// summaries arrive and are counted as `too_large`; a packet over this limit makes rumqttc drop
/// the connection (logged as a connection error, then reconnect).
const MAX_INCOMING_PACKET: usize = 4 * MAX_MESSAGE_BYTES;

/// Capacity of rumqttc's request channel (acks, subscribes).
const REQUEST_CAPACITY: usize = 1024;

/// How long shutdown waits for the connection task to send the last acks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Full log lines per kind of bad input before switching to periodic totals.
const DETAILED_LOG_LINES: u64 = 5;
const LOG_SUMMARY_PERIOD: Duration = Duration::from_secs(60);

/// Where and how the collector connects and batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorConfig {
    pub host: String,
    pub port: u16,
    /// MQTT client id; unique per collector process.
    pub client_id: String,
    /// Shared-subscription group: collectors in the same group split the messages.
    pub group: String,
    /// A batch is stored, flushed and acked when it holds this many messages...
    pub batch_max_messages: usize,
    /// ...or this long after its first message arrived, whichever comes first.
    pub batch_max_wait: Duration,
    /// First reconnect delay after the broker goes away; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// MQTT keep-alive (whole seconds, at least 1).
    pub keep_alive: Duration,
}

impl CollectorConfig {
    /// A config with defaults for everything but the broker, client id and group.
    /// `broker` is `mqtt://host[:port]`, `tcp://host[:port]` or `host[:port]` (port 1883).
    pub fn new(broker: &str, client_id: &str, group: &str) -> Result<CollectorConfig, HqError> {
        let (host, port) = parse_broker_url(broker)?;
        let config = CollectorConfig {
            host,
            port,
            client_id: client_id.to_owned(),
            group: group.to_owned(),
            batch_max_messages: 100,
            batch_max_wait: Duration::from_millis(50),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            keep_alive: Duration::from_secs(15),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; call again after changing fields by hand.
    pub fn validate(&self) -> Result<(), HqError> {
        let bad = |field, reason: &str| {
            Err(HqError::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.client_id.is_empty() {
            return bad("client_id", "must not be empty");
        }
        if let Err(e) = check_id(&self.group) {
            return bad("group", &e.to_string());
        }
        if self.batch_max_messages == 0 {
            return bad("batch_max_messages", "must be at least 1");
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return bad("backoff_min", "must be above zero and at most backoff_max");
        }
        if self.keep_alive < Duration::from_secs(1) {
            return bad("keep_alive", "must be at least one second");
        }
        Ok(())
    }

    /// `$share/<group>/storefront/v1/+/+/summary`.
    pub fn subscription(&self) -> String {
        format!(
            "$share/{}/{}/+/+/summary",
            self.group,
            storefront_protocol::topic::ROOT
        )
    }
}

fn parse_broker_url(url: &str) -> Result<(String, u16), HqError> {
    let bad = |reason: &str| HqError::BrokerUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some(("mqtts" | "ssl" | "ws" | "wss", _)) => {
            return Err(bad("only plain TCP (mqtt://) is supported in this build"));
        }
        Some(_) => return Err(bad("the scheme must be mqtt:// or tcp://")),
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| bad("the port must be a number from 1 to 65535"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() || host.contains('/') || port == 0 {
        return Err(bad("expected mqtt://host:port"));
    }
    Ok((host.to_owned(), port))
}

/// Why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// The topic is not `storefront/v1/<org>/<store>/summary` with valid ids.
    Topic,
    /// Over [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Not JSON, or not a `SyncMessage`.
    Malformed,
    /// A schema version this build does not read.
    UnsupportedSchema,
    /// The key's store differs from the summary's store.
    PayloadStoreMismatch,
    /// The key's kind or start differs from the summary's.
    KeyMismatch,
    /// The topic's store differs from the message's key.
    TopicStoreMismatch,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Topic => "topic",
            RejectReason::TooLarge => "too_large",
            RejectReason::Malformed => "malformed",
            RejectReason::UnsupportedSchema => "unsupported_schema",
            RejectReason::PayloadStoreMismatch => "payload_store_mismatch",
            RejectReason::KeyMismatch => "key_mismatch",
            RejectReason::TopicStoreMismatch => "topic_store_mismatch",
        }
    }

    fn of(error: &SyncMessageError) -> RejectReason {
        match error {
            SyncMessageError::TooLarge(_) => RejectReason::TooLarge,
            SyncMessageError::Malformed(_) => RejectReason::Malformed,
            SyncMessageError::UnsupportedSchema { .. } => RejectReason::UnsupportedSchema,
            SyncMessageError::StoreMismatch { .. } => RejectReason::PayloadStoreMismatch,
            SyncMessageError::KeyMismatch => RejectReason::KeyMismatch,
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of one collector since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HqStats {
    /// Publishes received on the summary subscription.
    pub received: u64,
    /// Summaries stored for the first time.
    pub inserted: u64,
    /// Summaries already stored with the same content (acked again).
    pub duplicates: u64,
    /// Summaries already stored with different content: first version kept, acked, logged.
    pub conflicts: u64,
    /// Refused messages by reason; never stored, never acked.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Messages not stored because the store failed (not acked: the agent re-sends).
    pub store_errors: u64,
    /// Ack messages queued for publishing (one per store per batch).
    pub acks_published: u64,
    /// Sequence numbers in those acks.
    pub acked_seqs: u64,
    /// Acks that could not be queued (request channel full); the agent re-sends.
    pub ack_publish_failures: u64,
    /// Successful connections (ConnAcks), the first one included.
    pub connections: u64,
    /// Subscriptions the broker accepted (one per connection).
    pub subscriptions: u64,
    /// Connection failures (each followed by a backoff and a retry).
    pub connection_errors: u64,
}

impl HqStats {
    /// All rejected messages, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// A checked message waiting in the current batch.
#[derive(Clone, Debug)]
pub(crate) struct Accepted {
    pub org: String,
    pub message: SyncMessage,
}

/// What storing one batch did.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    pub inserted: u64,
    pub duplicates: u64,
    /// Conflicting keys: the first version is kept.
    pub conflicts: Vec<HqError>,
    /// Upserts or the flush that failed, with the number of messages affected.
    pub errors: Vec<(HqError, u64)>,
    /// Seqs stored durably, per `(org, store)`: what to ack.
    pub acks: BTreeMap<(String, String), BTreeSet<u64>>,
}

/// Upserts a batch and flushes once; only after a successful flush is anything ackable.
pub(crate) fn store_batch(store: &dyn HqStore, batch: Vec<Accepted>) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    let mut ackable = Vec::with_capacity(batch.len());
    for item in batch {
        match store.upsert(&item.org, &item.message) {
            Ok(Upsert::Inserted) => outcome.inserted += 1,
            Ok(Upsert::Duplicate) => outcome.duplicates += 1,
            // The agent cannot fix a conflict: re-sending forever would not help, so it is
            // acked like a duplicate, and counted and logged for a human.
            Err(e @ HqError::Conflict { .. }) => outcome.conflicts.push(e),
            Err(e) => {
                outcome.errors.push((e, 1));
                continue;
            }
        }
        ackable.push(item);
    }
    if ackable.is_empty() {
        return outcome;
    }
    if let Err(e) = store.flush() {
        outcome.errors.push((e, ackable.len() as u64));
        return outcome;
    }
    for item in ackable {
        outcome
            .acks
            .entry((item.org, item.message.key.store_id))
            .or_default()
            .insert(item.message.seq);
    }
    outcome
}

/// Checks one publish: topic, decode (size, schema, key vs payload), topic store vs key.
pub(crate) fn check_publish(topic: &str, payload: &[u8]) -> Result<Accepted, RejectReason> {
    let (org, store) = parse_summary_topic(topic).ok_or(RejectReason::Topic)?;
    let message = SyncMessage::decode(payload).map_err(|e| RejectReason::of(&e))?;
    if message.key.store_id != store {
        return Err(RejectReason::TopicStoreMismatch);
    }
    Ok(Accepted {
        org: org.to_owned(),
        message,
    })
}

/// Stores summaries from MQTT and acks them. See the module docs.
pub struct Collector {
    config: CollectorConfig,
    store: Arc<dyn HqStore>,
    stats: watch::Sender<HqStats>,
    log: RateLimitedLog,
}

impl Collector {
    pub fn new(config: CollectorConfig, store: Arc<dyn HqStore>) -> Result<Collector, HqError> {
        config.validate()?;
        Ok(Collector {
            config,
            store,
            stats: watch::Sender::new(HqStats::default()),
            log: RateLimitedLog::new(DETAILED_LOG_LINES, LOG_SUMMARY_PERIOD),
        })
    }

    /// Live counters: `borrow()` for a snapshot, `wait_for` to wait for a condition.
    pub fn stats(&self) -> watch::Receiver<HqStats> {
        self.stats.subscribe()
    }

    /// Runs until `shutdown` turns `true` (or its sender is dropped), then stores, flushes and
    /// acks what it has, disconnects, and returns the final counters. Broker outages are
    /// retried forever; only a failed background task ends the run with an error.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<HqStats, HqError> {
        let mut options =
            MqttOptions::new(&self.config.client_id, &self.config.host, self.config.port);
        options
            .set_keep_alive(self.config.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024);
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let (tx, mut rx) = mpsc::channel(self.config.batch_max_messages.max(16) * 2);
        info!(
            broker = %format!("{}:{}", self.config.host, self.config.port),
            client_id = %self.config.client_id,
            subscription = %self.config.subscription(),
            "Collector starting"
        );
        let mut connection = tokio::spawn(drive_connection(
            eventloop,
            client.clone(),
            self.config.subscription(),
            tx,
            self.stats.clone(),
            (self.config.backoff_min, self.config.backoff_max),
        ));

        let mut batch: Vec<Accepted> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut connection_ended = false;
        loop {
            tokio::select! {
                biased;
                _ = stop_requested(&mut shutdown) => break,
                publish = rx.recv() => {
                    let Some(publish) = publish else {
                        connection_ended = true;
                        break;
                    };
                    self.take(&publish, &mut batch);
                    if batch.len() >= self.config.batch_max_messages {
                        self.commit(&client, &mut batch).await?;
                        deadline = None;
                    } else if deadline.is_none() && !batch.is_empty() {
                        deadline = Some(tokio::time::Instant::now() + self.config.batch_max_wait);
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.commit(&client, &mut batch).await?;
                    deadline = None;
                }
            }
        }

        // Drain: whatever the connection task already handed over is stored and acked too.
        rx.close();
        while let Some(publish) = rx.recv().await {
            self.take(&publish, &mut batch);
        }
        self.commit(&client, &mut batch).await?;
        if connection_ended {
            return match connection.await {
                Ok(()) => Err(HqError::Task("the MQTT connection task ended".into())),
                Err(e) => Err(HqError::Task(format!(
                    "the MQTT connection task failed: {e}"
                ))),
            };
        }
        // The DISCONNECT queues behind the acks, so they go out first while connected.
        let _ = client.try_disconnect();
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut connection)
            .await
            .is_err()
        {
            warn!("Broker unreachable at shutdown: the last acks may not have been sent");
            connection.abort();
        }
        let stats = self.stats.borrow().clone();
        info!(
            received = stats.received,
            inserted = stats.inserted,
            duplicates = stats.duplicates,
            rejected = stats.rejected_total(),
            "Collector stopped"
        );
        Ok(stats)
    }

    /// Counts and checks one publish; accepted ones join the batch.
    fn take(&mut self, publish: &Publish, batch: &mut Vec<Accepted>) {
        let checked = check_publish(&publish.topic, &publish.payload);
        // One update, so readers never see a message received but not yet classified.
        self.stats.send_modify(|s| {
            s.received += 1;
            if let Err(reason) = &checked {
                *s.rejected.entry(*reason).or_default() += 1;
            }
        });
        match checked {
            Ok(accepted) => batch.push(accepted),
            Err(reason) => match self.log.note(reason.as_str(), Instant::now()) {
                LogDecision::Detail => warn!(
                    reason = %reason,
                    topic = %publish.topic,
                    bytes = publish.payload.len(),
                    detail = %reject_detail(&publish.payload),
                    "Rejected a message"
                ),
                LogDecision::Summary { total, suppressed } => warn!(
                    reason = %reason,
                    total,
                    suppressed,
                    "Still rejecting messages"
                ),
                LogDecision::Silent => {}
            },
        }
    }

    /// Stores and flushes the batch, then publishes one ack per store.
    async fn commit(
        &mut self,
        client: &AsyncClient,
        batch: &mut Vec<Accepted>,
    ) -> Result<(), HqError> {
        if batch.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(batch);
        let count = items.len();
        let store = Arc::clone(&self.store);
        let outcome = tokio::task::spawn_blocking(move || store_batch(store.as_ref(), items))
            .await
            .map_err(|e| HqError::Task(format!("storing a batch failed: {e}")))?;

        for conflict in &outcome.conflicts {
            if let LogDecision::Detail | LogDecision::Summary { .. } =
                self.log.note("conflict", Instant::now())
            {
                warn!(error = %conflict, "Conflicting copy of a stored summary; acked, first version kept");
            }
        }
        for (e, messages) in &outcome.errors {
            error!(error = %e, messages, "Could not store summaries; they stay unacked");
        }
        let (mut published, mut seqs, mut failures) = (0, 0, 0);
        for ((org, store), batch_seqs) in &outcome.acks {
            let ack = Ack {
                schema: SUMMARY_SCHEMA_VERSION,
                store_id: store.clone(),
                seqs: batch_seqs.iter().copied().collect(),
            };
            let queued = match store_topic(org, store, StoreTopic::Ack) {
                Ok(topic) => {
                    let body = serde_json::to_vec(&ack).unwrap_or_default();
                    client
                        .try_publish(topic, QoS::AtLeastOnce, false, body)
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            match queued {
                Ok(()) => {
                    published += 1;
                    seqs += ack.seqs.len() as u64;
                }
                Err(e) => {
                    failures += 1;
                    warn!(store = %store, error = %e, "Could not queue an ack; the agent will re-send");
                }
            }
        }
        debug!(
            messages = count,
            inserted = outcome.inserted,
            duplicates = outcome.duplicates,
            acks = published,
            "Batch stored"
        );
        self.stats.send_modify(|s| {
            s.inserted += outcome.inserted;
            s.duplicates += outcome.duplicates;
            s.conflicts += outcome.conflicts.len() as u64;
            s.store_errors += outcome.errors.iter().map(|(_, n)| n).sum::<u64>();
            s.acks_published += published;
            s.acked_seqs += seqs;
            s.ack_publish_failures += failures;
        });
        Ok(())
    }
}

/// A short, log-safe description of why a payload was refused.
fn reject_detail(payload: &[u8]) -> String {
    match SyncMessage::decode(payload) {
        Ok(_) => "topic does not match the message".to_owned(),
        Err(e) => {
            let mut text = e.to_string();
            text.truncate(200);
            text
        }
    }
}

/// Resolves once `true` is sent, or when the sender is gone (nobody could stop us then).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Polls the MQTT event loop forever: reconnects with backoff, re-subscribes on every
/// ConnAck, forwards publishes. Ends after our DISCONNECT went out, when the collector loop is
/// gone, or when every client handle is dropped.
async fn drive_connection(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscription: String,
    tx: mpsc::Sender<Publish>,
    stats: watch::Sender<HqStats>,
    (backoff_min, backoff_max): (Duration, Duration),
) {
    let mut backoff = backoff_min;
    let mut failures: u64 = 0;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                info!(
                    session_present = connack.session_present,
                    after_failures = failures,
                    "Connected to the broker"
                );
                backoff = backoff_min;
                failures = 0;
                stats.send_modify(|s| s.connections += 1);
                // Always subscribe: a restarted broker has forgotten the session.
                if let Err(e) = client.try_subscribe(&subscription, QoS::AtLeastOnce) {
                    error!(error = %e, "Could not queue the subscription");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(suback))) => {
                let refused = suback
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    error!(subscription = %subscription, "The broker refused the subscription");
                } else {
                    info!(subscription = %subscription, "Subscribed");
                    stats.send_modify(|s| s.subscriptions += 1);
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if tx.send(publish).await.is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(rumqttc::ConnectionError::RequestsDone) => return,
            Err(e) => {
                failures += 1;
                stats.send_modify(|s| s.connection_errors += 1);
                if failures == 1 || failures.is_power_of_two() {
                    warn!(error = %e, failures, retry_in_ms = backoff.as_millis() as u64, "Broker unreachable; retrying");
                } else {
                    debug!(error = %e, failures, retry_in_ms = backoff.as_millis() as u64, "Broker unreachable; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(backoff_max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryHqStore;
    use crate::store::tests::window;

    /// `Collector::run` must be spawnable on a multi-threaded runtime.
    #[allow(dead_code)]
    fn run_is_send(collector: Collector, shutdown: watch::Receiver<bool>) {
        fn is_send<T: Send>(_: T) {}
        is_send(collector.run(shutdown));
    }

    #[test]
    fn broker_urls_parse_with_a_default_port_and_refuse_tls() {
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884)
        );
        assert_eq!(
            parse_broker_url("tcp://broker/").unwrap(),
            ("broker".into(), 1883)
        );
        assert_eq!(
            parse_broker_url("localhost").unwrap(),
            ("localhost".into(), 1883)
        );
        assert!(parse_broker_url("mqtts://x:8883").is_err());
        assert!(parse_broker_url("http://x").is_err());
        assert!(parse_broker_url("mqtt://x:99999").is_err());
        assert!(parse_broker_url("mqtt://:1883").is_err());
    }

    #[test]
    fn the_subscription_is_shared_across_the_group() {
        let config = CollectorConfig::new("mqtt://h:1", "c", "hq").unwrap();
        assert_eq!(config.subscription(), "$share/hq/storefront/v1/+/+/summary");
        assert!(CollectorConfig::new("mqtt://h:1", "c", "a/b").is_err());
        assert!(CollectorConfig::new("mqtt://h:1", "", "hq").is_err());
    }

    #[test]
    fn publishes_are_checked_topic_first_then_payload_then_store() {
        let m = window("s1", 1_794_992_400, 3);
        let body = m.encode();
        assert!(check_publish("storefront/v1/acme/s1/summary", &body).is_ok());
        assert_eq!(
            check_publish("storefront/v1/acme/s2/summary", &body).unwrap_err(),
            RejectReason::TopicStoreMismatch
        );
        assert_eq!(
            check_publish("storefront/v1/acme/s1/ack", &body).unwrap_err(),
            RejectReason::Topic
        );
        assert_eq!(
            check_publish("storefront/v1/acme/s1/summary", b"{").unwrap_err(),
            RejectReason::Malformed
        );
        let mut old = m.clone();
        old.schema = 99;
        assert_eq!(
            check_publish("storefront/v1/acme/s1/summary", &old.encode()).unwrap_err(),
            RejectReason::UnsupportedSchema
        );
        assert_eq!(
            check_publish(
                "storefront/v1/acme/s1/summary",
                &vec![b' '; MAX_MESSAGE_BYTES + 1]
            )
            .unwrap_err(),
            RejectReason::TooLarge
        );
    }

    #[test]
    fn a_batch_acks_inserted_duplicate_and_conflicting_seqs_per_store() {
        let store = MemoryHqStore::new();
        let mut a = window("s1", 1_794_992_400, 3);
        a.seq = 10;
        let mut b = window("s2", 1_794_992_400, 1);
        b.seq = 4;
        let mut conflicting = a.clone();
        conflicting.seq = 11;
        if let storefront_protocol::SummaryPayload::Window(w) = &mut conflicting.payload {
            w.funnel.bounces = 1;
        }
        let item = |m: &SyncMessage| Accepted {
            org: "acme".into(),
            message: m.clone(),
        };
        let outcome = store_batch(
            &store,
            vec![item(&a), item(&b), item(&a), item(&conflicting)],
        );
        assert_eq!(outcome.inserted, 2);
        assert_eq!(outcome.duplicates, 1);
        assert_eq!(outcome.conflicts.len(), 1);
        assert!(outcome.errors.is_empty());
        let s1: Vec<u64> = outcome.acks[&("acme".into(), "s1".into())]
            .iter()
            .copied()
            .collect();
        assert_eq!(s1, vec![10, 11]);
        assert_eq!(outcome.acks.len(), 2);
    }

    /// A store whose flush always fails.
    struct FailingFlush(MemoryHqStore);

    impl HqStore for FailingFlush {
        fn upsert(&self, org: &str, message: &SyncMessage) -> Result<Upsert, HqError> {
            self.0.upsert(org, message)
        }
        fn flush(&self) -> Result<(), HqError> {
            Err(HqError::storage("flushing to disk", "disk full"))
        }
        fn windows(
            &self,
            store: Option<&str>,
            from: storefront_protocol::Timestamp,
            to: storefront_protocol::Timestamp,
        ) -> Result<Vec<storefront_protocol::WindowSummary>, HqError> {
            self.0.windows(store, from, to)
        }
        fn days(
            &self,
            store: Option<&str>,
            from: &str,
            to: &str,
        ) -> Result<Vec<storefront_protocol::DailySummary>, HqError> {
            self.0.days(store, from, to)
        }
        fn stores(&self) -> Result<Vec<String>, HqError> {
            self.0.stores()
        }
    }

    #[test]
    fn nothing_is_acked_when_the_flush_fails() {
        let store = FailingFlush(MemoryHqStore::new());
        let outcome = store_batch(
            &store,
            vec![Accepted {
                org: "acme".into(),
                message: window("s1", 1_794_992_400, 3),
            }],
        );
        assert!(outcome.acks.is_empty());
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(outcome.errors[0].1, 1);
    }
}
