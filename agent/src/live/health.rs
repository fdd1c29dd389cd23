//! What the live sources report for health output and metrics: inputs accepted and events
//! produced per input path, rejections by (input path, reason), last-seen times of scanner
//! nodes, door sensors, the POS and BLE adapters, and which scanner nodes are offline (their
//! zones are degraded, not silently empty).
//!
//! Counters are atomics; the per-device maps sit behind one `Mutex` each, held for a map update
//! only. Nothing here holds a raw device identity: nodes, sensors and adapters are named by
//! their configured ids.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use storefront_config::StoreConfig;
use storefront_inputs::{InputError, InputRejection};

/// How many rejections of one input path are logged one by one before the periodic totals.
const LOG_FIRST: u64 = 5;
/// How often the totals of rejections held back from the log are logged.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Scanner nodes tracked by name beyond the configured ones.
pub const MAX_TRACKED_NODES: usize = 256;

/// One input path: where a payload came from and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Scanner nodes over the local MQTT broker (readings and node status).
    ScannerMqtt,
    /// Door counters over MQTT.
    DoorMqtt,
    /// Door counters POSTed to `/ingest/v1/door`.
    DoorHttp,
    /// The POS endpoint, polled.
    PosPoll,
    /// Transactions pushed over MQTT.
    PosMqtt,
    /// Transactions POSTed to `/ingest/v1/transactions`.
    PosHttp,
    /// The agent's own Bluetooth adapters.
    Ble,
}

impl Input {
    pub const ALL: [Input; 7] = [
        Input::ScannerMqtt,
        Input::DoorMqtt,
        Input::DoorHttp,
        Input::PosPoll,
        Input::PosMqtt,
        Input::PosHttp,
        Input::Ble,
    ];

    /// The metrics label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Input::ScannerMqtt => "scanner_mqtt",
            Input::DoorMqtt => "door_mqtt",
            Input::DoorHttp => "door_http",
            Input::PosPoll => "pos_poll",
            Input::PosMqtt => "pos_mqtt",
            Input::PosHttp => "pos_http",
            Input::Ble => "ble",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

const INPUTS: usize = Input::ALL.len();
const REASONS: usize = InputRejection::ALL.len();

fn reason_index(reason: InputRejection) -> usize {
    InputRejection::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(0)
}

/// Last-seen state of one scanner node, door sensor, POS or adapter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Wall-clock time of the last message, epoch milliseconds.
    pub last_seen_ms: Option<i64>,
    /// Messages accepted from it.
    pub messages: u64,
}

/// A scanner node: last seen, and the last status it (or its broker, through the last will)
/// announced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeHealth {
    pub last_seen_ms: Option<i64>,
    pub readings: u64,
    /// `Some(false)` after an `offline` status: the node's zone is degraded until it is back.
    pub online: Option<bool>,
    /// When the status last changed, epoch milliseconds.
    pub status_changed_ms: Option<i64>,
    /// The zone the node's scanner id belongs to, when the config names one.
    pub zone: Option<String>,
}

/// The POS poller's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PosHealth {
    pub last_success_ms: Option<i64>,
    pub last_error_ms: Option<i64>,
    /// The last failure (HTTP status, timeout, rejected page), without response content.
    pub last_error: Option<String>,
    pub consecutive_failures: u64,
    pub pages: u64,
}

/// Counts of one input path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InputCounts {
    /// Payloads accepted (one door batch or POS page is one).
    pub accepted: u64,
    /// Events produced from them.
    pub events: u64,
    /// Payloads rejected, by [`InputRejection`] label.
    pub rejected: BTreeMap<&'static str, u64>,
}

/// A copy of [`LiveHealth`] for health output and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LiveHealthSnapshot {
    pub inputs: BTreeMap<&'static str, InputCounts>,
    /// Whether the MQTT input client is connected to the local broker.
    pub mqtt_connected: bool,
    /// Connection failures of the MQTT input client.
    pub mqtt_connection_errors: u64,
    /// By scanner id.
    pub scanner_nodes: BTreeMap<String, NodeHealth>,
    /// Zones with a scanner node that announced `offline`.
    pub degraded_zones: Vec<String>,
    /// By sensor id.
    pub door_sensors: BTreeMap<String, Seen>,
    /// By scanner id of the adapter.
    pub ble_adapters: BTreeMap<String, Seen>,
    pub pos: PosHealth,
    /// Events not delivered because the core had stopped.
    pub undelivered: u64,
    /// Messages from nodes not tracked by name (unconfigured, over [`MAX_TRACKED_NODES`]).
    pub untracked_nodes: u64,
}

impl LiveHealthSnapshot {
    /// Payloads accepted plus payloads rejected over every input path.
    pub fn payloads_seen(&self) -> u64 {
        self.inputs
            .values()
            .map(|c| c.accepted + c.rejected.values().sum::<u64>())
            .sum()
    }

    pub fn rejected(&self, input: Input, reason: InputRejection) -> u64 {
        self.inputs
            .get(input.as_str())
            .and_then(|c| c.rejected.get(reason.as_str()))
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Default)]
struct RejectLog {
    logged: u64,
    held_back: u64,
    last_total: Option<Instant>,
}

/// Counters and last-seen times of the live sources; shared by every source task and the
/// ingest routes.
pub struct LiveHealth {
    accepted: [AtomicU64; INPUTS],
    events: [AtomicU64; INPUTS],
    rejected: [[AtomicU64; REASONS]; INPUTS],
    mqtt_connected: AtomicBool,
    mqtt_connection_errors: AtomicU64,
    undelivered: AtomicU64,
    untracked_nodes: AtomicU64,
    /// Scanner id → zone id, from the config: an offline node marks its zone degraded.
    zone_of_scanner: BTreeMap<String, String>,
    nodes: Mutex<BTreeMap<String, NodeHealth>>,
    door_sensors: Mutex<BTreeMap<String, Seen>>,
    ble_adapters: Mutex<BTreeMap<String, Seen>>,
    pos: Mutex<PosHealth>,
    pos_last_success: AtomicI64,
    reject_log: Mutex<[RejectLog; INPUTS]>,
}

impl Default for LiveHealth {
    fn default() -> Self {
        LiveHealth::new(BTreeMap::new())
    }
}

impl LiveHealth {
    /// Health with the config's scanner → zone map.
    pub fn for_config(config: &StoreConfig) -> LiveHealth {
        let mut zone_of_scanner = BTreeMap::new();
        for zone in &config.zones {
            for scanner in &zone.scanners {
                zone_of_scanner.insert(scanner.clone(), zone.id.clone());
            }
        }
        LiveHealth::new(zone_of_scanner)
    }

    fn new(zone_of_scanner: BTreeMap<String, String>) -> LiveHealth {
        LiveHealth {
            accepted: Default::default(),
            events: Default::default(),
            rejected: Default::default(),
            mqtt_connected: AtomicBool::new(false),
            mqtt_connection_errors: AtomicU64::new(0),
            undelivered: AtomicU64::new(0),
            untracked_nodes: AtomicU64::new(0),
            zone_of_scanner,
            nodes: Mutex::default(),
            door_sensors: Mutex::default(),
            ble_adapters: Mutex::default(),
            pos: Mutex::default(),
            pos_last_success: AtomicI64::new(i64::MIN),
            reject_log: Mutex::default(),
        }
    }

    /// One payload accepted, giving `events` events.
    pub fn accepted(&self, input: Input, events: usize) {
        self.accepted[input.index()].fetch_add(1, Ordering::Relaxed);
        self.events[input.index()].fetch_add(events as u64, Ordering::Relaxed);
    }

    /// One payload rejected: counted by reason, and logged — the first few one by one, then a
    /// total a minute. The error's message names fields only, never payload content.
    pub fn rejected(&self, input: Input, error: &InputError) {
        let reason = error.reason();
        self.rejected[input.index()][reason_index(reason)].fetch_add(1, Ordering::Relaxed);
        let mut logs = lock(&self.reject_log);
        let log = &mut logs[input.index()];
        if log.logged < LOG_FIRST {
            log.logged += 1;
            tracing::warn!(input = input.as_str(), reason = reason.as_str(), %error, "Rejected an input");
            if log.logged == LOG_FIRST {
                tracing::warn!(
                    input = input.as_str(),
                    "Further rejections of this input are logged as a total once a minute"
                );
                log.last_total = Some(Instant::now());
            }
            return;
        }
        log.held_back += 1;
        let now = Instant::now();
        if log
            .last_total
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            let totals: BTreeMap<&str, u64> = InputRejection::ALL
                .iter()
                .map(|r| {
                    (
                        r.as_str(),
                        self.rejected[input.index()][reason_index(*r)].load(Ordering::Relaxed),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect();
            tracing::warn!(
                input = input.as_str(),
                since_last = log.held_back,
                totals = ?totals,
                "Inputs rejected"
            );
            log.held_back = 0;
            log.last_total = Some(now);
        }
    }

    /// A reading from the scanner node with this scanner id.
    pub fn node_reading(&self, scanner: &str, now_ms: i64) {
        let mut nodes = lock(&self.nodes);
        let Some(node) = self.node_entry(&mut nodes, scanner) else {
            return;
        };
        node.last_seen_ms = Some(now_ms);
        node.readings += 1;
    }

    /// A node's `online` / `offline` status.
    pub fn node_status(&self, scanner: &str, online: bool, now_ms: i64) {
        let mut nodes = lock(&self.nodes);
        let Some(node) = self.node_entry(&mut nodes, scanner) else {
            return;
        };
        if node.online != Some(online) {
            node.status_changed_ms = Some(now_ms);
            if online {
                tracing::info!(scanner, zone = node.zone.as_deref(), "Scanner node online");
            } else {
                tracing::warn!(
                    scanner,
                    zone = node.zone.as_deref(),
                    "Scanner node offline: its zone is degraded"
                );
            }
        }
        node.online = Some(online);
    }

    /// The node's entry; `None` for a node the config does not name once
    /// [`MAX_TRACKED_NODES`] are tracked (a misconfigured or hostile publisher must not grow
    /// the map without bound).
    fn node_entry<'a>(
        &self,
        nodes: &'a mut BTreeMap<String, NodeHealth>,
        scanner: &str,
    ) -> Option<&'a mut NodeHealth> {
        if !nodes.contains_key(scanner) {
            let zone = self.zone_of_scanner.get(scanner).cloned();
            if zone.is_none() && nodes.len() >= MAX_TRACKED_NODES {
                self.untracked_nodes.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            nodes.insert(
                scanner.to_owned(),
                NodeHealth {
                    zone,
                    ..NodeHealth::default()
                },
            );
        }
        nodes.get_mut(scanner)
    }

    pub fn door_seen(&self, sensor: &str, now_ms: i64) {
        seen(&self.door_sensors, sensor, now_ms);
    }

    pub fn ble_seen(&self, scanner: &str, now_ms: i64) {
        seen(&self.ble_adapters, scanner, now_ms);
    }

    /// The MQTT input client is (re)connected, or not. On a new connection every node's
    /// status is forgotten until the broker hands over the retained ones again: a broker that
    /// restarted without persistence lost the last will of a node that died meanwhile, whose
    /// `online` must not outlive it.
    pub fn mqtt_connected(&self, connected: bool) {
        let was = self.mqtt_connected.swap(connected, Ordering::Relaxed);
        if connected && !was {
            for node in lock(&self.nodes).values_mut() {
                node.online = None;
            }
        }
    }

    pub fn mqtt_connection_error(&self) {
        self.mqtt_connection_errors.fetch_add(1, Ordering::Relaxed);
        self.mqtt_connected.store(false, Ordering::Relaxed);
    }

    /// Events that could not be handed to the core because it had stopped.
    pub fn undelivered(&self, events: usize) {
        self.undelivered.fetch_add(events as u64, Ordering::Relaxed);
    }

    pub fn pos_success(&self, now_ms: i64) {
        self.pos_last_success.store(now_ms, Ordering::Relaxed);
        let mut pos = lock(&self.pos);
        pos.last_success_ms = Some(now_ms);
        pos.consecutive_failures = 0;
        pos.pages += 1;
    }

    pub fn pos_failure(&self, now_ms: i64, error: String) {
        let mut pos = lock(&self.pos);
        pos.last_error_ms = Some(now_ms);
        pos.last_error = Some(error);
        pos.consecutive_failures += 1;
    }

    /// Zones with an offline scanner node, sorted.
    pub fn degraded_zones(&self) -> Vec<String> {
        let nodes = lock(&self.nodes);
        let zones: BTreeSet<String> = nodes
            .iter()
            .filter(|(_, n)| n.online == Some(false))
            .map(|(scanner, n)| n.zone.clone().unwrap_or_else(|| scanner.clone()))
            .collect();
        zones.into_iter().collect()
    }

    pub fn snapshot(&self) -> LiveHealthSnapshot {
        let inputs = Input::ALL
            .iter()
            .map(|input| {
                let i = input.index();
                let rejected = InputRejection::ALL
                    .iter()
                    .map(|r| {
                        (
                            r.as_str(),
                            self.rejected[i][reason_index(*r)].load(Ordering::Relaxed),
                        )
                    })
                    .filter(|(_, n)| *n > 0)
                    .collect();
                (
                    input.as_str(),
                    InputCounts {
                        accepted: self.accepted[i].load(Ordering::Relaxed),
                        events: self.events[i].load(Ordering::Relaxed),
                        rejected,
                    },
                )
            })
            .collect();
        // Each lock in its own statement: a guard in the literal below would live to its end.
        let degraded_zones = self.degraded_zones();
        let scanner_nodes = lock(&self.nodes).clone();
        let door_sensors = lock(&self.door_sensors).clone();
        let ble_adapters = lock(&self.ble_adapters).clone();
        let pos = lock(&self.pos).clone();
        LiveHealthSnapshot {
            inputs,
            mqtt_connected: self.mqtt_connected.load(Ordering::Relaxed),
            mqtt_connection_errors: self.mqtt_connection_errors.load(Ordering::Relaxed),
            scanner_nodes,
            degraded_zones,
            door_sensors,
            ble_adapters,
            pos,
            undelivered: self.undelivered.load(Ordering::Relaxed),
            untracked_nodes: self.untracked_nodes.load(Ordering::Relaxed),
        }
    }
}

fn seen(map: &Mutex<BTreeMap<String, Seen>>, id: &str, now_ms: i64) {
    let mut map = lock(map);
    match map.get_mut(id) {
        Some(entry) => {
            entry.last_seen_ms = Some(now_ms);
            entry.messages += 1;
        }
        None => {
            map.insert(
                id.to_owned(),
                Seen {
                    last_seen_ms: Some(now_ms),
                    messages: 1,
                },
            );
        }
    }
}

/// A poisoned lock only means another thread panicked while counting: the counts are still
/// usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offline_node_marks_its_zone_degraded_until_it_is_back() {
        let health = LiveHealth::new(BTreeMap::from([("s1".to_owned(), "entrance".to_owned())]));
        health.node_reading("s1", 1);
        assert!(health.degraded_zones().is_empty());
        health.node_status("s1", false, 2);
        assert_eq!(health.degraded_zones(), vec!["entrance".to_owned()]);
        health.node_status("s1", true, 3);
        assert!(health.degraded_zones().is_empty());
    }

    #[test]
    fn a_new_connection_forgets_node_statuses_until_they_are_heard_again() {
        let health = LiveHealth::new(BTreeMap::from([("s1".to_owned(), "entrance".to_owned())]));
        health.mqtt_connected(true);
        health.node_status("s1", true, 1);
        health.mqtt_connection_error();
        assert_eq!(health.snapshot().scanner_nodes["s1"].online, Some(true));
        health.mqtt_connected(true);
        assert_eq!(health.snapshot().scanner_nodes["s1"].online, None);
    }

    #[test]
    fn rejections_are_counted_by_input_and_reason() {
        let health = LiveHealth::default();
        for _ in 0..20 {
            health.rejected(Input::DoorHttp, &InputError::Oversized { len: 1 << 20 });
        }
        health.accepted(Input::DoorHttp, 3);
        let snapshot = health.snapshot();
        assert_eq!(
            snapshot.rejected(Input::DoorHttp, InputRejection::Oversized),
            20
        );
        assert_eq!(snapshot.payloads_seen(), 21);
        assert_eq!(snapshot.inputs["door_http"].events, 3);
    }
}
