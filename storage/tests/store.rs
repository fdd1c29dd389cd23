mod common;

use std::io::Write;

use common::*;
use storefront_protocol::{SummaryKind, Timestamp};
use storefront_storage::{Checkpoint, Corruption, ShedCounts, Store, StoreError};

fn cp(cursor: u64) -> Checkpoint<String> {
    Checkpoint {
        engine: format!("engine state {cursor}"),
        source_cursor: Some(cursor),
    }
}

fn seqs(messages: &[storefront_protocol::SyncMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

#[test]
fn commit_is_idempotent_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&options(dir.path()));
    let first = store.commit(&[w(0, 0), w(0, 1)], &cp(1)).unwrap();
    assert_eq!(seqs(&first), [1, 2]);
    // Re-emitted after a restart from an older checkpoint, and repeated within one batch.
    let again = store
        .commit(&[w(0, 1), w(0, 0), w(0, 2), w(0, 2)], &cp(2))
        .unwrap();
    assert_eq!(seqs(&again), [3]);
    assert_eq!(again[0].key, window(0, 2).idempotency_key());
    assert_eq!(store.outbox_len(), 3);
    let stored = store
        .windows(Timestamp(DAY0), Timestamp(DAY0 + 86_400_000))
        .unwrap();
    assert_eq!(stored, vec![window(0, 0), window(0, 1), window(0, 2)]);
    // Still skipped after the outbox entries were acked.
    store.ack(&[1, 2, 3]).unwrap();
    assert!(store.commit(&[w(0, 0)], &cp(3)).unwrap().is_empty());
}

#[test]
fn seqs_strictly_increase_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let mut all = Vec::new();
    for round in 0..3 {
        let store = open(&options);
        let batch = [w(0, round * 2), w(0, round * 2 + 1)];
        let messages = store.commit(&batch, &cp(round as u64)).unwrap();
        store.flush().unwrap();
        // Acks must not make a number come back.
        store.ack(&seqs(&messages)).unwrap();
        all.extend(seqs(&messages));
    }
    assert_eq!(all, [1, 2, 3, 4, 5, 6]);
    let store = open(&options);
    assert_eq!(store.stats().next_seq, 7);
    assert_eq!(store.outbox_len(), 0);
}

#[test]
fn ack_removes_only_given_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&options(dir.path()));
    store
        .commit(&[w(0, 0), w(0, 1), w(0, 2), d(0)], &cp(1))
        .unwrap();
    assert_eq!(store.ack(&[2, 4, 99, 2]).unwrap(), 2);
    assert_eq!(seqs(&store.outbox(None, 10).unwrap()), [1, 3]);
    assert_eq!(store.ack(&[2]).unwrap(), 0);
    assert_eq!(store.outbox_len(), 2);
}

#[test]
fn outbox_is_in_sequence_order_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let store = open(&options);
    // Committed out of time order: the outbox follows commit order (seq), not time.
    store.commit(&[w(1, 5), w(0, 3)], &cp(1)).unwrap();
    store.commit(&[d(0), w(0, 300)], &cp(2)).unwrap();
    let all = store.outbox(None, 100).unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4]);
    assert_eq!(all[2].key.kind, SummaryKind::Daily);
    assert_eq!(seqs(&store.outbox(Some(1), 2).unwrap()), [2, 3]);
    assert_eq!(seqs(&store.outbox(Some(3), 2).unwrap()), [4]);
    assert!(store.outbox(Some(4), 2).unwrap().is_empty());
    assert!(store.outbox(Some(u64::MAX), 2).unwrap().is_empty());
    store.flush().unwrap();
    drop(store);
    assert_eq!(
        seqs(&open(&options).outbox(None, 100).unwrap()),
        [1, 2, 3, 4]
    );
}

#[test]
fn shedding_keeps_dailies_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.outbox_max_entries = 4;
    let store = open(&options);
    store.commit(&[w(0, 0), d(0), w(0, 1)], &cp(1)).unwrap(); // seqs 1..=3
    // Two more: one over the bound, so the oldest window (seq 1) goes.
    let new = store.commit(&[w(0, 2), w(0, 3)], &cp(2)).unwrap();
    assert_eq!(seqs(&new), [4, 5]);
    assert_eq!(seqs(&store.outbox(None, 10).unwrap()), [2, 3, 4, 5]);
    // A big batch: the older windows go first, then the new batch's own oldest windows;
    // the daily stays.
    let new = store
        .commit(&[w(0, 4), w(0, 5), w(0, 6), w(0, 7), d(1)], &cp(3))
        .unwrap();
    let left = store.outbox(None, 10).unwrap();
    assert_eq!(seqs(&left), [2, 8, 9, 10]);
    assert_eq!(seqs(&new), [8, 9, 10]);
    assert_eq!(
        left.iter().map(|m| m.key.kind).collect::<Vec<_>>(),
        [
            SummaryKind::Daily,
            SummaryKind::Window,
            SummaryKind::Window,
            SummaryKind::Daily
        ]
    );
    let stats = store.stats();
    assert_eq!(
        stats.shed_total,
        ShedCounts {
            windows: 6,
            dailies: 0
        }
    );
    assert_eq!(stats.outbox_len, 4);
    // The shed windows are still stored for the local dashboard.
    assert_eq!(
        store
            .windows(Timestamp(DAY0), Timestamp(DAY0 + 86_400_000))
            .unwrap()
            .len(),
        8
    );
    // Only dailies left and still too many: the oldest daily goes, and counts as such.
    let mut options = options.clone();
    options.path = dir.path().join("other");
    options.outbox_max_entries = 1;
    let store = open(&options);
    store.commit(&[d(0), d(1)], &cp(1)).unwrap();
    assert_eq!(seqs(&store.outbox(None, 10).unwrap()), [2]);
    assert_eq!(store.stats().shed_total.dailies, 1);
    store.flush().unwrap();
    drop(store);
    assert_eq!(open(&options).stats().shed_total.dailies, 1);
}

#[test]
fn prune_removes_by_retention_but_never_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.retention_days = 2;
    let store = open(&options);
    store
        .commit(
            &[w(0, 0), w(0, 95), d(0), w(1, 0), d(1), w(3, 0), d(3)],
            &cp(1),
        )
        .unwrap();
    // Now = day 3, 00:00 + 1 ms: the cut-off is day 1 00:00:00.001.
    let now = Timestamp(DAY0 + 3 * 86_400_000 + 1);
    // Windows of day 0 (2) and window (1, 0) started before the cut-off; day 0's date is
    // before the cut-off date, day 1's is not.
    assert_eq!(store.prune(now).unwrap(), 4);
    let windows = store
        .windows(Timestamp(i64::MIN), Timestamp(i64::MAX))
        .unwrap();
    assert_eq!(windows, vec![window(3, 0)]);
    let days: Vec<_> = store
        .days("2000-01-01", "2100-01-01")
        .unwrap()
        .into_iter()
        .map(|d| d.local_date)
        .collect();
    assert_eq!(days, [date(1), date(3)]);
    assert_eq!(store.outbox_len(), 7);
    assert_eq!(store.prune(now).unwrap(), 0);
}

#[test]
fn days_are_selected_by_inclusive_date_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&options(dir.path()));
    store.commit(&[d(0), d(1), d(2), d(3)], &cp(1)).unwrap();
    let got: Vec<_> = store
        .days(&date(1), &date(2))
        .unwrap()
        .into_iter()
        .map(|d| d.local_date)
        .collect();
    assert_eq!(got, [date(1), date(2)]);
    assert_eq!(store.days(&date(1), &date(2)).unwrap()[0], daily(1));
    assert!(store.days(&date(2), &date(1)).unwrap().is_empty());
}

#[test]
fn checkpoint_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let store = open(&options);
    assert_eq!(store.load_checkpoint::<String>().unwrap(), None);
    store.commit(&[], &cp(1)).unwrap();
    store.commit(&[w(0, 0)], &cp(2)).unwrap();
    assert_eq!(store.load_checkpoint::<String>().unwrap(), Some(cp(2)));
    store.flush().unwrap();
    drop(store);
    assert_eq!(
        open(&options).load_checkpoint::<String>().unwrap(),
        Some(cp(2))
    );
}

#[test]
fn a_store_refuses_another_stores_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&options(dir.path()));
    store.commit(&[w(0, 0)], &cp(1)).unwrap();
    let mut other = window(0, 1);
    other.store_id = "store-2".into();
    let err = store
        .commit(
            &[storefront_protocol::SummaryPayload::Window(other)],
            &cp(2),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::StoreMismatch { .. }), "{err}");
    assert_eq!(store.outbox_len(), 1);
}

/// The store's database opened with sled directly.
fn raw_sled(path: &std::path::Path) -> sled::Db {
    sled::Config::new()
        .path(path)
        .segment_size(storefront_storage::SEGMENT_SIZE)
        .open()
        .unwrap()
}

/// Rewrites one raw value with sled directly, behind the store's back.
fn garble(path: &std::path::Path, tree: &str, key: &[u8], f: impl Fn(&mut Vec<u8>)) {
    let db = raw_sled(path);
    let tree = db.open_tree(tree).unwrap();
    let mut value = tree.get(key).unwrap().expect("record exists").to_vec();
    f(&mut value);
    tree.insert(key, value).unwrap();
    db.flush().unwrap();
}

#[test]
fn corrupt_record_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let store = open(&options);
    store.commit(&[w(0, 0), w(0, 1)], &cp(1)).unwrap();
    store.flush().unwrap();
    drop(store);

    // A flipped bit in the checkpoint's payload (its first and only chunk).
    garble(&options.path, "checkpoint", b"current/\0\0\0\0", |v| {
        let i = v.len() - 3;
        v[i] ^= 0x20;
    });
    // A window record from a future format version.
    let window_key = ((DAY0 as u64) ^ (1 << 63)).to_be_bytes();
    garble(&options.path, "windows", &window_key, |v| v[0] = 7);

    let store = open(&options);
    let err = store.load_checkpoint::<String>().unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Corrupt { tree: "checkpoint", key, problem: Corruption::Checksum { .. } }
                if key == "current"
        ),
        "{err}"
    );
    assert!(err.to_string().contains("checkpoint"), "{err}");
    let err = store
        .windows(Timestamp(DAY0), Timestamp(DAY0 + 86_400_000))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { tree: "windows", key, problem: Corruption::UnknownVersion { found: 7 } }
            if key == &format!("window_start={DAY0}")),
        "{err}"
    );
    // The next commit writes a good checkpoint again.
    store.commit(&[], &cp(2)).unwrap();
    assert_eq!(store.load_checkpoint::<String>().unwrap(), Some(cp(2)));
}

#[test]
fn corrupt_outbox_record_is_dropped_at_open_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let store = open(&options);
    let messages = store.commit(&[w(0, 0), w(0, 1), w(0, 2)], &cp(1)).unwrap();
    store.flush().unwrap();
    drop(store);
    let db = raw_sled(&options.path);
    let outbox = db.open_tree("outbox").unwrap();
    let (key, _) = outbox.iter().nth(1).unwrap().unwrap();
    outbox.insert(key, &b"garbage"[..]).unwrap();
    db.flush().unwrap();
    drop((outbox, db));

    let (store, report) = Store::open(options.clone()).unwrap();
    assert_eq!(report.corrupt_outbox_dropped, 1);
    assert_eq!(seqs(&store.outbox(None, 10).unwrap()), [1, 3]);
    assert_eq!(store.outbox(None, 10).unwrap()[1], messages[2]);
    assert_eq!(store.stats().next_seq, 4);
}

#[test]
fn corrupt_database_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let store = open(&options);
    store.commit(&[w(0, 0)], &cp(1)).unwrap();
    store.flush().unwrap();
    drop(store);

    // Garble the configuration file (sled reads it first at open and cannot start without it).
    let mut conf = std::fs::File::create(options.path.join("conf")).unwrap();
    conf.write_all(b"this is not a sled configuration at all\n")
        .unwrap();
    drop(conf);

    let (store, report) = Store::open(options.clone()).unwrap();
    let aside = report.moved_aside.expect("moved aside").path;
    assert!(
        aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("db.corrupt-"),
        "{}",
        aside.display()
    );
    assert!(aside.join("db").exists(), "the damaged files are kept");
    // A fresh database: empty, numbering from 1.
    assert_eq!(store.outbox_len(), 0);
    assert_eq!(store.load_checkpoint::<String>().unwrap(), None);
    assert_eq!(seqs(&store.commit(&[w(0, 0)], &cp(1)).unwrap()), [1]);
}

#[test]
fn garbage_log_file_is_moved_aside_or_opens() {
    // Whatever sled makes of a garbled log, opening must not panic or fail.
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let store = open(&options);
    store.commit(&[w(0, 0)], &cp(1)).unwrap();
    store.flush().unwrap();
    drop(store);
    let len = std::fs::metadata(options.path.join("db")).unwrap().len();
    let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(options.path.join("db"), garbage).unwrap();
    for snap in std::fs::read_dir(&options.path).unwrap().flatten() {
        if snap.file_name().to_string_lossy().starts_with("snap.") {
            std::fs::write(snap.path(), b"garbage snapshot").unwrap();
        }
    }
    let (store, _report) = Store::open(options.clone()).expect("starts");
    store.commit(&[w(0, 1)], &cp(2)).unwrap();
    store.flush().unwrap();
}

#[test]
fn locked_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let store = open(&options);
    store.commit(&[w(0, 0)], &cp(1)).unwrap();
    store.flush().unwrap();
    let err = Store::open(options.clone()).err().expect("locked");
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    // Nothing was moved aside and the running store is intact.
    let siblings: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(siblings, ["db"]);
    assert_eq!(store.outbox_len(), 1);
    drop(store);
    assert_eq!(open(&options).outbox_len(), 1);
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.outbox_max_entries = 0;
    assert!(matches!(
        Store::open(options),
        Err(StoreError::InvalidOptions(_))
    ));
}

#[test]
fn a_database_written_with_other_parameters_is_an_error_not_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    // sled's default segment size, not ours.
    let db = sled::open(&options.path).unwrap();
    db.insert(b"k", &b"v"[..]).unwrap();
    db.flush().unwrap();
    drop(db);
    let err = Store::open(options.clone()).err().expect("refused");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("io buffer size"), "{err}");
    let siblings: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(siblings, ["db"]);
}

#[test]
fn the_outbox_carries_redacted_distributions_and_the_windows_tree_keeps_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let options = storefront_storage::StoreOptions {
        min_count: 46,
        ..options(dir.path())
    };
    let store = open(&options);
    let window = window(0, 3);
    // entrance has 45 dwell values (< 46): redacted; apparel has 46: kept.
    let sent = store
        .commit(
            &[storefront_protocol::SummaryPayload::Window(window.clone())],
            &cp(1),
        )
        .unwrap();
    let storefront_protocol::SummaryPayload::Window(published) = &sent[0].payload else {
        panic!("a window")
    };
    assert_eq!(published.funnel.zones["entrance"].dwell.count, 45);
    assert_eq!(published.funnel.zones["entrance"].dwell.median(), None);
    assert!(published.funnel.zones["apparel"].dwell.median().is_some());
    let kept = store
        .windows(Timestamp(i64::MIN / 2), Timestamp(i64::MAX / 2))
        .unwrap();
    assert_eq!(kept, vec![window.clone()]);
    assert!(kept[0].funnel.zones["entrance"].dwell.median().is_some());
}

#[test]
fn a_waiter_wakes_when_a_commit_makes_entries_visible_and_when_they_are_acked() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&options(dir.path())));
    let seen = store.outbox_version();
    assert_eq!(
        store.wait_for_outbox_change(seen, std::time::Duration::from_millis(10)),
        seen,
        "nothing changed: the wait times out"
    );
    let waiter = {
        let store = store.clone();
        std::thread::spawn(move || {
            let now = store.wait_for_outbox_change(seen, std::time::Duration::from_secs(120));
            (now, store.outbox(None, 10).unwrap())
        })
    };
    let sent = store.commit(&[w(0, 0)], &cp(1)).unwrap();
    let (now, visible) = waiter.join().unwrap();
    assert_ne!(now, seen);
    assert_eq!(visible, sent, "woken once the entry is visible");
    store.ack(&[sent[0].seq]).unwrap();
    assert_ne!(store.outbox_version(), now);
}

#[test]
fn a_database_from_before_the_marker_is_recognised_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let store = open(&options);
    let sent = store.commit(&[w(0, 0)], &cp(1)).unwrap();
    drop(store);
    let marker = options.path.join(storefront_storage::MARKER);
    std::fs::remove_file(&marker).unwrap();

    let store = open(&options);
    assert_eq!(store.outbox(None, 10).unwrap(), sent);
    assert!(marker.exists(), "marked once it opened");
}

#[test]
fn a_database_of_a_newer_format_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    drop(open(&options));
    let marker = options.path.join(storefront_storage::MARKER);
    std::fs::write(&marker, "storefront-store v9\n").unwrap();

    let err = Store::open(options.clone()).err().expect("refused");
    assert!(
        matches!(err, StoreError::NewerFormat { found: 9, .. }),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "storefront-store v9\n"
    );
    let siblings: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(siblings, ["db"]);
}
