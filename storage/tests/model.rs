//! Model test (after Vector's disk-buffer model test): random sequences of commits (durable
//! when they return), flushes, publishes to a simulated HQ, acks, clean restarts and crashes
//! that lose everything since the last commit or flush, checked step by step against a simple
//! in-memory model.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use proptest::prelude::*;
use storefront_protocol::{IdempotencyKey, SummaryKind, SummaryPayload, SyncMessage, Timestamp};
use storefront_storage::{Checkpoint, ShedCounts, Store, StoreOptions};

#[derive(Clone, Debug)]
enum Op {
    /// Summaries by id: 0..12 are windows of day 0, 12 and 13 are dailies of days 0 and 1.
    Commit(Vec<u8>),
    Flush,
    /// Publish up to `n` flushed outbox entries; HQ acks them or the ack is lost.
    Publish {
        n: u8,
        acked: bool,
    },
    /// Deliver up to `n` of HQ's acks in flight to the store.
    DeliverAcks(u8),
    Restart,
    /// Power cut: everything since the last flush is lost.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(0u8..14, 0..5).prop_map(Op::Commit),
        2 => Just(Op::Flush),
        3 => (1u8..6, prop::bool::weighted(0.8)).prop_map(|(n, acked)| Op::Publish { n, acked }),
        2 => (1u8..6).prop_map(Op::DeliverAcks),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

fn payload(id: u8) -> SummaryPayload {
    if id < 12 {
        w(0, i64::from(id))
    } else {
        d(i64::from(id) - 12)
    }
}

/// What the store should hold. `durable` is its state at the last flush.
#[derive(Clone, Debug, Default)]
struct Model {
    stored: BTreeSet<IdempotencyKey>,
    outbox: BTreeMap<u64, IdempotencyKey>,
    shed: ShedCounts,
    shed_keys: BTreeSet<IdempotencyKey>,
    next_seq: u64,
}

impl Model {
    fn commit(&mut self, batch: &[SummaryPayload], bound: u64) -> Vec<(u64, IdempotencyKey)> {
        let mut fresh = Vec::new();
        for p in batch {
            let key = p.idempotency_key();
            if self.stored.insert(key.clone()) {
                fresh.push((self.next_seq, key.clone()));
                self.outbox.insert(self.next_seq, key);
                self.next_seq += 1;
            }
        }
        while self.outbox.len() as u64 > bound {
            let victim = [SummaryKind::Window, SummaryKind::Daily]
                .iter()
                .find_map(|kind| {
                    self.outbox
                        .iter()
                        .find(|(_, k)| k.kind == *kind)
                        .map(|(&s, _)| s)
                })
                .expect("a non-empty outbox");
            let key = self.outbox.remove(&victim).unwrap();
            match key.kind {
                SummaryKind::Window => self.shed.windows += 1,
                SummaryKind::Daily => self.shed.dailies += 1,
            }
            self.shed_keys.insert(key);
            fresh.retain(|(s, _)| *s != victim);
        }
        fresh
    }
}

/// HQ: upserts by key, acks by seq.
#[derive(Default)]
struct Hq {
    records: BTreeMap<IdempotencyKey, SyncMessage>,
    seq_to_key: BTreeMap<u64, IdempotencyKey>,
    acks_in_flight: Vec<u64>,
}

impl Hq {
    fn receive(&mut self, message: SyncMessage, acked: bool) -> Result<(), TestCaseError> {
        // One seq never names two summaries: otherwise a late ack would drop the wrong one.
        if let Some(previous) = self.seq_to_key.insert(message.seq, message.key.clone()) {
            prop_assert_eq!(&previous, &message.key, "seq {} reused", message.seq);
        }
        if let Some(previous) = self.records.get(&message.key) {
            prop_assert_eq!(&previous.payload, &message.payload);
        }
        if acked {
            self.acks_in_flight.push(message.seq);
        }
        self.records.insert(message.key.clone(), message);
        Ok(())
    }
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

fn check(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let outbox = store.outbox(None, usize::MAX).unwrap();
    let got: BTreeMap<u64, IdempotencyKey> =
        outbox.iter().map(|m| (m.seq, m.key.clone())).collect();
    prop_assert!(outbox.windows(2).all(|p| p[0].seq < p[1].seq));
    prop_assert_eq!(&got, &model.outbox);
    let stats = store.stats();
    prop_assert_eq!(stats.outbox_len, model.outbox.len() as u64);
    prop_assert_eq!(stats.shed_total, model.shed);
    let mut stored: BTreeSet<IdempotencyKey> = store
        .windows(Timestamp(i64::MIN), Timestamp(i64::MAX))
        .unwrap()
        .iter()
        .map(|w| w.idempotency_key())
        .collect();
    stored.extend(
        store
            .days("0000", "9999")
            .unwrap()
            .iter()
            .map(|d| d.idempotency_key()),
    );
    prop_assert_eq!(&stored, &model.stored);
    Ok(())
}

fn run(ops: Vec<Op>, bound: u64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        outbox_max_entries: bound,
        ..options(dir.path())
    };
    let shadow = dir.path().join("durable");
    let mut store = Some(open(&options));
    let mut model = Model {
        next_seq: 1,
        ..Model::default()
    };
    let mut durable = model.clone();
    let mut hq = Hq::default();
    let mut cursor = 0u64;

    for op in ops {
        let s = store.as_ref().unwrap();
        match op {
            Op::Commit(ids) => {
                let batch: Vec<_> = ids.into_iter().map(payload).collect();
                cursor += 1;
                let checkpoint = Checkpoint {
                    engine: cursor,
                    source_cursor: Some(cursor),
                };
                let messages = s.commit(&batch, &checkpoint).unwrap();
                let expected = model.commit(&batch, bound);
                let got: Vec<_> = messages.iter().map(|m| (m.seq, m.key.clone())).collect();
                prop_assert_eq!(got, expected);
                prop_assert_eq!(s.load_checkpoint::<u64>().unwrap(), Some(checkpoint));
                // A commit is durable when it returns (acks before it too).
                durable = model.clone();
                let _ = std::fs::remove_dir_all(&shadow);
                copy_dir(&options.path, &shadow);
            }
            Op::Flush => {
                s.flush().unwrap();
                durable = model.clone();
                let _ = std::fs::remove_dir_all(&shadow);
                copy_dir(&options.path, &shadow);
            }
            Op::Publish { n, acked } => {
                // The store shows sync only what is durable.
                let visible = s.outbox(None, usize::MAX).unwrap();
                for message in &visible {
                    prop_assert!(
                        durable.outbox.contains_key(&message.seq),
                        "seq {} is visible before it is durable",
                        message.seq
                    );
                }
                for message in visible.into_iter().take(usize::from(n)) {
                    hq.receive(message, acked)?;
                }
            }
            Op::DeliverAcks(n) => {
                let n = usize::from(n).min(hq.acks_in_flight.len());
                let acks: Vec<u64> = hq.acks_in_flight.drain(..n).collect();
                let expected = acks
                    .iter()
                    .filter(|seq| model.outbox.remove(seq).is_some())
                    .count();
                prop_assert_eq!(s.ack(&acks).unwrap(), expected);
            }
            Op::Restart => {
                drop(store.take());
                durable = model.clone();
                let _ = std::fs::remove_dir_all(&shadow);
                copy_dir(&options.path, &shadow);
                store = Some(open(&options));
            }
            Op::Crash => {
                drop(store.take());
                std::fs::remove_dir_all(&options.path).unwrap();
                if shadow.exists() {
                    copy_dir(&shadow, &options.path);
                }
                model = durable.clone();
                store = Some(open(&options));
            }
        }
        check(store.as_ref().unwrap(), &model)?;
    }

    // Drain: publish everything and ack it until the outbox is empty.
    let s = store.as_ref().unwrap();
    s.flush().unwrap();
    let pending: Vec<u64> = hq.acks_in_flight.drain(..).collect();
    s.ack(&pending).unwrap();
    for _ in 0..100 {
        let batch = s.outbox(None, 4).unwrap();
        if batch.is_empty() {
            break;
        }
        let seqs: Vec<u64> = batch.iter().map(|m| m.seq).collect();
        for message in batch {
            hq.receive(message, true)?;
        }
        hq.acks_in_flight.clear();
        prop_assert_eq!(s.ack(&seqs).unwrap(), seqs.len());
    }
    prop_assert_eq!(s.outbox_len(), 0);
    // Every summary the store holds reached HQ, except the entries it shed (and counted).
    for key in &model.stored {
        prop_assert!(
            hq.records.contains_key(key) || model.shed_keys.contains(key),
            "{:?} never reached HQ",
            key
        );
    }
    // ... and in particular every one that was flushed.
    for key in &durable.stored {
        prop_assert!(model.stored.contains(key));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_store_matches_the_model(
        ops in prop::collection::vec(op(), 1..40),
        bound in prop_oneof![Just(3u64), Just(6), Just(1000)],
    ) {
        run(ops, bound)?;
    }
}
