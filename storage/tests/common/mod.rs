//! Realistic summaries for the storage tests.
#![allow(dead_code)]

use storefront_protocol::{
    DailySummary, Distribution, Funnel, SUMMARY_SCHEMA_VERSION, SummaryPayload, Timestamp,
    WindowSummary, ZoneSummary,
};
use storefront_storage::{Store, StoreOptions};

pub const STORE: &str = "store-1";
/// 2026-11-23T00:00:00Z.
pub const DAY0: i64 = 1_795_392_000_000;
pub const WINDOW_MS: i64 = 900_000;

fn distribution(n: u64, seed: u64) -> Distribution {
    let mut d = Distribution::new();
    for i in 0..n {
        d.add(5.0 + ((i * 37 + seed * 11) % 600) as f64 * 1.7);
    }
    d
}

/// Window `index` of the day starting at `DAY0 + day * 86400 s`: 4 zones, sketches of ~50
/// values each.
pub fn window(day: i64, index: i64) -> WindowSummary {
    let start = DAY0 + day * 86_400_000 + index * WINDOW_MS;
    let seed = (day * 100 + index) as u64;
    let zones = ["entrance", "apparel", "fitting", "checkout"]
        .iter()
        .enumerate()
        .map(|(z, name)| {
            (
                (*name).to_owned(),
                ZoneSummary {
                    zone_visits: 20 + z as u64,
                    dwell: distribution(45 + z as u64, seed + z as u64),
                },
            )
        })
        .collect();
    WindowSummary {
        schema: SUMMARY_SCHEMA_VERSION,
        store_id: STORE.into(),
        window_start: Timestamp(start),
        window_seconds: 900,
        local_date: date(day),
        local_hour: (index / 4) as u8,
        hour_start: Timestamp(start - start.rem_euclid(3_600_000)),
        funnel: Funnel {
            passers_by: 120,
            entries: 50,
            bounces: 12,
            transactions: 7,
            revenue_minor: 45_000,
            door_in: (index % 2 == 0).then_some(61),
            visit_duration: distribution(50, seed),
            zones,
            ..Funnel::default()
        },
        coverage: None,
    }
}

pub fn date(day: i64) -> String {
    format!("2026-11-{:02}", 23 + day)
}

pub fn daily(day: i64) -> DailySummary {
    let mut d = DailySummary::new(STORE, &date(day), Timestamp(DAY0 + day * 86_400_000));
    for i in 0..96 {
        d.add_window(&window(day, i));
    }
    d
}

pub fn w(day: i64, index: i64) -> SummaryPayload {
    SummaryPayload::Window(window(day, index))
}

pub fn d(day: i64) -> SummaryPayload {
    SummaryPayload::Daily(daily(day))
}

pub fn options(path: &std::path::Path) -> StoreOptions {
    StoreOptions {
        cache_capacity_bytes: 4 * 1024 * 1024,
        ..StoreOptions::new(path.join("db"))
    }
}

pub fn open(options: &StoreOptions) -> Store {
    let (store, report) = Store::open(options.clone()).expect("opens");
    assert_eq!(report.moved_aside, None);
    store
}
