//! The collector: MQTT in, [`HqStore`] upserts, application-level acks out.
//!
//! Two tasks:
//! * the **connection task** polls rumqttc's `EventLoop` (MQTT 5) and never waits on anything
//!   else, so outgoing acks always drain: it reconnects with capped exponential backoff when
//!   the broker goes away, subscribes again on every ConnAck (a restarted broker has lost the
//!   session), and queues each publish for the collector loop. The queue is bounded in bytes
//!   (`queue_max_bytes`); a publish beyond it is shed and counted, and the agent re-sends it
//!   since it gets no ack;
//! * the **collector loop** ([`Collector::run`]) checks each publish (topic, size, schema,
//!   key-vs-payload, topic store = key store, then [`storefront_protocol::validate`]), gathers
//!   accepted ones into a batch (up to `batch_max_messages` or `batch_max_wait`), upserts the
//!   batch and fsyncs the database on a blocking thread, and only then publishes one [`Ack`]
//!   per store, waiting for room in the request channel (the connection task drains it), so
//!   no ack is ever dropped.
//!
//! Oversized publishes: the CONNECT packet announces a maximum packet size
//! ([`MAX_INCOMING_PACKET`]), so the broker drops larger publishes for this client instead of
//! sending them (one crafted message must not break the connection for the whole chain);
//! publishes between [`MAX_MESSAGE_BYTES`] and that size arrive and are counted `too_large`.
//!
//! Invalid summaries (the semantic checks of [`storefront_protocol::validate`]) are counted
//! by reason, logged at a bounded rate, never stored — and acked. A summary is immutable: the
//! agent would re-send the same invalid copy every ack timeout forever, and an ack only tells
//! it to stop re-sending. Acking is safe because only the store itself can write its summary
//! topic (the broker ACL in `deploy/`), and only a message whose key names the topic's store
//! is acked. Messages that name another store, or cannot be decoded, are not acked.
//! Conflicting copies are acked too (see [`crate::HqStore`]: held aside, counted, flagged).
//!
//! Architecture invariant: an ack names only seqs whose summary is stored (or was already
//! stored, or is refused for good) and fsynced.
//!
//! MQTT-level delivery: clean sessions and automatic PUBACKs. The end-to-end guarantee is the
//! agent's outbox plus HQ's application ack, not the broker's session: a message lost with a
//! broker restart or a collector crash is re-sent by the agent, and duplicates are harmless.
//!
//! Shutdown drain order: stop taking publishes → store, fsync and ack what was received →
//! queue an MQTT DISCONNECT behind the acks → wait (bounded) for the connection task to send
//! them and end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use storefront_mqtt::{BrokerUrl, TlsFiles};
use storefront_protocol::topic::{StoreTopic, check_id, parse_summary_topic, store_topic};
use storefront_protocol::validate::{Violation, validate_payload};
use storefront_protocol::{
    Ack, MAX_MESSAGE_BYTES, SUMMARY_SCHEMA_VERSION, SyncMessage, SyncMessageError,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::HqError;
use crate::ratelog::{LogDecision, RateLimitedLog};
use crate::store::{HqStore, Upsert};

/// Largest MQTT packet the collector accepts, announced in CONNECT: a summary of
/// [`MAX_MESSAGE_BYTES`] plus room for its topic and headers, and for the slightly larger
/// publishes that are still worth counting as `too_large`. The broker drops anything bigger.
pub const MAX_INCOMING_PACKET: usize = MAX_MESSAGE_BYTES + 64 * 1024;

/// Capacity of rumqttc's request channel (acks, subscribes). The collector waits for room.
const REQUEST_CAPACITY: usize = 4096;

/// How long shutdown waits for the connection task to send the last acks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Full log lines per kind of bad input before switching to periodic totals.
const DETAILED_LOG_LINES: u64 = 5;
const LOG_SUMMARY_PERIOD: Duration = Duration::from_secs(60);

/// Where and how the collector connects and batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorConfig {
    pub broker: BrokerUrl,
    /// CA bundle and client certificate for `mqtts://`.
    pub tls: TlsFiles,
    /// MQTT username and password.
    pub credentials: Option<(String, String)>,
    /// MQTT client id; unique per collector process.
    pub client_id: String,
    /// Shared-subscription group: collectors in the same group split the messages.
    pub group: String,
    /// A batch is stored, flushed and acked when it holds this many messages...
    pub batch_max_messages: usize,
    /// ...or this long after its first message arrived, whichever comes first.
    pub batch_max_wait: Duration,
    /// Bytes of received publishes waiting for the collector loop; beyond it they are shed
    /// (counted; unacked, so the agents re-send them).
    pub queue_max_bytes: usize,
    /// First reconnect delay after the broker goes away; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// MQTT keep-alive (whole seconds, at least 1).
    pub keep_alive: Duration,
}

impl CollectorConfig {
    /// A config with defaults for everything but the broker, client id and group.
    /// `broker` is `mqtt://host[:port]`, `mqtts://host[:port]` or `host[:port]`.
    pub fn new(broker: &str, client_id: &str, group: &str) -> Result<CollectorConfig, HqError> {
        let broker = BrokerUrl::parse(broker).map_err(|e| HqError::BrokerUrl {
            url: broker.to_owned(),
            reason: e.to_string(),
        })?;
        let config = CollectorConfig {
            broker,
            tls: TlsFiles::default(),
            credentials: None,
            client_id: client_id.to_owned(),
            group: group.to_owned(),
            batch_max_messages: 500,
            batch_max_wait: Duration::from_millis(50),
            queue_max_bytes: 256 * 1024 * 1024,
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
        if self.queue_max_bytes < MAX_INCOMING_PACKET {
            return bad(
                "queue_max_bytes",
                "must hold at least one message of the largest size",
            );
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

    fn mqtt_options(&self) -> Result<MqttOptions, HqError> {
        let mut options = MqttOptions::new(&self.client_id, &self.broker.host, self.broker.port);
        options
            .set_keep_alive(self.keep_alive)
            .set_clean_start(true)
            .set_max_packet_size(Some(MAX_INCOMING_PACKET as u32));
        if let Some((username, password)) = &self.credentials {
            options.set_credentials(username, password);
        }
        let transport =
            storefront_mqtt::transport(&self.broker, &self.tls).map_err(|e| HqError::Config {
                field: "tls",
                reason: e.to_string(),
            })?;
        options.set_transport(transport);
        Ok(options)
    }
}

/// Why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// The topic is not `storefront/v1/<org>/<store>/summary` with valid ids.
    Topic,
    /// Over [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Not JSON, not a `SyncMessage`, or a sketch whose internals are inconsistent.
    Malformed,
    /// A schema version this build does not read.
    UnsupportedSchema,
    /// The key's store differs from the summary's store.
    PayloadStoreMismatch,
    /// The key's kind or start differs from the summary's.
    KeyMismatch,
    /// The topic's store differs from the message's key.
    TopicStoreMismatch,
    /// Decoded, but its figures fail a semantic check (acked: see the module docs).
    Invalid(Violation),
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
            RejectReason::Invalid(violation) => match violation {
                Violation::Schema => "invalid_schema",
                Violation::StoreId => "invalid_store_id",
                Violation::WindowLength => "invalid_window_length",
                Violation::Alignment => "invalid_alignment",
                Violation::LocalDate => "invalid_local_date",
                Violation::LocalHour => "invalid_local_hour",
                Violation::Bound => "invalid_bound",
                Violation::Inconsistent => "invalid_inconsistent",
                Violation::Distribution => "invalid_distribution",
                Violation::Zones => "invalid_zones",
                Violation::Day => "invalid_day",
                Violation::Coverage => "invalid_coverage",
            },
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
    /// Publishes received on the summary subscription (shed ones included).
    pub received: u64,
    /// Summaries stored for the first time.
    pub inserted: u64,
    /// Summaries already stored with the same content (acked again).
    pub duplicates: u64,
    /// Summaries already stored with different content: first copy kept, this one held aside
    /// (or only counted when the conflict table is full), acked, logged.
    pub conflicts: u64,
    /// Of those, copies not held aside because the conflict table is full.
    pub conflicts_not_held: u64,
    /// Refused messages by reason; never stored. Only `Invalid` ones are acked.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Publishes dropped because the queue to the collector loop was full (not acked: the
    /// agent re-sends).
    pub shed: u64,
    /// Messages not stored because the store failed (not acked: the agent re-sends).
    pub store_errors: u64,
    /// Ack messages queued for publishing (one per store per batch).
    pub acks_published: u64,
    /// Sequence numbers in those acks.
    pub acked_seqs: u64,
    /// Acks that could not be queued (only at shutdown with the broker gone).
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
pub(crate) enum Accepted {
    /// To store, then ack.
    Store {
        org: String,
        message: Box<SyncMessage>,
    },
    /// Refused for good (invalid figures): only acked, so the agent stops re-sending it.
    AckOnly {
        org: String,
        store: String,
        seq: u64,
    },
}

/// What storing one batch did.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    pub inserted: u64,
    pub duplicates: u64,
    /// Conflicting copies (held aside or not).
    pub conflicts: Vec<(String, SyncMessage, bool)>,
    /// Upserts or the flush that failed, with the number of messages affected.
    pub errors: Vec<(HqError, u64)>,
    /// Seqs to ack, per `(org, store)`.
    pub acks: BTreeMap<(String, String), BTreeSet<u64>>,
}

/// Upserts a batch and fsyncs once; only after a successful fsync is anything stored ackable.
pub(crate) fn store_batch(store: &dyn HqStore, batch: Vec<Accepted>) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    let mut ackable = Vec::with_capacity(batch.len());
    for item in batch {
        let (org, message) = match item {
            Accepted::AckOnly { org, store, seq } => {
                outcome.acks.entry((org, store)).or_default().insert(seq);
                continue;
            }
            Accepted::Store { org, message } => (org, *message),
        };
        match store.upsert(&org, &message) {
            Ok(Upsert::Inserted) => outcome.inserted += 1,
            Ok(Upsert::Duplicate) => outcome.duplicates += 1,
            // The agent cannot fix a conflict: re-sending forever would not help, so it is
            // acked like a duplicate; the copy is held aside, counted and logged for a human.
            Ok(Upsert::Conflict { held }) => {
                outcome.conflicts.push((org.clone(), message.clone(), held))
            }
            Err(e) => {
                outcome.errors.push((e, 1));
                continue;
            }
        }
        ackable.push((org, message.key.store_id, message.seq));
    }
    if ackable.is_empty() {
        return outcome;
    }
    if let Err(e) = store.flush() {
        outcome.errors.push((e, ackable.len() as u64));
        return outcome;
    }
    for (org, store, seq) in ackable {
        outcome.acks.entry((org, store)).or_default().insert(seq);
    }
    outcome
}

/// A refused publish, and whether its refusal is acked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
    pub ack: Option<Accepted>,
}

fn rejected(reason: RejectReason, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
        ack: None,
    }
}

/// Checks one publish: topic, decode (size, schema, key vs payload, sketches), topic store vs
/// key, then the figures.
pub(crate) fn check_publish(topic: &str, payload: &[u8]) -> Result<Accepted, Rejection> {
    let (org, store) = parse_summary_topic(topic)
        .ok_or_else(|| rejected(RejectReason::Topic, "not a summary topic"))?;
    let message = SyncMessage::decode(payload).map_err(|e| {
        let mut detail = e.to_string();
        detail.truncate(200);
        rejected(RejectReason::of(&e), detail)
    })?;
    if message.key.store_id != store {
        return Err(rejected(
            RejectReason::TopicStoreMismatch,
            "topic does not match the message",
        ));
    }
    if let Err(invalid) = validate_payload(&message.payload) {
        return Err(Rejection {
            reason: RejectReason::Invalid(invalid.violation),
            detail: invalid.detail,
            ack: Some(Accepted::AckOnly {
                org: org.to_owned(),
                store: store.to_owned(),
                seq: message.seq,
            }),
        });
    }
    Ok(Accepted::Store {
        org: org.to_owned(),
        message: Box::new(message),
    })
}

impl PartialEq for Accepted {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Accepted::AckOnly { org, store, seq },
                Accepted::AckOnly {
                    org: o,
                    store: s,
                    seq: q,
                },
            ) => org == o && store == s && seq == q,
            (Accepted::Store { org, message }, Accepted::Store { org: o, message: m }) => {
                org == o && message == m
            }
            _ => false,
        }
    }
}

/// Bytes a queued publish accounts for.
fn queued_size(publish: &Publish) -> usize {
    publish.topic.len() + publish.payload.len()
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

    /// Runs until `shutdown` turns `true` (or its sender is dropped), then stores, fsyncs and
    /// acks what it has, disconnects, and returns the final counters. Broker outages are
    /// retried forever; only a failed background task ends the run with an error.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<HqStats, HqError> {
        let options = self.config.mqtt_options()?;
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        info!(
            broker = %self.config.broker,
            client_id = %self.config.client_id,
            subscription = %self.config.subscription(),
            "Collector starting"
        );
        let mut connection = tokio::spawn(drive_connection(
            eventloop,
            client.clone(),
            self.config.subscription(),
            Queue {
                tx,
                queued: Arc::clone(&queued),
                max_bytes: self.config.queue_max_bytes,
            },
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
                    queued.fetch_sub(queued_size(&publish), Ordering::Relaxed);
                    self.take(&publish, &mut batch);
                    if batch.len() >= self.config.batch_max_messages {
                        self.commit(&client, &mut batch, None).await?;
                        deadline = None;
                    } else if deadline.is_none() && !batch.is_empty() {
                        deadline = Some(tokio::time::Instant::now() + self.config.batch_max_wait);
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.commit(&client, &mut batch, None).await?;
                    deadline = None;
                }
            }
        }

        // Drain: whatever the connection task already handed over is stored and acked too.
        rx.close();
        while let Some(publish) = rx.recv().await {
            self.take(&publish, &mut batch);
        }
        let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        self.commit(&client, &mut batch, Some(grace)).await?;
        if connection_ended {
            return match connection.await {
                Ok(()) => Err(HqError::Task("the MQTT connection task ended".into())),
                Err(e) => Err(HqError::Task(format!(
                    "the MQTT connection task failed: {e}"
                ))),
            };
        }
        // The DISCONNECT queues behind the acks, so they go out first while connected.
        let _ = tokio::time::timeout_at(grace, client.disconnect()).await;
        if tokio::time::timeout_at(grace, &mut connection)
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
            conflicts = stats.conflicts,
            rejected = stats.rejected_total(),
            shed = stats.shed,
            "Collector stopped"
        );
        Ok(stats)
    }

    /// Counts and checks one publish; accepted ones (and acked refusals) join the batch.
    fn take(&mut self, publish: &Publish, batch: &mut Vec<Accepted>) {
        let topic = String::from_utf8_lossy(&publish.topic);
        let checked = check_publish(&topic, &publish.payload);
        // One update, so readers never see a message received but not yet classified.
        self.stats.send_modify(|s| {
            s.received += 1;
            if let Err(rejection) = &checked {
                *s.rejected.entry(rejection.reason).or_default() += 1;
            }
        });
        match checked {
            Ok(accepted) => batch.push(accepted),
            Err(rejection) => {
                match self.log.note(rejection.reason.as_str(), Instant::now()) {
                    LogDecision::Detail => warn!(
                        reason = %rejection.reason,
                        topic = %topic,
                        bytes = publish.payload.len(),
                        detail = %rejection.detail,
                        acked = rejection.ack.is_some(),
                        "Rejected a message"
                    ),
                    LogDecision::Summary { total, suppressed } => warn!(
                        reason = %rejection.reason,
                        total,
                        suppressed,
                        "Still rejecting messages"
                    ),
                    LogDecision::Silent => {}
                }
                batch.extend(rejection.ack);
            }
        }
    }

    /// Stores and fsyncs the batch, then publishes one ack per store. Waits for room in the
    /// request channel (drained by the connection task); with `deadline` (shutdown), gives up
    /// on acks that cannot be queued by then.
    async fn commit(
        &mut self,
        client: &AsyncClient,
        batch: &mut Vec<Accepted>,
        deadline: Option<tokio::time::Instant>,
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

        for (org, message, held) in &outcome.conflicts {
            match self.log.note("conflict", Instant::now()) {
                LogDecision::Detail => warn!(
                    org = %org,
                    store = %message.key.store_id,
                    kind = ?message.key.kind,
                    window_start = message.key.window_start.millis(),
                    seq = message.seq,
                    held_aside = held,
                    "Conflicting copy of a stored summary: first copy kept and flagged, this one held aside, acked"
                ),
                LogDecision::Summary { total, suppressed } => {
                    warn!(total, suppressed, "Still receiving conflicting copies")
                }
                LogDecision::Silent => {}
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
                    let publish = client.publish(topic, QoS::AtLeastOnce, false, body);
                    match deadline {
                        None => publish.await.map_err(|e| e.to_string()),
                        Some(at) => match tokio::time::timeout_at(at, publish).await {
                            Ok(result) => result.map_err(|e| e.to_string()),
                            Err(_) => Err("the broker is unreachable at shutdown".to_owned()),
                        },
                    }
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
            s.conflicts_not_held += outcome.conflicts.iter().filter(|c| !c.2).count() as u64;
            s.store_errors += outcome.errors.iter().map(|(_, n)| n).sum::<u64>();
            s.acks_published += published;
            s.acked_seqs += seqs;
            s.ack_publish_failures += failures;
        });
        Ok(())
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

/// The connection task's side of the queue to the collector loop, bounded in bytes.
struct Queue {
    tx: mpsc::UnboundedSender<Publish>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// Polls the MQTT event loop forever and waits on nothing else: reconnects with backoff,
/// re-subscribes on every ConnAck, queues publishes (shedding beyond the queue's bound). Ends
/// after our DISCONNECT went out, when the collector loop is gone, or when every client handle
/// is dropped.
async fn drive_connection(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscription: String,
    queue: Queue,
    stats: watch::Sender<HqStats>,
    (backoff_min, backoff_max): (Duration, Duration),
) {
    let mut backoff = backoff_min;
    let mut failures: u64 = 0;
    let mut shed_log = RateLimitedLog::new(1, LOG_SUMMARY_PERIOD);
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
                    .any(|c| !matches!(c, SubscribeReasonCode::Success(_)));
                if refused {
                    error!(subscription = %subscription, codes = ?suback.return_codes, "The broker refused the subscription");
                } else {
                    info!(subscription = %subscription, "Subscribed");
                    stats.send_modify(|s| s.subscriptions += 1);
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let size = queued_size(&publish);
                let before = queue.queued.fetch_add(size, Ordering::Relaxed);
                if before + size > queue.max_bytes {
                    queue.queued.fetch_sub(size, Ordering::Relaxed);
                    stats.send_modify(|s| {
                        s.received += 1;
                        s.shed += 1;
                    });
                    if let LogDecision::Detail | LogDecision::Summary { .. } =
                        shed_log.note("shed", Instant::now())
                    {
                        warn!(
                            queued_bytes = before,
                            total = stats.borrow().shed,
                            "The collector is behind: shedding publishes (the agents re-send them)"
                        );
                    }
                } else if queue.tx.send(publish).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
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
        let reason = |topic: &str, body: &[u8]| check_publish(topic, body).unwrap_err().reason;
        assert!(check_publish("storefront/v1/acme/s1/summary", &body).is_ok());
        assert_eq!(
            reason("storefront/v1/acme/s2/summary", &body),
            RejectReason::TopicStoreMismatch
        );
        assert_eq!(
            reason("storefront/v1/acme/s1/ack", &body),
            RejectReason::Topic
        );
        assert_eq!(
            reason("storefront/v1/acme/s1/summary", b"{"),
            RejectReason::Malformed
        );
        let mut old = m.clone();
        old.schema = 99;
        assert_eq!(
            reason("storefront/v1/acme/s1/summary", &old.encode()),
            RejectReason::UnsupportedSchema
        );
        assert_eq!(
            reason(
                "storefront/v1/acme/s1/summary",
                &vec![b' '; MAX_MESSAGE_BYTES + 1]
            ),
            RejectReason::TooLarge
        );
        let mut impossible = m.clone();
        if let storefront_protocol::SummaryPayload::Window(w) = &mut impossible.payload {
            w.funnel.bounces = w.funnel.entries + 1;
        }
        let refused =
            check_publish("storefront/v1/acme/s1/summary", &impossible.encode()).unwrap_err();
        assert_eq!(
            refused.reason,
            RejectReason::Invalid(Violation::Inconsistent)
        );
        assert_eq!(
            refused.ack,
            Some(Accepted::AckOnly {
                org: "acme".into(),
                store: "s1".into(),
                seq: impossible.seq
            }),
            "an invalid summary is acked so the agent stops re-sending it"
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
        let item = |m: &SyncMessage| Accepted::Store {
            org: "acme".into(),
            message: Box::new(m.clone()),
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
        ) -> Result<Vec<crate::Stored<storefront_protocol::WindowSummary>>, HqError> {
            self.0.windows(store, from, to)
        }
        fn days(
            &self,
            store: Option<&str>,
            from: &str,
            to: &str,
        ) -> Result<Vec<crate::Stored<storefront_protocol::DailySummary>>, HqError> {
            self.0.days(store, from, to)
        }
        fn stores(&self) -> Result<Vec<crate::StoreRef>, HqError> {
            self.0.stores()
        }
        fn conflicts(&self) -> Result<Vec<crate::HeldConflict>, HqError> {
            self.0.conflicts()
        }
    }

    #[test]
    fn nothing_is_acked_when_the_flush_fails() {
        let store = FailingFlush(MemoryHqStore::new());
        let outcome = store_batch(
            &store,
            vec![Accepted::Store {
                org: "acme".into(),
                message: Box::new(window("s1", 1_794_992_400, 3)),
            }],
        );
        assert!(outcome.acks.is_empty());
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(outcome.errors[0].1, 1);
    }
}
