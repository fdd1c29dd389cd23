//! A simulated store-day through every live input path of the running daemon, in time-lapse:
//! scanner nodes in ESPresense, Theengs and `mqtt_room` formats and door counters over a real
//! mosquitto, door records and pushed sales over the agent's HTTP ingest, sales pushed over
//! MQTT and served by a real HTTP POS endpoint the agent polls — with a million random and
//! mutated payloads mixed in. HQ's copy of the day must equal the engine's figures on the same
//! (clean) events, and be within the accuracy tolerances of the simulator's truth.
//!
//! Time-lapse: the daemon runs on a test clock (`TimeMode::Wall` with a [`ManualClock`]). The
//! feed sets the clock to each event's time rounded down to [`QUANTUM_MS`] and only moves it on
//! once the agent has taken everything sent before (lockstep), so every sighting is stamped
//! with its quantised time whatever the machine's speed, and the run is deterministic.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::live::ManualClock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use storefront_agent::clock::Clock;
use storefront_agent::daemon::source::Source;
use storefront_agent::daemon::{self, BrokerAddress, TimeMode};
use storefront_agent::live::scanners::pseudonym;
use storefront_agent::live::{Input, LiveHealth, LiveHealthSnapshot, LiveSources};
use storefront_broker::TestBroker;
use storefront_config::StoreConfig;
use storefront_devtools::feed::{Feed, PosEndpoint, Wiring, simulated_mac};
use storefront_inputs::encode::{encode_door, encode_espresense, encode_pushed_transaction};
use storefront_protocol::{DoorCount, DoorEvent, Event, Timestamp, Transaction};
use storefront_simulator::{ProfileName, SimulatedDay};
use tokio::sync::watch;

/// Sightings are stamped with their time rounded down to this.
const QUANTUM_MS: i64 = 1_000;
/// Random and mutated payloads mixed into the day, in bursts.
const BAD_PAYLOADS: u64 = 1_000_000;
const BAD_BURSTS: u64 = 100;
/// A polled sale may be fetched this long (simulated time) after it happened: well inside
/// `metrics.max_count_delay_seconds`, so none is late.
const POS_LAG_MS: i64 = 60_000;

/// The day as the agent should take it: sightings at their quantised times.
fn quantised(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .map(|event| match event {
            Event::Sighting(s) => {
                let mut s = s.clone();
                s.t = Timestamp(s.t.millis().div_euclid(QUANTUM_MS) * QUANTUM_MS);
                Event::Sighting(s)
            }
            other => other.clone(),
        })
        .collect()
}

/// The boutique example wired to the feed, syncing to `broker_port`; `staff` replaces the
/// staff badges' pseudonyms.
fn config(
    dir: &std::path::Path,
    broker_port: u16,
    wiring: &Wiring,
    pos_url: &str,
    staff: Option<&[String]>,
) -> StoreConfig {
    let path = common::write_config(dir, ProfileName::Boutique, broker_port);
    let mut table: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let sources: toml::Table = toml::from_str(&wiring.sources_toml(pos_url)).unwrap();
    table.insert("sources".into(), sources["sources"].clone());
    if let Some(staff) = staff {
        let privacy = table["privacy"].as_table_mut().unwrap();
        privacy.insert("staff_devices".into(), staff.to_vec().into());
    }
    StoreConfig::parse(&toml::to_string(&table).unwrap(), &path).unwrap()
}

/// The end of the simulated local day, epoch milliseconds.
fn day_end(config: &StoreConfig, day: &SimulatedDay) -> i64 {
    storefront_engine::Calendar::new(config.store.timezone, config.metrics.window_seconds)
        .day_start(day.date.succ_opt().unwrap())
        .millis()
}

/// Payloads the agent has counted from the feed's MQTT and HTTP messages (POS pages are the
/// poller's own).
fn pushed_seen(health: &LiveHealthSnapshot) -> u64 {
    health.payloads_seen()
        - health
            .inputs
            .get(Input::PosPoll.as_str())
            .map_or(0, |c| c.accepted + c.rejected.values().sum::<u64>())
}

/// Bad input that cannot change the day's figures: random bytes on every input topic; valid
/// messages of scanners and door sensors the store does not have, damaged or not; sales cut
/// short (a whole sale, however damaged, could be a real one); oversized payloads.
struct BadInput {
    rng: StdRng,
}

impl BadInput {
    fn next(&mut self) -> (String, Vec<u8>) {
        const TOPICS: [&str; 5] = [
            "espresense/devices/aa:bb/ghost-room",
            "home/ghost-gateway/BTtoMQTT/AABB",
            "room_presence/ghost-room",
            "storefront/local/door/ghost-sensor",
            "storefront/local/pos/ghost-till",
        ];
        let rng = &mut self.rng;
        match rng.random_range(0..10_000) {
            0..3_000 => {
                let len = rng.random_range(0..300);
                let bytes = (0..len).map(|_| rng.random()).collect();
                (TOPICS[rng.random_range(0..TOPICS.len())].to_owned(), bytes)
            }
            3_000..6_000 => {
                let mac = format!(
                    "02:00:00:00:{:02x}:{:02x}",
                    rng.random::<u8>(),
                    rng.random::<u8>()
                );
                let (topic, payload) = encode_espresense("ghost-room", &mac, -60, None);
                (topic, self.damaged(payload))
            }
            6_000..8_000 => {
                let door = DoorEvent {
                    t: Timestamp(1_763_884_800_000),
                    sensor: "ghost-sensor".into(),
                    record: Some(format!("r{}", self.rng.random::<u32>())),
                    count: DoorCount::Interval {
                        entered: 3,
                        exited: 2,
                    },
                };
                let payload = self.damaged(encode_door(&door));
                ("storefront/local/door/ghost-sensor".to_owned(), payload)
            }
            8_000..9_999 => {
                let sale = encode_pushed_transaction(&Transaction {
                    t: Timestamp(1_763_884_800_000),
                    id: format!("ghost-{}", rng.random::<u32>()),
                    amount_minor: Some(100),
                });
                let cut = rng.random_range(0..sale.len() - 1);
                (
                    "storefront/local/pos/ghost-till".to_owned(),
                    sale[..cut].to_vec(),
                )
            }
            _ => (
                TOPICS[rng.random_range(0..TOPICS.len())].to_owned(),
                vec![b'{'; 70 * 1024],
            ),
        }
    }

    /// As is, or with one byte flipped, inserted or removed, or cut short.
    fn damaged(&mut self, mut payload: Vec<u8>) -> Vec<u8> {
        let at = self.rng.random_range(0..payload.len());
        match self.rng.random_range(0..5) {
            0 => {}
            1 => payload[at] ^= 1 << self.rng.random_range(0..8),
            2 => payload.insert(at, self.rng.random()),
            3 => {
                payload.remove(at);
            }
            _ => payload.truncate(at),
        }
        payload
    }
}

/// Polls `done` (at once for a while: a lockstep wait is a broker round trip) for at most a
/// minute.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut polls = 0u32;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        polls += 1;
        if polls < 200 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_through_every_live_input_with_a_million_bad_payloads_gives_the_days_figures()
 {
    let broker = TestBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut day = storefront_tests::simulated_day(ProfileName::Boutique, 31);
    // The simulated sources' signs of life (`alive`) are not sent: the live inputs make their
    // own from what they hear (`live/alive.rs`), which changes coverage, not the figures
    // compared here; the reference day is computed without them.
    day.events.retain(|e| !matches!(e, Event::Alive(_)));

    // The simulated POS endpoint, and the config reading every path of the feed.
    let pos = PosEndpoint::default();
    let pos_url = pos.serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    let wiring =
        Wiring::for_config(&storefront_tests::example_config(ProfileName::Boutique).unwrap());
    // The agent hashes the staff badge's MAC: it is listed under that pseudonym once the
    // agent's key exists.
    let draft = config(dir.path(), broker.port(), &wiring, &pos_url, None);
    let clock = Arc::new(ManualClock::default());
    clock
        .0
        .store(day.events[0].time().millis(), Ordering::SeqCst);
    let broker_address = BrokerAddress {
        host: "127.0.0.1".into(),
        port: broker.port(),
        tls: false,
    };
    let sources =
        LiveSources::from_config(&draft, Some(broker_address.clone()), clock.clone()).unwrap();
    let staff: Vec<String> = draft
        .privacy
        .staff_devices
        .iter()
        .map(|badge| {
            pseudonym(&sources.pseudonymizer().borrow(), &simulated_mac(*badge)).to_string()
        })
        .collect();
    assert_eq!(staff.len(), 1, "the boutique has a staff badge");
    let config = config(dir.path(), broker.port(), &wiring, &pos_url, Some(&staff));
    // The engine on the clean events, with their simulated device ids (and staff badge).
    let expected = storefront_tests::replay_day(draft.engine_config(), &quantised(&day.events));

    let hq = common::Hq::start(dir.path(), broker.port());
    let health = Arc::new(LiveHealth::for_config(&config));
    let http = config.dashboard.bind.unwrap();
    let (stop, shutdown) = watch::channel(false);
    let (status, _) = watch::channel(Default::default());
    let agent = tokio::spawn(daemon::run(
        config.clone(),
        daemon::Run {
            source: Source::Live {
                sources: Box::new(sources),
                health: health.clone(),
            },
            time: TimeMode::Wall(clock.clone()),
            broker: broker_address,
            drain_after_end: None,
            commit_every_events: 50_000,
            publish_per_second: Some(1000),
            http: Some(http),
            http_token: None,
        },
        shutdown,
        status,
    ));

    let client = common::publisher(broker.port(), "simulated-store").await;
    let mut feed = Feed::new(
        wiring,
        &config.store.id,
        client,
        &format!("http://{http}"),
        pos.clone(),
    );
    // Subscribed once a probe on the last filter subscribed (the POS topic) is counted.
    let probe_seen = || {
        health
            .snapshot()
            .rejected(Input::PosMqtt, storefront_inputs::InputRejection::Malformed)
            > 0
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe_seen() {
        assert!(Instant::now() < deadline, "the agent never subscribed");
        let _ = feed
            .publish("storefront/local/pos/probe".into(), b"probe".to_vec())
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Probes sent before the subscription were never delivered: the rest are in by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = pushed_seen(&health.snapshot()) as i64 - feed.pushed() as i64;

    let started = Instant::now();
    let mut bad = BadInput {
        rng: StdRng::seed_from_u64(7),
    };
    let steps = day
        .events
        .iter()
        .map(|e| e.time().millis().div_euclid(QUANTUM_MS))
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    let burst_every = steps / BAD_BURSTS;
    let (mut step_index, mut bad_sent, mut polled) = (0u64, 0u64, VecDeque::new());
    for event in &day.events {
        let step = event.time().millis().div_euclid(QUANTUM_MS) * QUANTUM_MS;
        if step > clock.now_ms() {
            // Lockstep: everything pushed so far has been taken, and the polled sales of more
            // than a minute ago have been fetched.
            let pushed = feed.pushed() as i64;
            wait_for("the agent to take what was sent", || {
                pushed_seen(&health.snapshot()) as i64 - baseline >= pushed
            })
            .await;
            while polled.front().is_some_and(|&(t, _)| t < step - POS_LAG_MS) {
                let (_, index) = polled.pop_front().unwrap();
                wait_for("the POS poller", || pos.progress().1 > index).await;
            }
            clock.0.store(step, Ordering::SeqCst);
            step_index += 1;
            if step_index % burst_every == 0 {
                for _ in 0..(BAD_PAYLOADS / BAD_BURSTS).min(BAD_PAYLOADS - bad_sent) {
                    let (topic, payload) = bad.next();
                    feed.publish(topic, payload).await.unwrap();
                    bad_sent += 1;
                }
            }
        }
        if let Event::Transaction(t) = event {
            let (added, _) = pos.progress();
            feed.send(event).await.unwrap();
            if pos.progress().0 > added {
                polled.push_back((t.t.millis(), added));
            }
        } else {
            feed.send(event).await.unwrap();
        }
    }
    assert_eq!(bad_sent, BAD_PAYLOADS);
    let pushed = feed.pushed() as i64;
    wait_for("the last messages", || {
        pushed_seen(&health.snapshot()) as i64 - baseline >= pushed
    })
    .await;
    wait_for("every polled sale", || {
        let (added, served) = pos.progress();
        served == added
    })
    .await;
    // Let the day end: every visit and window closes, the day is merged and synced.
    let day_end = day_end(&config, &day);
    clock.0.store(day_end + 3_600_000, Ordering::SeqCst);
    let store_id = config.store.id.clone();
    wait_for("HQ to hold the day", || !hq.days(&store_id).is_empty()).await;
    eprintln!(
        "{} events in {steps} steps and {BAD_PAYLOADS} bad payloads through the live inputs in {:.1} s",
        day.events.len(),
        started.elapsed().as_secs_f64()
    );
    stop.send(true).unwrap();
    let report = agent.await.unwrap().unwrap();
    assert!(report.core.events as usize >= day.events.len());
    let snapshot = health.snapshot();

    // Every bad payload was counted, none panicked anything; the clean ones all taken.
    let rejected: u64 = snapshot
        .inputs
        .values()
        .map(|c| c.rejected.values().sum::<u64>())
        .sum();
    assert!(rejected > BAD_PAYLOADS / 2, "{snapshot:#?}");
    assert_eq!(snapshot.undelivered, 0);

    // HQ's day equals the engine's figures on the clean events...
    let days = hq.days(&store_id);
    assert_eq!(days.len(), 1, "one day at HQ");
    let live = &days[0];
    assert_eq!(live.local_date, expected.local_date);
    assert_eq!(
        storefront_tests::funnel_figures(&live.funnel),
        storefront_tests::funnel_figures(&expected.funnel)
    );
    assert!(
        live.funnel.entries > 50 && live.funnel.transactions > 10,
        "{:?}",
        live.funnel
    );

    // ...and is within the accuracy tolerances of the simulator's truth.
    storefront_tests::assert_within_tolerances("live", live, &day.truth);
    hq.stop().await;
}
