//! What the HQ tests share: a fake store agent that publishes summaries and collects HQ's
//! acks, a collector running on a private mosquitto, and summary fixtures.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Timelike;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use storefront_broker::TestBroker;
use storefront_hq::{Collector, CollectorConfig, HqError, HqStats, HqStore, SledHqStore};
use storefront_protocol::topic::{StoreTopic, store_topic};
use storefront_protocol::{
    Ack, DailySummary, Distribution, Funnel, MAX_MESSAGE_BYTES, SUMMARY_SCHEMA_VERSION,
    SummaryPayload, SyncMessage, Timestamp, WindowSummary,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Upper bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(60);
pub const ORG: &str = "acme";
/// 2026-11-18T08:00Z, a window boundary.
pub const BASE: i64 = 1_794_988_800;

pub fn window(store: &str, n: i64, seq: u64) -> SyncMessage {
    let mut visit_duration = Distribution::new();
    let entries = (n % 7) as u64 + 5;
    for i in 0..entries {
        visit_duration.add(40.0 + (i * 37 + n as u64) as f64);
    }
    let start = BASE + n * 900;
    let utc = chrono::DateTime::from_timestamp(start, 0).expect("a test time");
    let w = WindowSummary {
        schema: SUMMARY_SCHEMA_VERSION,
        store_id: store.into(),
        window_start: Timestamp::from_secs(start),
        window_seconds: 900,
        // The store keeps UTC: its local date and hour are the start's.
        local_date: utc.format("%Y-%m-%d").to_string(),
        local_hour: utc.hour() as u8,
        hour_start: Timestamp::from_secs(start - start % 3600),
        funnel: Funnel {
            entries,
            passers_by: entries * 3 + 1,
            bounces: entries / 3,
            transactions: entries / 2,
            visit_duration,
            ..Funnel::default()
        },
        // Summaries from agents before and after coverage was recorded: HQ takes both.
        coverage: (n % 2 == 0).then_some(storefront_protocol::Coverage {
            ble_seconds: 900,
            door_seconds: None,
            pos_seconds: Some(600),
        }),
    };
    SyncMessage::new(seq, w.idempotency_key(), SummaryPayload::Window(w))
}

pub fn day(store: &str, date: &str, day_start: i64, seq: u64) -> SyncMessage {
    let mut d = DailySummary::new(store, date, Timestamp::from_secs(day_start));
    for n in 0..4 {
        if let SummaryPayload::Window(w) = window(store, n, 0).payload {
            d.add_window(&w);
        }
    }
    SyncMessage::new(seq, d.idempotency_key(), SummaryPayload::Daily(d))
}

pub fn summary_topic(store: &str) -> String {
    store_topic(ORG, store, StoreTopic::Summary).unwrap()
}

pub type Acked = BTreeMap<String, BTreeSet<u64>>;

/// Plays the store agent: publishes summaries (QoS 1) and records the acks it gets back.
pub struct FakeAgent {
    pub client: AsyncClient,
    acks: watch::Receiver<Acked>,
    subscriptions: watch::Receiver<u64>,
    /// Ack messages received, duplicates included.
    ack_messages: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl FakeAgent {
    pub async fn connect(port: u16, id: &str) -> FakeAgent {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        FakeAgent::connect_with(options).await
    }

    /// Connects with `options` (credentials, TLS), publishing up to 8 MiB.
    pub async fn connect_with(mut options: MqttOptions) -> FakeAgent {
        options.set_max_packet_size(4 * MAX_MESSAGE_BYTES, 8 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let (acks_tx, acks) = watch::channel(Acked::new());
        let (subs_tx, subscriptions) = watch::channel(0u64);
        let (count_tx, ack_messages) = watch::channel(0u64);
        let sub_client = client.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let ack_topics = format!("{}/+/+/ack", storefront_protocol::topic::ROOT);
                        let _ = sub_client.try_subscribe(ack_topics, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => subs_tx.send_modify(|n| *n += 1),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let ack: Ack =
                            serde_json::from_slice(&p.payload).expect("HQ sends valid acks");
                        assert_eq!(ack.schema, SUMMARY_SCHEMA_VERSION);
                        assert!(p.topic.ends_with(&format!("/{}/ack", ack.store_id)));
                        acks_tx
                            .send_modify(|a| a.entry(ack.store_id).or_default().extend(ack.seqs));
                        count_tx.send_modify(|n| *n += 1);
                    }
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let mut agent = FakeAgent {
            client,
            acks,
            subscriptions,
            ack_messages,
            task,
        };
        agent.wait_subscribed(1).await;
        agent
    }

    pub async fn wait_subscribed(&mut self, n: u64) {
        let ok = timeout(WAIT, self.subscriptions.wait_for(|s| *s >= n))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(ok, "the fake agent did not subscribe to acks");
    }

    pub async fn publish_raw(&self, topic: &str, body: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .expect("queue a publish");
    }

    pub async fn send(&self, message: &SyncMessage) {
        self.publish_raw(&summary_topic(&message.key.store_id), message.encode())
            .await;
    }

    /// Waits until `n` ack messages have arrived in all.
    pub async fn wait_ack_messages(&mut self, n: u64) {
        let ok = timeout(WAIT, self.ack_messages.wait_for(|got| *got >= n))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(ok, "{} of {n} ack messages", *self.ack_messages.borrow());
    }

    /// Waits until every message's seq has been acked for its store.
    pub async fn wait_acked(&mut self, messages: &[SyncMessage]) -> Acked {
        self.wait_acked_within(messages, WAIT).await
    }

    /// Waits up to `deadline` until every message's seq has been acked for its store.
    pub async fn wait_acked_within(
        &mut self,
        messages: &[SyncMessage],
        deadline: Duration,
    ) -> Acked {
        let mut want = Acked::new();
        for m in messages {
            want.entry(m.key.store_id.clone())
                .or_default()
                .insert(m.seq);
        }
        let covers = |got: &Acked| {
            want.iter()
                .all(|(store, seqs)| got.get(store).is_some_and(|g| g.is_superset(seqs)))
        };
        let ok = timeout(deadline, self.acks.wait_for(covers))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(
            ok,
            "acks missing: want {want:?}, got {:?}",
            *self.acks.borrow()
        );
        self.acks.borrow().clone()
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Running {
    pub stats: watch::Receiver<HqStats>,
    pub stop: watch::Sender<bool>,
    pub handle: JoinHandle<Result<HqStats, HqError>>,
}

pub fn start_collector(port: u16, store: Arc<dyn HqStore>, client_id: &str) -> Running {
    let config =
        CollectorConfig::new(&format!("mqtt://127.0.0.1:{port}"), client_id, "hq").unwrap();
    start_collector_with(config, store)
}

/// Starts a collector with `config`, its timings shortened for tests.
pub fn start_collector_with(mut config: CollectorConfig, store: Arc<dyn HqStore>) -> Running {
    config.batch_max_wait = Duration::from_millis(20);
    config.backoff_min = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(400);
    config.keep_alive = Duration::from_secs(5);
    let collector = Collector::new(config, store).unwrap();
    let stats = collector.stats();
    let (stop, shutdown) = watch::channel(false);
    let handle = tokio::spawn(collector.run(shutdown));
    Running {
        stats,
        stop,
        handle,
    }
}

impl Running {
    pub async fn wait(&mut self, what: &str, mut pred: impl FnMut(&HqStats) -> bool) -> HqStats {
        let ok = timeout(WAIT, self.stats.wait_for(|s| pred(s)))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(
            ok,
            "timed out waiting for {what}: {:?}",
            *self.stats.borrow()
        );
        self.stats.borrow().clone()
    }

    pub async fn subscribed(mut self) -> Running {
        self.wait("the subscription", |s| s.subscriptions >= 1)
            .await;
        self
    }

    pub async fn stop(self) -> HqStats {
        let _ = self.stop.send(true);
        timeout(WAIT, self.handle)
            .await
            .expect("the collector stops within the wait")
            .expect("the collector task does not panic")
            .expect("the collector run ends cleanly")
    }
}

pub fn broker() -> TestBroker {
    TestBroker::start().expect("a test broker (mosquitto) starts")
}

pub fn sled_store() -> (tempfile::TempDir, Arc<SledHqStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledHqStore::open(dir.path()).unwrap());
    (dir, store)
}

pub type Tables = (Vec<WindowSummary>, Vec<DailySummary>, Vec<String>);

pub fn tables(store: &dyn HqStore) -> Tables {
    (
        store
            .windows(None, Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap()
            .into_iter()
            .map(|row| row.summary)
            .collect(),
        store
            .days(None, "2020-01-01", "2100-12-31")
            .unwrap()
            .into_iter()
            .map(|row| row.summary)
            .collect(),
        store
            .stores()
            .unwrap()
            .into_iter()
            .map(|s| s.store)
            .collect(),
    )
}
