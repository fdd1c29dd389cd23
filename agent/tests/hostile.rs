//! The agent's live inputs and HTTP server under attack, one test per attack: what a hostile
//! or broken device on the shop's network can send to the local broker and the HTTP routes, and
//! what the agent must do (drop and count it, keep every good input, stay up).

mod common;

use std::time::{Duration, Instant};

use common::live::{Harness, config, start};
use rumqttc::QoS;
use storefront_agent::live::Input;
use storefront_broker::TestBroker;
use storefront_inputs::InputRejection;
use storefront_inputs::encode::encode_espresense;
use storefront_protocol::Event;

const ESPRESENSE: &str = "espresense/devices/#";

fn espresense_sources() -> toml::Table {
    toml::from_str(&format!(
        r#"
        [ble]
        enabled = false
        [[scanner_mqtt]]
        format = "espresense"
        topic = "{ESPRESENSE}"
        "#
    ))
    .unwrap()
}

/// Only the inputs that need no broker: the ingest routes (and the POS poller, unset).
fn ingest_only_sources() -> toml::Table {
    toml::from_str("[ble]\nenabled = false\n").unwrap()
}

fn sightings(harness: &Harness) -> usize {
    harness
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Sighting(_)))
        .count()
}

/// Publishes with QoS 1 and waits for the broker's PubAck: the message is stored (retained)
/// before this returns.
async fn publish_acknowledged(port: u16, topic: &str, payload: Vec<u8>, retain: bool) {
    let mut options = rumqttc::MqttOptions::new("hostile-retained", "127.0.0.1", port);
    options.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let event = tokio::time::timeout_at(deadline.into(), eventloop.poll())
            .await
            .expect("the broker acknowledges the publish");
        if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = event {
            break;
        }
    }
    client.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_oversized_message_on_a_scanner_topic_does_not_stop_the_readings_after_it() {
    let broker = TestBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    publish_acknowledged(
        broker.port(),
        "espresense/devices/aa:bb:cc:dd:ee:ff/storefront-1",
        vec![b' '; 2 << 20],
        true,
    )
    .await;
    let config = config(dir.path(), espresense_sources());
    let harness = start(&config, Some(broker.port()));
    let client = common::publisher(broker.port(), "hostile-readings").await;
    harness.wait_subscribed(&client).await;

    // 600 readings, in steps the agent has taken (QoS 0 must not meet a full broker queue).
    const READINGS: usize = 600;
    for step in 0..READINGS / 50 {
        for i in 0..50 {
            let mac = format!("02:00:00:00:{:02x}:{:02x}", step, i);
            let (topic, payload) = encode_espresense("storefront-1", &mac, -60, Some(-59));
            client
                .publish(topic, QoS::AtMostOnce, false, payload)
                .await
                .unwrap();
        }
        let taken = (step + 1) * 50;
        harness
            .wait_for("the readings sent so far", |h| sightings(h) >= taken)
            .await;
    }
    assert_eq!(sightings(&harness), READINGS);
    let health = harness.health.snapshot();
    assert_eq!(
        health.mqtt_connection_errors, 0,
        "the oversized message cost the connection"
    );
    assert!(health.mqtt_connected);
    harness.stop().await;
}

const NOW_MS: i64 = 1_763_888_400_000;

#[test]
fn six_hundred_thousand_unknown_scanner_and_door_names_are_counted_once_and_kept_nowhere() {
    use std::sync::Arc;
    use storefront_agent::live::{KnownSources, LiveHealth, MqttInputs};
    use storefront_protocol::privacy::Pseudonymizer;

    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), espresense_sources());
    let health = Arc::new(LiveHealth::for_config(&config));
    let (_keys, pseudonymizer) = tokio::sync::watch::channel(Pseudonymizer::new(&[9; 32]));
    let inputs = MqttInputs::new(
        &config.sources.scanner_mqtt,
        KnownSources::for_config(&config),
        pseudonymizer,
        health.clone(),
    );
    let mut events = Vec::new();
    const NAMES: usize = 300_000; // of each kind: 600 k in all
    for i in 0..NAMES {
        let (topic, payload) =
            encode_espresense(&format!("room-{i}"), "aa:bb:cc:dd:ee:ff", -60, None);
        inputs.handle(&topic, &payload, NOW_MS, &mut events);
        let door = format!(r#"{{"sensor":"door-{i}","direction":"in"}}"#);
        inputs.handle(
            "storefront/local/door/x",
            door.as_bytes(),
            NOW_MS,
            &mut events,
        );
    }
    assert!(
        events.is_empty(),
        "{} events from unknown names went on to the core",
        events.len()
    );
    let snapshot = health.snapshot();
    let configured_scanners: usize = config.zones.iter().map(|z| z.scanners.len()).sum();
    assert!(snapshot.scanner_nodes.len() <= configured_scanners);
    assert!(snapshot.door_sensors.len() <= config.door_sensors.len());
    for input in ["scanner_mqtt", "door_mqtt"] {
        assert_eq!(
            snapshot.inputs[input]
                .rejected
                .get("unknown_source")
                .copied(),
            Some(NAMES as u64),
            "{input}: {:?}",
            snapshot.inputs[input]
        );
    }
    let health_json = serde_json::to_string(&snapshot).unwrap();
    assert!(health_json.len() < 16 * 1024, "{} bytes", health_json.len());

    // A configured node's reading and a configured sensor's record still count.
    let (topic, payload) = encode_espresense("storefront-1", "aa:bb:cc:dd:ee:ff", -60, None);
    inputs.handle(&topic, &payload, NOW_MS, &mut events);
    inputs.handle(
        "storefront/local/door/main",
        br#"{"sensor":"door-main","direction":"in"}"#,
        NOW_MS,
        &mut events,
    );
    assert_eq!(events.len(), 2);
    let snapshot = health.snapshot();
    assert_eq!(snapshot.scanner_nodes["storefront-1"].readings, 1);
    assert_eq!(snapshot.door_sensors["door-main"].messages, 1);
}

fn door_events(harness: &Harness) -> Vec<storefront_protocol::DoorEvent> {
    harness
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Door(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_record_dated_far_in_the_future_is_rejected_and_last_seen_is_the_reception_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), ingest_only_sources());
    let harness = start(&config, None);
    let url = common::live::serve(harness.sources_router.clone()).await;
    let http = common::live::http();
    let post = |body: String| http.post(format!("{url}/ingest/v1/door")).body(body).send();
    let answer =
        post(r#"{"sensor":"door-main","direction":"in","time":"9999-12-31T00:00:00Z"}"#.into())
            .await
            .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let snapshot = harness.health.snapshot();
    assert_eq!(
        snapshot.rejected(Input::DoorHttp, InputRejection::OutOfRange),
        1
    );
    assert!(!snapshot.door_sensors.contains_key("door-main"));
    assert!(door_events(&harness).is_empty());

    // A record an hour old is taken (a counter back from an outage), and the sensor was last
    // seen when the record arrived, not at the record's time.
    let before = chrono::Utc::now().timestamp_millis();
    let hour_ago = before - 3_600_000;
    let answer = post(format!(
        r#"{{"sensor":"door-main","direction":"in","time":{hour_ago}}}"#
    ))
    .await
    .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let after = chrono::Utc::now().timestamp_millis();
    let seen = harness.health.snapshot().door_sensors["door-main"]
        .last_seen_ms
        .unwrap();
    assert!(
        (before..=after).contains(&seen),
        "{seen} not in {before}..={after}"
    );
    harness
        .wait_for("the record", |h| door_events(h).len() == 1)
        .await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_record_counting_more_than_a_door_can_is_refused_and_counted_and_nothing_is_added() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), ingest_only_sources());
    let harness = start(&config, None);
    let url = common::live::serve(harness.sources_router.clone()).await;
    let answer = common::live::http()
        .post(format!("{url}/ingest/v1/door"))
        .body(r#"{"sensor":"door-main","in":4294967295,"out":0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let snapshot = harness.health.snapshot();
    assert_eq!(
        snapshot.rejected(Input::DoorHttp, InputRejection::OutOfRange),
        1
    );
    assert_eq!(snapshot.inputs["door_http"].events, 0);
    assert!(door_events(&harness).is_empty());
    harness.stop().await;
}

/// The agent's HTTP server on `listener` with a cap of 8 connections and a 2 s header timeout.
async fn serve_limited(listener: tokio::net::TcpListener, router: axum::Router) {
    use storefront_agent::daemon::http::{HttpLimits, serve};
    let limits = HttpLimits {
        max_connections: 8,
        header_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    serve(listener, router, limits, stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_cap_neither_stop_the_api_nor_stay_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
    tokio::spawn(serve_limited(listener, router));

    // Five times the cap: silent connections, and connections that send half a request.
    let mut idle = Vec::new();
    for i in 0..40 {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        if i % 2 == 0 {
            let _ = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await;
        }
        idle.push(stream);
    }
    storefront_agent::daemon::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match http.get(format!("http://{address}/healthz")).send().await {
            Ok(answer) if answer.status().is_success() => break,
            _ => {
                assert!(Instant::now() < deadline, "the API never answered");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Every idle connection is closed by the server (end of stream or a reset).
    for mut stream in idle {
        let mut buffer = [0u8; 1024];
        let closed = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // an error response (408) before the close
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "an idle connection stayed open");
    }
}

#[test]
fn an_empty_dashboard_token_file_is_a_config_error_naming_the_file_the_field_and_the_fix() {
    use std::io::Read;

    let broker = TestBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(
        dir.path(),
        storefront_simulator::ProfileName::Boutique,
        broker.port(),
    );
    let token = dir.path().join("dashboard-token");
    std::fs::write(&token, "\n").unwrap();
    let mut table: toml::Table =
        toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    table["dashboard"]
        .as_table_mut()
        .unwrap()
        .insert("token_file".into(), token.display().to_string().into());
    std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
    let events = dir.path().join("events.jsonl");
    storefront_agent::events_file::EventWriter::create(&events)
        .unwrap()
        .finish()
        .unwrap();

    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--replay")
        .arg(&events)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::wait_exit(&mut agent, Duration::from_secs(120));
    let mut stderr = String::new();
    agent
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !status.success(),
        "the agent ran with an empty token: {stderr}"
    );
    for part in [
        token.display().to_string(),
        "dashboard.token_file".to_owned(),
        "fix:".to_owned(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_without_its_own_token_or_with_the_dashboards_is_refused_401() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ingest-token"), "door-secret\n").unwrap();
    let mut sources = ingest_only_sources();
    sources.insert(
        "ingest".into(),
        toml::Table::from_iter([("token_file".to_owned(), "ingest-token".into())]).into(),
    );
    let config = config(dir.path(), sources);
    let harness = start(&config, None);
    let url = common::live::serve(harness.sources_router.clone()).await;
    let http = common::live::http();
    let record = r#"{"sensor":"door-main","direction":"in"}"#;
    for (route, body) in [("door", record), ("transactions", r#"{"id":"t-1"}"#)] {
        for token in [None, Some("dashboard-secret"), Some("door-secre"), Some("")] {
            let mut request = http.post(format!("{url}/ingest/v1/{route}")).body(body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status().as_u16(), 401, "{route} with {token:?}");
        }
    }
    assert!(harness.events().is_empty());
    let answer = http
        .post(format!("{url}/ingest/v1/door"))
        .bearer_auth("door-secret")
        .body(record)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    harness
        .wait_for("the record", |h| door_events(h).len() == 1)
        .await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_ingest_token_file_is_a_config_error_not_open_ingest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ingest-token"), "").unwrap();
    let mut sources = ingest_only_sources();
    sources.insert(
        "ingest".into(),
        toml::Table::from_iter([("token_file".to_owned(), "ingest-token".into())]).into(),
    );
    let config = config(dir.path(), sources);
    let error = storefront_agent::live::LiveSources::from_config(
        &config,
        None,
        storefront_agent::clock::system(),
    )
    .err()
    .expect("the live sources refuse an empty token file");
    let message = format!("{error:#}");
    for part in [
        "sources.ingest.token_file",
        "ingest-token",
        "is empty",
        "fix:",
    ] {
        assert!(message.contains(part), "{part:?} missing from {message}");
    }
}
