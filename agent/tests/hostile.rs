//! The agent's threat model, one test per attack or failure it must survive (issue "Field-
//! hardened"): a flaky uplink, forged messages on the store's topics, readers racing commits,
//! signals, a careless user's paths.
//! Each test failed before its fix; the comment says how.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use storefront_agent::daemon::source::Source;
use storefront_agent::daemon::{self, BrokerAddress, Run, TimeMode};
use storefront_broker::TestBroker;
use storefront_config::StoreConfig;
use storefront_protocol::Ack;
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
            // `agent demo`'s speed: a day in 30 s.
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

/// Before: `agent demo --data .` deleted every file in the directory.
#[test]
fn agent_demo_leaves_a_directory_with_files_it_did_not_create_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("thesis.tex");
    std::fs::write(&precious, "\\chapter{Results}\n").unwrap();

    let mut demo = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args([
            "demo",
            "--speed",
            "100000",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Refused at once, or (the defect) the file deleted while the demo plays: whichever first.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break Some(status);
        }
        if !precious.exists() || Instant::now() > deadline {
            demo.kill().unwrap();
            demo.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        precious.exists(),
        "agent demo deleted a file it did not create"
    );
    let status = status.expect("agent demo refuses at once");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut demo.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("thesis.tex"), "{stderr}");
    assert!(stderr.contains("fix"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["thesis.tex"], "nothing created either");
}
