//! Figures for the daemon (BENCHMARKS.md): bytes on the wire and in sled per store-day, the
//! checkpoint's size, and the time to drain a 7-day backlog once the uplink returns.
//! `cargo bench -p storefront-agent --bench sync_figures` (needs mosquitto for the drain).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use storefront_agent::daemon::source::Source;
use storefront_agent::daemon::{self, BrokerAddress, Run, TimeMode};
use storefront_agent::events_file::EventWriter;
use storefront_config::StoreConfig;
use storefront_engine::Engine;
use storefront_hq::{Collector, CollectorConfig, HqStore, SledHqStore};
use storefront_protocol::{SummaryPayload, SyncMessage};
use storefront_simulator::{Profile, ProfileName, SimulationSpec, Simulator, TruthParams};
use storefront_storage::{Checkpoint, Store, StoreOptions};
use tokio::sync::watch;

fn mall_config(dir: &std::path::Path, broker_port: u16) -> StoreConfig {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/mall.toml");
    let mut config = StoreConfig::load(&path).expect("example config");
    config.storage.path = dir.join("agent-db");
    config.sync.username = None;
    config.sync.password_file = None;
    config.sync.broker = storefront_config::Broker {
        host: "127.0.0.1".into(),
        port: broker_port,
        tls: false,
    };
    config
}

fn simulate(days: u32) -> Vec<storefront_simulator::SimulatedDay> {
    let mut simulator = Simulator::new(SimulationSpec {
        profile: Profile::named(ProfileName::Mall),
        seed: 3,
        days,
        start_date: NaiveDate::from_ymd_opt(2026, 11, 16).expect("date"),
        mac_rotation: false,
        truth: TruthParams::default(),
    });
    std::iter::from_fn(|| simulator.next_day()).collect()
}

fn process_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines().find_map(|l| {
                l.strip_prefix("write_bytes: ")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

/// One busy store-day through the engine and sled as the live daemon does it: a commit (final
/// windows + checkpoint) every 30 s of store time.
fn store_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = mall_config(dir.path(), 1883);
    let day = simulate(1).remove(0);
    let mut engine = Engine::new(config.engine_config());
    let (store, _) = Store::open(StoreOptions {
        min_count: 5,
        ..StoreOptions::new(dir.path().join("db"))
    })
    .expect("store");
    let written_before = process_write_bytes();
    let (mut wire_bytes, mut messages, mut commits) = (0usize, 0usize, 0usize);
    let (mut snapshot_max, mut snapshot_sum) = (0usize, 0usize);
    let mut next_commit = day.events[0].time().plus_secs(30);
    let mut commit = |engine: &mut Engine, cursor: u64| {
        let mut finals = Vec::new();
        while let Some(w) = engine.poll_window() {
            finals.push(SummaryPayload::Window(w));
        }
        while let Some(d) = engine.poll_daily() {
            finals.push(SummaryPayload::Daily(d));
        }
        let checkpoint = Checkpoint {
            engine: engine.snapshot(),
            source_cursor: Some(cursor),
        };
        let size = serde_json::to_vec(&checkpoint)
            .map(|v| v.len())
            .unwrap_or(0);
        snapshot_max = snapshot_max.max(size);
        snapshot_sum += size;
        for message in store.commit(&finals, &checkpoint).expect("commit") {
            wire_bytes += wire_size(&message);
            messages += 1;
        }
        store.flush().expect("flush");
        commits += 1;
    };
    for (i, event) in day.events.iter().enumerate() {
        engine.handle_event(event, event.time());
        if event.time() >= next_commit {
            commit(&mut engine, i as u64);
            next_commit = event.time().plus_secs(30);
        }
    }
    engine.end_of_stream();
    commit(&mut engine, day.events.len() as u64);
    let written = process_write_bytes() - written_before;
    println!(
        "store-day (busy mall, {} events, {} entries):",
        day.events.len(),
        day.truth.population.entries
    );
    println!(
        "  on the wire: {messages} summaries, {wire_bytes} bytes of MQTT PUBLISH packets ({:.1} KB), plus ~{} bytes of acks",
        wire_bytes as f64 / 1024.0,
        messages * 40
    );
    println!(
        "  checkpoints: {commits} commits, snapshot mean {} KB, max {} KB",
        snapshot_sum / commits.max(1) / 1024,
        snapshot_max / 1024
    );
    println!(
        "  sled: {:.1} MB written by the process, {:.1} MB on disk at the end of the day",
        written as f64 / 1e6,
        store.size_on_disk() as f64 / 1e6
    );
}

/// PUBLISH packet bytes: fixed header (1 + remaining-length varint) + topic + packet id + payload.
fn wire_size(message: &SyncMessage) -> usize {
    let topic = "storefront/v1/acme/mall-nj-01/summary".len();
    let remaining = 2 + topic + 2 + message.encode().len();
    let varint = if remaining < 128 {
        1
    } else if remaining < 16_384 {
        2
    } else {
        3
    };
    1 + varint + remaining
}

/// 7 busy days stored while the uplink is down, then the broker and HQ come back.
async fn backlog_drain(rate: u32) {
    if !storefront_broker::Mosquitto::available() {
        println!("backlog drain: SKIPPED (mosquitto not installed)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = storefront_broker::free_port().expect("port");
    let config = mall_config(dir.path(), port);
    let events = dir.path().join("week.jsonl");
    let mut writer = EventWriter::create(&events).expect("events file");
    for day in simulate(7) {
        for event in &day.events {
            writer.write(event).expect("write");
        }
    }
    writer.finish().expect("flush events");
    let (status_tx, mut status) = watch::channel(Default::default());
    let (_shutdown_tx, shutdown_rx) = watch::channel(false);
    let run = Run {
        source: Source::File { path: events },
        time: TimeMode::Event,
        broker: BrokerAddress {
            host: "127.0.0.1".into(),
            port,
            tls: false,
        },
        drain_after_end: Some(Duration::from_secs(3600)),
        commit_every_events: 200_000,
        publish_per_second: Some(rate),
        http: None,
        http_token: None,
    };
    let agent = tokio::spawn(daemon::run(config, run, shutdown_rx, status_tx));
    // Uplink down: wait for the week's 672 windows + 7 days to pile up in the outbox.
    status
        .wait_for(|s| s.outbox_len >= 679)
        .await
        .expect("backlog");
    let backlog = status.borrow().outbox_len;
    let started = Instant::now();
    let _broker = storefront_broker::Mosquitto::start_with_port(port).expect("mosquitto");
    let hq_store: Arc<dyn HqStore> =
        Arc::new(SledHqStore::open(dir.path().join("hq")).expect("hq store"));
    let collector = Collector::new(
        CollectorConfig::new(&format!("mqtt://127.0.0.1:{port}"), "bench-hq", "hq")
            .expect("hq config"),
        hq_store,
    )
    .expect("collector");
    let (hq_stop, hq_stop_rx) = watch::channel(false);
    let hq = tokio::spawn(collector.run(hq_stop_rx));
    let report = agent.await.expect("agent task").expect("agent run");
    let drained = started.elapsed();
    let _ = hq_stop.send(true);
    let stats = hq.await.expect("hq task").expect("hq run");
    println!(
        "backlog drain at {rate} publishes/s: {backlog} summaries (7 busy days) acked by HQ in {:.1} s after the uplink returned ({} stored, {} duplicates); outbox left: {}",
        drained.as_secs_f64(),
        stats.inserted,
        stats.duplicates,
        report.sync.outbox_len
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    store_day();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for rate in [20, 200] {
        runtime.block_on(backlog_drain(rate));
    }
}
