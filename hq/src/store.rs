//! HQ's tables behind a narrow interface, [`HqStore`], with two implementations: [`SledHqStore`]
//! (embedded, zero setup, the default) and [`MemoryHqStore`] (the in-memory twin used as the
//! model in tests).
//!
//! # The table shape, and the PostgreSQL implementation that comes next
//!
//! Every implementation holds one logical table of summaries, keyed by the org and the
//! [`IdempotencyKey`] (two orgs may use the same store id), and one of conflicting copies:
//!
//! ```sql
//! CREATE TABLE summary (
//!     org          text        NOT NULL,
//!     store_id     text        NOT NULL,
//!     kind         text        NOT NULL CHECK (kind IN ('window', 'daily')),
//!     window_start timestamptz NOT NULL,  -- a daily summary's day_start
//!     local_date   date        NOT NULL,  -- the local day it merges into (queries by date)
//!     seq          bigint      NOT NULL,  -- the agent's sequence number of the first copy
//!     schema       integer     NOT NULL,
//!     payload      jsonb       NOT NULL,  -- the SummaryPayload as received
//!     received_at  timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (org, store_id, kind, window_start)
//! );
//! CREATE INDEX summary_by_date ON summary (kind, local_date, org, store_id);
//! CREATE TABLE conflict (         -- other copies of a stored key, held aside for a human
//!     org, store_id, kind, window_start,  -- as in summary
//!     payload_crc  bigint      NOT NULL,  -- one row per distinct copy
//!     seq          bigint      NOT NULL,
//!     payload      jsonb       NOT NULL,
//!     received_at  timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (org, store_id, kind, window_start, payload_crc)
//! );
//! ```
//!
//! `upsert` is `INSERT ... ON CONFLICT (org, store_id, kind, window_start) DO NOTHING
//! RETURNING 1`: one row back means [`Upsert::Inserted`]; none means the key exists, and a
//! `SELECT payload` tells [`Upsert::Duplicate`] (same content) from [`Upsert::Conflict`] (the
//! copy goes to `conflict`). Because the primary key arbitrates, any number of collectors in
//! the same MQTT share group can write in parallel and each summary is still stored exactly
//! once. `flush` is the `COMMIT` of the batch's transaction: acks are published only after it
//! returns.
//!
//! # Conflicts
//! A final window is immutable, so a second, different copy of a stored key means a bug or a
//! forgery. HQ cannot tell which copy is right, so it prefers neither silently: the first copy
//! stays in the table (the figures reports use), the other is held aside in `conflict` (with
//! when it came and its seq; at most [`MAX_CONFLICTS`] distinct copies in all, beyond which
//! they are only counted), and every report row built on a conflicted key says so
//! ([`Stored::conflicted`], `hq report`'s `conflicts` column).

mod memory;
mod sled_store;

pub use memory::MemoryHqStore;
pub use sled_store::SledHqStore;

use chrono::NaiveDate;
use storefront_protocol::{DailySummary, IdempotencyKey, SyncMessage, Timestamp, WindowSummary};

use crate::HqError;

/// Most distinct conflicting copies held aside; beyond it they are counted, not kept, so a
/// misbehaving store cannot fill HQ's disk.
pub const MAX_CONFLICTS: usize = 100_000;

/// What an upsert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsert {
    /// First time this key was seen: stored.
    Inserted,
    /// The key was already stored with the same content: nothing changed.
    Duplicate,
    /// The key is stored with different content: the first copy stays, this one is held aside
    /// (`held: false` when the conflict table is full and it was only counted).
    Conflict { held: bool },
}

/// A store as HQ knows it: its org and its id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreRef {
    pub org: String,
    pub store: String,
}

/// A stored summary with its org, and whether a conflicting copy of its key is held aside.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored<T> {
    pub org: String,
    pub summary: T,
    pub conflicted: bool,
}

/// A conflicting copy held aside.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldConflict {
    pub org: String,
    pub key: IdempotencyKey,
    /// When HQ received it, milliseconds since the epoch.
    pub received_at_ms: i64,
    /// The copy as received (its `seq` included).
    pub message: SyncMessage,
}

/// HQ's storage. Implementations are safe to share between collectors (`Send + Sync`) and must
/// keep the first version stored under a key forever.
pub trait HqStore: Send + Sync {
    /// Stores `message` of `org` under its key unless the key is already there; a different
    /// copy of a stored key is held aside ([`Upsert::Conflict`]).
    fn upsert(&self, org: &str, message: &SyncMessage) -> Result<Upsert, HqError>;

    /// Makes every upsert so far durable (on disk, fsynced). Nothing is acknowledged before
    /// this returns.
    fn flush(&self) -> Result<(), HqError>;

    /// Window summaries with `from <= window_start < to`, of one store id (in any org) or all,
    /// ordered by org, store, then time.
    fn windows(
        &self,
        store: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Stored<WindowSummary>>, HqError>;

    /// Daily summaries whose local date lies in `from_date..=to_date` (`YYYY-MM-DD`), of one
    /// store id (in any org) or all, ordered by org, store, then day.
    fn days(
        &self,
        store: Option<&str>,
        from_date: &str,
        to_date: &str,
    ) -> Result<Vec<Stored<DailySummary>>, HqError>;

    /// Every store that has sent at least one summary, sorted.
    fn stores(&self) -> Result<Vec<StoreRef>, HqError>;

    /// Every conflicting copy held aside, ordered by org, store, kind, start (then copy).
    fn conflicts(&self) -> Result<Vec<HeldConflict>, HqError>;
}

/// True when `incoming` is the same summary as `stored` (a re-send).
pub(crate) fn same_content(stored: &SyncMessage, incoming: &SyncMessage) -> bool {
    stored.payload == incoming.payload
}

/// Tells copies of one key apart in the conflict table.
pub(crate) fn content_crc(message: &SyncMessage) -> u32 {
    crc32fast::hash(&serde_json::to_vec(&message.payload).unwrap_or_default())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A checked, inclusive range of local dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    pub fn parse(from: &str, to: &str) -> Result<DateRange, HqError> {
        let from_date = parse_date(from)?;
        let to_date = parse_date(to)?;
        if from_date > to_date {
            return Err(HqError::EmptyDateRange {
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
        Ok(DateRange {
            from: from_date,
            to: to_date,
        })
    }

    /// `day_start` bounds `[lo, hi)` that contain the start of every local day in the range,
    /// whatever the store's UTC offset (-12 h to +14 h): midnight UTC of the day before the
    /// first date up to midnight UTC two days after the last.
    pub fn day_start_bounds(&self) -> (Timestamp, Timestamp) {
        let midnight = |d: NaiveDate| {
            Timestamp::from_secs(
                d.and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc().timestamp())
                    .unwrap_or(0),
            )
        };
        (
            midnight(self.from).plus_secs(-86_400),
            midnight(self.to).plus_secs(2 * 86_400),
        )
    }

    pub fn contains(&self, local_date: &str) -> bool {
        NaiveDate::parse_from_str(local_date, "%Y-%m-%d")
            .is_ok_and(|d| self.from <= d && d <= self.to)
    }
}

pub(crate) fn parse_date(text: &str) -> Result<NaiveDate, HqError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| HqError::InvalidDate(text.to_owned()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use storefront_protocol::{Distribution, Funnel, SUMMARY_SCHEMA_VERSION, SummaryPayload};

    pub fn window(store: &str, start_secs: i64, entries: u64) -> SyncMessage {
        let mut visit_duration = Distribution::new();
        for i in 0..entries {
            visit_duration.add(60.0 + i as f64 * 30.0);
        }
        let w = WindowSummary {
            schema: SUMMARY_SCHEMA_VERSION,
            store_id: store.into(),
            window_start: Timestamp::from_secs(start_secs),
            window_seconds: 900,
            local_date: "2026-11-18".into(),
            local_hour: 9,
            hour_start: Timestamp::from_secs(start_secs - start_secs % 3600),
            funnel: Funnel {
                entries,
                passers_by: entries * 3,
                visit_duration,
                ..Funnel::default()
            },
        };
        SyncMessage::new(1, w.idempotency_key(), SummaryPayload::Window(w))
    }

    pub fn day(store: &str, date: &str, day_start_secs: i64, entries: u64) -> SyncMessage {
        let mut d = DailySummary::new(store, date, Timestamp::from_secs(day_start_secs));
        d.funnel.entries = entries;
        d.funnel.passers_by = entries * 2;
        SyncMessage::new(2, d.idempotency_key(), SummaryPayload::Daily(d))
    }

    /// The same checks against any implementation.
    pub fn behaves_like_a_store(store: &dyn HqStore) {
        let a = window("s1", 1_794_992_400, 4);
        assert_eq!(store.upsert("acme", &a).unwrap(), Upsert::Inserted);
        assert_eq!(store.upsert("acme", &a).unwrap(), Upsert::Duplicate);

        let mut changed = a.clone();
        changed.seq = 99;
        if let SummaryPayload::Window(w) = &mut changed.payload {
            w.funnel.entries += 1;
        }
        assert_eq!(
            store.upsert("acme", &changed).unwrap(),
            Upsert::Conflict { held: true }
        );
        assert_eq!(
            store.upsert("acme", &changed).unwrap(),
            Upsert::Conflict { held: true },
            "the same conflicting copy again"
        );
        let all = store
            .windows(None, Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            SummaryPayload::Window(all[0].summary.clone()),
            a.payload,
            "first kept"
        );
        assert!(all[0].conflicted, "and flagged");
        let held = store.conflicts().unwrap();
        assert_eq!(held.len(), 1, "one row per distinct copy");
        assert_eq!(held[0].message, changed);
        assert_eq!(held[0].org, "acme");

        // Another org may use the same store id: a separate row, not a conflict.
        assert_eq!(store.upsert("globex", &changed).unwrap(), Upsert::Inserted);
        let s1 = store
            .windows(Some("s1"), Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap();
        assert_eq!(s1.len(), 2);
        assert_eq!((s1[0].org.as_str(), s1[1].org.as_str()), ("acme", "globex"));
        assert!(!s1[1].conflicted);

        let b = window("s2", 1_794_992_400 + 900, 2);
        store.upsert("acme", &b).unwrap();
        let only_s2 = store
            .windows(Some("s2"), Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap();
        assert_eq!(only_s2.len(), 1);
        let before_b = store
            .windows(
                None,
                Timestamp(0),
                Timestamp::from_secs(1_794_992_400 + 900),
            )
            .unwrap();
        assert_eq!(before_b.len(), 2, "the upper bound is exclusive");

        // Paris (UTC+1) starts its day the evening before in UTC; Tokyo (UTC+9) even earlier.
        let d1 = day("s1", "2026-11-18", 1_794_956_400, 10);
        let d2 = day("s2", "2026-11-18", 1_794_927_600, 20);
        let d3 = day("s1", "2026-11-19", 1_795_042_800, 30);
        for d in [&d1, &d2, &d3] {
            assert_eq!(store.upsert("acme", d).unwrap(), Upsert::Inserted);
        }
        store.flush().unwrap();
        let on_18th = store.days(None, "2026-11-18", "2026-11-18").unwrap();
        assert_eq!(on_18th.len(), 2);
        assert_eq!(on_18th[0].summary.store_id, "s1");
        assert_eq!(
            store
                .days(Some("s1"), "2026-11-18", "2026-11-19")
                .unwrap()
                .len(),
            2
        );
        assert!(
            store
                .days(None, "2026-11-20", "2026-11-30")
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            store.days(None, "2026-11-19", "2026-11-18"),
            Err(HqError::EmptyDateRange { .. })
        ));
        assert!(matches!(
            store.days(None, "18/11/2026", "2026-11-18"),
            Err(HqError::InvalidDate(_))
        ));
        let refs = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(org, store)| StoreRef {
                    org: (*org).into(),
                    store: (*store).into(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            store.stores().unwrap(),
            refs(&[("acme", "s1"), ("acme", "s2"), ("globex", "s1")])
        );
    }

    #[test]
    fn memory_store_keeps_the_first_version_and_answers_queries() {
        behaves_like_a_store(&MemoryHqStore::new());
    }

    #[test]
    fn date_range_bounds_cover_every_utc_offset() {
        let range = DateRange::parse("2026-11-18", "2026-11-18").unwrap();
        let (lo, hi) = range.day_start_bounds();
        let midnight = Timestamp::from_secs(1_794_960_000); // 2026-11-18T00:00Z
        assert!(lo <= midnight.plus_secs(-14 * 3600));
        assert!(hi > midnight.plus_secs(12 * 3600));
        assert!(range.contains("2026-11-18"));
        assert!(!range.contains("2026-11-19"));
        assert!(!range.contains("garbage"));
    }
}
