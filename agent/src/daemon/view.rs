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
use storefront_protocol::{DailySummary, SummaryPayload, Timestamp, WindowSummary};
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
    /// Windows not in the store yet: the engine's open ones, and final ones not committed.
    pub provisional: Vec<WindowSummary>,
    /// Start of the oldest window the engine has not made final.
    pub oldest_open: Option<Timestamp>,
    pub devices_in_store: u64,
    pub stats: IngestStats,
    pub windows_final_total: u64,
    /// Last event per scanner, door sensor and the POS ("pos").
    pub last_seen: BTreeMap<String, Timestamp>,
    /// The engine is restored and taking events.
    pub ready: bool,
    /// Commits that failed (each tried again later).
    pub commit_failures_total: u64,
}

impl EngineView {
    /// The engine's open windows, and the final ones not committed yet (`uncommitted`), are
    /// the view's provisional windows: readers merge them with the store, the store winning.
    pub fn of(
        engine: &Engine,
        uncommitted: &[SummaryPayload],
        now: Timestamp,
        windows_final_total: u64,
        last_seen: &BTreeMap<String, Timestamp>,
    ) -> Self {
        let mut provisional = engine.provisional_windows();
        let oldest_open = provisional.iter().map(|w| w.window_start).min();
        provisional.extend(uncommitted.iter().filter_map(|payload| match payload {
            SummaryPayload::Window(window) => Some(window.clone()),
            SummaryPayload::Daily(_) => None,
        }));
        EngineView {
            now,
            provisional,
            oldest_open,
            devices_in_store: engine.live().devices_in_store as u64,
            stats: engine.stats().clone(),
            windows_final_total,
            last_seen: last_seen.clone(),
            ready: true,
            commit_failures_total: 0,
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
    /// The agent's own Bluetooth adapters when running live, with their last sighting: those
    /// the config names, and any other heard from (`adapters = []` scans with all of them).
    fn ble_adapters(
        &self,
        live: Option<&crate::live::LiveHealthSnapshot>,
    ) -> BTreeMap<String, Option<Timestamp>> {
        let ble = &self.config.sources.ble;
        let Some(live) = live.filter(|_| ble.enabled) else {
            return BTreeMap::new();
        };
        let mut adapters: BTreeMap<String, Option<Timestamp>> =
            ble.adapters.iter().map(|a| (a.clone(), None)).collect();
        for (id, seen) in &live.ble_adapters {
            adapters.insert(id.clone(), seen.last_seen_ms.map(Timestamp));
        }
        adapters
    }

    /// Where the oldest summary waiting for HQ's ack ends: its window's end, or its day's.
    fn oldest_unacked_end(&self) -> Option<Timestamp> {
        let message = self.store.outbox(None, 1).ok()?.into_iter().next()?;
        Some(match message.payload {
            SummaryPayload::Window(w) => w.window_start.plus_secs(i64::from(w.window_seconds)),
            SummaryPayload::Daily(d) => {
                let date: NaiveDate = d.local_date.parse().ok()?;
                self.calendar().day_start(date.succ_opt()?)
            }
        })
    }

    fn calendar(&self) -> storefront_engine::Calendar {
        storefront_engine::Calendar::new(
            self.config.store.timezone,
            self.config.metrics.window_seconds,
        )
    }

    /// Today's windows: stored ones, and the view's others. The view is read before the store:
    /// a window committed in between is then in the store, so none is missed.
    fn today_windows(&self, now: Timestamp) -> Vec<WindowSummary> {
        let view = self.engine.borrow().clone();
        let calendar = self.calendar();
        let today = calendar.local_date(now);
        let start = calendar.day_start(today);
        let mut windows = self
            .store
            .windows(start, now.plus_millis(1))
            .unwrap_or_default();
        let stored: std::collections::BTreeSet<Timestamp> =
            windows.iter().map(|w| w.window_start).collect();
        windows.extend(
            view.provisional
                .iter()
                .filter(|w| w.local_date == today.to_string() && !stored.contains(&w.window_start))
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
        let adapters = self.ble_adapters(live.as_ref());
        let mut sensors: Vec<SensorHealth> = self
            .config
            .zones
            .iter()
            .flat_map(|z| z.scanners.iter())
            // An adapter's sightings carry its name as the scanner id: listed once, below.
            .filter(|id| !adapters.contains_key(*id))
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
        sensors.extend(adapters.into_iter().map(|(id, last_seen)| SensorHealth {
            kind: SensorKind::BleAdapter,
            id,
            last_seen,
            status: status(last_seen),
        }));
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
                backlog: self.store.outbox_len(),
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
        let age = |t: Option<Timestamp>| {
            t.map_or(0.0, |t| view.now.millis_since(t).max(0) as f64 / 1000.0)
        };
        MetricsView {
            events_in_total: view.stats.accepted + view.stats.rejected_total(),
            events_rejected_total: rejected,
            events_dropped_total: dropped,
            engine_shed_total: view
                .stats
                .shed
                .iter()
                .map(|(kind, n)| (kind.as_str().to_owned(), *n))
                .collect(),
            clock_steps_back_total: view.stats.clock_steps_back,
            commit_failures_total: view.commit_failures_total,
            windows_final_total: view.windows_final_total,
            outbox_depth: self.store.outbox_len(),
            sync_acks_ignored_total: self.sync.borrow().acks_ignored,
            sync_lag_seconds: age(self.oldest_unacked_end()),
            window_finality_lag_seconds: age(view.oldest_open),
            sled_size_bytes: Some(self.store.size_on_disk()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use storefront_protocol::{Funnel, SUMMARY_SCHEMA_VERSION};
    use storefront_storage::Checkpoint;

    use super::*;
    use crate::live::LiveHealth;

    /// 2026-11-18 12:00 in Paris.
    const NOON: Timestamp = Timestamp(1_794_999_600_000);

    /// The boutique, its fitting-room scanner being the gateway's own adapter `hci0`, and a
    /// second adapter `hci1` named in the config.
    fn agent_view(dir: &Path, live: Option<Arc<LiveHealth>>) -> AgentView {
        let text = include_str!("../../../config/examples/boutique.toml")
            .replace("scanners = [\"fitting-1\"]", "scanners = [\"hci0\"]")
            .replace(
                "[sources.ble]\nenabled = true",
                "[sources.ble]\nenabled = true\nadapters = [\"hci0\", \"hci1\"]",
            );
        let config = StoreConfig::parse(&text, &dir.join("store.toml")).unwrap();
        let store = Arc::new(super::super::open_store(&config).unwrap());
        let engine = EngineView {
            now: NOON,
            last_seen: BTreeMap::from([
                ("entrance-1".to_owned(), NOON.plus_secs(-30)),
                ("hci0".to_owned(), NOON.plus_secs(-20)),
            ]),
            ready: true,
            ..EngineView::default()
        };
        AgentView {
            config,
            store,
            engine: watch::channel(Arc::new(engine)).1,
            sync: watch::channel(SyncStatus::default()).1,
            live,
        }
    }

    fn sensor(health: &HealthView, kind: SensorKind, id: &str) -> Option<SensorHealth> {
        health
            .sensors
            .iter()
            .find(|s| s.kind == kind && s.id == id)
            .cloned()
    }

    #[test]
    fn running_live_the_adapters_named_or_heard_are_listed_once_with_their_last_sighting() {
        let dir = tempfile::tempdir().unwrap();
        let live = Arc::new(LiveHealth::default());
        live.ble_seen("hci0", NOON.plus_secs(-10).millis());
        live.ble_seen("hci2", NOON.plus_secs(-600).millis());
        let health = agent_view(dir.path(), Some(live)).health();

        let adapter = |id| sensor(&health, SensorKind::BleAdapter, id);
        let hci0 = adapter("hci0").expect("hci0 listed");
        assert_eq!(hci0.last_seen, Some(NOON.plus_secs(-10)));
        assert_eq!(hci0.status, SensorStatus::Ok);
        let hci1 = adapter("hci1").expect("a named adapter never heard from is listed");
        assert_eq!((hci1.last_seen, hci1.status), (None, SensorStatus::Offline));
        let hci2 = adapter("hci2").expect("an adapter heard from is listed");
        assert_eq!(hci2.status, SensorStatus::Stale);
        assert_eq!(
            sensor(&health, SensorKind::Scanner, "hci0"),
            None,
            "the adapter is not listed again as a scanner"
        );
        let entrance = sensor(&health, SensorKind::Scanner, "entrance-1").unwrap();
        assert_eq!(entrance.last_seen, Some(NOON.plus_secs(-30)));
    }

    #[test]
    fn replaying_there_are_no_adapters_and_their_scanner_ids_are_scanners() {
        let dir = tempfile::tempdir().unwrap();
        let health = agent_view(dir.path(), None).health();
        assert!(
            health
                .sensors
                .iter()
                .all(|s| s.kind != SensorKind::BleAdapter),
            "{health:?}"
        );
        let hci0 = sensor(&health, SensorKind::Scanner, "hci0").unwrap();
        assert_eq!(hci0.last_seen, Some(NOON.plus_secs(-20)));
    }

    #[test]
    fn sync_lag_runs_from_the_end_of_the_oldest_unacked_window_or_day() {
        let dir = tempfile::tempdir().unwrap();
        let view = agent_view(dir.path(), None);
        assert_eq!(view.metrics().sync_lag_seconds, 0.0, "nothing waiting");
        assert_eq!(view.metrics().window_finality_lag_seconds, 0.0, "none open");

        let store_id = view.config.store.id.clone();
        let yesterday_start = Timestamp(1_794_870_000_000); // 2026-11-17 00:00 in Paris
        let day = DailySummary::new(&store_id, "2026-11-17", yesterday_start);
        let window = WindowSummary {
            schema: SUMMARY_SCHEMA_VERSION,
            store_id,
            window_start: NOON.plus_secs(-3600),
            window_seconds: 900,
            local_date: "2026-11-18".into(),
            local_hour: 11,
            hour_start: NOON.plus_secs(-3600),
            funnel: Funnel::default(),
            coverage: None,
        };
        let checkpoint = Checkpoint {
            engine: (),
            source_cursor: None,
        };
        let stored = view
            .store
            .commit(
                &[SummaryPayload::Daily(day), SummaryPayload::Window(window)],
                &checkpoint,
            )
            .unwrap();
        // The day ended at midnight, twelve hours ago.
        assert_eq!(view.metrics().sync_lag_seconds, 12.0 * 3600.0);
        view.store.ack(&[stored[0].seq]).unwrap();
        // The window 11:00-11:15 ended 45 minutes ago.
        assert_eq!(view.metrics().sync_lag_seconds, 45.0 * 60.0);
        view.store.ack(&[stored[1].seq]).unwrap();
        assert_eq!(view.metrics().sync_lag_seconds, 0.0);
    }
}
