//! The agent's threat model, one test per attack or failure it must survive (issue "Field-
//! hardened"): a flaky uplink, forged messages on the store's topics, readers racing commits,
//! signals, a careless user's paths; and what a hostile or broken device on the shop's network
//! can send to the local broker and the HTTP routes (drop and count it, keep every good input,
//! stay up). Each test failed before its fix; the comment says how.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::live::{Harness, config, start};
use common::*;
use rumqttc::QoS;
use storefront_agent::daemon::source::Source;
use storefront_agent::daemon::{self, BrokerAddress, Run, TimeMode};
use storefront_agent::live::Input;
use storefront_broker::TestBroker;
use storefront_config::StoreConfig;
use storefront_inputs::InputRejection;
use storefront_inputs::encode::encode_espresense;
use storefront_protocol::Ack;
use storefront_protocol::Event;
use storefront_protocol::topic::{StoreTopic, store_topic};
use storefront_simulator::ProfileName;
use tokio::sync::watch;

const STORE: &str = "boutique-paris-01";

/// Before: the drain after a replay waited on the sync task's last status, which a sync loop
/// sleeping out a reconnect backoff never refreshed: with HQ unreachable the agent exited 0 at
/// once, logging `outbox=0`, with the whole day unsent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_never_says_done_while_summaries_are_unsent() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = write_day(dir.path(), ProfileName::Boutique, 5);
    // Nothing listens on this port: HQ is unreachable for the whole run.
    let dead_port = storefront_broker::free_port().unwrap();
    let config = write_config(dir.path(), ProfileName::Boutique, dead_port);

    let output = tokio::task::spawn_blocking({
        let (config, events) = (config.clone(), events.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_agent"))
                .args(["run", "--config"])
                .arg(&config)
                .arg("--replay")
                .arg(&events)
                .args(["--drain-seconds", "2"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the agent must not report success with the day unsent: {stderr}"
    );
    let (windows, days) = expected(&config, &events);
    let unsent = windows.len() + days.len();
    assert!(
        stderr.contains(&format!(
            "{unsent} summaries are not yet acknowledged by HQ"
        )),
        "the error says plainly what is left ({unsent} summaries): {stderr}"
    );
    let store = daemon::open_store(&StoreConfig::load(&config).unwrap()).unwrap();
    assert_eq!(store.outbox_len(), unsent as u64, "all of it still queued");
}

/// Before: any client on the broker could publish an `Ack` naming sequence numbers on a store's
/// ack topic, and the agent deleted those outbox entries, sent or not: HQ never got them.
/// Now an ack only removes what this agent published and is awaiting an ack for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_acks_do_not_delete_unsent_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start().unwrap();
    let (events, _) = write_day(dir.path(), ProfileName::Boutique, 5);
    let config_path = write_config(dir.path(), ProfileName::Boutique, broker.port());
    let config = StoreConfig::load(&config_path).unwrap();
    let hq = Hq::start(dir.path(), broker.port());

    // The forger acks every sequence number the day could use, over and over, from before the
    // agent starts until after it is done.
    let forger = publisher(broker.port(), "forger").await;
    let ack_topic = store_topic(&config.store.org, STORE, StoreTopic::Ack).unwrap();
    let forged = serde_json::to_vec(&Ack {
        schema: 1,
        store_id: STORE.into(),
        seqs: (1..=500).collect(),
    })
    .unwrap();
    let (stop_forging, mut forging) = watch::channel(false);
    let forging_task = tokio::spawn(async move {
        let mut sent = 0u64;
        loop {
            forger
                .publish(&ack_topic, rumqttc::QoS::AtLeastOnce, false, forged.clone())
                .await
                .unwrap();
            sent += 1;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = forging.changed() => return sent,
            }
        }
    });

    // A slow publish rate leaves most of the day unsent while the forged acks arrive.
    finishes(spawn_agent(
        &config_path,
        &events,
        &["--publish-per-second", "20"],
    ))
    .await;
    let _ = stop_forging.send(true);
    assert!(forging_task.await.unwrap() > 10, "the forger kept forging");
    assert_hq_holds_the_run(&hq, STORE, &config_path, &events);
    hq.stop().await;
}

/// Before: windows the engine had made final sat in neither source the dashboard merges (the
/// engine's open windows, the store) until the next commit, so the day's totals went down
/// (door in 1137 → 1108 → 1085) and back up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_dashboard_totals_never_go_down_during_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start().unwrap();
    let config_path = write_config(dir.path(), ProfileName::Boutique, broker.port());
    let config = StoreConfig::load(&config_path).unwrap();
    let http = config.dashboard.bind.unwrap();
    let day = storefront_tests::simulated_day(ProfileName::Boutique, 9);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (status_tx, _status) = watch::channel(Default::default());
    let run = Run {
        source: Source::Memory {
            events: day.events,
            // the demo's speed: a day in 30 s.
            speed: Some(2880.0),
        },
        time: TimeMode::Event,
        broker: BrokerAddress {
            host: "127.0.0.1".into(),
            port: broker.port(),
            tls: false,
        },
        // No HQ: the agent stays up after the day until told to stop.
        drain_after_end: Some(Duration::from_secs(600)),
        // Commits far apart, as in a live run: windows wait between final and stored.
        commit_every_events: 80_000,
        publish_per_second: Some(100),
        http: Some(http),
        http_token: None,
    };
    let agent = tokio::spawn(daemon::run(config, run, shutdown_rx, status_tx));
    let base = format!("http://{http}");
    while tokio::net::TcpStream::connect(http).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (mut entries_high, mut door_high) = (0u64, 0u64);
    let mut samples = 0;
    loop {
        let funnel = get(&format!("{base}/api/v1/funnel")).await;
        let live = get(&format!("{base}/api/v1/live")).await;
        let entries = funnel["funnel"]["entries"].as_u64().unwrap_or(0);
        let door_in = live["door_in_today"].as_u64().unwrap_or(0);
        assert!(
            entries >= entries_high,
            "entries went down: {entries_high} -> {entries} (sample {samples})"
        );
        assert!(
            door_in >= door_high,
            "door in went down: {door_high} -> {door_in} (sample {samples})"
        );
        (entries_high, door_high) = (entries, door_in);
        samples += 1;
        if funnel["provisional"] == serde_json::json!(false) && entries > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        samples > 20,
        "the day was watched as it filled in ({samples} samples)"
    );
    assert!(door_high > 0, "the door counts were watched too");
    let _ = shutdown_tx.send(true);
    agent.await.unwrap().unwrap();
}

/// Before: the drain read the sync task's last status, and a sync loop waiting out a reconnect
/// backoff had last seen the outbox empty (before the first commit): with the uplink down when
/// the file ended, the agent exited 0 at once and HQ got nothing. Now it waits for the broker to
/// come back and HQ to ack the whole day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_waits_out_an_uplink_outage_until_hq_has_the_whole_day() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start().unwrap();
    let Some(mosquitto) = broker.mosquitto() else {
        // The embedded broker cannot be stopped; CI always has mosquitto (TestBroker fails
        // there without it).
        return;
    };
    mosquitto.kill();
    let (events, _) = write_day(dir.path(), ProfileName::Boutique, 5);
    let config = write_config(dir.path(), ProfileName::Boutique, broker.port());

    let mut agent = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--replay")
        .arg(&events)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The day is committed (and the uplink still down) once the agent says the source ended.
    let mut log = agent_log_lines(&mut agent);
    log.wait_for("Source ended; engine finished")
        .await
        .expect("the agent played the whole file");
    // Through a few reconnect attempts (and backoff sleeps) of the sync task.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent must not stop while the day is unsent"
    );
    broker.mosquitto().unwrap().restart().unwrap();
    let hq = Hq::start(dir.path(), broker.port());
    finishes(agent).await;
    assert_hq_holds_the_run(&hq, STORE, &config, &events);
    hq.stop().await;
}

/// Before: SIGHUP (sent by `systemctl reload`, or a closed terminal) killed the agent on the
/// spot, without a commit. Now it is refused with the reason, and the agent keeps running
/// until SIGTERM, which stops it cleanly.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_does_not_kill_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = write_day(dir.path(), ProfileName::Boutique, 5);
    // HQ unreachable: the agent stays up, draining, after the file ends.
    let dead_port = storefront_broker::free_port().unwrap();
    let config = write_config(dir.path(), ProfileName::Boutique, dead_port);
    let mut agent = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--replay")
        .arg(&events)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = agent_log_lines(&mut agent);
    log.wait_for("Source ended; engine finished")
        .await
        .expect("the agent played the file");
    let pid = agent.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("HUP");
    log.wait_for("SIGHUP ignored")
        .await
        .expect("the agent says why it ignores SIGHUP");
    assert!(
        agent.try_wait().unwrap().is_none(),
        "SIGHUP killed the agent"
    );
    signal("TERM");
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut agent, Duration::from_secs(600)))
            .await
            .unwrap();
    assert!(
        status.success(),
        "a requested stop is a clean exit: {status}"
    );
}

/// The agent's log, line by line, read off its stderr pipe by a thread (which keeps draining
/// it, so the agent never blocks on a full pipe).
struct LogLines(tokio::sync::mpsc::UnboundedReceiver<String>);

fn agent_log_lines(agent: &mut std::process::Child) -> LogLines {
    let stderr = agent.stderr.take().expect("the agent's stderr is piped");
    let (lines, received) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    LogLines(received)
}

impl LogLines {
    /// The next line containing `text`; `None` when the log ended without one.
    async fn wait_for(&mut self, text: &str) -> Option<String> {
        while let Some(line) = self.0.recv().await {
            if line.contains(text) {
                return Some(line);
            }
        }
        None
    }
}

// ---- the store network: local broker and HTTP routes ----

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

fn alive(harness: &Harness, input: storefront_protocol::InputKind) -> Vec<(String, i64)> {
    harness
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Alive(a) if a.input == input => Some((a.source.clone(), a.t.millis())),
            _ => None,
        })
        .collect()
}

/// Before: the live sources sent no signs of life, only what they counted. An empty store with
/// every sensor working (the first hour, a quiet evening) then had no coverage: its windows
/// were not emitted and read "no data", the same as a store whose sensors were all down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_inputs_that_work_say_so_while_nothing_happens_and_stop_when_they_go_down() {
    use storefront_protocol::InputKind;
    let broker = TestBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), espresense_sources());
    let clock = common::live::ManualClock::at(NOW_MS);
    let harness = common::live::start_on(&config, Some(broker.port()), clock.clone());
    let client = common::publisher(broker.port(), "hostile-status").await;
    harness.wait_subscribed(&client).await;
    // The storefront node announces itself (its last will says "offline") and sees nobody.
    client
        .publish(
            "espresense/rooms/storefront-1/status",
            QoS::AtLeastOnce,
            true,
            "online",
        )
        .await
        .unwrap();
    harness
        .wait_for("the node's status", |h| {
            let nodes = h.health.snapshot().scanner_nodes;
            nodes.get("storefront-1").and_then(|n| n.online) == Some(true)
        })
        .await;
    // A door record one minute in: the door counter works, for a while.
    let base = common::live::serve(harness.sources_router.clone()).await;
    let door = common::live::http()
        .post(format!("{base}/ingest/v1/door"))
        .body(format!(
            r#"{{"sensor":"door-main","time":{},"in":0,"out":0}}"#,
            NOW_MS + 60_000
        ))
        .send();

    // Five minutes of nothing, in 30 s steps of the live clock.
    let mut door_sent = Some(door);
    for step in 1..=10 {
        clock.set(NOW_MS + step * 30_000);
        if step == 2 {
            assert!(
                door_sent
                    .take()
                    .unwrap()
                    .await
                    .unwrap()
                    .status()
                    .is_success()
            );
        }
        harness
            .wait_for("a sign of life at this step", |h| {
                alive(h, InputKind::Ble)
                    .iter()
                    .any(|(_, t)| *t == NOW_MS + step * 30_000)
            })
            .await;
    }
    let ble = alive(&harness, InputKind::Ble);
    assert!(
        ble.iter().all(|(scanner, _)| scanner == "storefront-1"),
        "only the node that announced itself is alive: {ble:?}"
    );
    // The door counter: alive for a minute after its record, then silent.
    let door: Vec<i64> = alive(&harness, InputKind::Door)
        .into_iter()
        .map(|(_, t)| t - NOW_MS)
        .collect();
    assert!(!door.is_empty(), "the door counter's record made it alive");
    assert!(
        door.iter().all(|&t| (60_000..=120_000).contains(&t)),
        "alive only within a minute of its record: {door:?}"
    );

    // The node goes down (its last will): no more signs of life from it.
    client
        .publish(
            "espresense/rooms/storefront-1/status",
            QoS::AtLeastOnce,
            true,
            "offline",
        )
        .await
        .unwrap();
    harness
        .wait_for("the node's last will", |h| {
            let nodes = h.health.snapshot().scanner_nodes;
            nodes.get("storefront-1").and_then(|n| n.online) == Some(false)
        })
        .await;
    // The door counter sends a record at each step: its sign of life at that step shows the
    // step was looked at, and the node's would have come with it.
    let before = alive(&harness, InputKind::Ble).len();
    for step in 11..=14 {
        let t = NOW_MS + step * 30_000;
        clock.set(t);
        let record = common::live::http()
            .post(format!("{base}/ingest/v1/door"))
            .body(format!(
                r#"{{"sensor":"door-main","time":{t},"in":0,"out":0}}"#
            ))
            .send()
            .await
            .unwrap();
        assert!(record.status().is_success());
        harness
            .wait_for("the door counter's sign of life at this step", |h| {
                alive(h, InputKind::Door).iter().any(|(_, at)| *at >= t)
            })
            .await;
    }
    assert_eq!(
        alive(&harness, InputKind::Ble).len(),
        before,
        "the node that went down is not alive"
    );
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
    storefront_mqtt::install_crypto_provider();
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
