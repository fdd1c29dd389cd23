//! The daemon against a real broker (a private mosquitto per test; CI fails if it is missing):
//! a day end to end, `kill -9` at random points, the broker dying mid-sync.

mod common;

use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};
use storefront_broker::TestBroker;
use storefront_simulator::ProfileName;
use storefront_tests::Run;

const STORE: &str = "boutique-paris-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_reaches_hq_exactly_and_matches_the_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start().unwrap();
    let (events, truth) = write_day(dir.path(), ProfileName::Boutique, 5);
    let config = write_config(dir.path(), ProfileName::Boutique, broker.port());
    let hq = Hq::start(dir.path(), broker.port());

    finishes(spawn_agent(
        &config,
        &events,
        &["--publish-per-second", "500"],
    ))
    .await;

    let (windows, days) = expected(&config, &events);
    assert_eq!(windows.len(), 96);
    assert_same("HQ's windows", &hq.windows(STORE), &windows);
    assert_same("HQ's days", &hq.days(STORE), &days);

    // The synced day against the simulator's truth, at the foundation's tolerances.
    let engine = days[0].funnel.clone();
    let run = Run {
        profile: ProfileName::Boutique,
        seed: 5,
        days: 1,
        mac_rotation: false,
        engine_days: days.clone(),
        engine,
        sample: truth.sample.clone(),
        population: truth.population.clone(),
        sightings: 0,
    };
    for error in run.against_sample(true) {
        assert!(error.within(), "{error:?}");
    }
    let stats = hq.stop().await;
    assert_eq!(stats.inserted, 97);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_agent_at_random_points_loses_no_window_and_counts_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start().unwrap();
    let (events, _) = write_day(dir.path(), ProfileName::Boutique, 6);
    let config = write_config(dir.path(), ProfileName::Boutique, broker.port());
    let hq = Hq::start(dir.path(), broker.port());

    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut kills = 0;
    for _ in 0..100 {
        if kills >= 25 {
            break;
        }
        let delay = Duration::from_millis(rng.random_range(30..500));
        let config = config.clone();
        let events = events.clone();
        let finished = tokio::task::spawn_blocking(move || {
            // Small commits and a slow publish rate put kills between commit, publish and ack.
            let mut agent = spawn_agent(
                &config,
                &events,
                &[
                    "--commit-every-events",
                    "4000",
                    "--publish-per-second",
                    "10",
                ],
            );
            std::thread::sleep(delay);
            match agent.try_wait().unwrap() {
                Some(status) => {
                    assert!(status.success(), "agent exit: {status}");
                    true
                }
                None => {
                    agent.kill().unwrap(); // SIGKILL: no shutdown path runs
                    agent.wait().unwrap();
                    false
                }
            }
        })
        .await
        .unwrap();
        if finished {
            break;
        }
        kills += 1;
    }
    assert!(
        kills >= 20,
        "only {kills} kills landed before the agent finished"
    );
    // Then let it finish.
    finishes(spawn_agent(
        &config,
        &events,
        &["--publish-per-second", "500"],
    ))
    .await;

    let (windows, days) = assert_hq_holds_the_run(&hq, STORE, &config, &events);
    let stats = hq.stop().await;
    assert_eq!(
        stats.inserted,
        windows.len() as u64 + days.len() as u64,
        "each stored once"
    );
    eprintln!(
        "{kills} kills; HQ saw {} duplicates (re-sends), stored each summary once",
        stats.duplicates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_dying_while_publishes_are_in_flight_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start().unwrap();
    if broker.mosquitto().is_none() {
        eprintln!("SKIPPED: needs mosquitto to kill the broker (CI requires it)");
        return;
    }
    let (events, _) = write_day(dir.path(), ProfileName::Boutique, 7);
    let config = write_config(dir.path(), ProfileName::Boutique, broker.port());
    let hq = Hq::start(dir.path(), broker.port());

    // 97 summaries at 40/s: about 2.5 s of publishing; the broker dies a second in.
    let agent = spawn_agent(&config, &events, &["--publish-per-second", "40"]);
    let mut stats = hq.stats.clone();
    tokio::time::timeout(
        Duration::from_secs(30),
        stats.wait_for(|s| s.inserted >= 20),
    )
    .await
    .unwrap()
    .unwrap();
    let mosquitto = broker.mosquitto().unwrap();
    mosquitto.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    mosquitto.restart().unwrap();
    finishes(agent).await;

    assert_hq_holds_the_run(&hq, STORE, &config, &events);
    hq.stop().await;
}
