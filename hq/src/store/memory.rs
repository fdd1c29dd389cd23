use std::collections::BTreeMap;
use std::sync::Mutex;

use storefront_protocol::topic::check_id;
use storefront_protocol::{
    DailySummary, SummaryKind, SummaryPayload, SyncMessage, Timestamp, WindowSummary,
};

use super::{DateRange, HqStore, Upsert, compare_with_stored};
use crate::HqError;

type Key = (String, SummaryKind, Timestamp);

/// The in-memory twin of [`super::SledHqStore`]: the same semantics in a `BTreeMap`, as the
/// model for tests (and for tools that need no persistence).
#[derive(Debug, Default)]
pub struct MemoryHqStore {
    rows: Mutex<BTreeMap<Key, (String, SyncMessage)>>,
}

impl MemoryHqStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, (String, SyncMessage)>> {
        // A panic elsewhere while holding the lock cannot leave a half-written BTreeMap entry.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl HqStore for MemoryHqStore {
    fn upsert(&self, org: &str, message: &SyncMessage) -> Result<Upsert, HqError> {
        check_id(org)?;
        check_id(&message.key.store_id)?;
        let key = (
            message.key.store_id.clone(),
            message.key.kind,
            message.key.window_start,
        );
        let mut rows = self.rows();
        match rows.get(&key) {
            Some((_, stored)) => compare_with_stored(stored, message),
            None => {
                rows.insert(key, (org.to_owned(), message.clone()));
                Ok(Upsert::Inserted)
            }
        }
    }

    fn flush(&self) -> Result<(), HqError> {
        Ok(())
    }

    fn windows(
        &self,
        store: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<WindowSummary>, HqError> {
        Ok(self
            .rows()
            .iter()
            .filter(|((s, kind, start), _)| {
                *kind == SummaryKind::Window
                    && store.is_none_or(|want| want == s)
                    && from <= *start
                    && *start < to
            })
            .filter_map(|(_, (_, m))| match &m.payload {
                SummaryPayload::Window(w) => Some(w.clone()),
                SummaryPayload::Daily(_) => None,
            })
            .collect())
    }

    fn days(
        &self,
        store: Option<&str>,
        from_date: &str,
        to_date: &str,
    ) -> Result<Vec<DailySummary>, HqError> {
        let range = DateRange::parse(from_date, to_date)?;
        Ok(self
            .rows()
            .iter()
            .filter(|((s, kind, _), _)| {
                *kind == SummaryKind::Daily && store.is_none_or(|want| want == s)
            })
            .filter_map(|(_, (_, m))| match &m.payload {
                SummaryPayload::Daily(d) if range.contains(&d.local_date) => Some(d.clone()),
                _ => None,
            })
            .collect())
    }

    fn stores(&self) -> Result<Vec<String>, HqError> {
        let mut stores: Vec<String> = self.rows().keys().map(|(s, _, _)| s.clone()).collect();
        stores.dedup();
        Ok(stores)
    }
}
