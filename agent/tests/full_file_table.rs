//! Threat model, "a full file table must never stop the core" (field-hardened, item 9): while
//! no file descriptor is left (idle connections, a leak, a low limit), every commit fails. The
//! core counts each failure, keeps counting events and tries again; once descriptors are free,
//! the store holds exactly what an uninterrupted run stores.
//!
//! Alone in its test binary: it exhausts the process's file table, which any test running beside
//! it would feel.

mod common;

use std::time::Duration;

use common::{ALL_TIME, assert_same, write_config};
use storefront_agent::daemon::{self, BrokerAddress, Run, TimeMode, source::Source};
use storefront_config::StoreConfig;
use storefront_devtools::replay::{ReplayOutput, finish};
use storefront_engine::Engine;
use storefront_simulator::ProfileName;
use tokio::sync::watch;

/// Opens `/dev/null` until the process is out of file descriptors (its soft limit lowered
/// first, so that takes a moment only); the limit comes back when the files are dropped.
struct FullFileTable {
    files: Vec<std::fs::File>,
    limit: libc::rlimit,
}

impl FullFileTable {
    fn fill() -> FullFileTable {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
            let lowered = libc::rlimit {
                rlim_cur: limit.rlim_cur.min(1024),
                rlim_max: limit.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lowered), 0);
        }
        let mut files = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(file) => files.push(file),
                Err(error) => {
                    assert_eq!(error.raw_os_error(), Some(libc::EMFILE), "{error}");
                    break;
                }
            }
        }
        FullFileTable { files, limit }
    }
}

impl Drop for FullFileTable {
    fn drop(&mut self) {
        self.files.clear();
        // SAFETY: as above.
        unsafe {
            libc::setrlimit(libc::RLIMIT_NOFILE, &self.limit);
        }
    }
}

/// Before: the first commit that failed ended the core, and with it the daemon
/// ("cannot commit summaries and checkpoint").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_failing_on_a_full_file_table_are_tried_again_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // No broker: this is about the store, and sync just keeps trying to connect.
    let port = storefront_broker::free_port().unwrap();
    let config_path = write_config(dir.path(), ProfileName::Boutique, port);
    let config = StoreConfig::load(&config_path).unwrap();
    let day = storefront_tests::simulated_day(ProfileName::Boutique, 23);

    let mut engine = Engine::new(config.engine_config());
    for event in &day.events {
        engine.handle_event(event, event.time());
    }
    let ReplayOutput {
        windows: mut expected_windows,
        days: expected_days,
    } = finish(&mut engine);
    expected_windows.sort_by_key(|w| w.window_start);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (status_tx, _status) = watch::channel(Default::default());
    let run = Run {
        // Paced: the day's opening hours take about 10 s of wall time, whatever the load, so
        // the file table is full in the middle of it.
        source: Source::Memory {
            events: day.events,
            speed: Some(4000.0),
        },
        time: TimeMode::Event,
        broker: BrokerAddress {
            host: "127.0.0.1".into(),
            port,
            tls: false,
        },
        drain_after_end: None,
        // Often enough that several commits fall in the seconds the file table is full, the
        // night's signs of life included (a few events a second at this speed).
        commit_every_events: 500,
        publish_per_second: None,
        http: config.dashboard.bind,
        http_token: None,
    };
    let agent = tokio::spawn(daemon::run(config.clone(), run, shutdown_rx, status_tx));
    // The dashboard answers once the store is open and the day is playing.
    let http = config.dashboard.bind.unwrap();
    while tokio::net::TcpStream::connect(http).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let full = FullFileTable::fill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(full);

    let report = agent.await.unwrap().expect("the daemon keeps running");
    drop(shutdown_tx);
    assert!(report.core.finished, "the day was played to its end");
    assert!(
        report.core.commit_failures > 0,
        "the full file table made commits fail (else this test tests nothing)"
    );

    let store = daemon::open_store(&config).unwrap();
    assert_same(
        "stored windows",
        &store.windows(ALL_TIME.0, ALL_TIME.1).unwrap(),
        &expected_windows,
    );
    assert_same(
        "stored days",
        &store.days("0000-01-01", "9999-12-31").unwrap(),
        &expected_days,
    );
}
