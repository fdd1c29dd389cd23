//! Shared by the agent's integration tests: a simulated day on disk, a config pointing at a
//! private broker, an in-process HQ collector, and the agent binary as a child process.

#![allow(dead_code)] // each test file uses its own part

pub mod live;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use storefront_agent::events_file::EventWriter;
use storefront_config::StoreConfig;
use storefront_devtools::replay::{ReplayOutput, finish};
use storefront_engine::Engine;
use storefront_hq::{Collector, CollectorConfig, HqStats, HqStore, SledHqStore};
use storefront_protocol::{DailySummary, Timestamp, WindowSummary};
use storefront_simulator::{ProfileName, TruthDay};
use tokio::sync::watch;

pub const ALL_TIME: (Timestamp, Timestamp) = (Timestamp(i64::MIN / 2), Timestamp(i64::MAX / 2));

/// One simulated day written as an events file, with its truth.
pub fn write_day(dir: &Path, profile: ProfileName, seed: u64) -> (PathBuf, TruthDay) {
    let day = storefront_tests::simulated_day(profile, seed);
    let path = dir.join("events.jsonl");
    let mut writer = EventWriter::create(&path).unwrap();
    for event in &day.events {
        writer.write(event).unwrap();
    }
    writer.finish().unwrap();
    (path, day.truth)
}

/// The profile's example config with its database in `dir` and sync to the test broker.
pub fn write_config(dir: &Path, profile: ProfileName, port: u16) -> PathBuf {
    let example = storefront_tests::example_config_path(profile);
    let mut table: toml::Table =
        toml::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let mut storage = toml::Table::new();
    storage.insert(
        "path".into(),
        dir.join("agent-db").display().to_string().into(),
    );
    table.insert("storage".into(), storage.into());
    let mut sync = toml::Table::new();
    sync.insert("broker".into(), format!("mqtt://127.0.0.1:{port}").into());
    table.insert("sync".into(), sync.into());
    // Each test's agent serves its dashboard on a port of its own.
    let mut dashboard = toml::Table::new();
    let port = storefront_broker::free_port().unwrap();
    dashboard.insert("bind".into(), format!("127.0.0.1:{port}").into());
    table.insert("dashboard".into(), dashboard.into());
    let path = dir.join("store.toml");
    std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
    path
}

/// What an uninterrupted run must produce: the engine over the file, as HQ should hold it
/// (distributions redacted for k-anonymity).
pub fn expected(config: &Path, events: &Path) -> (Vec<WindowSummary>, Vec<DailySummary>) {
    let config = StoreConfig::load(config).unwrap();
    let mut engine = Engine::new(config.engine_config());
    storefront_agent::events_file::read_events(events, |e| engine.handle_event(&e, e.time()))
        .unwrap();
    let ReplayOutput { mut windows, days } = finish(&mut engine);
    // Windows become final out of order (a long visit holds its window open); HQ lists by time.
    windows.sort_by_key(|w| w.window_start);
    let min_count = u64::from(config.privacy.min_count);
    (
        windows.iter().map(|w| w.redacted(min_count)).collect(),
        days.iter().map(|d| d.redacted(min_count)).collect(),
    )
}

pub struct Hq {
    pub store: Arc<SledHqStore>,
    pub stats: watch::Receiver<HqStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<HqStats, storefront_hq::HqError>>,
}

impl Hq {
    pub fn start(dir: &Path, port: u16) -> Hq {
        let store = Arc::new(SledHqStore::open(dir.join("hq-db")).unwrap());
        let config =
            CollectorConfig::new(&format!("mqtt://127.0.0.1:{port}"), "test-hq", "hq").unwrap();
        let collector = Collector::new(config, store.clone()).unwrap();
        let stats = collector.stats();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(collector.run(stop_rx));
        Hq {
            store,
            stats,
            stop,
            task,
        }
    }

    pub fn windows(&self, store: &str) -> Vec<WindowSummary> {
        self.store
            .windows(Some(store), ALL_TIME.0, ALL_TIME.1)
            .unwrap()
            .into_iter()
            .map(|s| {
                assert!(!s.conflicted, "HQ holds a conflicting copy");
                s.summary
            })
            .collect()
    }

    pub fn days(&self, store: &str) -> Vec<DailySummary> {
        self.store
            .days(Some(store), "0000-01-01", "9999-12-31")
            .unwrap()
            .into_iter()
            .map(|s| {
                assert!(!s.conflicted, "HQ holds a conflicting copy");
                s.summary
            })
            .collect()
    }

    pub async fn stop(self) -> HqStats {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap()
    }
}

/// `agent run --config … --replay …` as a child process.
pub fn spawn_agent(config: &Path, events: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", "--config"])
        .arg(config)
        .arg("--replay")
        .arg(events)
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("AGENT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the agent binary runs")
}

/// Waits for the child to exit by itself, at most `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the agent did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An MQTT client on the test broker, its event loop polled in the background.
pub async fn publisher(port: u16, id: &str) -> rumqttc::AsyncClient {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    // Room for the oversized payloads the hostile tests send.
    options.set_max_packet_size(4 << 20, 4 << 20);
    options.set_inflight(1000);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10_000);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    client
}

/// Asserts two summary lists are equal, reporting the first difference briefly (a whole day
/// of windows is too long to print).
pub fn assert_same<T: PartialEq + std::fmt::Debug>(what: &str, actual: &[T], expected: &[T]) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {} vs {} expected",
        actual.len(),
        expected.len()
    );
    if let Some(i) = (0..actual.len()).find(|&i| actual[i] != expected[i]) {
        panic!(
            "{what}: item {i} differs:\n actual   {:?}\n expected {:?}",
            actual[i], expected[i]
        );
    }
}

/// Waits (off the async workers) for a spawned agent to finish by itself, and checks it
/// succeeded.
pub async fn finishes(mut agent: Child) {
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut agent, Duration::from_secs(600)))
            .await
            .unwrap();
    assert!(status.success(), "agent exit: {status}");
}

/// HQ holds exactly what an uninterrupted run of the agent over `events` produces.
pub fn assert_hq_holds_the_run(
    hq: &Hq,
    store: &str,
    config: &Path,
    events: &Path,
) -> (Vec<WindowSummary>, Vec<DailySummary>) {
    let (windows, days) = expected(config, events);
    assert_same(
        "HQ's windows (none missing, none different)",
        &hq.windows(store),
        &windows,
    );
    assert_same("HQ's days", &hq.days(store), &days);
    (windows, days)
}

/// GET a JSON document from the agent's HTTP server.
pub async fn get(url: &str) -> Value {
    // One tiny HTTP/1.1 GET over a TcpStream: the tests need no HTTP client crate.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream
        .write_all(
            format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "GET {url}: {head}");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}
