//! `hq report` as a user runs it: the binary against a database written by `SledHqStore`.

use std::process::Command;

use serde_json::Value;
use storefront_hq::{HqStore, SledHqStore};
use storefront_protocol::{DailySummary, SummaryPayload, SyncMessage, Timestamp};

/// 2026-11-17T23:00Z: the start of 2026-11-18 in Paris (UTC+1).
const PARIS_18TH: i64 = 1_794_956_400;

fn day(
    store: &str,
    date: &str,
    start: i64,
    durations: &[f64],
    door_in: u64,
    seq: u64,
) -> SyncMessage {
    let mut d = DailySummary::new(store, date, Timestamp::from_secs(start));
    for &v in durations {
        d.funnel.visit_duration.add(v);
    }
    d.funnel.entries = durations.len() as u64;
    d.funnel.bounces = durations.iter().filter(|&&v| v < 120.0).count() as u64;
    d.funnel.passers_by = 40 + seq;
    d.funnel.transactions = seq;
    d.funnel.door_in = Some(door_in);
    SyncMessage::new(seq, d.idempotency_key(), SummaryPayload::Daily(d))
}

/// Runs `hq`. sled releases its directory lock from background threads shortly after the
/// last handle is dropped, so a run that finds the database still locked by this test
/// process is retried for up to two seconds.
fn hq(args: &[&str]) -> std::process::Output {
    let started = std::time::Instant::now();
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_hq"))
            .args(args)
            .output()
            .expect("run hq");
        let locked = String::from_utf8_lossy(&out.stderr).contains("could not acquire lock");
        if !locked || started.elapsed() > std::time::Duration::from_secs(2) {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn hq_report_merging_two_stores_days_gives_counts_equal_to_the_sums() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hq-data");
    let days = [
        day(
            "lyon-02",
            "2026-11-18",
            PARIS_18TH,
            &[30.0, 150.0, 300.0, 420.0, 610.0, 90.0],
            14,
            1,
        ),
        day(
            "lyon-02",
            "2026-11-19",
            PARIS_18TH + 86_400,
            &[200.0, 240.0, 500.0, 80.0, 700.0],
            11,
            2,
        ),
        day(
            "paris-01",
            "2026-11-18",
            PARIS_18TH,
            &[60.0, 100.0, 330.0, 900.0, 1200.0, 45.0, 250.0],
            20,
            3,
        ),
        // Outside the range: must not count.
        day(
            "paris-01",
            "2026-11-21",
            PARIS_18TH + 3 * 86_400,
            &[500.0; 5],
            9,
            4,
        ),
    ];
    {
        let store = SledHqStore::open(&db).unwrap();
        for d in &days {
            store.upsert("acme", d).unwrap();
        }
        store.flush().unwrap();
    }
    let db_arg = db.to_str().unwrap();
    let out = hq(&[
        "report",
        "--db",
        db_arg,
        "--date",
        "2026-11-18",
        "--to",
        "2026-11-20",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();

    let in_range: Vec<&DailySummary> = days[..3]
        .iter()
        .filter_map(|m| match &m.payload {
            SummaryPayload::Daily(d) => Some(d),
            SummaryPayload::Window(_) => None,
        })
        .collect();
    let sum = |f: fn(&DailySummary) -> u64| in_range.iter().map(|d| f(d)).sum::<u64>();
    let chain = &json["chain"];
    assert_eq!(chain["store"], "CHAIN");
    assert_eq!(chain["days"], 3);
    assert_eq!(chain["entries"], sum(|d| d.funnel.entries));
    assert_eq!(chain["passers_by"], sum(|d| d.funnel.passers_by));
    assert_eq!(chain["bounces"], sum(|d| d.funnel.bounces));
    assert_eq!(chain["visitors"], sum(|d| d.funnel.visitors()));
    assert_eq!(chain["transactions"], sum(|d| d.funnel.transactions));
    assert_eq!(chain["door_in"], sum(|d| d.funnel.door_in.unwrap()));
    let entries = sum(|d| d.funnel.entries) as f64;
    let conversion = chain["shopfront_conversion"].as_f64().unwrap();
    assert!((conversion - entries / (entries + sum(|d| d.funnel.passers_by) as f64)).abs() < 1e-12);
    // The median of the merged sketches is the (lower) median of all 18 durations, 240 s,
    // within the sketch's 1 % relative accuracy.
    let median = chain["median_visit_seconds"].as_f64().unwrap();
    assert!((median - 240.0).abs() / 240.0 <= 0.01, "{median}");

    let stores = json["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2);
    assert_eq!(stores[0]["store"], "lyon-02");
    assert_eq!(stores[0]["entries"], 11);
    assert_eq!(stores[1]["entries"], 7);

    let table = hq(&[
        "report",
        "--db",
        db_arg,
        "--date",
        "2026-11-18",
        "--to",
        "2026-11-20",
    ]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.lines()
            .last()
            .unwrap()
            .trim_start()
            .starts_with("CHAIN"),
        "{text}"
    );
    assert!(
        text.contains("paris-01") && text.contains("lyon-02"),
        "{text}"
    );

    let only = hq(&[
        "report",
        "--db",
        db_arg,
        "--date",
        "2026-11-18",
        "--store",
        "paris-01",
        "--json",
    ]);
    let only: Value = serde_json::from_slice(&only.stdout).unwrap();
    assert_eq!(only["chain"]["entries"], 7);
}

#[test]
fn hq_report_says_so_when_the_range_has_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hq-data");
    SledHqStore::open(&db).unwrap().flush().unwrap();
    let out = hq(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--date",
        "2026-11-18",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No daily summaries from 2026-11-18 to 2026-11-18"),
        "{err}"
    );

    let missing = hq(&[
        "report",
        "--db",
        dir.path().join("nope").to_str().unwrap(),
        "--date",
        "2026-11-18",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no database"));

    let bad = hq(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--date",
        "18/11/2026",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected YYYY-MM-DD"));
}
