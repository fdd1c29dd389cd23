//! Model test: random sequences of upserts (new, duplicate, conflicting, in two orgs), flushes and reopens
//! against `SledHqStore`, with `MemoryHqStore` as the model. Every upsert must answer as the
//! model does, and the tables must match after every sequence.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use storefront_hq::{HqError, HqStore, MemoryHqStore, SledHqStore, Upsert};
use storefront_protocol::{
    DailySummary, Funnel, SUMMARY_SCHEMA_VERSION, SummaryPayload, SyncMessage, Timestamp,
    WindowSummary,
};

const STORES: [&str; 3] = ["paris-01", "lyon-02", "nice-03"];
/// 2026-11-17T23:00Z: the start of 2026-11-18 in Paris.
const DAY_START: i64 = 1_794_956_400;

#[derive(Clone, Debug)]
enum Op {
    /// `slot` picks a key (store, window or day); `variant` its content (two versions exist,
    /// so a repeat with the other variant is a conflict).
    Upsert {
        slot: u8,
        variant: u8,
        seq: u64,
        /// Which of two orgs sends it (the same store id in two orgs is two stores).
        org: u8,
    },
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..18, 0u8..2, 0u64..1000, 0u8..2).prop_map(|(slot, variant, seq, org)| Op::Upsert { slot, variant, seq, org }),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

fn message(slot: u8, variant: u8, seq: u64) -> SyncMessage {
    let store = STORES[slot as usize % 3];
    let funnel = Funnel {
        entries: 10 + variant as u64,
        passers_by: 30,
        ..Funnel::default()
    };
    let n = (slot / 3) as i64;
    if n < 5 {
        let start = DAY_START + 9 * 3600 + n * 900;
        let w = WindowSummary {
            schema: SUMMARY_SCHEMA_VERSION,
            store_id: store.into(),
            window_start: Timestamp::from_secs(start),
            window_seconds: 900,
            local_date: "2026-11-18".into(),
            local_hour: 10,
            hour_start: Timestamp::from_secs(start - start % 3600),
            funnel,
            coverage: None,
        };
        SyncMessage::new(seq, w.idempotency_key(), SummaryPayload::Window(w))
    } else {
        let mut d = DailySummary::new(store, "2026-11-18", Timestamp::from_secs(DAY_START));
        d.funnel = funnel;
        SyncMessage::new(seq, d.idempotency_key(), SummaryPayload::Daily(d))
    }
}

/// Opens the database, retrying while sled's background threads of a just-dropped handle
/// still hold the directory lock.
fn open(dir: &std::path::Path) -> SledHqStore {
    let started = Instant::now();
    loop {
        match SledHqStore::open(dir) {
            Ok(store) => return store,
            Err(_) if started.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("cannot reopen: {e}"),
        }
    }
}

fn outcome(result: Result<Upsert, HqError>) -> Result<Upsert, String> {
    result.map_err(|e| format!("unexpected: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sled_store_answers_like_the_in_memory_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let model = MemoryHqStore::new();
        let mut sled = Some(open(dir.path()));
        for op in ops {
            match op {
                Op::Upsert { slot, variant, seq, org } => {
                    let m = message(slot, variant, seq);
                    let org = ["acme", "globex"][org as usize];
                    let store = sled.as_ref().unwrap();
                    prop_assert_eq!(
                        outcome(store.upsert(org, &m)),
                        outcome(model.upsert(org, &m))
                    );
                }
                Op::Flush => sled.as_ref().unwrap().flush().unwrap(),
                Op::Reopen => {
                    // Close before reopening: sled locks the directory.
                    drop(sled.take());
                    sled = Some(open(dir.path()));
                }
            }
        }
        let sled = sled.unwrap();
        let all = (Timestamp(i64::MIN), Timestamp(i64::MAX));
        prop_assert_eq!(sled.windows(None, all.0, all.1).unwrap(), model.windows(None, all.0, all.1).unwrap());
        prop_assert_eq!(
            sled.days(None, "2026-11-01", "2026-11-30").unwrap(),
            model.days(None, "2026-11-01", "2026-11-30").unwrap()
        );
        prop_assert_eq!(sled.stores().unwrap(), model.stores().unwrap());
        let held = |store: &dyn HqStore| {
            store
                .conflicts()
                .unwrap()
                .into_iter()
                .map(|c| (c.org, c.message))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(held(&sled), held(&model));
        for store in STORES {
            prop_assert_eq!(
                sled.windows(Some(store), all.0, all.1).unwrap(),
                model.windows(Some(store), all.0, all.1).unwrap()
            );
        }
    }
}
