//! The live input sources of the in-store agent: scanner nodes, door counters and pushed POS
//! transactions over the store's local MQTT broker, the POS poller, the agent's own Bluetooth
//! adapters, and HTTP ingest routes for pushed door records and transactions.
//!
//! ```text
//! local broker ──MQTT──► scanners::run_mqtt ─┐   (parse, pseudonymise, stamp with the clock)
//! POS endpoint ◄─HTTP─── pos::run_pos ────────┤
//! Bluetooth adapters ─── radio::run_scanner ──┼──► mpsc<SourceMessage::Event(_, None)> ──► core
//! POST /ingest/v1/… ──── ingest::router ──────┘
//!                        keys::run_rotation ──watch<Pseudonymizer>──► MQTT inputs, radio
//! ```
//!
//! Every source logs its failures (rate-limited) and retries with backoff; none ends
//! [`LiveSources::run`] early. Counters and last-seen times are in [`LiveHealth`].
//! Live sources have no cursor: what arrived since the last checkpoint is lost on a crash.
//!
//! Architecture invariant: a raw device identity (MAC address, beacon id, alias) is
//! pseudonymised where it is parsed (`scanners::MqttInputs::handle`,
//! `storefront_radio::scan`) and never reaches a channel, a log line or a counter.

pub mod health;
pub mod ingest;
pub mod keys;
pub mod pos;
pub mod scanners;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use storefront_config::{Sources, StoreConfig};
use storefront_inputs::{InputError, parse_pushed_transaction, parse_transactions};
use storefront_protocol::privacy::Pseudonymizer;
use storefront_protocol::{Event, Transaction};
use tokio::sync::{mpsc, watch};

pub use self::health::{Input, LiveHealth, LiveHealthSnapshot};
use self::keys::PseudonymKeys;
pub use self::scanners::{DOOR_TOPIC, MqttConnection, MqttInputs, POS_TOPIC};
use crate::clock::SharedClock;
use crate::daemon::BrokerAddress;
use crate::daemon::source::SourceMessage;

/// Sightings from the local radio waiting to be forwarded to the core.
const BLE_CHANNEL: usize = 4096;

/// The configured live sources, ready to run.
pub struct LiveSources {
    sources: Sources,
    mqtt: Option<MqttConnection>,
    keys: PseudonymKeys,
    pseudonymizer: watch::Sender<Pseudonymizer>,
    clock: SharedClock,
}

impl LiveSources {
    /// Opens the pseudonym key (`<storage.path>/pseudonym-key`) and prepares the sources the
    /// config names. `local_broker` is the store's broker the scanner nodes, door counters and
    /// POS push to; without one, no MQTT input runs (an error if scanner nodes are configured).
    /// What arrives is stamped with `clock` (the wall clock but in time-lapse tests), which
    /// must be the clock the core runs on ([`crate::daemon::TimeMode::Wall`]).
    pub fn from_config(
        config: &StoreConfig,
        local_broker: Option<BrokerAddress>,
        clock: SharedClock,
    ) -> Result<LiveSources> {
        let keys = PseudonymKeys::open(
            &config.storage.path,
            config.store.timezone,
            config.privacy.pseudonym_rotation_days,
            keys::utc(clock.now_ms()),
        )?;
        let mqtt = match local_broker {
            Some(broker) => Some(MqttConnection {
                client_id: format!("{}-inputs", config.sync.client_id),
                tls: if broker.tls {
                    Some(crate::daemon::tls::configuration(&config.sync)?)
                } else {
                    None
                },
                host: broker.host,
                port: broker.port,
                credentials: None,
                keep_alive: Duration::from_secs(30),
            }),
            None if !config.sources.scanner_mqtt.is_empty() => bail!(
                "sources.scanner_mqtt is configured but no local broker was given to read it from"
            ),
            None => None,
        };
        let (pseudonymizer, _) = watch::channel(keys.pseudonymizer());
        Ok(LiveSources {
            sources: config.sources.clone(),
            mqtt,
            keys,
            pseudonymizer,
            clock,
        })
    }

    /// The current pseudonymizer, following rotations (for other code that hashes identities).
    pub fn pseudonymizer(&self) -> watch::Receiver<Pseudonymizer> {
        self.pseudonymizer.subscribe()
    }

    /// Runs every configured source until `shutdown`; events go to `out` with cursor `None`.
    /// A failing source logs (rate-limited) and retries with backoff; none ends this early.
    pub async fn run(
        self,
        out: mpsc::Sender<SourceMessage>,
        health: Arc<LiveHealth>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let receiver = self.pseudonymizer.subscribe();
        tasks.spawn(keys::run_rotation(
            self.keys,
            self.clock.clone(),
            self.pseudonymizer,
            shutdown.clone(),
        ));
        if let Some(connection) = self.mqtt {
            let inputs =
                MqttInputs::new(&self.sources.scanner_mqtt, receiver.clone(), health.clone());
            tasks.spawn(scanners::run_mqtt(
                connection,
                inputs,
                self.clock.clone(),
                out.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(pos) = self.sources.pos.clone() {
            tasks.spawn(pos::run_pos(
                pos,
                self.clock.clone(),
                out.clone(),
                health.clone(),
                shutdown.clone(),
            ));
        }
        if self.sources.ble.enabled {
            let options = storefront_radio::scan::ScanOptions {
                adapters: self.sources.ble.adapters.clone(),
                scanner_id_for_adapter: HashMap::new(),
                ..Default::default()
            };
            let (tx, rx) = mpsc::channel(BLE_CHANNEL);
            tasks.spawn(storefront_radio::scan::run_scanner(
                options,
                receiver.clone(),
                tx,
                shutdown.clone(),
            ));
            tasks.spawn(forward_ble(rx, out.clone(), health.clone()));
        }
        drop(out);
        tracing::info!(
            scanner_mqtt = self.sources.scanner_mqtt.len(),
            pos = self.sources.pos.is_some(),
            ble = self.sources.ble.enabled,
            "Live sources running"
        );
        while let Some(result) = tasks.join_next().await {
            result.context("a live source task panicked")?;
        }
        Ok(())
    }

    /// `POST /ingest/v1/door` and `POST /ingest/v1/transactions` (see [`ingest`]), to merge
    /// into the agent's HTTP server.
    pub fn ingest_router(
        &self,
        out: mpsc::Sender<SourceMessage>,
        health: Arc<LiveHealth>,
    ) -> axum::Router {
        ingest::router(out, health, self.clock.clone())
    }
}

/// Forwards the local radio's sightings (already pseudonymous) to the core.
async fn forward_ble(
    mut rx: mpsc::Receiver<storefront_protocol::Sighting>,
    out: mpsc::Sender<SourceMessage>,
    health: Arc<LiveHealth>,
) {
    while let Some(sighting) = rx.recv().await {
        health.ble_seen(&sighting.scanner, sighting.t.millis());
        health.accepted(Input::Ble, 1);
        if out
            .send(SourceMessage::Event(Event::Sighting(sighting), None))
            .await
            .is_err()
        {
            health.undelivered(1);
            return;
        }
    }
}

/// Pushed transactions (MQTT, HTTP): one transaction object, or a page / array of them. A
/// payload that is neither is rejected with the single-transaction parser's reason.
pub fn parse_pushed_transactions(payload: &[u8]) -> Result<Vec<Transaction>, InputError> {
    match parse_pushed_transaction(payload) {
        Ok(transaction) => Ok(vec![transaction]),
        Err(error) => match error {
            InputError::Oversized { .. } | InputError::NotUtf8 { .. } => Err(error),
            _ => parse_transactions(payload)
                .map(|page| page.transactions)
                .map_err(|_| error),
        },
    }
}
