//! The live sources end to end: simulator traffic in ESPresense and Theengs formats through a
//! real mosquitto, door records over MQTT and HTTP, a real HTTP POS endpoint polled page by
//! page, bad input counted by reason, a million random and mutated payloads, the pseudonym key
//! across restarts and rotations. (The scanner-node ingest rate is a benchmark:
//! `agent/benches/ingest.rs`.)

mod common;

use common::live::{Harness, config, http, serve, start};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::QoS;
use storefront_agent::live::keys::{KEY_FILE, PseudonymKeys};
use storefront_agent::live::scanners::pseudonym;
use storefront_agent::live::{Input, KnownSources, LiveHealth, MqttInputs};
use storefront_broker::TestBroker;
use storefront_config::{ScannerFormat, ScannerMqttSource};
use storefront_devtools::feed::simulated_mac;
use storefront_inputs::InputRejection;
use storefront_inputs::encode::{
    encode_door, encode_espresense, encode_pushed_transaction, encode_theengs, encode_transactions,
};
use storefront_protocol::privacy::Pseudonymizer;
use storefront_protocol::{DoorEvent, Event, Sighting, Transaction};
use storefront_simulator::ProfileName;
use storefront_tests::simulated_day;
use tokio::sync::watch;

const ESPRESENSE: &str = "espresense/devices/#";
const THEENGS: &str = "home/+/BTtoMQTT/#";

/// Scanner nodes: even-numbered scanners are ESPresense rooms named as the scanner; the others
/// Theengs gateways named `gw-<scanner>`, mapped back to the scanner id.
fn scanner_sources(scanners: &[String]) -> toml::Table {
    let theengs_ids: toml::Table = scanners
        .iter()
        .map(|s| (format!("gw-{s}"), toml::Value::from(s.as_str())))
        .collect();
    let sources: toml::Table = toml::from_str(&format!(
        r#"
        [ble]
        enabled = false
        [[scanner_mqtt]]
        format = "espresense"
        topic = "{ESPRESENSE}"
        [[scanner_mqtt]]
        format = "theengs"
        topic = "{THEENGS}"
        "#
    ))
    .unwrap();
    let mut sources = sources;
    let list = sources
        .get_mut("scanner_mqtt")
        .and_then(|v| v.as_array_mut())
        .unwrap();
    list[1]
        .as_table_mut()
        .unwrap()
        .insert("scanner_ids".into(), theengs_ids.into());
    sources
}

/// One simulated sighting as its node would publish it; the raw identity it carries.
fn publish_form(s: &Sighting, scanner_index: usize) -> (String, Vec<u8>, String) {
    let mac = simulated_mac(s.device);
    if scanner_index % 2 == 0 {
        let (topic, payload) = encode_espresense(&s.scanner, &mac, s.rssi, s.tx_power);
        (topic, payload, mac)
    } else {
        let (topic, payload) = encode_theengs(&format!("gw-{}", s.scanner), &mac, s.rssi);
        (topic, payload, mac)
    }
}

fn sightings(events: &[Event]) -> Vec<Sighting> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Sighting(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_scanner_traffic_reaches_the_core_pseudonymised_in_the_right_scanners() {
    let broker = TestBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let day = simulated_day(ProfileName::Boutique, 11).events;
    let scanners: Vec<String> = {
        let mut s: Vec<String> = sightings(&day).iter().map(|s| s.scanner.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    let config = config(dir.path(), scanner_sources(&scanners));
    let harness = start(&config, Some(broker.port()));
    let client = common::publisher(broker.port(), "sim-nodes").await;
    harness.wait_subscribed(&client).await;

    // Two hours of the afternoon (the busiest part of the day).
    let all = sightings(&day);
    let from = all[all.len() / 2].t.millis();
    let published: Vec<Sighting> = all
        .into_iter()
        .filter(|s| s.t.millis() >= from && s.t.millis() < from + 2 * 3_600_000)
        .collect();
    assert!(published.len() > 1000, "{} sightings", published.len());
    let mut raw_ids = Vec::new();
    for s in &published {
        let index = scanners.iter().position(|x| *x == s.scanner).unwrap();
        let (topic, payload, raw) = publish_form(s, index);
        raw_ids.push(raw);
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    harness
        .wait_for("every sighting", |h| {
            sightings(&h.events()).len() >= published.len()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = sightings(&harness.events());
    assert_eq!(received.len(), published.len());

    // The same (scanner, pseudonym, rssi) readings, with the raw identity hashed.
    let p = harness.pseudonymizer.borrow().clone();
    let key = |s: &Sighting| (s.scanner.clone(), s.device, s.rssi);
    let mut expected: Vec<_> = published
        .iter()
        .zip(&raw_ids)
        .map(|(s, raw)| (s.scanner.clone(), pseudonym(&p, raw), s.rssi))
        .collect();
    let mut got: Vec<_> = received.iter().map(key).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);

    // No raw identity anywhere in what the core receives.
    let debug = format!("{:?}", harness.events());
    for raw in raw_ids.iter().take(2000) {
        assert!(!debug.contains(raw.as_str()));
        assert!(!debug.contains(&raw.to_ascii_uppercase()));
        assert!(!debug.contains(&raw.replace(':', "")));
    }
    let snapshot = harness.health.snapshot();
    assert_eq!(
        snapshot.inputs["scanner_mqtt"].accepted as usize,
        published.len()
    );
    assert!(snapshot.inputs["scanner_mqtt"].rejected.is_empty());
    for scanner in &scanners {
        if published.iter().any(|s| &s.scanner == scanner) {
            assert!(snapshot.scanner_nodes[scanner].readings > 0, "{scanner}");
        }
    }
    assert!(snapshot.degraded_zones.is_empty());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_records_arrive_over_mqtt_and_over_the_ingest_route() {
    let broker = TestBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), scanner_sources(&[]));
    let harness = start(&config, Some(broker.port()));
    let client = common::publisher(broker.port(), "door").await;
    harness.wait_subscribed(&client).await;
    let url = serve(harness.sources_router.clone()).await;

    let doors: Vec<DoorEvent> = simulated_day(ProfileName::Boutique, 5)
        .events
        .into_iter()
        .filter_map(|e| match e {
            Event::Door(d) => Some(d),
            _ => None,
        })
        .collect();
    assert!(doors.len() > 10);
    let (by_mqtt, by_http) = doors.split_at(doors.len() / 2);
    for door in by_mqtt {
        client
            .publish(
                "storefront/local/door/door-main",
                QoS::AtLeastOnce,
                false,
                encode_door(door),
            )
            .await
            .unwrap();
    }
    // Over HTTP: a batch (a JSON array of records), then one record on its own.
    let (last, batch) = by_http.split_last().unwrap();
    let body = format!(
        "[{}]",
        batch
            .iter()
            .map(|d| String::from_utf8(encode_door(d)).unwrap())
            .collect::<Vec<_>>()
            .join(",")
    );
    let http = http();
    let answer = http
        .post(format!("{url}/ingest/v1/door"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let answer = http
        .post(format!("{url}/ingest/v1/door"))
        .body(encode_door(last))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);

    let door_events = |h: &Harness| -> Vec<DoorEvent> {
        h.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Door(d) => Some(d),
                _ => None,
            })
            .collect()
    };
    harness
        .wait_for("every door record", |h| door_events(h).len() >= doors.len())
        .await;
    let mut got = door_events(&harness);
    let key = |d: &DoorEvent| (d.t, format!("{d:?}"));
    got.sort_by_key(key);
    let mut want = doors.clone();
    want.sort_by_key(key);
    assert_eq!(got, want);
    let snapshot = harness.health.snapshot();
    assert_eq!(snapshot.inputs["door_mqtt"].events as usize, by_mqtt.len());
    assert_eq!(snapshot.inputs["door_http"].events as usize, by_http.len());
    assert_eq!(snapshot.inputs["door_http"].accepted, 2);
    assert!(snapshot.door_sensors.contains_key("door-main"));

    // A transaction pushed over HTTP.
    let answer = http
        .post(format!("{url}/ingest/v1/transactions"))
        .body(r#"{"id":"till-1","time":"2026-11-18T10:00:00Z","amount":12.5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    harness
        .wait_for("the pushed transaction", |h| {
            h.events()
                .iter()
                .any(|e| matches!(e, Event::Transaction(t) if t.id == "till-1" && t.amount_minor == Some(1250)))
        })
        .await;
    harness.stop().await;
}

#[derive(Clone, Default)]
struct PosServer {
    transactions: Arc<Mutex<Vec<Transaction>>>,
    requests: Arc<Mutex<Vec<Option<String>>>>,
    fail_first: Arc<std::sync::atomic::AtomicBool>,
}

const PAGE: usize = 7;
const AUTH: &str = "Bearer pos-secret-token";

async fn pos_page(
    axum::extract::State(server): axum::extract::State<PosServer>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let cursor = query.get("cursor").cloned();
    server.requests.lock().unwrap().push(cursor.clone());
    if server
        .fail_first
        .swap(false, std::sync::atomic::Ordering::SeqCst)
    {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(AUTH) {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    }
    let all = server.transactions.lock().unwrap().clone();
    let from: usize = cursor
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
        .min(all.len());
    let to = (from + PAGE).min(all.len());
    let next = (to < all.len()).then(|| to.to_string());
    encode_transactions(&all[from..to], next.as_deref()).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pos_poller_follows_cursors_and_every_transaction_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let transactions: Vec<Transaction> = simulated_day(ProfileName::Boutique, 3)
        .events
        .into_iter()
        .filter_map(|e| match e {
            Event::Transaction(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(transactions.len() > PAGE * 3);
    let server = PosServer::default();
    *server.transactions.lock().unwrap() = transactions.clone();
    server
        .fail_first
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let url = serve(
        axum::Router::new()
            .route("/api/transactions", axum::routing::get(pos_page))
            .with_state(server.clone()),
    )
    .await;
    let auth_file = dir.path().join("pos-auth");
    std::fs::write(&auth_file, format!("{AUTH}\n")).unwrap();
    let sources: toml::Table = toml::from_str(&format!(
        r#"
        [ble]
        enabled = false
        [pos]
        url = "{url}/api/transactions"
        poll_seconds = 1
        auth_header_file = "{}"
        "#,
        auth_file.display()
    ))
    .unwrap();
    let config = config(dir.path(), sources);
    let harness = start(&config, None);
    let unique = |h: &Harness| -> BTreeMap<String, Transaction> {
        h.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Transaction(t) => Some((t.id.clone(), t)),
                _ => None,
            })
            .collect()
    };
    harness
        .wait_for("every transaction", |h| {
            unique(h).len() == transactions.len()
        })
        .await;
    // Later sales appear at the next polls.
    let later: Vec<Transaction> = (0..3)
        .map(|i| Transaction {
            t: storefront_protocol::Timestamp(transactions.last().unwrap().t.millis() + i * 1000),
            id: format!("later-{i}"),
            amount_minor: Some(100 + i),
        })
        .collect();
    server
        .transactions
        .lock()
        .unwrap()
        .extend(later.iter().cloned());
    harness
        .wait_for("the later transactions", |h| {
            unique(h).len() == transactions.len() + later.len()
        })
        .await;
    let got = unique(&harness);
    for t in transactions.iter().chain(&later) {
        assert_eq!(got.get(&t.id), Some(t));
    }
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests[0], None, "the first poll has no cursor");
    assert!(
        requests.iter().any(|c| c.as_deref() == Some("7")),
        "{requests:?}"
    );
    let snapshot = harness.health.snapshot();
    assert!(snapshot.pos.last_error.as_deref().unwrap().contains("503"));
    assert_eq!(snapshot.pos.consecutive_failures, 0);
    assert!(snapshot.pos.last_success_ms.is_some());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_counted_by_reason_and_an_offline_node_degrades_its_zone() {
    let broker = TestBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scanners: Vec<String> = vec!["storefront-1".into(), "entrance-1".into()];
    let config = config(dir.path(), scanner_sources(&scanners));
    let harness = start(&config, Some(broker.port()));
    let client = common::publisher(broker.port(), "bad").await;
    harness.wait_subscribed(&client).await;
    let url = serve(harness.sources_router.clone()).await;

    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("espresense/devices/aa/storefront-1", vec![b' '; 70 * 1024]),
        ("espresense/devices/aa/storefront-1", vec![b'{', 0xff, b'}']),
        ("espresense/devices/aa/storefront-1", b"{\"rssi\":".to_vec()),
        (
            "home/gw-entrance-1/BTtoMQTT/AABB",
            br#"{"rssi":-60}"#.to_vec(),
        ),
        (
            "home/gw-entrance-1/BTtoMQTT/AABB",
            br#"{"id":"x","rssi":-200}"#.to_vec(),
        ),
        (
            "espresense/devices/only-id",
            br#"{"id":"x","rssi":-60}"#.to_vec(),
        ),
        (
            "storefront/local/door/x",
            br#"{"sensor":"door-main","foo":1}"#.to_vec(),
        ),
        ("storefront/local/pos/x", br#"{"amount":1}"#.to_vec()),
    ];
    for (topic, payload) in &bad {
        client
            .publish(*topic, QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
    }
    // The entrance node goes offline (its broker's last will, retained).
    client
        .publish("home/gw-entrance-1/LWT", QoS::AtLeastOnce, true, "offline")
        .await
        .unwrap();
    let http = http();
    let answer = http
        .post(format!("{url}/ingest/v1/door"))
        .body(vec![b'['; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 413);
    let answer = http
        .post(format!("{url}/ingest/v1/transactions"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let json: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(json["error"], "malformed");

    harness
        .wait_for("the bad input and the status", |h| {
            let s = h.health.snapshot();
            s.payloads_seen() > bad.len() as u64 + 3 && !s.degraded_zones.is_empty()
        })
        .await;
    let s = harness.health.snapshot();
    use InputRejection::*;
    assert_eq!(s.rejected(Input::ScannerMqtt, Oversized), 1);
    assert_eq!(s.rejected(Input::ScannerMqtt, NotUtf8), 1);
    assert_eq!(s.rejected(Input::ScannerMqtt, Malformed), 1);
    assert_eq!(s.rejected(Input::ScannerMqtt, MissingField), 1);
    assert_eq!(s.rejected(Input::ScannerMqtt, OutOfRange), 1);
    assert_eq!(s.rejected(Input::ScannerMqtt, UnknownTopic), 1);
    assert_eq!(s.rejected(Input::DoorMqtt, UnknownFormat), 1);
    assert_eq!(s.rejected(Input::PosMqtt, MissingField), 1);
    assert_eq!(s.rejected(Input::DoorHttp, Oversized), 1);
    assert_eq!(s.rejected(Input::PosHttp, Malformed), 1);
    assert_eq!(s.degraded_zones, vec!["entrance".to_owned()]);
    assert_eq!(s.scanner_nodes["entrance-1"].online, Some(false));
    assert!(sightings(&harness.events()).is_empty());

    // Back online: no longer degraded.
    client
        .publish("home/gw-entrance-1/LWT", QoS::AtLeastOnce, true, "Online")
        .await
        .unwrap();
    harness
        .wait_for("the node back online", |h| {
            h.health.snapshot().degraded_zones.is_empty()
        })
        .await;
    harness.stop().await;
}

/// Valid messages of every input, to mutate.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let day = simulated_day(ProfileName::Boutique, 2).events;
    let mut corpus = Vec::new();
    let mut doors = 0;
    for (i, e) in day.iter().enumerate() {
        let keep = match e {
            Event::Sighting(_) => i % 97 == 0 && corpus.len() < 400,
            Event::Door(_) => {
                doors += 1;
                doors <= 100
            }
            Event::Transaction(_) => true,
            Event::Alive(_) => false,
        };
        if !keep {
            continue;
        }
        match e {
            Event::Sighting(s) => corpus.push({
                let (t, p, _) = publish_form(s, i);
                (t, p)
            }),
            Event::Door(d) => corpus.push(("storefront/local/door/d".into(), encode_door(d))),
            Event::Transaction(t) => corpus.push((
                "storefront/local/pos/p".into(),
                encode_pushed_transaction(t),
            )),
            Event::Alive(_) => {}
        }
    }
    corpus.push((
        "espresense/rooms/storefront-1/status".into(),
        b"offline".to_vec(),
    ));
    corpus.push(("home/gw-entrance-1/LWT".into(), b"online".to_vec()));
    corpus
}

/// A random or mutated payload on a random or mutated topic.
fn fuzz_message(rng: &mut StdRng, corpus: &[(String, Vec<u8>)]) -> (String, Vec<u8>) {
    let (topic, payload) = &corpus[rng.random_range(0..corpus.len())];
    let mut topic = topic.clone();
    let mut payload = payload.clone();
    match rng.random_range(0..10) {
        0 => {
            let n = rng.random_range(0..200);
            payload = (0..n).map(|_| rng.random()).collect();
        }
        1 => {
            for _ in 0..rng.random_range(1..4) {
                if !payload.is_empty() {
                    let i = rng.random_range(0..payload.len());
                    payload[i] ^= 1 << rng.random_range(0..8);
                }
            }
        }
        2 => {
            let i = rng.random_range(0..=payload.len());
            payload.truncate(i);
        }
        3 => {
            let i = rng.random_range(0..=payload.len());
            let byte = *b"{}[]\":,-0123456789e.aZ \\"
                .get(rng.random_range(0..25))
                .unwrap_or(&b'x');
            payload.insert(i, byte);
        }
        4 if !payload.is_empty() => {
            let i = rng.random_range(0..payload.len());
            payload.remove(i);
        }
        5 => {
            // Values swapped for other kinds and out-of-range numbers.
            let text = String::from_utf8_lossy(&payload).into_owned();
            let swaps = [
                ("-", "\"-"),
                ("\"rssi\":", "\"rssi\":\"\","),
                ("\"id\"", "\"idx\""),
                (":", ":null,"),
                ("1", "99999999999999999999"),
            ];
            let (from, to) = swaps[rng.random_range(0..swaps.len())];
            payload = text.replacen(from, to, 1).into_bytes();
        }
        6 => {
            let levels = ["#", "+", "", "x", "devices", "BTtoMQTT", "LWT", "status"];
            topic = format!("{topic}/{}", levels[rng.random_range(0..levels.len())]);
            topic = topic.replace("#", "").replace("+", "");
        }
        7 if rng.random_range(0..50) == 0 => {
            payload = vec![b'7'; 65 * 1024];
        }
        _ => {}
    }
    (topic, payload)
}

#[test]
fn a_million_random_and_mutated_payloads_are_each_accepted_or_counted_as_rejected() {
    let scanners: Vec<String> = vec!["storefront-1".into(), "entrance-1".into()];
    let sources: Vec<ScannerMqttSource> = vec![
        ScannerMqttSource {
            format: ScannerFormat::Espresense,
            topic: ESPRESENSE.into(),
            scanner_ids: BTreeMap::new(),
        },
        ScannerMqttSource {
            format: ScannerFormat::Theengs,
            topic: THEENGS.into(),
            scanner_ids: scanners
                .iter()
                .map(|s| (format!("gw-{s}"), s.clone()))
                .collect(),
        },
    ];
    let health = Arc::new(LiveHealth::default());
    let (_tx, rx) = watch::channel(Pseudonymizer::new(&[9; 32]));
    let dir = tempfile::tempdir().unwrap();
    let boutique = config(dir.path(), toml::Table::new());
    let inputs = MqttInputs::new(
        &sources,
        KnownSources::for_config(&boutique),
        rx,
        health.clone(),
    );
    let corpus = corpus();
    let mut rng = StdRng::seed_from_u64(1);
    let mut events = Vec::new();
    let started = Instant::now();
    const N: u64 = 1_000_000;
    let mut produced = 0usize;
    for _ in 0..N {
        let (topic, payload) = fuzz_message(&mut rng, &corpus);
        inputs.handle(&topic, &payload, 1_763_888_400_000, &mut events);
        produced += events.len();
        events.clear();
    }
    let elapsed = started.elapsed();
    let snapshot = health.snapshot();
    assert_eq!(snapshot.payloads_seen(), N);
    let accepted: u64 = snapshot.inputs.values().map(|c| c.accepted).sum();
    let events_counted: u64 = snapshot.inputs.values().map(|c| c.events).sum();
    assert_eq!(events_counted as usize, produced);
    assert!(accepted > N / 10 && accepted < N, "accepted {accepted}");
    println!(
        "{N} payloads through MqttInputs::handle in {:.2} s ({:.0}/s): {accepted} accepted, rejected by reason: {:?}",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64(),
        snapshot
            .inputs
            .iter()
            .map(|(k, v)| (*k, v.rejected.clone()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_mutated_payloads_through_mosquitto_are_each_accepted_or_counted() {
    let broker = TestBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scanners: Vec<String> = vec!["storefront-1".into(), "entrance-1".into()];
    let config = config(dir.path(), scanner_sources(&scanners));
    let harness = start(&config, Some(broker.port()));
    let client = common::publisher(broker.port(), "fuzz").await;
    harness.wait_subscribed(&client).await;
    let before = harness.health.snapshot().payloads_seen();
    let corpus = corpus();
    let mut rng = StdRng::seed_from_u64(2);
    // The filters the agent subscribes to: the broker delivers only what matches one.
    let filters = MqttInputs::new(
        &config.sources.scanner_mqtt,
        KnownSources::for_config(&config),
        harness.pseudonymizer.clone(),
        Arc::new(LiveHealth::default()),
    )
    .filters();
    const N: u64 = 50_000;
    let mut delivered = 0;
    for _ in 0..N {
        let (topic, payload) = fuzz_message(&mut rng, &corpus);
        let topic = if topic.is_empty() { "x".into() } else { topic };
        if filters.iter().any(|(f, _)| rumqttc::matches(&topic, f)) {
            delivered += 1;
        }
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    harness
        .wait_for("every payload", |h| {
            h.health.snapshot().payloads_seen() >= before + delivered
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snapshot = harness.health.snapshot();
    assert_eq!(snapshot.payloads_seen(), before + delivered);
    assert!(delivered > N * 9 / 10, "{delivered}");
    assert!(snapshot.mqtt_connected);
    harness.stop().await;
}

#[test]
fn the_pseudonym_key_survives_a_restart_within_its_period_and_is_replaced_after() {
    let dir = tempfile::tempdir().unwrap();
    let tz: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let morning = at("2026-11-23T08:00:00+01:00");
    let keys = PseudonymKeys::open(dir.path(), tz, 1, morning).unwrap();
    let first = keys.pseudonymizer().pseudonym(b"phone");
    let old_file = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
    assert_eq!(keys.next_rotation(), at("2026-11-24T00:00:00+01:00"));
    drop(keys);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A restart in the evening: the same pseudonyms.
    let mut keys = PseudonymKeys::open(dir.path(), tz, 1, at("2026-11-23T23:59:00+01:00")).unwrap();
    assert_eq!(keys.pseudonymizer().pseudonym(b"phone"), first);
    assert!(
        keys.rotate_if_due(at("2026-11-23T23:59:59+01:00"))
            .unwrap()
            .is_none()
    );

    // Midnight local time: a new key, unlinkable; the old one is gone from the file.
    let next = keys
        .rotate_if_due(at("2026-11-24T00:00:01+01:00"))
        .unwrap()
        .expect("rotated at local midnight");
    let second = next.pseudonym(b"phone");
    assert_ne!(second, first);
    let new_file = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
    let old_key = old_file.lines().nth(2).unwrap();
    assert!(!new_file.contains(old_key));
    assert_eq!(new_file.len(), old_file.len());
    drop(keys);
    let keys = PseudonymKeys::open(dir.path(), tz, 1, at("2026-11-24T12:00:00+01:00")).unwrap();
    assert_eq!(keys.pseudonymizer().pseudonym(b"phone"), second);

    // Reopened after its period without running in between: replaced, not reused.
    drop(keys);
    let keys = PseudonymKeys::open(dir.path(), tz, 1, at("2026-11-26T12:00:00+01:00")).unwrap();
    let third = keys.pseudonymizer().pseudonym(b"phone");
    assert_ne!(third, second);
    assert_ne!(third, first);

    // A 7-day rotation keeps the key for the whole week.
    let week = tempfile::tempdir().unwrap();
    let a = PseudonymKeys::open(week.path(), tz, 7, morning).unwrap();
    let start = a.period_start();
    drop(a);
    let end_of_period = a_day_before(start, 7);
    let b = PseudonymKeys::open(week.path(), tz, 7, end_of_period).unwrap();
    assert_eq!(b.period_start(), start);
}

/// Noon of the last day of the period starting on `start`.
fn a_day_before(start: NaiveDate, days: u64) -> DateTime<Utc> {
    let last = start.checked_add_days(chrono::Days::new(days - 1)).unwrap();
    DateTime::<Utc>::from_naive_utc_and_offset(last.and_hms_opt(11, 0, 0).unwrap(), Utc)
}
