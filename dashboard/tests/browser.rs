//! The page in a real browser: Debian's headless Chromium renders `/` from the in-memory source
//! at phone width, and every figure it shows (`data-figure` / `data-value`) must equal the JSON
//! API's. A screenshot is left in `$CARGO_TARGET_TMPDIR/dashboard.png` for a person to look at.
//!
//! A second test keeps the page open (on the real clock, over the DevTools protocol) while the
//! day fills in, and checks that it takes the new figures in by itself.
//!
//! Without `/usr/bin/chromium` the tests fail under `CI=true` and are skipped (loudly)
//! elsewhere.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeZone;
use common::*;
use serde_json::{Value, json};
use storefront_dashboard::testing::*;
use storefront_engine::Calendar;
use storefront_protocol::Timestamp;

const TOKEN: &str = "s3cret-token";

/// Serves `app` on a free loopback port.
async fn serve(app: &axum::Router) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app.clone()).into_future());
    (address, server)
}

/// What the page shows, from the API: today's report, live and health (`query` carries the
/// token, if any).
async fn api_truth(app: &axum::Router, query: &str) -> Value {
    json!({
        "report": get_json(app, &format!("/api/v1/funnel{query}")).await,
        "live": get_json(app, &format!("/api/v1/live{query}")).await,
        "health": get_json(app, &format!("/api/v1/health{query}")).await,
    })
}

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
    let (address, server) = serve(&app).await;
    let truth = api_truth(&app, &format!("?token={TOKEN}")).await;

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

    // The store's clock is a year off this machine's: the page refreshes as for a replay.
    assert_eq!(first_attribute(&dom, "data-refresh").as_deref(), Some("2"));

    let shown = figures(&dom);
    let wrong = differences(&shown, &truth);
    assert!(
        wrong.is_empty(),
        "the page differs from the API: {wrong:#?}"
    );
    let names: BTreeSet<&str> = shown.iter().map(|(name, _)| name.as_str()).collect();
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
    let entries = shown_value(&figures(&dom), "report.funnel.entries").expect("entries shown");
    assert!(same(&entries, &past["report"]["funnel"]["entries"]));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_page_takes_in_each_hour_of_the_day_as_it_comes_in_without_a_reload() {
    if !chromium_available() {
        return;
    }
    // A store on the wall clock, final up to 10:00 today; the test adds the later hours.
    let tz = chrono_tz::Europe::Paris;
    let now = Timestamp(chrono::Utc::now().timestamp_millis());
    let today = Calendar::new(tz, 900).local_date(now);
    let ten = tz
        .from_local_datetime(&today.and_hms_opt(10, 0, 0).unwrap())
        .earliest()
        .unwrap();
    let (source, later) = paris_at(now, Timestamp(ten.timestamp_millis()));
    let (app, source) = common::app(source, None);
    let (address, server) = serve(&app).await;

    // On a live store's clock the page refreshes every 30 s by default.
    let dom = chromium(&format!("http://{address}/"), &["--dump-dom".into()]).await;
    assert_eq!(first_attribute(&dom, "data-refresh").as_deref(), Some("30"));

    let mut page = Page::open(&format!("http://{address}/?refresh=1"), 390, 1200).await;
    let limit = Duration::from_secs(10);
    let shown = page.wait_for(&api_truth(&app, "").await, 40, limit).await;
    page.mark_document().await;
    let mut entries = vec![shown_value(&shown, "report.funnel.entries").unwrap()];
    for hour in later.chunks(4).take(3) {
        source.arriving.lock().unwrap().extend_from_slice(hour);
        // Within a few refreshes the page shows the new hour, every figure as the API has it.
        let shown = page.wait_for(&api_truth(&app, "").await, 40, limit).await;
        entries.push(shown_value(&shown, "report.funnel.entries").unwrap());
    }
    let counts: Vec<u64> = entries.iter().map(|e| e.as_u64().unwrap()).collect();
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "entries grew with each hour: {counts:?}"
    );
    assert!(page.same_document().await, "the page was never reloaded");
    assert_eq!(
        page.evaluate("document.body.getAttribute('data-refresh')")
            .await,
        Ok(json!("1"))
    );
    page.close().await;
    server.abort();
}
