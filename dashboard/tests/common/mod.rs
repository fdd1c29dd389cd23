//! An in-memory `DashboardSource` built from hand-made summaries, shared by the API and browser
//! tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use http_body_util::BodyExt;
use storefront_dashboard::{
    DashboardOptions, DashboardSource, HealthView, LiveView, MetricsView, SensorHealth, SensorKind,
    SensorStatus, StoreView, SyncView, router,
};
use storefront_engine::Calendar;
use storefront_protocol::{
    DailySummary, Funnel, RepeatCounts, SUMMARY_SCHEMA_VERSION, Timestamp, WindowSummary,
    ZoneSummary,
};
use tower::ServiceExt;

pub const STORE: &str = "store-1";

#[derive(Default)]
pub struct FakeSource {
    pub store: Option<StoreView>,
    pub days: Vec<DailySummary>,
    pub windows: Vec<WindowSummary>,
    pub provisional: Vec<WindowSummary>,
    /// Windows that come in while a page is open (the day filling in), provisional after
    /// `provisional`.
    pub arriving: Mutex<Vec<WindowSummary>>,
    pub live: LiveView,
    pub health: HealthView,
    pub metrics: MetricsView,
    /// Every `windows(from, to)` call, to check the ranges asked for.
    pub window_calls: Mutex<Vec<(Timestamp, Timestamp)>>,
}

impl DashboardSource for FakeSource {
    fn store(&self) -> StoreView {
        self.store.clone().expect("store set")
    }
    fn days(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<Vec<DailySummary>> {
        Ok(self
            .days
            .iter()
            .filter(|d| {
                let date: NaiveDate = d.local_date.parse().unwrap();
                from <= date && date <= to
            })
            .cloned()
            .collect())
    }
    fn windows(&self, from: Timestamp, to: Timestamp) -> anyhow::Result<Vec<WindowSummary>> {
        self.window_calls.lock().unwrap().push((from, to));
        Ok(self
            .windows
            .iter()
            .filter(|w| from <= w.window_start && w.window_start < to)
            .cloned()
            .collect())
    }
    fn provisional(&self) -> Vec<WindowSummary> {
        let mut windows = self.provisional.clone();
        windows.extend(self.arriving.lock().unwrap().iter().cloned());
        windows
    }
    fn live(&self) -> LiveView {
        self.live.clone()
    }
    fn health(&self) -> HealthView {
        self.health.clone()
    }
    fn metrics(&self) -> MetricsView {
        self.metrics.clone()
    }
}

pub fn utc(s: &str) -> Timestamp {
    Timestamp(DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis())
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn store(tz: Tz, has_door_sensor: bool) -> StoreView {
    StoreView {
        id: STORE.to_owned(),
        name: "Rue de Rivoli".to_owned(),
        timezone: tz,
        zones: vec![
            "entrance".to_owned(),
            "apparel".to_owned(),
            "fitting".to_owned(),
            "checkout".to_owned(),
        ],
        has_door_sensor,
    }
}

/// A small deterministic generator (xorshift), so figures vary without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A window's funnel with `entries` visits of made-up durations and zone dwells.
pub fn funnel(rng: &mut Rng, entries: u64, passers_by: u64, door: bool, repeat: bool) -> Funnel {
    let mut f = Funnel {
        passers_by,
        entries,
        transactions: entries / 4 + rng.below(2).min(entries),
        revenue_minor: 0,
        ..Funnel::default()
    };
    let zones = ["entrance", "apparel", "fitting", "checkout"];
    for _ in 0..entries {
        let seconds = match rng.below(10) {
            0..=2 => 20.0 + rng.below(100) as f64,
            3..=7 => 120.0 + rng.below(1500) as f64,
            8 => 1800.0 + rng.below(3000) as f64,
            _ => 10_800.0,
        };
        if seconds < 120.0 {
            f.bounces += 1;
        }
        if seconds >= 10_800.0 {
            f.capped += 1;
        }
        f.visit_duration.add(seconds);
        for zone in zones.iter().take(1 + rng.below(3) as usize) {
            let zone: &mut ZoneSummary = f.zones.entry((*zone).to_owned()).or_default();
            zone.zone_visits += 1;
            zone.dwell.add(10.0 + (seconds / 3.0).floor());
        }
    }
    if door {
        f.door_in = Some(entries * 2 + rng.below(3));
        f.door_out = Some(entries * 2);
    }
    if repeat {
        f.repeat = Some(RepeatCounts {
            eligible_entries: entries,
            repeat_visits: entries / 5,
        });
    }
    f
}

pub fn window(tz: Tz, start: Timestamp, funnel: Funnel) -> WindowSummary {
    let cal = Calendar::new(tz, 900);
    assert_eq!(cal.window_start(start), start, "windows are aligned");
    WindowSummary {
        schema: SUMMARY_SCHEMA_VERSION,
        store_id: STORE.to_owned(),
        window_start: start,
        window_seconds: 900,
        local_date: cal.local_date(start).to_string(),
        local_hour: cal.local_hour(start),
        hour_start: cal.hour_start(start),
        funnel,
        coverage: None,
    }
}

/// Every window of a local date, with traffic shaped over opening hours (09:00-20:00).
pub fn day_windows(tz: Tz, day: NaiveDate, seed: u64, door: bool) -> Vec<WindowSummary> {
    let cal = Calendar::new(tz, 900);
    let mut rng = Rng(seed | 1);
    let end = cal.day_start(day.succ_opt().unwrap());
    let mut out = Vec::new();
    let mut t = cal.window_start(cal.day_start(day));
    while t < end {
        let hour = cal.local_hour(t);
        let open = (9..20).contains(&hour);
        let entries = if open { 1 + rng.below(6) } else { 0 };
        let passers = if open {
            3 + rng.below(12)
        } else {
            rng.below(2)
        };
        out.push(window(
            tz,
            t,
            funnel(&mut rng, entries, passers, door, false),
        ));
        t = cal.next_window(t);
    }
    out
}

pub fn daily(tz: Tz, day: NaiveDate, windows: &[WindowSummary]) -> DailySummary {
    let cal = Calendar::new(tz, 900);
    let mut d = DailySummary::new(STORE, &day.to_string(), cal.day_start(day));
    for w in windows {
        d.add_window(w);
    }
    d
}

pub fn merged(windows: &[WindowSummary]) -> Funnel {
    let mut f = Funnel::default();
    for w in windows {
        f.merge(&w.funnel);
    }
    f
}

pub fn healthy(now: Timestamp) -> HealthView {
    HealthView {
        sensors: vec![
            SensorHealth {
                kind: SensorKind::BleAdapter,
                id: "hci0".into(),
                last_seen: Some(now.plus_secs(-2)),
                status: SensorStatus::Ok,
            },
            SensorHealth {
                kind: SensorKind::Scanner,
                id: "scanner-front".into(),
                last_seen: Some(now.plus_secs(-5)),
                status: SensorStatus::Ok,
            },
            SensorHealth {
                kind: SensorKind::Scanner,
                id: "scanner-fitting".into(),
                last_seen: Some(now.plus_secs(-700)),
                status: SensorStatus::Stale,
            },
            SensorHealth {
                kind: SensorKind::Door,
                id: "door-main".into(),
                last_seen: Some(now.plus_secs(-60)),
                status: SensorStatus::Degraded,
            },
            SensorHealth {
                kind: SensorKind::Pos,
                id: "till-1".into(),
                last_seen: None,
                status: SensorStatus::Offline,
            },
        ],
        sync: SyncView {
            connected: true,
            last_ack: Some(now.plus_secs(-40)),
            backlog: 3,
        },
        ready: true,
    }
}

pub fn metrics() -> MetricsView {
    MetricsView {
        events_in_total: 123_456,
        events_rejected_total: BTreeMap::from([
            ("late".to_owned(), 7),
            ("unknown_scanner".to_owned(), 2),
        ]),
        events_dropped_total: BTreeMap::from([("channel_full".to_owned(), 1)]),
        engine_shed_total: BTreeMap::from([("device".to_owned(), 2_500)]),
        clock_steps_back_total: 1,
        commit_failures_total: 5,
        windows_final_total: 96,
        outbox_depth: 4,
        sync_acks_ignored_total: 3,
        sync_lag_seconds: 12.5,
        window_finality_lag_seconds: 930.0,
        sled_size_bytes: Some(1_048_576),
    }
}

/// A Paris store at `now`: 17 devices in store, healthy sensors, the whole previous week as
/// final days, and today's windows before `cut` final. Returns the rest of today's windows.
pub fn paris_at(now: Timestamp, cut: Timestamp) -> (FakeSource, Vec<WindowSummary>) {
    let tz = chrono_tz::Europe::Paris;
    let today = Calendar::new(tz, 900).local_date(now);
    let mut source = FakeSource {
        store: Some(store(tz, true)),
        live: LiveView {
            devices_in_store: 17,
            door_in_today: Some(240),
            door_out_today: Some(205),
            now,
        },
        health: healthy(now),
        metrics: metrics(),
        ..FakeSource::default()
    };
    for back in 1..=8u64 {
        let day = today.checked_sub_days(chrono::Days::new(back)).unwrap();
        let windows = day_windows(tz, day, 1000 + back, true);
        source.days.push(daily(tz, day, &windows));
    }
    let (finals, rest) = day_windows(tz, today, 7, true)
        .into_iter()
        .partition(|w| w.window_start < cut);
    source.windows = finals;
    (source, rest)
}

/// A Paris store on Sunday 2026-10-25 (a 25-hour day) at 15:10 local time: final windows up to
/// 14:00, provisional ones after, the whole previous week as final days.
pub fn paris_today() -> FakeSource {
    let now = utc("2026-10-25T14:10:00Z");
    let (mut source, rest) = paris_at(now, utc("2026-10-25T13:00:00Z")); // 14:00 CET
    source.provisional = rest.into_iter().filter(|w| w.window_start <= now).collect();
    source
}

pub fn app(source: FakeSource, token: Option<&str>) -> (Router, Arc<FakeSource>) {
    let source = Arc::new(source);
    let router = router(
        source.clone(),
        DashboardOptions {
            auth_token: token.map(str::to_owned),
        },
    );
    (router, source)
}

pub async fn get(router: &Router, uri: &str) -> (StatusCode, String) {
    get_with(router, uri, None).await
}

pub async fn get_with(router: &Router, uri: &str, bearer: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(uri);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

pub async fn get_json(router: &Router, uri: &str) -> serde_json::Value {
    let (status, body) = get(router, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap()
}
