//! Phase two: the validated, typed config. Everything here has been checked; code that holds a
//! [`StoreConfig`](crate::StoreConfig) never needs to check a setting again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use storefront_engine::ZoneKind;
use storefront_protocol::DeviceId;

/// Who the store is, as it appears in MQTT topics and on dashboards.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreInfo {
    /// Topic-safe store id (a topic level: `storefront/v1/<org>/<store>/...`).
    pub id: String,
    /// Topic-safe id of the organisation (the chain) the store belongs to.
    pub org: String,
    /// Display name; the id when not set.
    pub name: String,
    /// Local time zone: windows and days are aligned to it.
    pub timezone: Tz,
}

/// The thresholds of `METRICS.md`, durations as [`Duration`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// Sightings weaker than this are ignored.
    pub detect_rssi_dbm: i16,
    /// Median window of the smoothed RSSI.
    pub smoothing: Duration,
    /// Readings needed in the smoothing window for a smoothed RSSI to exist.
    pub min_samples: usize,
    /// Zones' default enter threshold.
    pub enter_rssi_dbm: i16,
    /// Zones' default exit threshold (hysteresis).
    pub exit_rssi_dbm: i16,
    pub presence_confirm: Duration,
    pub presence_timeout: Duration,
    pub visit_gap: Duration,
    pub visit_max: Duration,
    pub bounce: Duration,
    pub zone_min_dwell: Duration,
    pub repeat_lookback_days: u32,
    /// Window length; divides an hour into whole minutes.
    pub window_seconds: u32,
    /// How long to wait for late events.
    pub max_event_delay: Duration,
    /// How late door records and sales still count (their window stays open this long).
    pub max_count_delay: Duration,
    /// An input counts as alive this long after each event or sign of life from it.
    pub coverage_grace: Duration,
}

impl Default for Metrics {
    /// The defaults of `METRICS.md`.
    fn default() -> Self {
        let s = Duration::from_secs;
        Metrics {
            detect_rssi_dbm: -90,
            smoothing: s(10),
            min_samples: 3,
            enter_rssi_dbm: -75,
            exit_rssi_dbm: -80,
            presence_confirm: s(5),
            presence_timeout: s(30),
            visit_gap: s(300),
            visit_max: s(10_800),
            bounce: s(120),
            zone_min_dwell: s(10),
            repeat_lookback_days: 30,
            window_seconds: 900,
            max_event_delay: s(5),
            max_count_delay: s(120),
            coverage_grace: s(120),
        }
    }
}

/// A zone with its thresholds resolved (its own, or `[metrics]`'s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub id: String,
    pub kind: ZoneKind,
    /// Scanner ids whose sightings count for this zone; each belongs to this zone only.
    pub scanners: Vec<String>,
    pub enter_rssi_dbm: i16,
    pub exit_rssi_dbm: i16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privacy {
    /// How long a pseudonym key lives; repeat visits are measurable only if this covers the lookback.
    pub pseudonym_rotation_days: u32,
    /// How long aggregates are kept.
    pub retention_days: u32,
    /// Distributions over fewer visits leave the store as counts only (k-anonymity).
    pub min_count: u32,
    /// Consented staff badges, never counted.
    pub staff_devices: Vec<DeviceId>,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            pseudonym_rotation_days: 1,
            retention_days: 400,
            min_count: 5,
            staff_devices: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    /// The database directory, resolved against the config file's directory.
    pub path: PathBuf,
    /// Page cache size in bytes.
    pub cache_capacity_bytes: u64,
}

/// Where summaries are published: an MQTT broker; `tls` for `mqtts://`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Default for Broker {
    /// The gateway's own broker (mosquitto, which can bridge to HQ's).
    fn default() -> Self {
        Broker {
            host: "127.0.0.1".into(),
            port: 1883,
            tls: false,
        }
    }
}

/// Sync to HQ over MQTT. (Not named `Sync`, which would shadow the marker trait.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    pub broker: Broker,
    /// `storefront-<org>-<store>` unless set.
    pub client_id: String,
    pub username: Option<String>,
    /// A file holding the password: the config never holds the secret itself.
    pub password_file: Option<PathBuf>,
    /// CA bundle for `mqtts://`; the system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mutual TLS: both or neither.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Publish rate limit, so a backlog after an outage does not flood the broker.
    pub publish_per_second: u32,
    /// Outbox bound; beyond it the oldest unsent summaries are dropped (and counted).
    pub outbox_max_entries: u64,
    pub keep_alive: Duration,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    pub ble: BleSource,
    pub scanner_mqtt: Vec<ScannerMqttSource>,
    /// POS poller; `None` when no URL is configured.
    pub pos: Option<PosSource>,
    pub ingest: IngestSource,
}

/// The HTTP ingest routes (`POST /ingest/v1/door`, `/ingest/v1/transactions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestSource {
    /// A file holding the token senders present (`Authorization: Bearer …`); required when
    /// the HTTP server listens beyond loopback, open to local senders only otherwise.
    pub token_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BleSource {
    /// Scan with the agent's own Bluetooth adapters.
    pub enabled: bool,
    /// Adapter names (`hci0`); empty means all.
    pub adapters: Vec<String>,
}

/// Message format of BLE scanner nodes publishing on the store's broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScannerFormat {
    /// ESPresense: `espresense/devices/<id>/<room>`.
    Espresense,
    /// Theengs Gateway: `home/<gateway>/BTtoMQTT/<mac>`.
    Theengs,
    /// Home Assistant's `mqtt_room`: `room_presence/<room>`.
    MqttRoom,
}

impl ScannerFormat {
    pub const ALL: [(&'static str, ScannerFormat); 3] = [
        ("espresense", ScannerFormat::Espresense),
        ("theengs", ScannerFormat::Theengs),
        ("mqtt_room", ScannerFormat::MqttRoom),
    ];

    /// The topic filter these nodes publish on by default.
    pub fn default_topic(self) -> &'static str {
        match self {
            ScannerFormat::Espresense => "espresense/devices/#",
            ScannerFormat::Theengs => "home/+/BTtoMQTT/#",
            ScannerFormat::MqttRoom => "room_presence/#",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannerMqttSource {
    pub format: ScannerFormat,
    /// MQTT topic filter to subscribe to.
    pub topic: String,
    /// Node (or room) name as published → scanner id; names not listed are scanner ids as is.
    pub scanner_ids: BTreeMap<String, String>,
}

impl ScannerMqttSource {
    /// The scanner id of a node or room name.
    pub fn scanner_id<'a>(&'a self, node: &'a str) -> &'a str {
        self.scanner_ids.get(node).map_or(node, String::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PosSource {
    /// HTTP(S) endpoint returning the store's transactions as JSON.
    pub url: String,
    pub poll_interval: Duration,
    /// File holding an `Authorization` header value, kept out of the config.
    pub auth_header_file: Option<PathBuf>,
    /// The `pos_systems` id the polled endpoint is: each successful poll is its sign of life
    /// (POS coverage). `None` when the config lists no POS system.
    pub system: Option<String>,
}

/// The local web dashboard and its JSON API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dashboard {
    /// Where to listen; `None` turns the HTTP server off. Loopback by default: opening it to
    /// the shop's network is a decision to write down.
    pub bind: Option<std::net::SocketAddr>,
    /// A file holding the access token (`Authorization: Bearer …`); none means no token.
    pub token_file: Option<PathBuf>,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers (or sit idle between
    /// requests) before it is closed.
    pub header_timeout: Duration,
    /// How long one request may take, body included, before it is answered `408`.
    pub request_timeout: Duration,
}
