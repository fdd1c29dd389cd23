//! Figures for one store-day, ignored by default (it writes ~150 MB and takes a minute):
//! `cargo test -p storefront-storage --release --test store_day -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use storefront_storage::{Checkpoint, Store};

/// (bytes passed to write(2), bytes sent to the block device) of this process so far.
fn io_counters() -> (u64, u64) {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("wchar:"), field("write_bytes:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
#[ignore]
fn store_day_figures() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = options(dir.path());
    let (store, _) = Store::open(options.clone()).unwrap();
    let one_window = serde_json::to_vec(&window(0, 40)).unwrap().len();
    let one_daily = serde_json::to_vec(&daily(0)).unwrap().len();

    let (wchar0, written0) = io_counters();
    let mut commits = Vec::new();
    let mut flushes = Vec::new();
    let checkpoints = 720; // every 60 s for 12 h
    let mut windows = 0;
    for minute in 0..checkpoints {
        let mut finals = Vec::new();
        // 96 windows spread over the 720 commits, the daily summary with the last one.
        while windows < 96 && windows * checkpoints < (minute + 1) * 96 {
            finals.push(w(0, windows as i64));
            windows += 1;
        }
        if minute == checkpoints - 1 {
            finals.push(d(0));
        }
        // A 200 KB opaque engine snapshot that changes every time.
        let engine: String = (0..200_000)
            .map(|i| (b'a' + ((i * 31 + minute * 7) % 26) as u8) as char)
            .collect();
        let checkpoint = Checkpoint {
            engine,
            source_cursor: Some(minute as u64),
        };
        let t = Instant::now();
        let messages = store.commit(&finals, &checkpoint).unwrap();
        commits.push(t.elapsed());
        let t = Instant::now();
        store.flush().unwrap();
        flushes.push(t.elapsed());
        // Published and acked straight away, as when HQ is reachable.
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        store.ack(&seqs).unwrap();
    }
    let (wchar1, written1) = io_counters();
    let size = store.size_on_disk();
    drop(store);
    commits.sort();
    flushes.sort();
    println!("one window summary: {one_window} B as JSON; daily summary: {one_daily} B");
    println!(
        "commit: p50 {:?}, p99 {:?}; flush (with fsync): p50 {:?}, p99 {:?}, max {:?}",
        percentile(&commits, 0.5),
        percentile(&commits, 0.99),
        percentile(&flushes, 0.5),
        percentile(&flushes, 0.99),
        flushes.last().unwrap()
    );
    println!(
        "store-day: {} MB passed to write(2), {} MB sent to the device, {} KB on disk at the end",
        (wchar1 - wchar0) / 1_000_000,
        (written1 - written0) / 1_000_000,
        size / 1000
    );
    let (store, _) = Store::open(options).unwrap();
    println!("after reopen: {} KB on disk", store.size_on_disk() / 1000);
    assert_eq!(
        store
            .load_checkpoint::<String>()
            .unwrap()
            .unwrap()
            .source_cursor,
        Some(719)
    );
}
