//! The storage's threat model: a careless installer's `storage.path`, a damaged database, a
//! power cut between commit and publish. One test per attack.

mod common;

use std::path::Path;

use common::*;
use storefront_storage::{Checkpoint, Store};

fn cp(cursor: u64) -> Checkpoint<String> {
    Checkpoint {
        engine: format!("engine state {cursor}"),
        source_cursor: Some(cursor),
    }
}

/// Every file under `dir` with its contents, sorted by path.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.push((format!("{name}/"), Vec::new()));
                walk(root, &path, out);
            } else {
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_regular_file_at_the_storage_path_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    std::fs::write(&options.path, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let before = tree(dir.path());

    let err = Store::open(options.clone()).err().expect("refused");

    let message = err.to_string();
    assert!(
        message.contains(&options.path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("fix"), "{message}");
    assert_eq!(tree(dir.path()), before, "nothing renamed, nothing created");
}

#[test]
fn a_foreign_non_empty_directory_at_the_storage_path_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    std::fs::create_dir(&options.path).unwrap();
    std::fs::write(options.path.join("thesis.tex"), "\\chapter{Results}\n").unwrap();
    std::fs::create_dir(options.path.join("figures")).unwrap();
    let before = tree(dir.path());

    let err = Store::open(options.clone()).err().expect("refused");

    let message = err.to_string();
    assert!(
        message.contains(&options.path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("thesis.tex"), "{message}");
    assert_eq!(tree(dir.path()), before, "nothing renamed, nothing created");
}

const KEY_FILE: &str = "pseudonym-key";
const KEY_TEXT: &str = "storefront-pseudonym-key v1\nperiod_start=2026-11-23\nkey=a5a5\n";

/// A product database holding 3 summaries (one acked) and a key file, then damaged: its
/// sequence counter record fails its checksum, so it cannot be trusted to number new entries.
fn damaged_database(
    options: &storefront_storage::StoreOptions,
) -> Vec<storefront_protocol::SyncMessage> {
    let store = open(options);
    std::fs::write(options.path.join(KEY_FILE), KEY_TEXT).unwrap();
    let sent = store.commit(&[w(0, 0), w(0, 1), d(0)], &cp(1)).unwrap();
    store.flush().unwrap();
    assert_eq!(store.ack(&[sent[0].seq]).unwrap(), 1);
    drop(store);
    let db = sled::Config::new()
        .path(&options.path)
        .segment_size(storefront_storage::SEGMENT_SIZE)
        .open()
        .unwrap();
    let meta = db.open_tree("meta").unwrap();
    let mut value = meta.get(b"next_seq").unwrap().unwrap().to_vec();
    *value.last_mut().unwrap() ^= 0x01;
    meta.insert(b"next_seq", value).unwrap();
    db.flush().unwrap();
    sent[1..].to_vec()
}

#[test]
fn a_damaged_product_database_is_moved_aside_without_its_key_and_its_unsent_outbox_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.secret_files = vec![KEY_FILE.to_owned()];
    let unsent = damaged_database(&options);

    let (store, report) = Store::open(options.clone()).expect("starts fresh");

    let aside = report.moved_aside.as_ref().expect("moved aside");
    assert!(aside.path.join("db").exists(), "the damaged files are kept");
    assert!(
        !aside.path.join(KEY_FILE).exists(),
        "the pseudonym key is destroyed in the copy moved aside"
    );
    assert_eq!(aside.outbox_carried, 2);
    assert_eq!(aside.outbox_unreadable, None);
    // Carried with new sequence numbers and the same keys and payloads: HQ de-dups by key.
    let carried = store.outbox(None, 10).unwrap();
    assert_eq!(
        carried.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2],
        "numbered by the fresh store"
    );
    for (carried, original) in carried.iter().zip(&unsent) {
        assert_eq!(carried.key, original.key);
        assert_eq!(carried.payload, original.payload);
    }
    // They survive a restart, and new summaries number after them.
    drop(store);
    let store = open(&options);
    assert_eq!(store.outbox_len(), 2);
    assert_eq!(store.commit(&[w(0, 5)], &cp(2)).unwrap()[0].seq, 3);
}

#[test]
fn an_unreadable_damaged_database_is_moved_aside_and_its_lost_outbox_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.secret_files = vec![KEY_FILE.to_owned()];
    let store = open(&options);
    std::fs::write(options.path.join(KEY_FILE), KEY_TEXT).unwrap();
    store.commit(&[w(0, 0)], &cp(1)).unwrap();
    drop(store);
    // sled reads its configuration first and cannot start without it.
    std::fs::write(options.path.join("conf"), "not a sled configuration\n").unwrap();

    let (store, report) = Store::open(options.clone()).expect("starts fresh");

    let aside = report.moved_aside.expect("moved aside");
    assert!(!aside.path.join(KEY_FILE).exists());
    assert_eq!(aside.outbox_carried, 0);
    let why = aside
        .outbox_unreadable
        .expect("the lost outbox is reported");
    assert!(!why.is_empty());
    assert_eq!(store.outbox_len(), 0);
}

#[test]
fn an_outbox_entry_is_visible_to_sync_only_once_it_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let store = open(&options);
    store.commit(&[w(0, 0), w(0, 1)], &cp(1)).unwrap();
    let visible = store.outbox(None, 10).unwrap();
    assert_eq!(visible.len(), 2);

    // A power cut now keeps only what reached the files: a copy of them.
    let survivor = dir.path().join("after-power-cut");
    copy_dir(&options.path, &survivor.join("db"));
    drop(store);
    let after = open(&storefront_storage::StoreOptions {
        path: survivor.join("db"),
        ..options.clone()
    });
    let kept: Vec<_> = after.outbox(None, 10).unwrap();
    assert_eq!(
        kept, visible,
        "everything sync could read (and publish) before the power cut is still there after it"
    );
}
