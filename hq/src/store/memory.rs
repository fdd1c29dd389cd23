use std::collections::BTreeMap;
use std::sync::Mutex;

use storefront_protocol::topic::check_id;
use storefront_protocol::{
    DailySummary, SummaryKind, SummaryPayload, SyncMessage, Timestamp, WindowSummary,
};

use super::{
    DateRange, HeldConflict, HqStore, MAX_CONFLICTS, StoreRef, Stored, Upsert, content_crc, now_ms,
    same_content,
};
use crate::HqError;

/// `(org, store, kind, window_start)`.
type Key = (String, String, SummaryKind, Timestamp);

#[derive(Debug, Default)]
struct Tables {
    rows: BTreeMap<Key, SyncMessage>,
    conflicts: BTreeMap<(Key, u32), HeldConflict>,
}

/// The in-memory twin of [`super::SledHqStore`]: the same semantics in `BTreeMap`s, as the
/// model for tests (and for tools that need no persistence).
#[derive(Debug, Default)]
pub struct MemoryHqStore {
    tables: Mutex<Tables>,
}

impl MemoryHqStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic elsewhere while holding the lock cannot leave a half-written entry.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn select<T>(
        &self,
        kind: SummaryKind,
        store: Option<&str>,
        mut keep: impl FnMut(&Key, &SyncMessage) -> Option<T>,
    ) -> Vec<Stored<T>> {
        let tables = self.tables();
        tables
            .rows
            .iter()
            .filter(|((_, s, k, _), _)| *k == kind && store.is_none_or(|want| want == s))
            .filter_map(|(key, message)| {
                let summary = keep(key, message)?;
                let conflicted = tables
                    .conflicts
                    .range((key.clone(), 0)..=(key.clone(), u32::MAX))
                    .next()
                    .is_some();
                Some(Stored {
                    org: key.0.clone(),
                    summary,
                    conflicted,
                })
            })
            .collect()
    }
}

impl HqStore for MemoryHqStore {
    fn upsert(&self, org: &str, message: &SyncMessage) -> Result<Upsert, HqError> {
        check_id(org)?;
        check_id(&message.key.store_id)?;
        let key = (
            org.to_owned(),
            message.key.store_id.clone(),
            message.key.kind,
            message.key.window_start,
        );
        let mut tables = self.tables();
        let Some(stored) = tables.rows.get(&key) else {
            tables.rows.insert(key, message.clone());
            return Ok(Upsert::Inserted);
        };
        if same_content(stored, message) {
            return Ok(Upsert::Duplicate);
        }
        let conflict_key = (key, content_crc(message));
        if tables.conflicts.contains_key(&conflict_key) {
            return Ok(Upsert::Conflict { held: true });
        }
        if tables.conflicts.len() >= MAX_CONFLICTS {
            return Ok(Upsert::Conflict { held: false });
        }
        tables.conflicts.insert(
            conflict_key,
            HeldConflict {
                org: org.to_owned(),
                key: message.key.clone(),
                received_at_ms: now_ms(),
                message: message.clone(),
            },
        );
        Ok(Upsert::Conflict { held: true })
    }

    fn flush(&self) -> Result<(), HqError> {
        Ok(())
    }

    fn windows(
        &self,
        store: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Stored<WindowSummary>>, HqError> {
        Ok(
            self.select(SummaryKind::Window, store, |(_, _, _, start), m| {
                match &m.payload {
                    SummaryPayload::Window(w) if from <= *start && *start < to => Some(w.clone()),
                    _ => None,
                }
            }),
        )
    }

    fn days(
        &self,
        store: Option<&str>,
        from_date: &str,
        to_date: &str,
    ) -> Result<Vec<Stored<DailySummary>>, HqError> {
        let range = DateRange::parse(from_date, to_date)?;
        Ok(
            self.select(SummaryKind::Daily, store, |_, m| match &m.payload {
                SummaryPayload::Daily(d) if range.contains(&d.local_date) => Some(d.clone()),
                _ => None,
            }),
        )
    }

    fn stores(&self) -> Result<Vec<StoreRef>, HqError> {
        let mut stores: Vec<StoreRef> = self
            .tables()
            .rows
            .keys()
            .map(|(org, store, _, _)| StoreRef {
                org: org.clone(),
                store: store.clone(),
            })
            .collect();
        stores.dedup();
        Ok(stores)
    }

    fn conflicts(&self) -> Result<Vec<HeldConflict>, HqError> {
        Ok(self.tables().conflicts.values().cloned().collect())
    }
}
