//! What the dashboard reads: the [`DashboardSource`] trait the agent implements, and the plain
//! views it hands over. The dashboard never writes anything back.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use storefront_protocol::{DailySummary, Timestamp, WindowSummary};

/// The agent's data, as the dashboard needs it. Every call must be cheap enough for a page
/// refresh (the page polls every 30 s, every 2 s during a replay or the demo); `days` and
/// `windows` may read the store and are called off the async runtime (`spawn_blocking`).
pub trait DashboardSource: Send + Sync + 'static {
    /// Who and where the store is.
    fn store(&self) -> StoreView;
    /// Final daily summaries whose `local_date` lies in `from..=to` (any order, gaps allowed).
    fn days(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<Vec<DailySummary>>;
    /// Final windows whose `window_start` lies in `from..to` (half-open, UTC).
    fn windows(&self, from: Timestamp, to: Timestamp) -> anyhow::Result<Vec<WindowSummary>>;
    /// Windows that are not final yet, with what is known so far
    /// (`Engine::provisional_windows`).
    fn provisional(&self) -> Vec<WindowSummary>;
    /// Occupancy now, and the clock that decides what "today" is.
    fn live(&self) -> LiveView;
    /// Sensors, sync and readiness.
    fn health(&self) -> HealthView;
    /// Counters and gauges for `/metrics`.
    fn metrics(&self) -> MetricsView;
}

/// The store as configured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoreView {
    pub id: String,
    /// Display name for the page title and the report.
    pub name: String,
    /// The store's time zone: local dates, hours and "today" follow it.
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: Tz,
    /// In-store zone ids in display order (zones absent from a day's data still get a row).
    pub zones: Vec<String>,
    /// With a door counter, counts are also shown scaled by door_in / entries.
    pub has_door_sensor: bool,
}

fn serialize_tz<S: Serializer>(tz: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(tz.name())
}

/// Occupancy now.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LiveView {
    /// Devices present in-store now (BLE sample, `Engine::live().devices_in_store`).
    pub devices_in_store: u64,
    /// Door-counter crossings in since the local day began; `None` without a door sensor.
    pub door_in_today: Option<u64>,
    pub door_out_today: Option<u64>,
    /// The agent's clock: decides which local date is "today".
    pub now: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SensorKind {
    Scanner,
    Door,
    Pos,
    BleAdapter,
}

impl SensorKind {
    /// The name in the JSON API and the `kind` label in `/metrics`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SensorKind::Scanner => "scanner",
            SensorKind::Door => "door",
            SensorKind::Pos => "pos",
            SensorKind::BleAdapter => "ble_adapter",
        }
    }
}

impl Serialize for SensorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorStatus {
    Ok,
    /// Heard from, but not recently enough.
    Stale,
    /// Not heard from at all, or gone.
    Offline,
    /// Working with a problem (e.g. resets, rejected records).
    Degraded,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SensorHealth {
    pub kind: SensorKind,
    pub id: String,
    /// Last event received from it, if any.
    pub last_seen: Option<Timestamp>,
    pub status: SensorStatus,
}

/// The link to HQ.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyncView {
    pub connected: bool,
    /// Last summary HQ acknowledged.
    pub last_ack: Option<Timestamp>,
    /// Summaries waiting in the outbox.
    pub backlog: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HealthView {
    pub sensors: Vec<SensorHealth>,
    pub sync: SyncView,
    /// The agent has restored its state and is ingesting: `/readyz` answers 200 only then.
    pub ready: bool,
}

/// Process counters and gauges, exported at `/metrics`. Counters are totals since the process
/// started (Prometheus handles resets).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MetricsView {
    /// Events taken in (all sources).
    pub events_in_total: u64,
    /// Events rejected, by reason (`RejectReason::as_str()` names, plus the agent's own, e.g.
    /// `malformed`).
    pub events_rejected_total: BTreeMap<String, u64>,
    /// Events shed before the engine (full channels), by reason.
    pub events_dropped_total: BTreeMap<String, u64>,
    /// State the engine let go of at its limits, by kind (`Shed::as_str()` names).
    pub engine_shed_total: BTreeMap<String, u64>,
    /// Times the agent's clock stepped back and the engine re-based its time.
    pub clock_steps_back_total: u64,
    /// Commits of summaries and checkpoint that failed (each tried again later).
    pub commit_failures_total: u64,
    /// Windows that became final.
    pub windows_final_total: u64,
    /// Summaries waiting in the outbox.
    pub outbox_depth: u64,
    /// Sequence numbers named by acks that the agent was not waiting on (forged, or a
    /// duplicate): ignored, never removed from the outbox.
    pub sync_acks_ignored_total: u64,
    /// How long the oldest summary HQ has not acknowledged has been over: the agent's clock
    /// minus the end of its window or day; 0 when nothing is waiting.
    pub sync_lag_seconds: f64,
    /// The agent's clock minus the start of the oldest window that is not final yet; 0 when
    /// none is open.
    pub window_finality_lag_seconds: f64,
    /// Bytes on disk of the sled database; `None` when unknown.
    pub sled_size_bytes: Option<u64>,
}
