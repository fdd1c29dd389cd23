use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
[store]
id = "paris-rivoli"
org = "acme"
timezone = "Europe/Paris"

[[zones]]
id = "storefront"
kind = "storefront"
scanners = ["sf-1"]

[[zones]]
id = "floor"
kind = "in_store"
scanners = ["floor-1"]
"#;

fn origin() -> PathBuf {
    PathBuf::from("/etc/storefront/store.toml")
}

fn parse(text: &str) -> Result<StoreConfig, ConfigError> {
    StoreConfig::parse(text, &origin())
}

/// The problems of an invalid config, asserting it was invalid (not a syntax error).
fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Err(ConfigError::Invalid { problems, path }) => {
            assert_eq!(path, origin());
            problems
        }
        other => panic!("expected invalid settings, got {other:?}"),
    }
}

fn fields(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.field.as_str()).collect()
}

#[test]
fn every_shipped_example_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("config/examples exists") {
        let path = entry.expect("readable directory entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = StoreConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config.path, path);
            let engine = config.engine_config();
            assert!(engine.zones.iter().any(|z| z.kind == ZoneKind::Storefront));
            seen += 1;
        }
    }
    assert!(
        seen >= 3,
        "expected the shipped examples in {}",
        dir.display()
    );
}

#[test]
fn template_parses_and_equals_defaults() {
    let template = StoreConfig::parse(&generate_config_template(), &origin())
        .unwrap_or_else(|e| panic!("{e}"));
    let minimal = parse(
        &MINIMAL
            .replace("paris-rivoli", "my-store")
            .replace("my-store\"\norg = \"acme", "my-store\"\norg = \"my-org"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(template.metrics, Metrics::default());
    assert_eq!(template.metrics, minimal.metrics);
    assert_eq!(template.privacy, Privacy::default());
    assert_eq!(template.privacy, minimal.privacy);
    assert_eq!(template.storage, minimal.storage);
    assert_eq!(template.sync, minimal.sync);
    assert_eq!(template.sources, minimal.sources);
    assert_eq!(template.door_sensors, minimal.door_sensors);
    assert_eq!(template.engine_config().thresholds, Thresholds::default());
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.store.name, "paris-rivoli");
    assert_eq!(c.store.timezone, chrono_tz::Europe::Paris);
    assert_eq!(c.sync.broker, Broker::default());
    assert_eq!(c.sync.broker.host, "127.0.0.1");
    assert_eq!(c.sync.broker.port, 1883);
    assert_eq!(c.sync.client_id, "storefront-acme-paris-rivoli");
    assert_eq!(c.sync.keep_alive, Duration::from_secs(30));
    assert_eq!(c.storage.path, Path::new("/etc/storefront/storefront-data"));
    assert_eq!(c.storage.cache_capacity_bytes, 16 << 20);
    assert_eq!(c.zones[1].enter_rssi_dbm, -75);
    assert_eq!(c.zones[1].exit_rssi_dbm, -80);
    assert_eq!(c.sources.pos, None);
}

#[test]
fn unknown_field_error_names_file_line_and_field() {
    let text = MINIMAL.replace(
        "kind = \"in_store\"",
        "kind = \"in_store\"\nscaners = [\"x\"]",
    );
    let err = parse(&text).unwrap_err();
    let ConfigError::Syntax {
        path,
        line,
        column,
        problem,
    } = &err
    else {
        panic!("expected a syntax error, got {err:?}");
    };
    assert_eq!(path, &origin());
    assert_eq!((*line, *column), (15, 1));
    assert_eq!(problem.field, "zones[1].scaners");
    let shown = err.to_string();
    assert!(
        shown.starts_with(
            "/etc/storefront/store.toml:15:1: zones[1].scaners: unknown field `scaners`"
        ),
        "{shown}"
    );
    assert!(shown.contains("fix:"), "{shown}");
}

#[test]
fn unknown_table_and_missing_key_name_their_field() {
    let err = parse(&format!("{MINIMAL}\n[storage2]\npath = \"x\"\n")).unwrap_err();
    assert_eq!(err.problems()[0].field, "storage2");
    let err = parse(&MINIMAL.replace("timezone = \"Europe/Paris\"\n", "")).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Syntax { line: 2, .. }),
        "{err:?}"
    );
    assert_eq!(err.problems()[0].field, "store.timezone");
    let err = parse(&format!(
        "{MINIMAL}\n[[sources.scanner_mqtt]]\ntopic = \"a/#\"\n"
    ))
    .unwrap_err();
    assert_eq!(err.problems()[0].field, "sources.scanner_mqtt[0].format");
    let err = parse(&MINIMAL.replace("min_samples", "x").replace(
        "[[zones]]\nid = \"floor\"",
        "[metrics]\nmin_samples = \"3\"\n\n[[zones]]\nid = \"floor\"",
    ))
    .unwrap_err();
    assert_eq!(err.problems()[0].field, "metrics.min_samples");
    let err = parse("[metrics]\n").unwrap_err();
    assert_eq!(err.problems()[0].field, "store");
}

#[test]
fn several_mistakes_are_reported_at_once_each_with_its_field() {
    let text = r#"
[store]
id = "paris/rivoli"
org = ""
timezone = "Europe/Pariss"

[metrics]
exit_rssi_dbm = -70
min_samples = 0
window_seconds = 1000
visit_gap_seconds = 20

[[zones]]
id = "storefront"
kind = "storefront"
scanners = ["sf-1"]

[[zones]]
id = "floor"
kind = "instore"
scanners = ["sf-1", "floor#1"]

[privacy]
staff_devices = ["00abcdef01234567", "aa:bb:cc:dd:ee:ff"]

[sync]
broker = "tcp://hq:1883"
ca_file = "ca.pem"
publish_per_second = 0
"#;
    let problems = problems(text);
    let fields = fields(&problems);
    for expected in [
        "store.id",
        "store.org",
        "store.timezone",
        "metrics.exit_rssi_dbm",
        "metrics.min_samples",
        "metrics.window_seconds",
        "metrics.visit_gap_seconds",
        "zones[1].kind",
        "zones[1].scanners[0]",
        "zones[1].scanners[1]",
        "privacy.staff_devices[1]",
        "sync.broker",
        "sync.ca_file",
        "sync.publish_per_second",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
    let shown = ConfigError::Invalid {
        path: origin(),
        problems: problems.clone(),
    }
    .to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), problems.len() + 1, "{shown}");
    for (line, problem) in lines[1..].iter().zip(&problems) {
        assert!(
            line.starts_with(&format!("/etc/storefront/store.toml: {}: ", problem.field)),
            "{line}"
        );
        assert!(line.contains("; fix: "), "{line}");
    }
}

#[test]
fn duplicate_scanner_across_zones_is_rejected() {
    let text = MINIMAL.replace(
        "scanners = [\"floor-1\"]",
        "scanners = [\"floor-1\", \"sf-1\"]",
    );
    let problems = problems(&text);
    assert_eq!(fields(&problems), ["zones[1].scanners[1]"]);
    assert!(
        problems[0].message.contains("zones[0].scanners[0]"),
        "{}",
        problems[0].message
    );
}

#[test]
fn zone_structure_is_checked() {
    let text = MINIMAL
        .replace("kind = \"in_store\"", "kind = \"storefront\"")
        .replace("id = \"floor\"", "id = \"storefront\"");
    let problems = problems(&text);
    let fields = fields(&problems);
    assert!(fields.contains(&"zones[1].id"), "{fields:?}");
    assert!(fields.contains(&"zones[1].kind"), "{fields:?}");
    assert!(fields.contains(&"zones"), "{fields:?}");
}

#[test]
fn bad_timezone_suggests_a_fix() {
    let problems = problems(&MINIMAL.replace("Europe/Paris", "europe/paris"));
    assert_eq!(fields(&problems), ["store.timezone"]);
    assert!(
        problems[0].fix.contains("\"Europe/Paris\""),
        "{}",
        problems[0].fix
    );
    let problems = problems_of_tz("Mars/Olympus_Mons");
    assert!(
        problems[0].fix.contains("e.g. \"Europe/Paris\""),
        "{}",
        problems[0].fix
    );
}

fn problems_of_tz(tz: &str) -> Vec<Problem> {
    problems(&MINIMAL.replace("Europe/Paris", tz))
}

#[test]
fn window_seconds_1000_is_rejected() {
    let text = MINIMAL.replace(
        "[[zones]]\nid = \"storefront\"",
        "[metrics]\nwindow_seconds = 1000\n\n[[zones]]\nid = \"storefront\"",
    );
    let problems = problems(&text);
    assert_eq!(fields(&problems), ["metrics.window_seconds"]);
    assert!(
        problems[0].fix.contains("nearest: 900"),
        "{}",
        problems[0].fix
    );
}

#[test]
fn zone_thresholds_override_metrics_and_are_checked() {
    let text = MINIMAL.replace(
        "scanners = [\"floor-1\"]",
        "scanners = [\"floor-1\"]\nenter_rssi_dbm = -70",
    );
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (c.zones[1].enter_rssi_dbm, c.zones[1].exit_rssi_dbm),
        (-70, -80)
    );
    let text = MINIMAL.replace(
        "scanners = [\"floor-1\"]",
        "scanners = [\"floor-1\"]\nenter_rssi_dbm = -85",
    );
    assert_eq!(fields(&problems(&text)), ["zones[1].enter_rssi_dbm"]);
    let text = MINIMAL.replace(
        "scanners = [\"floor-1\"]",
        "scanners = [\"floor-1\"]\nexit_rssi_dbm = -95",
    );
    assert_eq!(fields(&problems(&text)), ["zones[1].exit_rssi_dbm"]);
    let text = MINIMAL.replace(
        "scanners = [\"floor-1\"]",
        "scanners = [\"floor-1\"]\nexit_rssi_dbm = -130",
    );
    assert!(fields(&problems(&text)).contains(&"zones[1].exit_rssi_dbm"));
}

#[test]
fn engine_config_carries_thresholds_in_ms_and_repeat_is_not_measurable_by_default() {
    let c = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    let e = c.engine_config();
    assert_eq!(e.store_id, "paris-rivoli");
    assert_eq!(e.timezone, chrono_tz::Europe::Paris);
    assert_eq!(e.thresholds, Thresholds::default());
    assert_eq!(e.thresholds.visit_gap_ms, 300_000);
    assert_eq!(e.thresholds.bounce_ms, 120_000);
    assert_eq!(e.thresholds.max_event_delay_ms, 5_000);
    assert_eq!(e.thresholds.max_count_delay_ms, 120_000);
    assert!(!e.repeat_measurable, "rotation 1 day < lookback 30 days");
    assert_eq!(e.zones.len(), 2);
    assert_eq!(e.zones[0].scanners, ["sf-1"]);

    let text = MINIMAL.replace(
        "[[zones]]\nid = \"storefront\"",
        "[privacy]\npseudonym_rotation_days = 30\nstaff_devices = [\"00abcdef01234567\"]\n\n[metrics]\nvisit_gap_seconds = 600\n\n[[zones]]\nid = \"storefront\"",
    );
    let e = parse(&text)
        .unwrap_or_else(|e| panic!("{e}"))
        .engine_config();
    assert!(e.repeat_measurable);
    assert_eq!(e.thresholds.visit_gap_ms, 600_000);
    assert_eq!(
        e.staff_devices,
        [storefront_protocol::DeviceId(0x00ab_cdef_0123_4567)]
    );
}

#[test]
fn sync_tls_and_credentials_are_checked() {
    let with_sync = |sync: &str| format!("{MINIMAL}\n[sync]\n{sync}\n");
    let c = parse(&with_sync("broker = \"mqtts://hq.example.com\"\nca_file = \"certs/ca.pem\"\nusername = \"u\"\npassword_file = \"/run/secrets/p\""))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.sync.broker,
        Broker {
            host: "hq.example.com".into(),
            port: 8883,
            tls: true
        }
    );
    assert_eq!(
        c.sync.ca_file.as_deref(),
        Some(Path::new("/etc/storefront/certs/ca.pem"))
    );
    assert_eq!(
        c.sync.password_file.as_deref(),
        Some(Path::new("/run/secrets/p"))
    );
    assert_eq!(
        fields(&problems(&with_sync(
            "broker = \"mqtts://h\"\nclient_cert_file = \"c.pem\""
        ))),
        ["sync.client_key_file"]
    );
    assert_eq!(
        fields(&problems(&with_sync("password_file = \"p\""))),
        ["sync.username"]
    );
    assert_eq!(
        fields(&problems(&with_sync("keep_alive_seconds = 0"))),
        ["sync.keep_alive_seconds"]
    );
}

#[test]
fn sources_are_checked() {
    let text = format!(
        "{MINIMAL}\n[[sources.scanner_mqtt]]\nformat = \"theengs\"\nscanner_ids = {{ \"kitchen\" = \"floor-1\" }}\n\n[[sources.scanner_mqtt]]\nformat = \"ble-thing\"\ntopic = \"a/#/b\"\nscanner_ids = {{ \"x\" = \"nowhere\" }}\n\n[sources.pos]\nurl = \"ftp://pos\"\npoll_seconds = 0\n"
    );
    let problems = problems(&text);
    assert_eq!(
        fields(&problems),
        [
            "sources.scanner_mqtt[1].format",
            "sources.scanner_mqtt[1].topic",
            "sources.scanner_mqtt[1].scanner_ids.x",
            "sources.pos.url",
            "sources.pos.poll_seconds",
        ]
    );
    let c = parse(&format!("{MINIMAL}\n[[sources.scanner_mqtt]]\nformat = \"theengs\"\nscanner_ids = {{ \"kitchen\" = \"floor-1\" }}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let s = &c.sources.scanner_mqtt[0];
    assert_eq!(s.topic, "home/+/BTtoMQTT/#");
    assert_eq!(s.scanner_id("kitchen"), "floor-1");
    assert_eq!(s.scanner_id("floor-1"), "floor-1");
}

#[test]
fn a_pos_polled_less_often_than_sales_may_be_late_is_an_error() {
    let pos = |poll: u32, delay: u32| {
        format!(
            "[metrics]\nmax_count_delay_seconds = {delay}\ncoverage_grace_seconds = 300\n{MINIMAL}\n[sources.pos]\nurl = \"http://pos.local/tx\"\npoll_seconds = {poll}\n"
        )
    };
    let problems = problems(&pos(300, 120));
    assert_eq!(fields(&problems), ["sources.pos.poll_seconds"]);
    assert!(problems[0].fix.contains("above 300"), "{}", problems[0].fix);
    let c = parse(&pos(300, 600)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.engine_config().thresholds.max_count_delay_ms, 600_000);
}

#[test]
fn missing_file_error_names_it() {
    let err = StoreConfig::load(Path::new("/nonexistent/store.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/store.toml: cannot read"),
        "{err}"
    );
}

/// toml's "unknown field" message lists every key a table accepts: the template must show each.
#[test]
fn template_shows_every_key_of_every_table() {
    let template = generate_config_template();
    let cases = [
        ("", true),
        ("[store]", false),
        ("[metrics]", false),
        ("[[zones]]", false),
        ("# [[door_sensors]]", false),
        ("[privacy]", false),
        ("[storage]", false),
        ("[sync]", false),
        ("[sources.ble]", false),
        ("# [[sources.scanner_mqtt]]", false),
        ("[sources.pos]", false),
    ];
    for (header, keys_are_tables) in cases {
        let text = if header.is_empty() {
            format!("bogus_key = 1\n{template}")
        } else {
            let live = header.trim_start_matches("# ");
            assert!(
                template.contains(&format!("\n{header}\n")),
                "{header} not in the template"
            );
            template.replacen(
                &format!("\n{header}\n"),
                &format!("\n{live}\nbogus_key = 1\n"),
                1,
            )
        };
        let err = StoreConfig::parse(&text, &origin()).unwrap_err();
        let message = &err.problems()[0].message;
        let expected = message.split_once("expected").map_or("", |(_, e)| e);
        let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(!keys.is_empty(), "{header}: {message}");
        for key in keys {
            let shown = if keys_are_tables {
                template.contains(key)
            } else {
                template.contains(&format!("{key} ="))
            };
            assert!(shown, "{header}: key {key} is not in the template");
        }
    }
}

#[test]
fn a_dashboard_address_without_a_port_is_rejected_and_loopback_is_the_default() {
    let config = StoreConfig::parse(MINIMAL, Path::new("store.toml")).unwrap();
    assert_eq!(
        config.dashboard.bind,
        Some("127.0.0.1:8080".parse().unwrap())
    );
    let problems = problems(&format!("{MINIMAL}\n[dashboard]\nbind = \"0.0.0.0\"\n"));
    assert_eq!(fields(&problems), ["dashboard.bind"]);
    assert!(
        problems[0].fix.contains("127.0.0.1:8080"),
        "{}",
        problems[0].fix
    );
}

#[test]
fn coverage_grace_and_pos_systems_reach_the_engine_and_bad_ones_are_named() {
    let text = format!(
        "[metrics]\ncoverage_grace_seconds = 90\n{MINIMAL}\n[[pos_systems]]\nid = \"pos-main\"\n"
    );
    let engine = parse(&text)
        .unwrap_or_else(|e| panic!("{e}"))
        .engine_config();
    assert_eq!(engine.thresholds.coverage_grace_ms, 90_000);
    assert_eq!(engine.pos_sources, ["pos-main"]);
    let default = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        default.engine_config().thresholds.coverage_grace_ms,
        120_000
    );
    assert!(default.pos_systems.is_empty());

    let bad = format!(
        "[metrics]\ncoverage_grace_seconds = 0\n{MINIMAL}\n[[pos_systems]]\nid = \"sf-1\"\n[[pos_systems]]\nid = \"till\"\n[[pos_systems]]\nid = \"till\"\n"
    );
    let named = problems(&bad);
    assert_eq!(
        fields(&named),
        [
            "metrics.coverage_grace_seconds",
            "pos_systems[0].id",
            "pos_systems[2].id"
        ]
    );
    assert!(named[0].fix.contains("at least 1"), "{}", named[0].fix);

    let slow_pos = format!(
        "{MINIMAL}\n[sources.pos]\nurl = \"http://pos.local/tx\"\npoll_seconds = 100\n[metrics]\nmax_count_delay_seconds = 600\ncoverage_grace_seconds = 60\n"
    );
    let slow = problems(&slow_pos);
    assert_eq!(fields(&slow), ["sources.pos.poll_seconds"]);
    assert!(
        slow[0].fix.contains("coverage_grace_seconds to 100"),
        "{}",
        slow[0].fix
    );
}

#[test]
fn ingest_routes_on_an_open_bind_need_their_own_token() {
    let open = format!("{MINIMAL}\n[dashboard]\nbind = \"0.0.0.0:8080\"\ntoken_file = \"dash\"\n");
    let found = problems(&open);
    assert_eq!(fields(&found), ["sources.ingest.token_file"]);
    assert!(found[0].message.contains("0.0.0.0:8080"), "{}", found[0]);
    assert!(
        found[0].fix.contains("Authorization: Bearer"),
        "{}",
        found[0]
    );
    let guarded = format!("{open}\n[sources.ingest]\ntoken_file = \"ingest-token\"\n");
    let config = parse(&guarded).unwrap();
    assert_eq!(
        config.sources.ingest.token_file,
        Some(PathBuf::from("/etc/storefront/ingest-token"))
    );
    // On loopback the routes are open to this machine only: no token needed.
    assert_eq!(parse(MINIMAL).unwrap().sources.ingest.token_file, None);
}

#[test]
fn an_empty_token_file_is_a_config_error_not_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("token");
    std::fs::write(&empty, " \n").unwrap();
    let path = dir.path().join("store.toml");
    let text = format!(
        "{MINIMAL}\n[dashboard]\ntoken_file = \"token\"\n[sources.ingest]\ntoken_file = \"token\"\n"
    );
    let config = StoreConfig::parse(&text, &path).unwrap();
    for (field, result) in [
        ("dashboard.token_file", config.dashboard_token()),
        ("sources.ingest.token_file", config.ingest_token()),
    ] {
        let message = result.unwrap_err().to_string();
        for part in [
            &path.display().to_string(),
            field,
            &empty.display().to_string(),
            "is empty",
            "fix:",
        ] {
            assert!(message.contains(part), "{part:?} missing from {message}");
        }
    }
    std::fs::write(&empty, "s3cret\n").unwrap();
    assert_eq!(config.dashboard_token().unwrap().as_deref(), Some("s3cret"));
    assert_eq!(config.ingest_token().unwrap().as_deref(), Some("s3cret"));
}

#[test]
fn http_limits_have_pi_sane_defaults_and_are_checked() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.dashboard.max_connections, 64);
    assert_eq!(config.dashboard.header_timeout, Duration::from_secs(10));
    assert_eq!(config.dashboard.request_timeout, Duration::from_secs(30));
    let bad = format!(
        "{MINIMAL}\n[dashboard]\nmax_connections = 0\nheader_timeout_seconds = 0\nrequest_timeout_seconds = -1\n"
    );
    assert_eq!(
        fields(&problems(&bad)),
        [
            "dashboard.max_connections",
            "dashboard.header_timeout_seconds",
            "dashboard.request_timeout_seconds"
        ]
    );
}

#[test]
fn the_polled_pos_system_is_the_one_named_or_the_only_one_listed() {
    let pos = "[sources.pos]\nurl = \"http://pos.local/tx\"\n";
    let system = |text: &str| {
        parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .sources
            .pos
            .unwrap()
            .system
    };
    assert_eq!(system(&format!("{MINIMAL}\n{pos}")), None);
    assert_eq!(
        system(&format!(
            "{MINIMAL}\n[[pos_systems]]\nid = \"tills\"\n{pos}"
        ))
        .as_deref(),
        Some("tills")
    );
    let two = "[[pos_systems]]\nid = \"tills\"\n[[pos_systems]]\nid = \"cafe\"\n";
    assert_eq!(
        system(&format!("{MINIMAL}\n{two}{pos}system = \"cafe\"\n")).as_deref(),
        Some("cafe")
    );

    let unnamed = problems(&format!("{MINIMAL}\n{two}{pos}"));
    assert_eq!(fields(&unnamed), ["sources.pos.system"]);
    assert!(unnamed[0].fix.contains("\"tills\""), "{}", unnamed[0].fix);
    let unlisted = problems(&format!("{MINIMAL}\n{two}{pos}system = \"bar\"\n"));
    assert_eq!(fields(&unlisted), ["sources.pos.system"]);
    assert!(
        unlisted[0].fix.contains("tills, cafe"),
        "{}",
        unlisted[0].fix
    );
}
