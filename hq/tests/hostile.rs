//! HQ's threat model, one test per attack: what a store (buggy or hostile), any broker client
//! or a damaged database can send HQ, and what HQ must do about it.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rumqttc::{MqttOptions, QoS};
use storefront_broker::{Mosquitto, free_port};
use storefront_hq::{CollectorConfig, HqStore, MemoryHqStore, RejectReason, SledHqStore};
use storefront_protocol::validate::Violation;
use storefront_protocol::{SummaryPayload, SyncMessage, Timestamp};

/// A window of `store` with its figures changed by `craft`.
fn crafted(
    store: &str,
    n: i64,
    seq: u64,
    craft: impl FnOnce(&mut storefront_protocol::WindowSummary),
) -> SyncMessage {
    let mut m = window(store, n, seq);
    if let SummaryPayload::Window(w) = &mut m.payload {
        craft(w);
    }
    m.key = m.payload.idempotency_key();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_figures_are_rejected_by_reason_acked_and_never_stored() {
    let broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store.clone(), "hq-1")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;

    let impossible = [
        (
            crafted("paris-01", 0, 1, |w| {
                w.funnel.bounces = w.funnel.entries + 1
            }),
            Violation::Inconsistent,
        ),
        (
            crafted("paris-01", 1, 2, |w| w.window_seconds = 0),
            Violation::WindowLength,
        ),
        (
            crafted("paris-01", 2, 3, |w| w.local_hour = 255),
            Violation::LocalHour,
        ),
        (
            crafted("paris-01", 3, 4, |w| w.local_date = "9999-11-18".into()),
            Violation::LocalDate,
        ),
        (
            crafted("paris-01", 4, 5, |w| w.local_date = "2026-12-25".into()),
            Violation::LocalHour,
        ),
        (
            crafted("paris-01", 5, 6, |w| w.funnel.passers_by = u64::MAX),
            Violation::Bound,
        ),
    ];
    for (m, _) in &impossible {
        agent.send(m).await;
    }
    // A good one behind them: once it is acked, the bad ones have been handled.
    let good = window("paris-01", 6, 7);
    agent.send(&good).await;
    let all: Vec<SyncMessage> = impossible
        .iter()
        .map(|(m, _)| m.clone())
        .chain([good.clone()])
        .collect();
    agent.wait_acked(&all).await;
    let stats = hq
        .wait("every message", |s| s.received == 7 && s.inserted == 1)
        .await;

    let mut expected = BTreeMap::new();
    for (_, violation) in &impossible {
        *expected
            .entry(RejectReason::Invalid(*violation))
            .or_default() += 1;
    }
    assert_eq!(stats.rejected, expected);
    let (windows, _, _) = tables(store.as_ref());
    assert_eq!(windows.len(), 1, "only the good window is stored");
    assert_eq!(SummaryPayload::Window(windows[0].clone()), good.payload);
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_first_copy_does_not_silently_win_the_real_one_is_held_aside_and_the_report_says_so()
 {
    let broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store.clone(), "hq-1")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;

    // 2026-11-18 in Paris starts at 23:00Z the evening before.
    let real = day("paris-01", "2026-11-18", 1_794_956_400, 40);
    let mut fake = real.clone();
    fake.seq = 1;
    if let SummaryPayload::Daily(d) = &mut fake.payload {
        d.funnel.transactions += 500;
    }
    agent.send(&fake).await;
    agent.wait_acked(std::slice::from_ref(&fake)).await;
    agent.send(&real).await;
    agent.wait_acked(std::slice::from_ref(&real)).await;
    let stats = hq.wait("the conflict", |s| s.conflicts == 1).await;
    assert_eq!(stats.inserted, 1);
    hq.stop().await;

    let held = store.conflicts().unwrap();
    assert_eq!(held.len(), 1, "the other copy is kept for a human");
    assert_eq!(held[0].message, real);
    assert_eq!(held[0].org, ORG);
    let days = store.days(None, "2026-11-18", "2026-11-18").unwrap();
    assert_eq!(days.len(), 1);
    assert!(days[0].conflicted, "the stored copy is flagged as disputed");
    let report = storefront_hq::build_report(store.as_ref(), "2026-11-18", "2026-11-18", None)
        .unwrap()
        .unwrap();
    assert_eq!(report.chain.conflicted_days, 1);
    assert!(
        report.to_table().contains("conflicting copy held aside"),
        "{}",
        report.to_table()
    );
}

#[test]
fn the_same_store_id_in_two_orgs_is_two_stores_not_a_conflict() {
    let store = MemoryHqStore::new();
    let a = day("store-1", "2026-11-18", 1_794_956_400, 1);
    let mut b = a.clone();
    if let SummaryPayload::Daily(d) = &mut b.payload {
        d.funnel.passers_by += 7;
        d.traffic_by_hour[0].passers_by += 7;
    }
    assert_eq!(
        store.upsert("acme", &a).unwrap(),
        storefront_hq::Upsert::Inserted
    );
    assert_eq!(
        store.upsert("globex", &b).unwrap(),
        storefront_hq::Upsert::Inserted
    );
    let report = storefront_hq::build_report(&store, "2026-11-18", "2026-11-18", None)
        .unwrap()
        .unwrap();
    let rows: Vec<(&str, &str)> = report
        .stores
        .iter()
        .map(|r| (r.org.as_str(), r.store.as_str()))
        .collect();
    assert_eq!(rows, vec![("acme", "store-1"), ("globex", "store-1")]);
    assert_eq!(report.chain.conflicted_days, 0);
}

/// A valid window whose sketch has its bins emptied: the sketch library indexes its bins by the
/// serialised keys, so merging it panics.
fn with_crafted_sketch(m: &SyncMessage) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(&m.encode()).unwrap();
    json["payload"]["summary"]["funnel"]["visit_duration"]["sketch"]["store"]["bins"] =
        serde_json::json!([]);
    serde_json::to_vec(&json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crafted_sketch_is_refused_on_receipt() {
    let broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store.clone(), "hq-1")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;

    let m = day("paris-01", "2026-11-18", 1_794_956_400, 3);
    agent
        .publish_raw(&summary_topic("paris-01"), with_crafted_sketch(&m))
        .await;
    let good = window("paris-01", 0, 4);
    agent.send(&good).await;
    agent.wait_acked(std::slice::from_ref(&good)).await;
    let stats = hq.wait("both", |s| s.received == 2).await;
    assert_eq!(
        stats.rejected.get(&RejectReason::Malformed),
        Some(&1),
        "{stats:?}"
    );
    assert!(
        tables(store.as_ref()).1.is_empty(),
        "the crafted day is not stored"
    );
    hq.stop().await;
}

/// Runs `hq` with `args`, retrying while sled's lock of a just-closed handle lingers.
fn hq(args: &[&str]) -> std::process::Output {
    let started = Instant::now();
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_hq"))
            .args(args)
            .output()
            .expect("run hq");
        let locked = String::from_utf8_lossy(&out.stderr).contains("could not acquire lock");
        if !locked || started.elapsed() > Duration::from_secs(10) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `[version 1][crc32][org len][org][message]`: a record as `SledHqStore` writes it.
fn record(body: &[u8]) -> Vec<u8> {
    let mut framed = vec![ORG.len() as u8];
    framed.extend_from_slice(ORG.as_bytes());
    framed.extend_from_slice(body);
    let mut value = vec![1u8];
    value.extend_from_slice(&crc32fast::hash(&framed).to_le_bytes());
    value.extend_from_slice(&framed);
    value
}

fn time_key(m: &SyncMessage) -> [u8; 8] {
    ((m.key.window_start.millis() as u64) ^ (1 << 63)).to_be_bytes()
}

fn report_on(db: &std::path::Path) -> (Option<i32>, String, String) {
    let out = hq(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--date",
        "2026-11-18",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "hq report panicked: {stderr}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn a_crafted_sketch_already_in_the_database_is_reported_by_hq_report_not_a_panic() {
    let good = day("lyon-02", "2026-11-18", 1_794_956_400, 1);
    let bad = day("paris-01", "2026-11-18", 1_794_956_400, 2);

    // Stored by a build that did not check sketches, in the current layout: the report
    // fails and names the record.
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("hq-data");
    drop(SledHqStore::open(&db_path).unwrap());
    {
        let db = sled::open(&db_path).unwrap();
        let (days, stores) = (
            db.open_tree("day_rows").unwrap(),
            db.open_tree("store_index").unwrap(),
        );
        for (m, body) in [(&good, good.encode()), (&bad, with_crafted_sketch(&bad))] {
            let mut key = format!("{ORG}\0{}\0", m.key.store_id).into_bytes();
            key.extend_from_slice(&time_key(m));
            days.insert(key, record(&body)).unwrap();
            stores
                .insert(format!("{ORG}\0{}", m.key.store_id), &[])
                .unwrap();
        }
        db.flush().unwrap();
    }
    let (code, _, stderr) = report_on(&db_path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("corrupt record") && stderr.contains("paris-01"),
        "{stderr}"
    );

    // The same in the first layout (before rows were keyed by org): the readable rows move
    // to the current layout, the crafted one stays behind and is logged by name.
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("hq-data");
    {
        let db = sled::open(&db_path).unwrap();
        let (days, stores) = (
            db.open_tree("days").unwrap(),
            db.open_tree("stores").unwrap(),
        );
        for (m, body) in [(&good, good.encode()), (&bad, with_crafted_sketch(&bad))] {
            let mut key = format!("{}\0", m.key.store_id).into_bytes();
            key.extend_from_slice(&time_key(m));
            days.insert(key, record(&body)).unwrap();
            stores
                .insert(m.key.store_id.as_bytes(), ORG.as_bytes())
                .unwrap();
        }
        db.flush().unwrap();
    }
    let (code, stdout, stderr) = report_on(&db_path);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("lyon-02") && !stdout.contains("paris-01"),
        "{stdout}"
    );
    assert!(
        stderr.contains("unreadable") && stderr.contains("paris-01"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_publish_retained_or_not_does_not_stop_collection_for_other_stores() {
    let broker = broker();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(broker.port(), store.clone(), "hq-1")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;

    let huge = vec![b'x'; 1_100_000];
    let topic = summary_topic("evil-01");
    agent
        .client
        .publish(&topic, QoS::AtLeastOnce, true, huge.clone())
        .await
        .unwrap();
    agent
        .client
        .publish(&topic, QoS::AtLeastOnce, false, huge)
        .await
        .unwrap();
    // Over the message limit but under the packet limit: it arrives and is counted.
    agent
        .publish_raw(
            &topic,
            vec![b' '; storefront_protocol::MAX_MESSAGE_BYTES + 10_000],
        )
        .await;

    let after: Vec<SyncMessage> = (0..20)
        .map(|n| window("lyon-02", n, n as u64 + 1))
        .collect();
    for m in &after {
        agent.send(m).await;
    }
    agent.wait_acked(&after).await;
    let stats = hq.wait("the good messages", |s| s.inserted == 20).await;
    assert_eq!(
        stats.connection_errors, 0,
        "the connection never broke: {stats:?}"
    );
    assert_eq!(stats.connections, 1, "{stats:?}");
    assert_eq!(
        stats.rejected.get(&RejectReason::TooLarge),
        Some(&1),
        "{stats:?}"
    );
    hq.stop().await;

    // A collector that connects after the retained one was stored is not stopped either.
    let mut late = start_collector(broker.port(), store.clone(), "hq-2")
        .subscribed()
        .await;
    let next = window("lyon-02", 30, 31);
    agent.send(&next).await;
    agent.wait_acked(std::slice::from_ref(&next)).await;
    let stats = late
        .wait("the next message", |s| s.duplicates + s.inserted >= 1)
        .await;
    assert_eq!(stats.connection_errors, 0, "{stats:?}");
    late.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stores_sending_unpaced_get_every_ack_without_a_resend() {
    let stores: u64 = 1_000;
    let per_store: u64 = std::env::var("HQ_LOAD_PER_STORE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    if !Mosquitto::available() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI needs mosquitto"
        );
        eprintln!("SKIPPED: mosquitto is not installed");
        return;
    }
    // HQ's broker must be able to queue a chain's burst for the collector: mosquitto's default
    // (1,000 queued messages per client) silently drops the rest (deploy/ raises it too, and
    // so does the test broker).
    let broker = Mosquitto::start().unwrap();
    let port = broker.port();
    let (_dir, store) = sled_store();
    let mut hq = start_collector(port, store.clone(), "hq-1")
        .subscribed()
        .await;
    let mut agent = FakeAgent::connect(port, "agents").await;
    let publishers: Vec<FakeAgent> = {
        let mut list = Vec::new();
        for i in 0..4 {
            list.push(FakeAgent::connect(port, &format!("publisher-{i}")).await);
        }
        list
    };
    let messages: Vec<SyncMessage> = (0..stores)
        .flat_map(|s| {
            (0..per_store).map(move |n| window(&format!("store-{s:04}"), n as i64, n + 1))
        })
        .collect();
    let started = Instant::now();
    let mut sends = Vec::new();
    for (i, chunk) in messages
        .chunks(messages.len().div_ceil(publishers.len()))
        .enumerate()
    {
        let client = publishers[i].client.clone();
        let bodies: Vec<(String, Vec<u8>)> = chunk
            .iter()
            .map(|m| (summary_topic(&m.key.store_id), m.encode()))
            .collect();
        sends.push(tokio::spawn(async move {
            for (topic, body) in bodies {
                client
                    .publish(topic, QoS::AtLeastOnce, false, body)
                    .await
                    .unwrap();
            }
        }));
    }
    for send in sends {
        send.await.unwrap();
    }
    agent
        .wait_acked_within(&messages, Duration::from_secs(600))
        .await;
    let elapsed = started.elapsed();
    let stats = hq
        .wait("every insert", |s| s.inserted == messages.len() as u64)
        .await;
    eprintln!(
        "{} summaries from {stores} stores stored and acked in {:.1} s ({:.0}/s); {} ack messages",
        messages.len(),
        elapsed.as_secs_f64(),
        messages.len() as f64 / elapsed.as_secs_f64(),
        stats.acks_published
    );
    assert_eq!(stats.shed, 0, "{stats:?}");
    assert_eq!(stats.ack_publish_failures, 0, "{stats:?}");
    assert_eq!(
        stats.acked_seqs,
        messages.len() as u64,
        "every seq acked exactly once: {stats:?}"
    );
    hq.stop().await;
}

/// Waits (polling, generously) until `condition` holds.
fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_collect_drains_on_sigterm_and_exits_0_with_plain_logs() {
    let broker = broker();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hq-data");
    let log = dir.path().join("hq.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hq"))
        .args([
            "collect",
            "--broker",
            &format!("mqtt://127.0.0.1:{}", broker.port()),
        ])
        .args(["--db", db.to_str().unwrap(), "--client-id", "hq-sigterm"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the subscription", WAIT, || {
        read_log().contains("Subscribed")
    });
    let mut agent = FakeAgent::connect(broker.port(), "agent-1").await;
    let m = window("paris-01", 0, 9);
    agent.send(&m).await;
    agent.wait_acked(std::slice::from_ref(&m)).await;

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            panic!("hq collect ignored SIGTERM: {}", read_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = read_log();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("SIGTERM"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI colours in a log file: {text:?}"
    );
    let stored = SledHqStore::open(&db).unwrap();
    assert_eq!(tables(&stored).0.len(), 1);
}

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "storefront test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: cert.pem(),
        server_key: key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_reaches_a_tls_broker_with_a_ca_file_and_a_password() {
    if !Mosquitto::available() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI needs mosquitto"
        );
        eprintln!("SKIPPED: mosquitto is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    for (name, pem) in [
        ("ca.pem", &pki.ca),
        ("server.pem", &pki.server_cert),
        ("server.key", &pki.server_key),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let passwords = dir.path().join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c", passwords.to_str().unwrap(), "hq", "hq-secret"])
        .status()
        .expect("mosquitto_passwd runs");
    assert!(made.success());
    let _ = Command::new("mosquitto_passwd")
        .args(["-b", passwords.to_str().unwrap(), "store", "store-secret"])
        .status();
    let (tls_port, plain_port) = (free_port().unwrap(), free_port().unwrap());
    let d = dir.path().display();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "allow_anonymous false\npassword_file {d}/passwd\n\
             listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
             listener {plain_port} 127.0.0.1\n"
        ),
    )
    .unwrap();
    let _broker = Mosquitto::start_with_config(&conf, tls_port).unwrap();
    let password_file = dir.path().join("hq-password");
    std::fs::write(&password_file, "hq-secret\n").unwrap();

    let store = Arc::new(MemoryHqStore::new());
    let mut config =
        CollectorConfig::new(&format!("mqtts://localhost:{tls_port}"), "hq-tls", "hq").unwrap();
    config.tls.ca_file = Some(dir.path().join("ca.pem"));
    config.credentials = Some((
        "hq".into(),
        storefront_mqtt::read_password(&password_file).unwrap(),
    ));
    let mut hq = start_collector_with(config, store.clone())
        .subscribed()
        .await;

    let mut options = MqttOptions::new("store-1", "127.0.0.1", plain_port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_credentials("store", "store-secret");
    let mut agent = FakeAgent::connect_with(options).await;
    let m = window("paris-01", 0, 1);
    agent.send(&m).await;
    agent.wait_acked(std::slice::from_ref(&m)).await;
    let stats = hq.wait("the summary", |s| s.inserted == 1).await;
    assert_eq!(stats.connection_errors, 0, "{stats:?}");
    hq.stop().await;
    assert_eq!(
        store
            .windows(None, Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap()
            .len(),
        1
    );

    // A wrong password is refused: the collector keeps retrying and never subscribes.
    let mut wrong =
        CollectorConfig::new(&format!("mqtts://localhost:{tls_port}"), "hq-wrong", "hq").unwrap();
    wrong.tls.ca_file = Some(dir.path().join("ca.pem"));
    wrong.credentials = Some(("hq".into(), "not-it".into()));
    let mut refused = start_collector_with(wrong, Arc::new(MemoryHqStore::new()));
    let stats = refused
        .wait("a refused connection", |s| s.connection_errors >= 1)
        .await;
    assert_eq!(stats.subscriptions, 0);
    refused.stop().await;
}
