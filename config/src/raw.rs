//! Phase one: the file exactly as written. Every optional setting has a serde default, unknown
//! keys are rejected, and nothing is checked beyond TOML types. Numbers are `i64` and enumerated
//! settings are strings so that out-of-range values and misspelt choices reach validation, which
//! reports them all at once with their field, instead of stopping serde at the first one.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub store: RawStore,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub zones: Vec<RawZone>,
    #[serde(default)]
    pub door_sensors: Vec<RawDoorSensor>,
    #[serde(default)]
    pub pos_systems: Vec<RawPosSystem>,
    #[serde(default)]
    pub privacy: RawPrivacy,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub sources: RawSources,
    #[serde(default)]
    pub dashboard: RawDashboard,
    #[serde(default)]
    pub limits: RawLimits,
}

/// Bounds on the engine's state fed from outside (see `storefront_engine::Limits`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLimits {
    pub max_tracked_devices: i64,
    pub max_visit_history: i64,
    pub max_dedup_ids: i64,
    pub max_door_crossings_per_minute: i64,
}

impl Default for RawLimits {
    fn default() -> Self {
        let engine = storefront_engine::Limits::default();
        RawLimits {
            max_tracked_devices: engine.max_tracked_devices as i64,
            max_visit_history: engine.max_visit_history as i64,
            max_dedup_ids: engine.max_dedup_ids as i64,
            max_door_crossings_per_minute: i64::from(engine.max_door_crossings_per_minute),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDashboard {
    pub bind: String,
    pub token_file: String,
    pub max_connections: i64,
    pub header_timeout_seconds: i64,
    pub request_timeout_seconds: i64,
}

impl Default for RawDashboard {
    fn default() -> Self {
        RawDashboard {
            bind: "127.0.0.1:8080".to_owned(),
            token_file: String::new(),
            max_connections: 64,
            header_timeout_seconds: 10,
            request_timeout_seconds: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub id: String,
    pub org: String,
    #[serde(default)]
    pub name: String,
    pub timezone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMetrics {
    pub detect_rssi_dbm: i64,
    pub smoothing_seconds: i64,
    pub min_samples: i64,
    pub enter_rssi_dbm: i64,
    pub exit_rssi_dbm: i64,
    pub presence_confirm_seconds: i64,
    pub presence_timeout_seconds: i64,
    pub visit_gap_seconds: i64,
    pub visit_max_seconds: i64,
    pub bounce_seconds: i64,
    pub zone_min_dwell_seconds: i64,
    pub repeat_lookback_days: i64,
    pub window_seconds: i64,
    pub max_event_delay_seconds: i64,
    pub max_count_delay_seconds: i64,
    pub coverage_grace_seconds: i64,
}

impl Default for RawMetrics {
    /// The defaults of `METRICS.md`.
    fn default() -> Self {
        RawMetrics {
            detect_rssi_dbm: -90,
            smoothing_seconds: 10,
            min_samples: 3,
            enter_rssi_dbm: -75,
            exit_rssi_dbm: -80,
            presence_confirm_seconds: 5,
            presence_timeout_seconds: 30,
            visit_gap_seconds: 300,
            visit_max_seconds: 10_800,
            bounce_seconds: 120,
            zone_min_dwell_seconds: 10,
            repeat_lookback_days: 30,
            window_seconds: 900,
            max_event_delay_seconds: 5,
            max_count_delay_seconds: 120,
            coverage_grace_seconds: 120,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawZone {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub scanners: Vec<String>,
    #[serde(default)]
    pub enter_rssi_dbm: Option<i64>,
    #[serde(default)]
    pub exit_rssi_dbm: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDoorSensor {
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPosSystem {
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPrivacy {
    pub pseudonym_rotation_days: i64,
    pub retention_days: i64,
    pub min_count: i64,
    pub staff_devices: Vec<String>,
}

impl Default for RawPrivacy {
    fn default() -> Self {
        RawPrivacy {
            pseudonym_rotation_days: 1,
            retention_days: 400,
            min_count: 5,
            staff_devices: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawStorage {
    pub path: String,
    pub cache_capacity_mb: i64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            path: "storefront-data".to_owned(),
            cache_capacity_mb: 16,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSync {
    pub broker: String,
    pub client_id: String,
    pub username: String,
    pub password_file: String,
    pub ca_file: String,
    pub client_cert_file: String,
    pub client_key_file: String,
    pub publish_per_second: i64,
    pub outbox_max_entries: i64,
    pub keep_alive_seconds: i64,
}

impl Default for RawSync {
    fn default() -> Self {
        RawSync {
            broker: "mqtt://127.0.0.1:1883".to_owned(),
            client_id: String::new(),
            username: String::new(),
            password_file: String::new(),
            ca_file: String::new(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
            publish_per_second: 20,
            outbox_max_entries: 100_000,
            keep_alive_seconds: 30,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSources {
    pub ble: RawBle,
    pub scanner_mqtt: Vec<RawScannerMqtt>,
    pub pos: RawPos,
    pub ingest: RawIngest,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawIngest {
    pub token_file: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBle {
    pub enabled: bool,
    pub adapters: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScannerMqtt {
    pub format: String,
    /// Empty: the format's usual topic.
    #[serde(default)]
    pub topic: String,
    /// Node (or room) name as published → scanner id. Names not listed are used as is.
    #[serde(default)]
    pub scanner_ids: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPos {
    pub url: String,
    pub poll_seconds: i64,
    pub auth_header_file: String,
    pub system: String,
}

impl Default for RawPos {
    fn default() -> Self {
        RawPos {
            url: String::new(),
            poll_seconds: 30,
            auth_header_file: String::new(),
            system: String::new(),
        }
    }
}
