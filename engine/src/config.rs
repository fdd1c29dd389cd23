//! What the engine needs to know about the store: already validated (the `config` crate turns
//! a TOML file into this), with every duration in milliseconds.

use chrono_tz::Tz;
use storefront_protocol::DeviceId;

use crate::Limits;

/// Whether a zone faces the street (passers-by) or is inside the store (visits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneKind {
    Storefront,
    InStore,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ZoneConfig {
    pub id: String,
    pub kind: ZoneKind,
    /// Scanner ids whose sightings count for this zone. A scanner belongs to one zone.
    pub scanners: Vec<String>,
    /// Smoothed RSSI at or above which presence can start, dBm.
    pub enter_rssi_dbm: i16,
    /// Smoothed RSSI below which presence ends (hysteresis), dBm.
    pub exit_rssi_dbm: i16,
}

/// Every threshold of `METRICS.md`, in milliseconds where it is a duration.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub detect_rssi_dbm: i16,
    pub smoothing_ms: i64,
    pub min_samples: usize,
    pub presence_confirm_ms: i64,
    pub presence_timeout_ms: i64,
    pub visit_gap_ms: i64,
    pub visit_max_ms: i64,
    pub bounce_ms: i64,
    pub zone_min_dwell_ms: i64,
    pub repeat_lookback_days: u32,
    /// Window length; divides an hour so windows align with local hours.
    pub window_seconds: u32,
    /// How long the engine waits for late events before it treats a moment as past.
    pub max_event_delay_ms: i64,
    /// Door records and sales are counted this late (a window stays open this long past its
    /// end for them).
    pub max_count_delay_ms: i64,
    /// An input counts as alive this long after each event or sign of life from it.
    pub coverage_grace_ms: i64,
}

impl Default for Thresholds {
    /// The defaults of `METRICS.md`.
    fn default() -> Self {
        Thresholds {
            detect_rssi_dbm: -90,
            smoothing_ms: 10_000,
            min_samples: 3,
            presence_confirm_ms: 5_000,
            presence_timeout_ms: 30_000,
            visit_gap_ms: 300_000,
            visit_max_ms: 10_800_000,
            bounce_ms: 120_000,
            zone_min_dwell_ms: 10_000,
            repeat_lookback_days: 30,
            window_seconds: 900,
            max_event_delay_ms: 5_000,
            max_count_delay_ms: 120_000,
            coverage_grace_ms: 120_000,
        }
    }
}

/// The engine's whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub store_id: String,
    pub timezone: Tz,
    pub zones: Vec<ZoneConfig>,
    /// Door-counter sensor ids; with none, `door_in` is absent and sales conversion uses entries.
    pub door_sensors: Vec<String>,
    /// POS system ids (the `source` of their signs of life); with none, a summary's coverage
    /// has no POS figure.
    pub pos_sources: Vec<String>,
    /// Consented staff badges: never counted.
    pub staff_devices: Vec<DeviceId>,
    pub thresholds: Thresholds,
    /// True when pseudonyms live at least `repeat_lookback_days` (key rotation period): only
    /// then can a visit be recognised as a repeat.
    pub repeat_measurable: bool,
    /// Bounds on the state outside input can grow.
    pub limits: Limits,
}
