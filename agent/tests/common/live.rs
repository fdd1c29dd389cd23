//! The live sources in process: a boutique config with given `[sources]`, the sources running
//! into a collecting channel, their ingest routes served on a port of their own.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, QoS};
use storefront_agent::clock::{Clock, SharedClock};
use storefront_agent::daemon::BrokerAddress;
use storefront_agent::daemon::source::SourceMessage;
use storefront_agent::live::{LiveHealth, LiveSources};
use storefront_config::StoreConfig;
use storefront_protocol::Event;
use storefront_protocol::privacy::Pseudonymizer;
use storefront_simulator::ProfileName;
use tokio::sync::{mpsc, watch};

/// The boutique example with its database in `dir` and the given `[sources]`.
pub fn config(dir: &Path, sources: toml::Table) -> StoreConfig {
    let example = storefront_tests::example_config_path(ProfileName::Boutique);
    let mut table: toml::Table =
        toml::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let mut storage = toml::Table::new();
    storage.insert("path".into(), dir.join("db").display().to_string().into());
    table.insert("storage".into(), storage.into());
    table.insert("sources".into(), sources.into());
    let path = dir.join("store.toml");
    StoreConfig::parse(&toml::to_string(&table).unwrap(), &path).unwrap()
}

pub struct Harness {
    pub health: Arc<LiveHealth>,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub pseudonymizer: watch::Receiver<Pseudonymizer>,
    pub stop: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub sources_router: axum::Router,
}

/// A clock a test sets.
#[derive(Default)]
pub struct ManualClock(pub AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    pub fn at(ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

/// The live sources on the wall clock.
pub fn start(config: &StoreConfig, broker_port: Option<u16>) -> Harness {
    start_on(config, broker_port, storefront_agent::clock::system())
}

/// The live sources on `clock`.
pub fn start_on(config: &StoreConfig, broker_port: Option<u16>, clock: SharedClock) -> Harness {
    let broker = broker_port.map(|port| BrokerAddress {
        host: "127.0.0.1".into(),
        port,
        tls: false,
    });
    let live = LiveSources::from_config(config, broker, clock).unwrap();
    let health = Arc::new(LiveHealth::for_config(config));
    let (out, mut rx) = mpsc::channel(8192);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if let SourceMessage::Event(event, cursor) = message {
                assert_eq!(cursor, None, "live sources have no cursor");
                sink.lock().unwrap().push(event);
            }
        }
    });
    let (stop, shutdown) = watch::channel(false);
    let pseudonymizer = live.pseudonymizer();
    let sources_router = live.ingest_router(out.clone(), health.clone());
    let task = tokio::spawn(live.run(out, health.clone(), shutdown));
    Harness {
        health,
        events,
        pseudonymizer,
        stop,
        task,
        sources_router,
    }
}

impl Harness {
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("live sources stop on shutdown")
            .unwrap()
            .unwrap();
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, what: &str, mut done: impl FnMut(&Harness) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}",
                self.health.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the MQTT inputs have subscribed to every filter: a retained transaction on
    /// the last filter subscribed (the POS topic) has arrived.
    pub async fn wait_subscribed(&self, publisher: &AsyncClient) {
        publisher
            .publish(
                "storefront/local/pos/probe",
                QoS::AtLeastOnce,
                true,
                r#"{"id":"probe","time":1763888500000}"#,
            )
            .await
            .unwrap();
        self.wait_for("the subscriptions", |h| {
            h.events()
                .iter()
                .any(|e| matches!(e, Event::Transaction(t) if t.id == "probe"))
        })
        .await;
    }
}

pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

pub fn http() -> reqwest::Client {
    storefront_mqtt::install_crypto_provider();
    reqwest::Client::new()
}
