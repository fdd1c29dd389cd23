//! The JSON API and ops endpoints against an in-memory source of hand-made summaries.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::Value;
use storefront_dashboard::{
    LiveView, SensorHealth, SensorKind, SensorStatus, funnel_report, report, report_table,
};
use storefront_protocol::{Coverage, Funnel};

fn f64_of(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn assert_rate(json: &Value, expected: Option<f64>, what: &str) {
    match expected {
        Some(e) => assert_eq!(f64_of(json), Some(e), "{what}"),
        None => assert!(json.is_null(), "{what}: {json}"),
    }
}

fn assert_funnel_matches(json: &Value, f: &Funnel) {
    let j = &json["funnel"];
    assert_eq!(j["passers_by"], f.passers_by);
    assert_eq!(j["entries"], f.entries);
    assert_eq!(j["visitors"], f.visitors());
    assert_eq!(j["bounces"], f.bounces);
    assert_eq!(j["capped"], f.capped);
    assert_eq!(j["transactions"], f.transactions);
    assert_eq!(j["door_in"].as_u64(), f.door_in);
    assert_rate(
        &j["shopfront_conversion"],
        f.shopfront_conversion(),
        "conversion",
    );
    assert_rate(&j["bounce_rate"], f.bounce_rate(), "bounce rate");
    assert_rate(
        &j["sales_conversion"],
        f.sales_conversion(),
        "sales conversion",
    );
    assert_rate(&j["repeat"]["rate"], f.repeat_rate(), "repeat rate");
    assert_eq!(j["repeat"]["measured"], f.repeat.is_some());
    let d = &json["visit_duration"];
    assert_eq!(d["count"], f.visit_duration.count);
    assert_rate(&d["mean_seconds"], f.visit_duration.mean(), "mean");
    assert_rate(&d["p50_seconds"], f.visit_duration.median(), "p50");
    assert_rate(&d["p90_seconds"], f.visit_duration.quantile(0.9), "p90");
    let bins: u64 = d["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["visits"].as_u64().unwrap())
        .sum();
    assert_eq!(
        bins, f.visit_duration.count,
        "histogram bins add up to the count"
    );
    for zone in json["zones"].as_array().unwrap() {
        let name = zone["zone"].as_str().unwrap();
        let z = f.zones.get(name).cloned().unwrap_or_default();
        assert_eq!(zone["zone_visits"], z.zone_visits, "{name}");
        assert_rate(
            &zone["exposure_rate"],
            Some(f.exposure(name).unwrap_or(0.0)),
            name,
        );
        assert_rate(&zone["dwell"]["p50_seconds"], z.dwell.median(), name);
        assert_rate(&zone["dwell"]["p90_seconds"], z.dwell.quantile(0.9), name);
    }
}

#[tokio::test]
async fn a_past_days_funnel_figures_equal_the_funnels_own_methods() {
    let (app, _) = app(paris_today(), None);
    let source = paris_today();
    let day = source
        .days
        .iter()
        .find(|d| d.local_date == "2026-10-20")
        .unwrap();
    let json = get_json(&app, "/api/v1/funnel?date=2026-10-20").await;
    assert_funnel_matches(&json, &day.funnel);
    assert_eq!(json["provisional"], false);
    assert_eq!(json["days"][0]["source"], "daily_summary");
    let door = &json["door_scaled"];
    assert_eq!(door["sampling_ratio"].as_f64(), day.funnel.sampling_ratio());
    assert_eq!(
        door["visitors"].as_f64(),
        day.funnel.door_scaled(day.funnel.visitors())
    );
    assert_eq!(json["funnel"]["sales_conversion_denominator"], "door_in");
}

#[tokio::test]
async fn a_range_merges_its_days_and_repeat_is_not_measured_without_counts() {
    let (app, _) = app(paris_today(), None);
    let source = paris_today();
    let mut expected = Funnel::default();
    for d in &source.days {
        if ("2026-10-19"..="2026-10-22").contains(&d.local_date.as_str()) {
            expected.merge(&d.funnel);
        }
    }
    let json = get_json(&app, "/api/v1/funnel?from=2026-10-19&to=2026-10-22").await;
    assert_funnel_matches(&json, &expected);
    assert_eq!(json["days"].as_array().unwrap().len(), 4);
    assert_eq!(json["funnel"]["repeat"]["measured"], false);
    assert!(json["funnel"]["repeat"]["rate"].is_null());
    assert_eq!(json["traffic_by_hour"].as_array().unwrap().len(), 4 * 24);
}

#[tokio::test]
async fn today_merges_final_and_provisional_windows_and_flags_the_provisional_hours() {
    let mut source = paris_today();
    // A window both final and (stale) provisional counts once, as final.
    let duplicate = source.windows.last().unwrap().clone();
    let mut stale = duplicate.clone();
    stale.funnel.entries += 100;
    source.provisional.push(stale);
    let mut all = source.windows.clone();
    all.extend(
        source.provisional[..source.provisional.len() - 1]
            .iter()
            .cloned(),
    );
    let expected = merged(&all);
    let (app, _) = app(source, None);

    let json = get_json(&app, "/api/v1/funnel").await;
    assert_eq!(json["from"], "2026-10-25");
    assert_eq!(json["today"], "2026-10-25");
    assert_eq!(json["provisional"], true);
    assert_funnel_matches(&json, &expected);
    let hours = json["traffic_by_hour"].as_array().unwrap();
    assert_eq!(hours.len(), 25);
    let provisional: Vec<&str> = hours
        .iter()
        .filter(|h| h["provisional"] == true)
        .map(|h| h["local_time"].as_str().unwrap())
        .collect();
    assert_eq!(provisional, ["14:00", "15:00"]);
    // Last week's hours beside today's: 2026-10-18 has 24 hours, today's repeated 02:00 gets
    // a match only for its first run.
    assert_eq!(hours[2]["last_week"]["local_date"], "2026-10-18");
    assert!(hours[3]["last_week"].is_null(), "second 02:00 has no twin");
    assert_eq!(hours.iter().filter(|h| h["last_week"].is_null()).count(), 1);
}

#[tokio::test]
async fn a_23_hour_dst_day_has_23_hourly_rows_without_2_am() {
    let tz = chrono_tz::Europe::Paris;
    let day = date("2026-03-29");
    let windows = day_windows(tz, day, 3, false);
    assert_eq!(windows.len(), 92);
    let source = FakeSource {
        store: Some(store(tz, false)),
        windows: windows.clone(),
        live: LiveView {
            now: utc("2026-04-02T10:00:00Z"),
            ..LiveView::default()
        },
        ..FakeSource::default()
    };
    let (app, _) = app(source, None);
    let json = get_json(&app, "/api/v1/funnel?date=2026-03-29").await;
    let hours = json["traffic_by_hour"].as_array().unwrap();
    let labels: Vec<u64> = hours
        .iter()
        .map(|h| h["local_hour"].as_u64().unwrap())
        .collect();
    assert_eq!(hours.len(), 23);
    assert_eq!(labels[..4], [0, 1, 3, 4]);
    assert_eq!(hours[1]["utc_offset"], "+01:00");
    assert_eq!(hours[2]["utc_offset"], "+02:00");
    assert_eq!(hours[2]["hour_start"], utc("2026-03-29T01:00:00Z").0);
    assert_funnel_matches(&json, &merged(&windows));
    assert_eq!(json["days"][0]["source"], "windows");
    assert_eq!(json["days"][0]["final_windows"], 92);
    let entries: u64 = hours.iter().map(|h| h["entries"].as_u64().unwrap()).sum();
    assert_eq!(entries, merged(&windows).entries);
}

#[tokio::test]
async fn a_25_hour_dst_day_has_25_hourly_rows_with_2_am_twice() {
    let tz = chrono_tz::Europe::Paris;
    let day = date("2026-10-25");
    let windows = day_windows(tz, day, 5, false);
    assert_eq!(windows.len(), 100);
    let source = FakeSource {
        store: Some(store(tz, false)),
        days: vec![daily(tz, day, &windows)],
        live: LiveView {
            now: utc("2026-10-27T10:00:00Z"),
            ..LiveView::default()
        },
        ..FakeSource::default()
    };
    let (app, _) = app(source, None);
    let json = get_json(&app, "/api/v1/funnel?date=2026-10-25").await;
    let hours = json["traffic_by_hour"].as_array().unwrap();
    assert_eq!(hours.len(), 25);
    let twos: Vec<(&str, &str)> = hours
        .iter()
        .filter(|h| h["local_hour"] == 2)
        .map(|h| {
            (
                h["local_time"].as_str().unwrap(),
                h["utc_offset"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(twos, [("02:00", "+02:00"), ("02:00", "+01:00")]);
    assert_eq!(hours[24]["local_hour"], 23);
    let starts: Vec<i64> = hours
        .iter()
        .map(|h| h["hour_start"].as_i64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[1] - w[0] == 3_600_000));
    assert_funnel_matches(&json, &merged(&windows));
}

/// Windows on both sides of a local date's edges, returned by an honest source.
fn edge_source(tz: chrono_tz::Tz, starts: &[&str], now: &str) -> FakeSource {
    let mut rng = Rng(99);
    let windows = starts
        .iter()
        .enumerate()
        .map(|(i, s)| window(tz, utc(s), funnel(&mut rng, 10 + i as u64, 1, false, true)))
        .collect();
    FakeSource {
        store: Some(store(tz, false)),
        windows,
        live: LiveView {
            now: utc(now),
            ..LiveView::default()
        },
        ..FakeSource::default()
    }
}

#[tokio::test]
async fn a_tokyo_date_takes_the_windows_of_its_local_day_not_the_utc_day() {
    let tz = chrono_tz::Asia::Tokyo;
    // 2026-06-10 in Tokyo is 2026-06-09T15:00Z..2026-06-10T15:00Z.
    let source = edge_source(
        tz,
        &[
            "2026-06-09T14:45:00Z", // 23:45 on the 9th
            "2026-06-09T15:00:00Z", // 00:00 on the 10th
            "2026-06-10T03:00:00Z", // 12:00 on the 10th
            "2026-06-10T14:45:00Z", // 23:45 on the 10th
            "2026-06-10T15:00:00Z", // 00:00 on the 11th
        ],
        "2026-06-11T01:00:00Z",
    );
    let expected = merged(&source.windows[1..4]);
    let (app, source) = app(source, None);
    let json = get_json(&app, "/api/v1/funnel?date=2026-06-10").await;
    assert_funnel_matches(&json, &expected);
    assert_eq!(json["funnel"]["entries"], 11 + 12 + 13);
    let hours = json["traffic_by_hour"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    assert_eq!(hours[0]["hour_start"], utc("2026-06-09T15:00:00Z").0);
    assert_eq!(hours[0]["entries"], 11);
    assert_eq!(hours[12]["entries"], 12);
    assert_eq!(hours[23]["entries"], 13);
    assert!(
        source
            .window_calls
            .lock()
            .unwrap()
            .contains(&(utc("2026-06-09T15:00:00Z"), utc("2026-06-10T15:00:00Z")))
    );
    // Tokyo's "today" at 01:00Z on the 11th is already the 11th.
    let today = get_json(&app, "/api/v1/funnel").await;
    assert_eq!(today["from"], "2026-06-11");
    assert_eq!(today["funnel"]["entries"], 14);
}

#[tokio::test]
async fn a_kolkata_date_with_a_half_hour_offset_takes_the_right_windows_and_hours() {
    let tz = chrono_tz::Asia::Kolkata;
    // 2026-03-02 in Kolkata is 2026-03-01T18:30Z..2026-03-02T18:30Z.
    let source = edge_source(
        tz,
        &[
            "2026-03-01T18:15:00Z", // 23:45 on the 1st
            "2026-03-01T18:30:00Z", // 00:00 on the 2nd
            "2026-03-02T04:45:00Z", // 10:15 on the 2nd
            "2026-03-02T18:15:00Z", // 23:45 on the 2nd
            "2026-03-02T18:30:00Z", // 00:00 on the 3rd
        ],
        "2026-03-05T00:00:00Z",
    );
    let expected = merged(&source.windows[1..4]);
    let (app, _) = app(source, None);
    let json = get_json(&app, "/api/v1/funnel?date=2026-03-02").await;
    assert_funnel_matches(&json, &expected);
    let hours = json["traffic_by_hour"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    assert_eq!(hours[0]["hour_start"], utc("2026-03-01T18:30:00Z").0);
    assert_eq!(hours[0]["local_time"], "00:00");
    assert_eq!(hours[0]["utc_offset"], "+05:30");
    assert_eq!(hours[10]["hour_start"], utc("2026-03-02T04:30:00Z").0);
    assert_eq!(hours[10]["entries"], 12);
    assert_eq!(hours[23]["entries"], 13);
    assert_eq!(json["funnel"]["repeat"]["measured"], true);
}

#[tokio::test]
async fn bad_parameters_get_a_400_naming_the_parameter_and_the_fix() {
    let (app, _) = app(paris_today(), None);
    for (uri, parameter) in [
        ("/api/v1/funnel?date=2026-13-01", "date"),
        ("/api/v1/funnel?date=yesterday", "date"),
        ("/api/v1/funnel?date=2026-10-26", "date"),
        ("/api/v1/funnel?from=2026-10-20", "to"),
        ("/api/v1/funnel?to=2026-10-20", "from"),
        ("/api/v1/funnel?from=2026-10-22&to=2026-10-20", "to"),
        ("/api/v1/funnel?from=2025-01-01&to=2026-10-20", "from"),
        ("/api/v1/funnel?date=2026-10-20&from=2026-10-19", "date"),
        ("/api/v1/funnel?day=2026-10-20", "day"),
        ("/api/v1/funnel?date=2026-10-20&date=2026-10-21", "date"),
        ("/api/v1/live?verbose=1", "verbose"),
        ("/api/v1/store?x", "x"),
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "bad_parameter", "{uri}");
        assert_eq!(json["parameter"], parameter, "{uri}: {body}");
        assert!(!json["fix"].as_str().unwrap().is_empty(), "{uri}");
    }
    let (status, body) = get(&app, "/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn when_a_token_is_set_every_route_but_healthz_requires_it() {
    let (app, _) = app(paris_today(), Some("s3cret-token"));
    for uri in [
        "/",
        "/api/v1/store",
        "/api/v1/funnel",
        "/api/v1/live",
        "/api/v1/health",
        "/api/v1/openapi.yaml",
        "/metrics",
        "/readyz",
        "/api/v1/nope",
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        if uri != "/" {
            assert!(body.contains("unauthorized"), "{uri}: {body}");
        }
        let (status, _) = get_with(&app, uri, Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} with a wrong token");
        let (status, _) = get_with(&app, uri, Some("s3cret-toke")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{uri} with a prefix of the token"
        );
        let expected = if uri == "/api/v1/nope" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        let (status, _) = get_with(&app, uri, Some("s3cret-token")).await;
        assert_eq!(status, expected, "{uri} with the bearer token");
        let sep = if uri.contains('?') { '&' } else { '?' };
        let (status, _) = get(&app, &format!("{uri}{sep}token=s3cret-token")).await;
        assert_eq!(status, expected, "{uri} with ?token=");
    }
    let (status, _) = get(&app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    // The token parameter is not taken for an unknown parameter.
    let json = get_json(&app, "/api/v1/funnel?date=2026-10-20&token=s3cret-token").await;
    assert_eq!(json["from"], "2026-10-20");
}

#[tokio::test]
async fn readyz_follows_the_sources_readiness_and_healthz_is_always_up() {
    let mut source = paris_today();
    source.health.ready = false;
    let (app, _) = app(source, None);
    assert_eq!(
        get(&app, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
    let (ready, _) = common::app(paris_today(), None);
    assert_eq!(get(&ready, "/readyz").await.0, StatusCode::OK);
}

/// Parses the text exposition format strictly enough to catch a malformed line:
/// `# HELP|TYPE|UNIT name ...`, `# EOF`, or `name{label="value",...} number`.
/// A sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut saw_eof = false;
    for line in text.lines() {
        assert!(!saw_eof, "nothing may follow # EOF");
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            assert!(["HELP", "TYPE", "UNIT"].contains(&kind), "{line}");
            assert!(name_ok(parts.next().unwrap()), "{line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap();
                assert!(
                    [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "unknown",
                        "stateset",
                        "gaugehistogram"
                    ]
                    .contains(&t),
                    "{line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().expect(line);
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect(line);
                let labels = body
                    .split(',')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect(line);
                        assert!(name_ok(k), "{line}");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect(line);
                        (k.to_owned(), v.to_owned())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        assert!(name_ok(name), "{line}");
        samples.push((name.to_owned(), labels, value));
    }
    assert!(saw_eof, "OpenMetrics ends with # EOF");
    samples
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_carry_the_counters() {
    let (app, _) = app(paris_today(), None);
    let (status, text) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let samples = parse_exposition(&text);
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .unwrap_or_else(|| panic!("{name} {labels:?} missing in\n{text}"))
            .2
    };
    assert_eq!(value("storefront_events_in_total", &[]), 123_456.0);
    assert_eq!(
        value("storefront_events_rejected_total", &[("reason", "late")]),
        7.0
    );
    assert_eq!(
        value(
            "storefront_events_rejected_total",
            &[("reason", "unknown_scanner")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "storefront_events_dropped_total",
            &[("reason", "channel_full")]
        ),
        1.0
    );
    assert_eq!(
        value("storefront_engine_shed_total", &[("kind", "device")]),
        2_500.0
    );
    assert_eq!(value("storefront_clock_steps_back_total", &[]), 1.0);
    assert_eq!(value("storefront_commit_failures_total", &[]), 5.0);
    assert_eq!(value("storefront_outbox_depth", &[]), 4.0);
    assert_eq!(value("storefront_sync_lag_seconds", &[]), 12.5);
    assert_eq!(value("storefront_sync_acks_ignored_total", &[]), 3.0);
    assert_eq!(value("storefront_window_finality_lag_seconds", &[]), 930.0);
    assert_eq!(value("storefront_sled_size_bytes", &[]), 1_048_576.0);
    assert_eq!(value("storefront_windows_final_total", &[]), 96.0);
    assert_eq!(value("storefront_sync_connected", &[]), 1.0);
    assert_eq!(value("storefront_ready", &[]), 1.0);
    assert!(
        text.contains("# TYPE storefront_events_rejected counter"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_carry_when_each_source_was_last_seen_and_nothing_for_one_never_seen() {
    const LAST_SEEN: &str = "storefront_source_last_seen_timestamp_seconds";
    let mut source = paris_today();
    let now = source.live.now;
    // Every kind heard from (the POS too), and one scanner node never heard from.
    source.health.sensors[4].last_seen = Some(now.plus_secs(-90));
    source.health.sensors.push(SensorHealth {
        kind: SensorKind::Scanner,
        id: "scanner-new".into(),
        last_seen: None,
        status: SensorStatus::Offline,
    });
    let sensors = source.health.sensors.clone();
    let (app, _) = app(source, None);
    let (status, text) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let samples = parse_exposition(&text);
    assert!(
        text.contains(&format!("# TYPE {LAST_SEEN} gauge")),
        "{text}"
    );
    assert!(
        text.contains(&format!("# UNIT {LAST_SEEN} seconds")),
        "{text}"
    );
    for sensor in &sensors {
        let of_sensor: Vec<f64> = samples
            .iter()
            .filter(|(name, labels, _)| {
                name == LAST_SEEN
                    && labels.len() == 2
                    && labels.contains(&("kind".to_owned(), sensor.kind.as_str().to_owned()))
                    && labels.contains(&("id".to_owned(), sensor.id.clone()))
            })
            .map(|(_, _, value)| *value)
            .collect();
        let expected: Vec<f64> = sensor
            .last_seen
            .map(|t| t.millis() as f64 / 1000.0)
            .into_iter()
            .collect();
        assert_eq!(
            of_sensor, expected,
            "{:?} {}:\n{text}",
            sensor.kind, sensor.id
        );
    }
    let kinds = [
        SensorKind::Scanner,
        SensorKind::Door,
        SensorKind::Pos,
        SensorKind::BleAdapter,
    ];
    assert!(kinds.iter().all(|k| {
        sensors
            .iter()
            .any(|s| s.kind == *k && s.last_seen.is_some())
    }));
    assert_eq!(
        samples
            .iter()
            .filter(|(name, _, _)| name == LAST_SEEN)
            .count(),
        5,
        "one sample per source heard from"
    );
}

#[tokio::test]
async fn the_lag_gauges_read_0_when_nothing_waits_rather_than_vanishing() {
    let mut source = paris_today();
    source.metrics.sync_lag_seconds = 0.0;
    source.metrics.window_finality_lag_seconds = 0.0;
    source.metrics.sled_size_bytes = None;
    let (app, _) = app(source, None);
    let (_, text) = get(&app, "/metrics").await;
    let samples = parse_exposition(&text);
    for name in [
        "storefront_sync_lag_seconds",
        "storefront_window_finality_lag_seconds",
    ] {
        let values: Vec<f64> = samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| *v)
            .collect();
        assert_eq!(values, [0.0], "{name}:\n{text}");
    }
    assert!(
        !text.contains("storefront_sled_size_bytes"),
        "an unknown size is left out:\n{text}"
    );
}

#[tokio::test]
async fn live_store_and_health_answer_with_the_sources_views() {
    let (app, _) = app(paris_today(), None);
    let live = get_json(&app, "/api/v1/live").await;
    assert_eq!(live["devices_in_store"], 17);
    assert_eq!(live["door_occupancy"], 35);
    assert_eq!(live["local_date"], "2026-10-25");
    let store = get_json(&app, "/api/v1/store").await;
    assert_eq!(store["timezone"], "Europe/Paris");
    assert_eq!(store["has_door_sensor"], true);
    let health = get_json(&app, "/api/v1/health").await;
    assert_eq!(health["sensors"][0]["kind"], "ble_adapter");
    assert_eq!(health["sensors"][4]["status"], "offline");
    assert!(health["sensors"][4]["last_seen"].is_null());
    assert_eq!(health["sync"]["backlog"], 3);
}

#[tokio::test]
async fn the_openapi_document_is_served_and_names_every_endpoint() {
    let (app, _) = app(paris_today(), None);
    let (status, yaml) = get(&app, "/api/v1/openapi.yaml").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        yaml.starts_with("openapi: 3.1"),
        "{}",
        &yaml[..40.min(yaml.len())]
    );
    for path in [
        "/api/v1/store:",
        "/api/v1/funnel:",
        "/api/v1/live:",
        "/api/v1/health:",
        "/api/v1/openapi.yaml:",
        "/metrics:",
        "/healthz:",
        "/readyz:",
    ] {
        assert!(yaml.contains(path), "{path} undocumented");
    }
}

#[tokio::test]
async fn the_page_is_self_contained() {
    let (app, _) = app(paris_today(), None);
    let (status, html) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    for external in [
        "src=\"http",
        "href=\"http",
        "@import",
        "url(",
        "<link",
        "src=\"//",
    ] {
        assert!(!html.contains(external), "page refers outside: {external}");
    }
}

#[test]
fn the_report_table_has_a_row_per_day_and_a_total_row() {
    let source = paris_today();
    let store = source.store.clone().unwrap();
    let days = &source.days[..3];
    let (from, to) = (date("2026-10-22"), date("2026-10-24"));
    let table = report_table(days, &store, from, to);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + 1 + 3 + 1 + 1, "{table}");
    assert!(lines[1].starts_with("date"));
    assert!(lines[6].starts_with("total"));
    let mut total = Funnel::default();
    for d in days {
        total.merge(&d.funnel);
        assert!(table.contains(&d.local_date));
    }
    let json = report(days, &store, from, to);
    let t = json.total.unwrap().funnel.unwrap();
    assert_eq!(t.entries, total.entries);
    assert_eq!(t.shopfront_conversion, total.shopfront_conversion());
    assert!(
        lines[6].contains(&format!(" {} ", total.entries)),
        "{table}"
    );
    assert!(lines[6].contains(&format!("{:.1}%", total.bounce_rate().unwrap() * 100.0)));
    assert!(table.contains("n/m"), "repeat not measured is shown as n/m");
    assert!(report_table(&[], &store, from, to).contains("no final days"));
}

#[test]
fn the_report_shows_no_data_for_a_day_without_coverage_and_totals_the_others() {
    let source = paris_with_gaps();
    let store = source.store.clone().unwrap();
    let (from, to) = (date("2026-10-19"), date("2026-10-21"));
    let table = report_table(&source.days, &store, from, to);
    let row = table
        .lines()
        .find(|l| l.starts_with("2026-10-20"))
        .unwrap_or_else(|| panic!("a row for the day without data:\n{table}"));
    assert!(row.ends_with("no data"), "{row}");
    assert!(table.contains("not zero traffic"), "{table}");
    let json = report(&source.days, &store, from, to);
    assert_eq!(json.days.len(), 3);
    assert!(json.days[1].funnel.is_none() && json.days[1].no_data.is_some());
    let mut expected = Funnel::default();
    for d in source
        .days
        .iter()
        .filter(|d| d.local_date == "2026-10-19" || d.local_date == "2026-10-21")
    {
        expected.merge(&d.funnel);
    }
    assert_eq!(
        json.total.unwrap().funnel.unwrap().entries,
        expected.entries
    );
}

#[test]
fn funnel_report_is_the_same_figures_as_the_api() {
    let source = paris_today();
    let r = funnel_report(&source, date("2026-10-20"), date("2026-10-20")).unwrap();
    let day = source
        .days
        .iter()
        .find(|d| d.local_date == "2026-10-20")
        .unwrap();
    assert_eq!(r.funnel.unwrap().entries, day.funnel.entries);
    assert_eq!(r.traffic_by_hour.len(), 24);
}

/// Paris today, with the gateway off all of 2026-10-20 and, on 2026-10-18 (today's "last
/// week"), on only from 09:00 to 20:00: only those windows exist, each fully covered by BLE.
fn paris_with_gaps() -> FakeSource {
    let mut source = paris_today();
    let tz = chrono_tz::Europe::Paris;
    source
        .days
        .retain(|d| d.local_date != "2026-10-20" && d.local_date != "2026-10-18");
    let covered: Vec<_> = day_windows(tz, date("2026-10-18"), 1010, true)
        .into_iter()
        .filter(|w| (9..20).contains(&w.local_hour))
        .map(|mut w| {
            w.coverage = Some(Coverage {
                ble_seconds: 900,
                door_seconds: Some(900),
                pos_seconds: None,
            });
            w
        })
        .collect();
    source.days.push(daily(tz, date("2026-10-18"), &covered));
    source
}

#[tokio::test]
async fn a_day_no_input_covered_is_no_data_not_zeros() {
    let (app, _) = app(paris_with_gaps(), None);
    let json = get_json(&app, "/api/v1/funnel?date=2026-10-20").await;
    assert!(json["funnel"].is_null(), "{}", json["funnel"]);
    assert!(json["visit_duration"].is_null());
    assert!(
        json["no_data"]
            .as_str()
            .is_some_and(|r| r.contains("not zero traffic")),
        "{}",
        json["no_data"]
    );
    assert_eq!(json["days"][0]["source"], "none");
    let hours = json["traffic_by_hour"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    for hour in hours {
        assert!(hour["entries"].is_null(), "{hour}");
        assert!(hour["passers_by"].is_null(), "{hour}");
    }
}

#[tokio::test]
async fn hours_without_coverage_are_no_data_and_last_week_skips_them() {
    let (app, _) = app(paris_with_gaps(), None);
    let json = get_json(&app, "/api/v1/funnel?date=2026-10-18").await;
    assert_eq!(json["days"][0]["coverage"]["ble_seconds"], 11 * 3600);
    let hours = json["traffic_by_hour"].as_array().unwrap();
    for hour in hours {
        let open = (9..20).contains(&hour["local_hour"].as_u64().unwrap());
        assert_eq!(!hour["entries"].is_null(), open, "{hour}");
        if open {
            assert_eq!(hour["coverage"]["ble_seconds"], 3600, "{hour}");
        }
    }
    // Today against that day: only its covered hours are compared, never a 0 for an hour the
    // gateway was off.
    let today = get_json(&app, "/api/v1/funnel").await;
    for hour in today["traffic_by_hour"].as_array().unwrap() {
        let open = (9..20).contains(&hour["local_hour"].as_u64().unwrap());
        assert_eq!(!hour["last_week"].is_null(), open, "{hour}");
    }
}
