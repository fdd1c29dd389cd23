//! The page in a real browser: Debian's headless Chromium renders `/` from the in-memory source
//! at phone width, and every figure it shows (`data-figure` / `data-value`) must equal the JSON
//! API's. A screenshot is left in `$CARGO_TARGET_TMPDIR/dashboard.png` for a person to look at.
//!
//! Without `/usr/bin/chromium` the test fails under `CI=true` and is skipped (loudly) elsewhere.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use serde_json::{Value, json};
use storefront_dashboard::testing::*;

const TOKEN: &str = "s3cret-token";

fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_at_phone_width_shows_the_same_figures_as_the_api() {
    if !chromium_available() {
        return;
    }
    let (app, _) = common::app(paris_today(), Some(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app.clone()).into_future());

    let api = |path: &str| {
        let app = app.clone();
        let uri = format!("{path}?token={TOKEN}");
        async move { get_json(&app, &uri).await }
    };
    let truth = json!({
        "report": api("/api/v1/funnel").await,
        "live": api("/api/v1/live").await,
        "health": api("/api/v1/health").await,
    });

    let url = format!("http://{address}/?token={TOKEN}");
    let dom = chromium(
        &url,
        &["--dump-dom".into(), "--window-size=390,1200".into()],
    )
    .await;
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page finished loading:\n{dom}"
    );
    assert!(
        dom.contains("class=\"wide hidden\"") || !dom.contains("Could not load"),
        "no error shown"
    );

    let shown = figures(&dom);
    let mut names = BTreeSet::new();
    for (name, value) in &shown {
        let expected = lookup(&truth, name)
            .unwrap_or_else(|| panic!("the page shows {name}, which the API does not have"));
        assert!(
            same(value, expected),
            "{name}: page {value}, API {expected}"
        );
        names.insert(name.as_str());
    }
    let hours = truth["report"]["traffic_by_hour"].as_array().unwrap().len();
    assert_eq!(hours, 25, "today is the 25-hour day");
    let mut required = vec![
        "report.funnel.passers_by".to_owned(),
        "report.funnel.entries".into(),
        "report.funnel.visitors".into(),
        "report.funnel.transactions".into(),
        "report.funnel.shopfront_conversion".into(),
        "report.funnel.bounce_rate".into(),
        "report.funnel.sales_conversion".into(),
        "report.funnel.repeat.measured".into(),
        "report.funnel.door_in".into(),
        "report.door_scaled.sampling_ratio".into(),
        "report.door_scaled.visitors".into(),
        "report.visit_duration.count".into(),
        "report.visit_duration.mean_seconds".into(),
        "report.visit_duration.p50_seconds".into(),
        "report.visit_duration.p90_seconds".into(),
        "report.visit_duration.histogram.0.visits".into(),
        "live.devices_in_store".into(),
        "live.door_occupancy".into(),
        "health.sync.connected".into(),
        "health.sync.backlog".into(),
    ];
    for i in 0..truth["report"]["zones"].as_array().unwrap().len() {
        required.push(format!("report.zones.{i}.exposure_rate"));
        required.push(format!("report.zones.{i}.dwell.p50_seconds"));
    }
    for i in 0..hours {
        required.push(format!("report.traffic_by_hour.{i}.entries"));
    }
    for i in 0..truth["health"]["sensors"].as_array().unwrap().len() {
        required.push(format!("health.sensors.{i}.status"));
    }
    // Every hour but the second 02:00 has last week's twin beside it.
    for i in (0..hours).filter(|&i| i != 3) {
        required.push(format!("report.traffic_by_hour.{i}.last_week.entries"));
    }
    for name in &required {
        assert!(
            names.contains(name.as_str()),
            "the page does not show {name}"
        );
    }

    // A past day through the date picker's URL form.
    let past = json!({ "report": api_date(&app, "2026-10-20").await });
    let dom = chromium(
        &format!("http://{address}/?token={TOKEN}&date=2026-10-20"),
        &["--dump-dom".into(), "--window-size=390,1200".into()],
    )
    .await;
    let shown = figures(&dom);
    let entries = shown
        .iter()
        .find(|(n, _)| n == "report.funnel.entries")
        .expect("entries shown");
    assert!(same(&entries.1, &past["report"]["funnel"]["entries"]));
    assert!(dom.contains("value=\"2026-10-20\"") || dom.contains("2026-10-20"));

    // Screenshots: the phone viewport, and the whole page for a person to read.
    let dir = artifacts_dir();
    for (file, size) in [
        ("dashboard.png", "390,1200"),
        ("dashboard-full.png", "390,3400"),
    ] {
        let path = dir.join(file);
        let _ = std::fs::remove_file(&path);
        chromium(
            &url,
            &[
                format!("--screenshot={}", path.display()),
                format!("--window-size={size}"),
            ],
        )
        .await;
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            bytes.len() > 20_000,
            "{} is only {} bytes",
            path.display(),
            bytes.len()
        );
        let (width, _) = png_size(&bytes);
        assert_eq!(width, 390, "screenshot at phone width");
        eprintln!("screenshot: {}", path.display());
    }
    server.abort();
}

async fn api_date(app: &axum::Router, date: &str) -> Value {
    get_json(app, &format!("/api/v1/funnel?date={date}&token={TOKEN}")).await
}
