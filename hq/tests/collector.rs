//! The collector against a real broker (a private mosquitto from `TestBroker`), with a fake
//! agent that publishes summaries and collects HQ's acks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use storefront_broker::TestBroker;
use storefront_hq::{
    Collector, CollectorConfig, HqError, HqStats, HqStore, RejectReason, SledHqStore,
};
use storefront_protocol::topic::{StoreTopic, store_topic};
use storefront_protocol::{
    Ack, DailySummary, Distribution, Funnel, MAX_MESSAGE_BYTES, SUMMARY_SCHEMA_VERSION,
    SummaryPayload, SyncMessage, Timestamp, WindowSummary,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Upper bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);
const ORG: &str = "acme";
/// 2026-11-18T08:00Z, a window boundary.
const BASE: i64 = 1_794_988_800;

fn window(store: &str, n: i64, seq: u64) -> SyncMessage {
    let mut visit_duration = Distribution::new();
    let entries = (n % 7) as u64 + 5;
    for i in 0..entries {
        visit_duration.add(40.0 + (i * 37 + n as u64) as f64);
    }
    let start = BASE + n * 900;
    let w = WindowSummary {
        schema: SUMMARY_SCHEMA_VERSION,
        store_id: store.into(),
        window_start: Timestamp::from_secs(start),
        window_seconds: 900,
        local_date: "2026-11-18".into(),
        local_hour: (8 + n / 4) as u8,
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

fn day(store: &str, date: &str, day_start: i64, seq: u64) -> SyncMessage {
    let mut d = DailySummary::new(store, date, Timestamp::from_secs(day_start));
    for n in 0..4 {
        if let SummaryPayload::Window(w) = window(store, n, 0).payload {
            d.add_window(&w);
        }
    }
    SyncMessage::new(seq, d.idempotency_key(), SummaryPayload::Daily(d))
}

fn summary_topic(store: &str) -> String {
    store_topic(ORG, store, StoreTopic::Summary).unwrap()
}

type Acked = BTreeMap<String, BTreeSet<u64>>;

/// Plays the store agent: publishes summaries (QoS 1) and records the acks it gets back.
struct FakeAgent {
    client: AsyncClient,
    acks: watch::Receiver<Acked>,
    subscriptions: watch::Receiver<u64>,
    /// Ack messages received, duplicates included.
    ack_messages: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl FakeAgent {
    async fn connect(port: u16, id: &str) -> FakeAgent {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(4 * MAX_MESSAGE_BYTES, 4 * MAX_MESSAGE_BYTES);
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

    async fn wait_subscribed(&mut self, n: u64) {
        let ok = timeout(WAIT, self.subscriptions.wait_for(|s| *s >= n))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(ok, "the fake agent did not subscribe to acks");
    }

    async fn publish_raw(&self, topic: &str, body: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .expect("queue a publish");
    }

    async fn send(&self, message: &SyncMessage) {
        self.publish_raw(&summary_topic(&message.key.store_id), message.encode())
            .await;
    }

    /// Waits until `n` ack messages have arrived in all.
    async fn wait_ack_messages(&mut self, n: u64) {
        let ok = timeout(WAIT, self.ack_messages.wait_for(|got| *got >= n))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(ok, "{} of {n} ack messages", *self.ack_messages.borrow());
    }

    /// Waits until every message's seq has been acked for its store.
    async fn wait_acked(&mut self, messages: &[SyncMessage]) -> Acked {
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
        let ok = timeout(WAIT, self.acks.wait_for(covers))
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

struct Running {
    stats: watch::Receiver<HqStats>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<HqStats, HqError>>,
}

fn start_collector(port: u16, store: Arc<dyn HqStore>, client_id: &str) -> Running {
    let mut config =
        CollectorConfig::new(&format!("mqtt://127.0.0.1:{port}"), client_id, "hq").unwrap();
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
    async fn wait(&mut self, what: &str, mut pred: impl FnMut(&HqStats) -> bool) -> HqStats {
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

    async fn subscribed(mut self) -> Running {
        self.wait("the subscription", |s| s.subscriptions >= 1)
            .await;
        self
    }

    async fn stop(self) -> HqStats {
        let _ = self.stop.send(true);
        timeout(WAIT, self.handle)
            .await
            .expect("the collector stops within the wait")
            .expect("the collector task does not panic")
            .expect("the collector run ends cleanly")
    }
}

fn broker() -> TestBroker {
    TestBroker::start().expect("a test broker (mosquitto) starts")
}

fn sled_store() -> (tempfile::TempDir, Arc<SledHqStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledHqStore::open(dir.path()).unwrap());
    (dir, store)
}

type Tables = (Vec<WindowSummary>, Vec<DailySummary>, Vec<String>);

fn tables(store: &dyn HqStore) -> Tables {
    (
        store
            .windows(None, Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap(),
        store.days(None, "2000-01-01", "2100-12-31").unwrap(),
        store.stores().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_message_is_stored_and_acked() {
    let broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store.clone(), "hq-1")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;

    let m = window("paris-01", 0, 7);
    agent.send(&m).await;
    let acked = agent.wait_acked(std::slice::from_ref(&m)).await;
    assert_eq!(acked["paris-01"], BTreeSet::from([7]));

    let (windows, _, stores) = tables(store.as_ref());
    assert_eq!(windows.len(), 1);
    assert_eq!(SummaryPayload::Window(windows[0].clone()), m.payload);
    assert_eq!(stores, vec!["paris-01"]);
    let stats = hq.wait("the ack", |s| s.acked_seqs >= 1).await;
    assert_eq!(
        (stats.received, stats.inserted, stats.duplicates),
        (1, 1, 0)
    );
    let last = hq.stop().await;
    assert_eq!(last.inserted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_messages_delivered_twice_and_out_of_order_leave_the_tables_unchanged() {
    let broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store.clone(), "hq-1")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;

    let mut messages = Vec::new();
    for (i, s) in ["paris-01", "lyon-02"].into_iter().enumerate() {
        for n in 0..12 {
            messages.push(window(s, n, n as u64 + 1));
        }
        // Paris is UTC+1 in November: its day starts at 23:00Z the evening before.
        messages.push(day(s, "2026-11-18", 1_794_956_400 - i as i64 * 3600, 100));
    }
    for m in &messages {
        agent.send(m).await;
    }
    agent.wait_acked(&messages).await;
    hq.wait("the first copies", |s| s.inserted == messages.len() as u64)
        .await;
    let before = tables(store.as_ref());
    assert_eq!(before.0.len(), 24);
    assert_eq!(before.1.len(), 2);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..2 {
        let mut again = messages.clone();
        again.shuffle(&mut rng);
        for m in &again {
            agent.send(m).await;
        }
    }
    let n = messages.len() as u64;
    let stats = hq
        .wait("every duplicate", |s| {
            s.duplicates == 2 * n && s.received == 3 * n
        })
        .await;
    // Duplicates are acked too: the agent needs the ack to clear its outbox.
    agent.wait_ack_messages(stats.acks_published).await;
    assert!(stats.acks_published > 2, "{stats:?}");
    assert_eq!(stats.inserted, n);
    assert_eq!(stats.conflicts, 0);
    assert_eq!(
        tables(store.as_ref()),
        before,
        "duplicates changed the tables"
    );
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_topic_store_differs_from_its_payload_is_rejected_and_not_stored() {
    let broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store.clone(), "hq-1")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;

    let paris = window("paris-01", 0, 1);
    agent
        .publish_raw(&summary_topic("lyon-02"), paris.encode())
        .await;
    // A good message behind it: once it is acked, the bad one has been handled.
    let good = window("nice-03", 0, 1);
    agent.send(&good).await;
    let acked = agent.wait_acked(std::slice::from_ref(&good)).await;
    let stats = hq.wait("both messages", |s| s.received == 2).await;

    assert_eq!(
        stats.rejected.get(&RejectReason::TopicStoreMismatch),
        Some(&1)
    );
    assert_eq!(stats.inserted, 1);
    assert_eq!(tables(store.as_ref()).2, vec!["nice-03"]);
    assert!(!acked.contains_key("lyon-02") && !acked.contains_key("paris-01"));
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_wrong_schema_payloads_are_counted_by_reason() {
    let broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store.clone(), "hq-1")
        .subscribed()
        .await;
    let agent = FakeAgent::connect(broker.port(), "agent-1").await;
    let topic = summary_topic("paris-01");

    agent.publish_raw(&topic, b"{\"schema\":1,".to_vec()).await;
    agent.publish_raw(&topic, b"not json at all".to_vec()).await;
    agent
        .publish_raw(&topic, vec![b' '; MAX_MESSAGE_BYTES + 1000])
        .await;
    let mut future = window("paris-01", 0, 1);
    future.schema = SUMMARY_SCHEMA_VERSION + 1;
    agent.publish_raw(&topic, future.encode()).await;
    let mut skewed = window("paris-01", 1, 2);
    skewed.key.window_start = Timestamp(0);
    agent.publish_raw(&topic, skewed.encode()).await;
    let mut other_store = window("paris-01", 2, 3);
    other_store.key.store_id = "paris-02".into();
    agent.publish_raw(&topic, other_store.encode()).await;

    let stats = hq.wait("six messages", |s| s.received == 6).await;
    let expected = BTreeMap::from([
        (RejectReason::Malformed, 2),
        (RejectReason::TooLarge, 1),
        (RejectReason::UnsupportedSchema, 1),
        (RejectReason::KeyMismatch, 1),
        (RejectReason::PayloadStoreMismatch, 1),
    ]);
    assert_eq!(stats.rejected, expected);
    assert_eq!((stats.inserted, stats.acks_published), (0, 0));
    assert!(tables(store.as_ref()).2.is_empty());
    let last = hq.stop().await;
    assert_eq!(last.rejected_total(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_in_one_share_group_split_the_messages_and_store_each_once() {
    let broker = broker();
    let (_dir, store) = sled_store();
    let mut a = start_collector(broker.port(), store.clone(), "hq-a")
        .subscribed()
        .await;
    let mut b = start_collector(broker.port(), store.clone(), "hq-b")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;

    let messages: Vec<_> = (0..40)
        .map(|n| window("paris-01", n, n as u64 + 1))
        .collect();
    for m in &messages {
        agent.send(m).await;
    }
    agent.wait_acked(&messages).await;
    let sa = a.wait("its share", |s| s.acked_seqs == s.received).await;
    let sb = b.wait("its share", |s| s.acked_seqs == s.received).await;

    assert_eq!(
        sa.received + sb.received,
        40,
        "each message went to one collector"
    );
    assert!(sa.received > 0 && sb.received > 0, "{sa:?} {sb:?}");
    assert_eq!(sa.inserted + sb.inserted, 40);
    assert_eq!(sa.duplicates + sb.duplicates, 0);
    assert_eq!(tables(store.as_ref()).0.len(), 40);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_survives_a_broker_restart_and_stores_what_comes_after() {
    let mut broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store.clone(), "hq-1")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;

    let before: Vec<_> = (0..5)
        .map(|n| window("paris-01", n, n as u64 + 1))
        .collect();
    for m in &before {
        agent.send(m).await;
    }
    agent.wait_acked(&before).await;

    let mosquitto = broker
        .mosquitto()
        .expect("this test kills the broker: it needs mosquitto installed");
    mosquitto.kill();
    hq.wait("the outage to be noticed", |s| s.connection_errors >= 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    mosquitto.restart().expect("mosquitto restarts");
    hq.wait("a new subscription", |s| s.subscriptions >= 2)
        .await;
    agent.wait_subscribed(2).await;

    let after: Vec<_> = (5..10)
        .map(|n| window("paris-01", n, n as u64 + 1))
        .collect();
    for m in &after {
        agent.send(m).await;
    }
    agent.wait_acked(&after).await;
    let stats = hq.wait("everything", |s| s.inserted == 10).await;
    assert!(stats.connections >= 2, "{stats:?}");
    assert_eq!(tables(store.as_ref()).0.len(), 10);
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_broker_is_down_returns_within_the_grace_period() {
    let mut broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store, "hq-1")
        .subscribed()
        .await;
    broker.mosquitto().expect("needs mosquitto").kill();
    hq.wait("the outage to be noticed", |s| s.connection_errors >= 1)
        .await;
    let stats = hq.stop().await;
    assert_eq!(stats.received, 0);
}
