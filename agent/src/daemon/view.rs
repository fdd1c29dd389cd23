//! What the daemon shows its readers (the local dashboard, `/metrics`): a snapshot the core
//! publishes every second, read through `storefront_dashboard::DashboardSource`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use storefront_config::StoreConfig;
use storefront_dashboard::{
    DashboardSource, HealthView, LiveView, MetricsView, SensorHealth, SensorKind, SensorStatus,
    StoreView, SyncView,
};
use storefront_engine::{Engine, IngestStats, ZoneKind};
use storefront_protocol::{DailySummary, Timestamp, WindowSummary};
use storefront_storage::Store;
use tokio::sync::watch;

use super::sync::SyncStatus;

/// A sensor not heard from for this long is stale; three times as long, offline.
const STALE_AFTER_MS: i64 = 5 * 60_000;

/// The core's state as readers see it, refreshed every second.
#[derive(Clone, Debug, Default)]
pub struct EngineView {
    /// The engine's clock: the wall clock live, the latest event time in replays and demos.
    pub now: Timestamp,
    pub provisional: Vec<WindowSummary>,
    pub devices_in_store: u64,
    pub stats: IngestStats,
    pub windows_final_total: u64,
    /// Last event per scanner, door sensor and the POS ("pos").
    pub last_seen: BTreeMap<String, Timestamp>,
    /// The engine is restored and taking events.
    pub ready: bool,
}

impl EngineView {
    pub fn of(
        engine: &Engine,
        now: Timestamp,
        windows_final_total: u64,
        last_seen: &BTreeMap<String, Timestamp>,
    ) -> Self {
        EngineView {
            now,
            provisional: engine.provisional_windows(),
            devices_in_store: engine.live().devices_in_store as u64,
            stats: engine.stats().clone(),
            windows_final_total,
            last_seen: last_seen.clone(),
            ready: true,
        }
    }
}

/// The daemon as a [`DashboardSource`].
pub struct AgentView {
    pub config: StoreConfig,
    pub store: Arc<Store>,
    pub engine: watch::Receiver<Arc<EngineView>>,
    pub sync: watch::Receiver<SyncStatus>,
    /// Live inputs' health (node online/offline, rejections by reason), when running live.
    pub live: Option<Arc<crate::live::LiveHealth>>,
}

impl AgentView {
    fn today_windows(&self, now: Timestamp) -> Vec<WindowSummary> {
        let view = self.engine.borrow().clone();
        let calendar = storefront_engine::Calendar::new(
            self.config.store.timezone,
            self.config.metrics.window_seconds,
        );
        let today = calendar.local_date(now);
        let start = calendar.day_start(today);
        let mut windows = self
            .store
            .windows(start, now.plus_millis(1))
            .unwrap_or_default();
        windows.extend(
            view.provisional
                .iter()
                .filter(|w| w.local_date == today.to_string())
                .cloned(),
        );
        windows
    }
}

impl DashboardSource for AgentView {
    fn store(&self) -> StoreView {
        StoreView {
            id: self.config.store.id.clone(),
            name: self.config.store.name.clone(),
            timezone: self.config.store.timezone,
            zones: self
                .config
                .zones
                .iter()
                .filter(|z| z.kind == ZoneKind::InStore)
                .map(|z| z.id.clone())
                .collect(),
            has_door_sensor: !self.config.door_sensors.is_empty(),
        }
    }

    fn days(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<Vec<DailySummary>> {
        Ok(self.store.days(&from.to_string(), &to.to_string())?)
    }

    fn windows(&self, from: Timestamp, to: Timestamp) -> anyhow::Result<Vec<WindowSummary>> {
        Ok(self.store.windows(from, to)?)
    }

    fn provisional(&self) -> Vec<WindowSummary> {
        self.engine.borrow().provisional.clone()
    }

    fn live(&self) -> LiveView {
        let (now, devices_in_store) = {
            let view = self.engine.borrow();
            (view.now, view.devices_in_store)
        };
        let has_door = !self.config.door_sensors.is_empty();
        let (door_in, door_out) = if has_door {
            let windows = self.today_windows(now);
            (
                Some(windows.iter().filter_map(|w| w.funnel.door_in).sum()),
                Some(windows.iter().filter_map(|w| w.funnel.door_out).sum()),
            )
        } else {
            (None, None)
        };
        LiveView {
            devices_in_store,
            door_in_today: door_in,
            door_out_today: door_out,
            now,
        }
    }

    fn health(&self) -> HealthView {
        let view = self.engine.borrow().clone();
        let status = |last: Option<Timestamp>| match last {
            Some(t) if view.now.millis_since(t) <= STALE_AFTER_MS => SensorStatus::Ok,
            Some(t) if view.now.millis_since(t) <= 3 * STALE_AFTER_MS => SensorStatus::Stale,
            _ => SensorStatus::Offline,
        };
        let live = self.live.as_ref().map(|h| h.snapshot());
        let degraded = |id: &str| {
            let zone = self
                .config
                .zones
                .iter()
                .find(|z| z.scanners.iter().any(|s| s == id))
                .map(|z| z.id.as_str());
            live.as_ref().is_some_and(|l| {
                zone.is_some_and(|zone| l.degraded_zones.iter().any(|d| d == zone))
            })
        };
        let mut sensors: Vec<SensorHealth> = self
            .config
            .zones
            .iter()
            .flat_map(|z| z.scanners.iter())
            .map(|id| (SensorKind::Scanner, id))
            .chain(
                self.config
                    .door_sensors
                    .iter()
                    .map(|id| (SensorKind::Door, id)),
            )
            .map(|(kind, id)| {
                let last_seen = view.last_seen.get(id).copied();
                // A node that announced `offline` marks its zone degraded, not silently empty.
                let status = if kind == SensorKind::Scanner && degraded(id) {
                    SensorStatus::Degraded
                } else {
                    status(last_seen)
                };
                SensorHealth {
                    kind,
                    id: id.clone(),
                    last_seen,
                    status,
                }
            })
            .collect();
        if self.config.sources.pos.is_some() {
            let last_seen = view.last_seen.get("pos").copied();
            sensors.push(SensorHealth {
                kind: SensorKind::Pos,
                id: "pos".into(),
                last_seen,
                status: status(last_seen),
            });
        }
        let sync = self.sync.borrow().clone();
        HealthView {
            sensors,
            sync: SyncView {
                connected: sync.connected,
                last_ack: sync.last_ack,
                backlog: sync.outbox_len,
            },
            ready: view.ready,
        }
    }

    fn metrics(&self) -> MetricsView {
        let view = self.engine.borrow().clone();
        let mut rejected: BTreeMap<String, u64> = view
            .stats
            .rejected
            .iter()
            .map(|(reason, n)| (reason.as_str().to_owned(), *n))
            .collect();
        let mut dropped = BTreeMap::new();
        if let Some(live) = self.live.as_ref().map(|h| h.snapshot()) {
            // Payloads the input parsers refused, labelled `<input>_<reason>`.
            for (input, counts) in &live.inputs {
                for (reason, n) in &counts.rejected {
                    *rejected.entry(format!("{input}_{reason}")).or_default() += n;
                }
            }
            if live.undelivered > 0 {
                dropped.insert("core_stopped".to_owned(), live.undelivered);
            }
        }
        let oldest_unacked = self
            .store
            .outbox(None, 1)
            .ok()
            .and_then(|m| m.first().map(|m| m.key.window_start));
        let oldest_open = view.provisional.iter().map(|w| w.window_start).min();
        let age = |t: Option<Timestamp>| t.map(|t| view.now.millis_since(t).max(0) as f64 / 1000.0);
        MetricsView {
            events_in_total: view.stats.accepted + view.stats.rejected_total(),
            events_rejected_total: rejected,
            events_dropped_total: dropped,
            windows_final_total: view.windows_final_total,
            outbox_depth: self.store.outbox_len(),
            sync_lag_seconds: age(oldest_unacked),
            window_finality_lag_seconds: age(oldest_open),
            sled_size_bytes: Some(self.store.size_on_disk()),
        }
    }
}
