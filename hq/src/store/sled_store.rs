use std::path::Path;

use storefront_protocol::topic::check_id;
use storefront_protocol::{
    DailySummary, SummaryKind, SummaryPayload, SyncMessage, Timestamp, WindowSummary,
};

use super::{DateRange, HqStore, Upsert, compare_with_stored};
use crate::HqError;

/// Version of the record framing below; bump it when the layout changes.
const RECORD_VERSION: u8 = 1;

/// Page cache for the HQ database. sled's default is 1 GiB; HQ reads little and writes once.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

const WINDOWS: &str = "windows";
const DAYS: &str = "days";
const STORES: &str = "stores";

/// [`HqStore`] on sled: embedded, nothing to set up.
///
/// Layout (one sled tree per table):
/// * `windows`, `days`: key `store_id 0x00 window_start` (big-endian, sign bit flipped so keys
///   sort by time; store ids never contain NUL), value a record:
///   `[RECORD_VERSION][crc32 of the rest, LE][org length u8][org][SyncMessage JSON]`.
///   The whole message is kept as received, with its first `seq`.
/// * `stores`: `store_id` → `org`.
///
/// Upserts are a compare-and-swap against "absent", so collectors sharing one database in a
/// process cannot both insert a key. A record that fails its checksum is reported as
/// [`HqError::Corrupt`] by queries, and replaced by the next copy of the same summary.
#[derive(Clone, Debug)]
pub struct SledHqStore {
    db: sled::Db,
    windows: sled::Tree,
    days: sled::Tree,
    stores: sled::Tree,
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
        Ok(SledHqStore {
            windows: db.open_tree(WINDOWS).map_err(open_error)?,
            days: db.open_tree(DAYS).map_err(open_error)?,
            stores: db.open_tree(STORES).map_err(open_error)?,
            db,
        })
    }

    fn table(&self, kind: SummaryKind) -> (&'static str, &sled::Tree) {
        match kind {
            SummaryKind::Window => (WINDOWS, &self.windows),
            SummaryKind::Daily => (DAYS, &self.days),
        }
    }

    /// Decoded messages of one table for one store (or all) with `lo <= start < hi`.
    fn scan(
        &self,
        kind: SummaryKind,
        store: Option<&str>,
        lo: Timestamp,
        hi: Timestamp,
    ) -> Result<Vec<SyncMessage>, HqError> {
        let stores = match store {
            Some(s) => vec![s.to_owned()],
            None => self.stores()?,
        };
        let (name, tree) = self.table(kind);
        let mut out = Vec::new();
        for s in stores {
            if lo >= hi {
                break;
            }
            for item in tree.range(row_key(&s, lo)..row_key(&s, hi)) {
                let (key, value) = item.map_err(|e| HqError::storage("reading summaries", e))?;
                let (_, message) = decode_record(&value).map_err(|reason| HqError::Corrupt {
                    table: name,
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason,
                })?;
                out.push(message);
            }
        }
        Ok(out)
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
            .contains_key(store)
            .map_err(|e| HqError::storage("registering a store", e))?
        {
            self.stores
                .insert(store.as_bytes(), org.as_bytes())
                .map_err(|e| HqError::storage("registering a store", e))?;
        }
        let (name, tree) = self.table(message.key.kind);
        let key = row_key(store, message.key.window_start);
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
                Ok((_, stored)) => return compare_with_stored(&stored, message),
                Err(reason) => {
                    tracing::error!(
                        table = name,
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
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| HqError::storage("flushing to disk", e))
    }

    fn windows(
        &self,
        store: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<WindowSummary>, HqError> {
        Ok(self
            .scan(SummaryKind::Window, store, from, to)?
            .into_iter()
            .filter_map(|m| match m.payload {
                SummaryPayload::Window(w) => Some(w),
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
        let (lo, hi) = range.day_start_bounds();
        Ok(self
            .scan(SummaryKind::Daily, store, lo, hi)?
            .into_iter()
            .filter_map(|m| match m.payload {
                SummaryPayload::Daily(d) if range.contains(&d.local_date) => Some(d),
                _ => None,
            })
            .collect())
    }

    fn stores(&self) -> Result<Vec<String>, HqError> {
        self.stores
            .iter()
            .keys()
            .map(|key| {
                let key = key.map_err(|e| HqError::storage("listing stores", e))?;
                String::from_utf8(key.to_vec()).map_err(|_| HqError::Corrupt {
                    table: STORES,
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: "store id is not UTF-8".into(),
                })
            })
            .collect()
    }
}

/// `store_id 0x00 start` with `start` encoded to sort in time order.
fn row_key(store: &str, start: Timestamp) -> Vec<u8> {
    let mut key = Vec::with_capacity(store.len() + 9);
    key.extend_from_slice(store.as_bytes());
    key.push(0);
    key.extend_from_slice(&((start.millis() as u64) ^ (1 << 63)).to_be_bytes());
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
        assert_eq!(store.stores().unwrap(), vec!["s1"]);
    }

    #[test]
    fn keys_sort_by_time_across_the_epoch() {
        assert!(row_key("s", Timestamp(-5)) < row_key("s", Timestamp(0)));
        assert!(row_key("s", Timestamp(0)) < row_key("s", Timestamp(1)));
        assert!(row_key("s", Timestamp(i64::MAX)) < row_key("s0", Timestamp(i64::MIN)));
    }

    #[test]
    fn a_corrupt_record_is_reported_and_then_replaced_by_a_fresh_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledHqStore::open(dir.path()).unwrap();
        let m = window("s1", 1_794_992_400, 3);
        store.upsert("acme", &m).unwrap();
        let key = row_key("s1", m.key.window_start);
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
    fn records_round_trip_with_their_org() {
        let m = window("s1", 1_794_992_400, 3);
        let (org, back) = decode_record(&encode_record("acme", &m)).unwrap();
        assert_eq!(org, "acme");
        assert_eq!(back, m);
        assert!(decode_record(&[]).is_err());
        assert!(decode_record(&[RECORD_VERSION, 0, 0]).is_err());
    }
}
