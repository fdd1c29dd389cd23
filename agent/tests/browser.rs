//! The store manager's view of a run, as a newcomer sees it during the demo (`storefront-dev demo`): the agent takes
//! in a simulated boutique day at the demo's speed while headless Chromium keeps its dashboard
//! open; the page must fill in by itself (no reload), and once the day is final every figure on
//! it must equal the agent's JSON API, which must equal the day the agent stored. Screenshot:
//! `$CARGO_TARGET_TMPDIR/agent-dashboard.png`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::NaiveDate;
use common::*;
use serde_json::{Value, json};
use storefront_agent::daemon::source::Source;
use storefront_agent::daemon::{self, BrokerAddress, Run, TimeMode};
use storefront_broker::TestBroker;
use storefront_config::StoreConfig;
use storefront_dashboard::testing::{Page, chromium, chromium_available, figures, shown_value};
use storefront_simulator::{Profile, ProfileName, SimulationSpec, Simulator, TruthParams};
use tokio::sync::watch;

/// the demo's speed: a day in 30 s.
const DEMO_SPEED: f64 = 2880.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_demo_day_the_open_dashboard_fills_in_and_ends_as_the_api_and_the_store() {
    if !chromium_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start().unwrap();
    let config_path = write_config(dir.path(), ProfileName::Boutique, broker.port());
    let config = StoreConfig::load(&config_path).unwrap();
    let http = config.dashboard.bind.unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 18).unwrap();
    let mut simulator = Simulator::new(SimulationSpec {
        profile: Profile::named(ProfileName::Boutique),
        seed: 9,
        days: 1,
        start_date: date,
        mac_rotation: false,
        truth: TruthParams::default(),
    });
    let events = simulator.next_day().unwrap().events;

    // No HQ: the outbox never drains, so the agent (and its dashboard) stay up until shutdown.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (status_tx, _status) = watch::channel(Default::default());
    let run = Run {
        source: Source::Memory {
            events,
            speed: Some(DEMO_SPEED),
        },
        time: TimeMode::Event,
        broker: BrokerAddress {
            host: "127.0.0.1".into(),
            port: broker.port(),
            tls: false,
        },
        drain_after_end: Some(Duration::from_secs(300)),
        commit_every_events: 50_000,
        publish_per_second: Some(100),
        http: Some(http),
        http_token: None,
    };
    let agent = tokio::spawn(daemon::run(config, run, shutdown_rx, status_tx));
    let base = format!("http://{http}");
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(http).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The page as the README says to open it, while the day plays.
    let mut page = Page::open(&format!("{base}/"), 390, 1200).await;
    let mut marked = false;
    let mut entries_shown = BTreeSet::new();
    let mut report = Value::Null;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let shown = figures(&page.dom().await);
        if !shown.is_empty() && !marked {
            page.mark_document().await;
            marked = true;
        }
        if let Some(entries) = shown_value(&shown, "report.funnel.entries") {
            entries_shown.insert(entries.as_u64().unwrap());
        }
        report = get(&format!("{base}/api/v1/funnel")).await;
        // Final: nothing provisional left, and data (before the first window, "no data").
        if report["from"] == json!(date)
            && report["provisional"] == json!(false)
            && report["funnel"]["entries"].is_u64()
        {
            break;
        }
    }
    assert_eq!(
        report["provisional"],
        json!(false),
        "the day became final: {report}"
    );
    assert!(
        report["funnel"]["entries"].as_u64().unwrap() > 20,
        "{report}"
    );
    entries_shown.remove(&0);
    assert!(
        entries_shown.len() >= 3,
        "the open page showed the day filling in, entries {entries_shown:?}"
    );

    // The day is over: within a refresh or two the page shows exactly what the API has.
    let truth = json!({
        "report": report,
        "live": get(&format!("{base}/api/v1/live")).await,
        "health": get(&format!("{base}/api/v1/health")).await,
    });
    page.wait_for(&truth, 20, Duration::from_secs(15)).await;
    assert!(page.same_document().await, "the page was never reloaded");
    assert_eq!(
        page.evaluate("document.body.getAttribute('data-refresh')")
            .await,
        Ok(json!("2")),
        "a day played faster than real time is refreshed every 2 s"
    );
    page.close().await;

    let screenshot =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("agent-dashboard.png");
    chromium(
        &format!("{base}/?date={date}"),
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=390,2400".into(),
        ],
    )
    .await;
    assert!(
        std::fs::metadata(&screenshot)
            .map(|m| m.len() > 20_000)
            .unwrap_or(false),
        "screenshot written"
    );

    let _ = shutdown_tx.send(true);
    agent.await.unwrap().unwrap();
    let store = daemon::open_store(&StoreConfig::load(&config_path).unwrap()).unwrap();
    let days = store.days(&date.to_string(), &date.to_string()).unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(
        json!(days[0].funnel.entries),
        truth["report"]["funnel"]["entries"],
        "the API shows the stored day"
    );
    assert_eq!(
        json!(days[0].funnel.passers_by),
        truth["report"]["funnel"]["passers_by"]
    );
}
