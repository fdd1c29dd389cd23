//! The collector against a real broker (a private mosquitto from `TestBroker`), with a fake
//! agent that publishes summaries and collects HQ's acks.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use storefront_hq::RejectReason;
use storefront_protocol::{MAX_MESSAGE_BYTES, SUMMARY_SCHEMA_VERSION, SummaryPayload, Timestamp};

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
