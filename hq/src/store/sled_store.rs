use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use storefront_protocol::topic::check_id;
use storefront_protocol::{
    DailySummary, SummaryKind, SummaryPayload, SyncMessage, Timestamp, WindowSummary,
};
use storefront_storage::durable::SledFiles;

use super::{
    DateRange, HeldConflict, HqStore, MAX_CONFLICTS, StoreRef, Stored, Upsert, content_crc, now_ms,
    same_content,
};
use crate::HqError;

/// Version of the record framing below; bump it when the layout changes.
const RECORD_VERSION: u8 = 1;

/// Page cache for the HQ database. sled's default is 1 GiB; HQ reads little and writes once.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

const WINDOWS: &str = "window_rows";
const DAYS: &str = "day_rows";
const STORES: &str = "store_index";
const CONFLICTS: &str = "conflicts";
/// Trees of the first layout, keyed without the org; moved to the trees above at open.
const OLD_WINDOWS: &str = "windows";
const OLD_DAYS: &str = "days";
const OLD_STORES: &str = "stores";

/// [`HqStore`] on sled: embedded, nothing to set up.
///
/// Layout (one sled tree per table):
/// * `window_rows`, `day_rows`: key `org 0x00 store_id 0x00 window_start` (big-endian, sign
///   bit flipped so keys sort by time; ids never contain NUL), value a record:
///   `[RECORD_VERSION][crc32 of the rest, LE][org length u8][org][SyncMessage JSON]`.
///   The whole message is kept as received, with its first `seq`.
/// * `conflicts`: key `kind (b'w' | b'd')` + the row key + the copy's payload crc32 (BE),
///   value `[received_at ms, i64 BE]` + a record as above.
/// * `store_index`: `org 0x00 store_id` → nothing.
///
/// Databases of the first layout (trees `windows`, `days`, `stores`, keyed without the org)
/// are moved to this one when opened; the org comes from each record.
///
/// Upserts are a compare-and-swap against "absent", so collectors sharing one database in a
/// process cannot both insert a key. A record that fails its checksum is reported as
/// [`HqError::Corrupt`] by queries, and replaced by the next copy of the same summary.
/// [`HqStore::flush`] is sled's flush plus an fsync of the log, new blob files and the
/// directories ([`SledFiles`]): sled's own flush is not an fsync.
#[derive(Clone, Debug)]
pub struct SledHqStore {
    db: sled::Db,
    windows: sled::Tree,
    days: sled::Tree,
    stores: sled::Tree,
    conflicts: sled::Tree,
    conflict_count: Arc<AtomicUsize>,
    files: Arc<Mutex<SledFiles>>,
}

impl SledHqStore {
    /// Opens (or creates) the database in directory `path`. sled locks the directory: a second
    /// process (e.g. `hq report` while `hq collect` runs) gets an error, not a torn read.
    pub fn open(path: impl AsRef<Path>) -> Result<SledHqStore, HqError> {
        let path = path.as_ref();
        let open_error = |e: sled::Error| HqError::Open {
            path: path.to_owned(),
            source: Box::new(e),
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(open_error)?;
        let conflicts = db.open_tree(CONFLICTS).map_err(open_error)?;
        let store = SledHqStore {
            windows: db.open_tree(WINDOWS).map_err(open_error)?,
            days: db.open_tree(DAYS).map_err(open_error)?,
            stores: db.open_tree(STORES).map_err(open_error)?,
            conflict_count: Arc::new(AtomicUsize::new(conflicts.len())),
            conflicts,
            files: Arc::new(Mutex::new(SledFiles::new(path))),
            db,
        };
        store.migrate_first_layout()?;
        Ok(store)
    }

    /// Moves rows of the first layout (keyed without the org) to the current trees.
    fn migrate_first_layout(&self) -> Result<(), HqError> {
        let names = self.db.tree_names();
        let mut moved = 0u64;
        for (old, kind) in [
            (OLD_WINDOWS, SummaryKind::Window),
            (OLD_DAYS, SummaryKind::Daily),
        ] {
            if !names.iter().any(|n| n == old.as_bytes()) {
                continue;
            }
            let tree = self
                .db
                .open_tree(old)
                .map_err(|e| HqError::storage("opening the first layout", e))?;
            let mut unreadable = 0u64;
            for item in tree.iter() {
                let (key, value) = item.map_err(|e| HqError::storage("migrating rows", e))?;
                let Ok((org, message)) = decode_record(&value) else {
                    unreadable += 1;
                    tracing::error!(
                        table = old,
                        key = %String::from_utf8_lossy(&key),
                        "A record of the first layout is unreadable: left in place"
                    );
                    continue;
                };
                let new_key = row_key(&org, &message.key.store_id, message.key.window_start);
                self.table(kind)
                    .1
                    .insert(new_key, value)
                    .map_err(|e| HqError::storage("migrating rows", e))?;
                self.register(&org, &message.key.store_id)?;
                moved += 1;
            }
            if unreadable == 0 {
                self.db
                    .drop_tree(old)
                    .map_err(|e| HqError::storage("migrating rows", e))?;
            }
        }
        if names.iter().any(|n| n == OLD_STORES.as_bytes()) {
            self.db
                .drop_tree(OLD_STORES)
                .map_err(|e| HqError::storage("migrating rows", e))?;
        }
        if moved > 0 {
            self.flush()?;
            tracing::info!(rows = moved, "Moved the database to the org-keyed layout");
        }
        Ok(())
    }

    fn table(&self, kind: SummaryKind) -> (&'static str, &sled::Tree) {
        match kind {
            SummaryKind::Window => (WINDOWS, &self.windows),
            SummaryKind::Daily => (DAYS, &self.days),
        }
    }

    fn register(&self, org: &str, store: &str) -> Result<(), HqError> {
        self.stores
            .insert(store_key(org, store), &[])
            .map_err(|e| HqError::storage("registering a store", e))?;
        Ok(())
    }

    /// Decoded rows of one table for one store id (or all) with `lo <= start < hi`.
    fn scan(
        &self,
        kind: SummaryKind,
        store: Option<&str>,
        lo: Timestamp,
        hi: Timestamp,
    ) -> Result<Vec<Stored<SyncMessage>>, HqError> {
        let stores: Vec<StoreRef> = self
            .stores()?
            .into_iter()
            .filter(|s| store.is_none_or(|want| want == s.store))
            .collect();
        let (name, tree) = self.table(kind);
        let mut out = Vec::new();
        if lo >= hi {
            return Ok(out);
        }
        for s in stores {
            let range = row_key(&s.org, &s.store, lo)..row_key(&s.org, &s.store, hi);
            for item in tree.range(range) {
                let (key, value) = item.map_err(|e| HqError::storage("reading summaries", e))?;
                let (org, message) = decode_record(&value).map_err(|reason| HqError::Corrupt {
                    table: name,
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason,
                })?;
                let conflicted = self
                    .conflicts
                    .scan_prefix(conflict_prefix(kind, &key))
                    .next()
                    .is_some();
                out.push(Stored {
                    org,
                    summary: message,
                    conflicted,
                });
            }
        }
        Ok(out)
    }

    /// Holds a conflicting copy aside (once per distinct copy, up to [`MAX_CONFLICTS`]).
    fn hold_conflict(
        &self,
        org: &str,
        row: &[u8],
        message: &SyncMessage,
    ) -> Result<Upsert, HqError> {
        let mut key = conflict_prefix(message.key.kind, row);
        key.extend_from_slice(&content_crc(message).to_be_bytes());
        let held = |e| HqError::storage("holding a conflicting copy aside", e);
        if self.conflicts.contains_key(&key).map_err(held)? {
            return Ok(Upsert::Conflict { held: true });
        }
        if self.conflict_count.load(Ordering::Relaxed) >= MAX_CONFLICTS {
            return Ok(Upsert::Conflict { held: false });
        }
        let mut value = now_ms().to_be_bytes().to_vec();
        value.extend_from_slice(&encode_record(org, message));
        let swap = self
            .conflicts
            .compare_and_swap(&key, None::<&[u8]>, Some(value))
            .map_err(held)?;
        if swap.is_ok() {
            self.conflict_count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Upsert::Conflict { held: true })
    }
}

impl HqStore for SledHqStore {
    fn upsert(&self, org: &str, message: &SyncMessage) -> Result<Upsert, HqError> {
        check_id(org)?;
        let store = &message.key.store_id;
        check_id(store)?;
        // The store is registered first: a crash in between leaves a store without rows,
        // never rows without their store.
        if !self
            .stores
            .contains_key(store_key(org, store))
            .map_err(|e| HqError::storage("registering a store", e))?
        {
            self.register(org, store)?;
        }
        let (name, tree) = self.table(message.key.kind);
        let key = row_key(org, store, message.key.window_start);
        let value = encode_record(org, message);
        let mut expected: Option<sled::IVec> = None;
        loop {
            let swap = tree
                .compare_and_swap(&key, expected.as_ref(), Some(value.as_slice()))
                .map_err(|e| HqError::storage("storing a summary", e))?;
            let current = match swap {
                Ok(()) => return Ok(Upsert::Inserted),
                Err(e) => e.current,
            };
            let Some(current) = current else {
                // The corrupt record we meant to replace vanished meanwhile: insert afresh.
                expected = None;
                continue;
            };
            match decode_record(&current) {
                Ok((_, stored)) if same_content(&stored, message) => return Ok(Upsert::Duplicate),
                Ok(_) => return self.hold_conflict(org, &key, message),
                Err(reason) => {
                    tracing::error!(
                        table = name,
                        org,
                        store = %store,
                        window_start = message.key.window_start.millis(),
                        reason,
                        "Corrupt record replaced by a fresh copy of the same summary"
                    );
                    expected = Some(current);
                }
            }
        }
    }

    fn flush(&self) -> Result<(), HqError> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        self.db
            .flush()
            .map_err(|e| HqError::storage("flushing to disk", e))?;
        files
            .sync()
            .map_err(|e| HqError::storage("syncing to disk", e))
    }

    fn windows(
        &self,
        store: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Stored<WindowSummary>>, HqError> {
        Ok(self
            .scan(SummaryKind::Window, store, from, to)?
            .into_iter()
            .filter_map(|row| match row.summary.payload {
                SummaryPayload::Window(w) => Some(Stored {
                    org: row.org,
                    summary: w,
                    conflicted: row.conflicted,
                }),
                SummaryPayload::Daily(_) => None,
            })
            .collect())
    }

    fn days(
        &self,
        store: Option<&str>,
        from_date: &str,
        to_date: &str,
    ) -> Result<Vec<Stored<DailySummary>>, HqError> {
        let range = DateRange::parse(from_date, to_date)?;
        let (lo, hi) = range.day_start_bounds();
        Ok(self
            .scan(SummaryKind::Daily, store, lo, hi)?
            .into_iter()
            .filter_map(|row| match row.summary.payload {
                SummaryPayload::Daily(d) if range.contains(&d.local_date) => Some(Stored {
                    org: row.org,
                    summary: d,
                    conflicted: row.conflicted,
                }),
                _ => None,
            })
            .collect())
    }

    fn stores(&self) -> Result<Vec<StoreRef>, HqError> {
        self.stores
            .iter()
            .keys()
            .map(|key| {
                let key = key.map_err(|e| HqError::storage("listing stores", e))?;
                let corrupt = || HqError::Corrupt {
                    table: STORES,
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: "not org NUL store in UTF-8".into(),
                };
                let text = std::str::from_utf8(&key).map_err(|_| corrupt())?;
                let (org, store) = text.split_once('\0').ok_or_else(corrupt)?;
                Ok(StoreRef {
                    org: org.to_owned(),
                    store: store.to_owned(),
                })
            })
            .collect()
    }

    fn conflicts(&self) -> Result<Vec<HeldConflict>, HqError> {
        let mut held = self
            .conflicts
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(|e| HqError::storage("reading conflicts", e))?;
                let corrupt = |reason: String| HqError::Corrupt {
                    table: CONFLICTS,
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason,
                };
                let (at, record) = value
                    .split_first_chunk::<8>()
                    .ok_or_else(|| corrupt("record is truncated".into()))?;
                let (org, message) = decode_record(record).map_err(corrupt)?;
                Ok(HeldConflict {
                    org,
                    key: message.key.clone(),
                    received_at_ms: i64::from_be_bytes(*at),
                    message,
                })
            })
            .collect::<Result<Vec<_>, HqError>>()?;
        // The order the trait promises (the tree sorts by kind first).
        held.sort_by_cached_key(|c| {
            let k = &c.key;
            (
                c.org.clone(),
                k.store_id.clone(),
                k.kind,
                k.window_start,
                content_crc(&c.message),
            )
        });
        Ok(held)
    }
}

/// `org 0x00 store`.
fn store_key(org: &str, store: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(org.len() + store.len() + 1);
    key.extend_from_slice(org.as_bytes());
    key.push(0);
    key.extend_from_slice(store.as_bytes());
    key
}

/// `org 0x00 store 0x00 start` with `start` encoded to sort in time order.
fn row_key(org: &str, store: &str, start: Timestamp) -> Vec<u8> {
    let mut key = store_key(org, store);
    key.push(0);
    key.extend_from_slice(&((start.millis() as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// The conflicts of one row: its kind, then its row key.
fn conflict_prefix(kind: SummaryKind, row: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(row.len() + 5);
    key.push(match kind {
        SummaryKind::Window => b'w',
        SummaryKind::Daily => b'd',
    });
    key.extend_from_slice(row);
    key
}

fn encode_record(org: &str, message: &SyncMessage) -> Vec<u8> {
    // Org ids are checked to be at most MAX_ID_LEN (64) bytes, so the length fits a byte.
    let org_len = org.len().min(u8::MAX as usize);
    let mut body = Vec::with_capacity(1 + org_len + 512);
    body.push(org_len as u8);
    body.extend_from_slice(&org.as_bytes()[..org_len]);
    body.extend_from_slice(&message.encode());
    let mut record = Vec::with_capacity(5 + body.len());
    record.push(RECORD_VERSION);
    record.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    record.extend_from_slice(&body);
    record
}

fn decode_record(record: &[u8]) -> Result<(String, SyncMessage), String> {
    let (&version, rest) = record.split_first().ok_or("empty record")?;
    if version != RECORD_VERSION {
        return Err(format!("record version {version} is not {RECORD_VERSION}"));
    }
    if rest.len() < 5 {
        return Err("record is truncated".into());
    }
    let (crc, body) = rest.split_at(4);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    let org_len = body[0] as usize;
    let org = body
        .get(1..1 + org_len)
        .ok_or("record is truncated")
        .and_then(|b| std::str::from_utf8(b).map_err(|_| "org is not UTF-8"))?;
    let message = serde_json::from_slice(&body[1 + org_len..])
        .map_err(|e| format!("summary does not decode: {e}"))?;
    Ok((org.to_owned(), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreRef;
    use crate::store::tests::{behaves_like_a_store, window};

    #[test]
    fn sled_store_keeps_the_first_version_and_answers_queries() {
        let dir = tempfile::tempdir().unwrap();
        behaves_like_a_store(&SledHqStore::open(dir.path()).unwrap());
    }

    #[test]
    fn rows_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let m = window("s1", 1_794_992_400, 3);
        {
            let store = SledHqStore::open(dir.path()).unwrap();
            store.upsert("acme", &m).unwrap();
            store.flush().unwrap();
        }
        let store = SledHqStore::open(dir.path()).unwrap();
        assert_eq!(store.upsert("acme", &m).unwrap(), Upsert::Duplicate);
        assert_eq!(
            store.stores().unwrap(),
            vec![StoreRef {
                org: "acme".into(),
                store: "s1".into()
            }]
        );
    }

    #[test]
    fn keys_sort_by_time_across_the_epoch() {
        assert!(row_key("o", "s", Timestamp(-5)) < row_key("o", "s", Timestamp(0)));
        assert!(row_key("o", "s", Timestamp(0)) < row_key("o", "s", Timestamp(1)));
        assert!(row_key("o", "s", Timestamp(i64::MAX)) < row_key("o", "s0", Timestamp(i64::MIN)));
    }

    #[test]
    fn a_corrupt_record_is_reported_and_then_replaced_by_a_fresh_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledHqStore::open(dir.path()).unwrap();
        let m = window("s1", 1_794_992_400, 3);
        store.upsert("acme", &m).unwrap();
        let key = row_key("acme", "s1", m.key.window_start);
        let mut damaged = store.windows.get(&key).unwrap().unwrap().to_vec();
        let last = damaged.len() - 2;
        damaged[last] ^= 0x55;
        store.windows.insert(&key, damaged).unwrap();

        let all = || store.windows(None, Timestamp(i64::MIN), Timestamp(i64::MAX));
        assert!(matches!(all(), Err(HqError::Corrupt { .. })));
        assert_eq!(store.upsert("acme", &m).unwrap(), Upsert::Inserted);
        assert_eq!(all().unwrap().len(), 1);
    }

    #[test]
    fn a_database_of_the_first_layout_is_moved_to_org_keys() {
        let dir = tempfile::tempdir().unwrap();
        let m = window("s1", 1_794_992_400, 3);
        {
            let db = sled::open(dir.path()).unwrap();
            let mut old_key = b"s1\0".to_vec();
            old_key.extend_from_slice(
                &((m.key.window_start.millis() as u64) ^ (1 << 63)).to_be_bytes(),
            );
            db.open_tree(OLD_WINDOWS)
                .unwrap()
                .insert(old_key, encode_record("acme", &m))
                .unwrap();
            db.open_tree(OLD_STORES)
                .unwrap()
                .insert("s1", "acme")
                .unwrap();
            db.flush().unwrap();
        }
        let store = SledHqStore::open(dir.path()).unwrap();
        let all = store
            .windows(None, Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].org, "acme");
        assert_eq!(store.upsert("acme", &m).unwrap(), Upsert::Duplicate);
        assert!(
            !store
                .db
                .tree_names()
                .iter()
                .any(|n| n == OLD_WINDOWS.as_bytes())
        );
    }

    #[test]
    fn records_round_trip_with_their_org() {
        let m = window("s1", 1_794_992_400, 3);
        let (org, back) = decode_record(&encode_record("acme", &m)).unwrap();
        assert_eq!(org, "acme");
        assert_eq!(back, m);
        assert!(decode_record(&[]).is_err());
        assert!(decode_record(&[RECORD_VERSION, 0, 0]).is_err());
    }
}
