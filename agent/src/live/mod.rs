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
//! LiveHealth ─────────── alive::run ── every 30 s: Event::Alive of each working input ──► core
//! ```
//!
//! Every source logs its failures (rate-limited) and retries with backoff; none ends
//! [`LiveSources::run`] early. Counters and last-seen times (by reception, on the live clock)
//! are in [`LiveHealth`].
//!
//! Input from a scanner or door sensor the config does not name is rejected where it arrives
//! (`unknown_source`, one counter per input path; [`KnownSources`]), and so is a record dated
//! more than [`MAX_FUTURE_MS`] after its reception: names and times from outside never become
//! map keys or "last seen" times downstream.
//! Live sources have no cursor: what arrived since the last checkpoint is lost on a crash.
//!
//! Architecture invariant: a raw device identity (MAC address, beacon id, alias) is
//! pseudonymised where it is parsed (`scanners::MqttInputs::handle`,
//! `storefront_radio::scan`) and never reaches a channel, a log line or a counter.

pub mod alive;
pub mod health;
pub mod ingest;
pub mod keys;
pub mod pos;
pub mod scanners;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use storefront_config::{Sources, StoreConfig};
use storefront_inputs::{InputError, parse_door, parse_pushed_transaction, parse_transactions};
use storefront_protocol::privacy::Pseudonymizer;
use storefront_protocol::{DoorEvent, Event, Timestamp, Transaction};
use tokio::sync::{mpsc, watch};

pub use self::health::{Input, LiveHealth, LiveHealthSnapshot};
use self::keys::PseudonymKeys;
pub use self::scanners::{DOOR_TOPIC, MqttConnection, MqttInputs, POS_TOPIC};
use crate::clock::SharedClock;
use crate::daemon::BrokerAddress;
use crate::daemon::source::SourceMessage;

/// Sightings from the local radio waiting to be forwarded to the core.
const BLE_CHANNEL: usize = 4096;

/// How far after its reception a record's own time may lie: the engine's bound for events from
/// the future. A door record dated 9999 must not reach the core, whose windows and sensor
/// health follow event times.
pub const MAX_FUTURE_MS: i64 = 120_000;

/// The scanner and door-sensor ids the store's config names: input from any other is rejected
/// as `unknown_source`, so the names an outside sender makes up are never kept.
#[derive(Clone, Debug, Default)]
pub struct KnownSources {
    scanners: BTreeSet<String>,
    door_sensors: BTreeSet<String>,
}

impl KnownSources {
    pub fn new(
        scanners: impl IntoIterator<Item = String>,
        door_sensors: impl IntoIterator<Item = String>,
    ) -> KnownSources {
        KnownSources {
            scanners: scanners.into_iter().collect(),
            door_sensors: door_sensors.into_iter().collect(),
        }
    }

    /// The scanners of the config's zones and its door sensors.
    pub fn for_config(config: &StoreConfig) -> KnownSources {
        KnownSources::new(
            config.zones.iter().flat_map(|z| z.scanners.iter().cloned()),
            config.door_sensors.iter().cloned(),
        )
    }

    pub fn scanner(&self, id: &str) -> bool {
        self.scanners.contains(id)
    }

    pub fn door_sensor(&self, id: &str) -> bool {
        self.door_sensors.contains(id)
    }
}

fn from_the_future(t: Timestamp, received_ms: i64) -> bool {
    t.millis() > received_ms.saturating_add(MAX_FUTURE_MS)
}

const FUTURE: InputError = InputError::OutOfRange {
    field: "time",
    allowed: "at most 2 minutes after the record was received",
};

/// Door records (one or a batch) received at `now_ms`, over MQTT or HTTP: parsed, and refused
/// whole if one names a sensor the config does not or is dated in the future. The sensors of
/// accepted records are marked seen at `now_ms`.
pub(crate) fn door_records(
    payload: &[u8],
    now_ms: i64,
    known: &KnownSources,
    health: &LiveHealth,
) -> Result<Vec<DoorEvent>, InputError> {
    let records = parse_door(payload, Timestamp(now_ms))?;
    if !records.iter().all(|r| known.door_sensor(&r.sensor)) {
        return Err(InputError::UnknownSource {
            what: "door sensor",
        });
    }
    if records.iter().any(|r| from_the_future(r.t, now_ms)) {
        return Err(FUTURE);
    }
    for record in &records {
        health.door_seen(&record.sensor, now_ms);
    }
    Ok(records)
}

/// Pushed transactions received at `now_ms` (see [`parse_pushed_transactions`]), refused whole
/// if one is dated in the future.
pub(crate) fn pushed_transactions(
    payload: &[u8],
    now_ms: i64,
) -> Result<Vec<Transaction>, InputError> {
    let transactions = parse_pushed_transactions(payload)?;
    if transactions.iter().any(|t| from_the_future(t.t, now_ms)) {
        return Err(FUTURE);
    }
    Ok(transactions)
}

/// Splits a polled page's transactions: those dated in the future are rejected (counted) one by
/// one, as the POS will serve the same page again and the rest of it must not be lost.
pub(crate) fn polled_transactions(
    transactions: Vec<Transaction>,
    now_ms: i64,
    health: &LiveHealth,
) -> Vec<Transaction> {
    transactions
        .into_iter()
        .filter(|t| {
            let future = from_the_future(t.t, now_ms);
            if future {
                health.rejected(Input::PosPoll, &FUTURE);
            }
            !future
        })
        .collect()
}

/// The configured live sources, ready to run.
pub struct LiveSources {
    sources: Sources,
    known: KnownSources,
    /// The inputs whose signs of life are sent (coverage).
    alive: alive::Inputs,
    /// `Authorization: Bearer` token of the ingest routes (`sources.ingest.token_file`).
    ingest_token: Option<String>,
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
                    Some(crate::daemon::tls_configuration(&config.sync)?)
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
        let ingest_token = config.ingest_token()?;
        let (pseudonymizer, _) = watch::channel(keys.pseudonymizer());
        Ok(LiveSources {
            sources: config.sources.clone(),
            known: KnownSources::for_config(config),
            alive: alive::Inputs::for_config(config),
            ingest_token,
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
            let inputs = MqttInputs::new(
                &self.sources.scanner_mqtt,
                self.known.clone(),
                receiver.clone(),
                health.clone(),
            );
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
        tasks.spawn(alive::run(
            self.alive,
            health.clone(),
            self.clock.clone(),
            out.clone(),
            shutdown.clone(),
        ));
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
        ingest::router(
            ingest::Ingest {
                out,
                health,
                clock: self.clock.clone(),
                known: self.known.clone(),
            },
            self.ingest_token.as_deref(),
        )
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
