//! `hq report`: daily summaries merged per store and chain-wide with [`Funnel::merge`]
//! (counts add and saturate, sketches merge), so every chain figure is derived from merged
//! counts, never an average of store rates. Stores are told apart by org and id. A day whose
//! key has a conflicting copy held aside (see [`crate::HqStore`]) is merged with its first
//! copy and counted in the row's `conflicted_days`, so a reader knows the figure is disputed.
//!
//! Stored data cannot panic a report: every sketch was checked when it was decoded
//! ([`storefront_protocol::SketchError`]); a record that fails those checks is a
//! [`HqError::Corrupt`] naming it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};
use storefront_protocol::Funnel;

use crate::HqError;
use crate::store::{DateRange, HqStore};

/// Label of the chain-wide row.
pub const CHAIN: &str = "CHAIN";

/// One row: a store (or the chain) over the date range.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRow {
    /// The store's org; empty for the chain row.
    pub org: String,
    pub store: String,
    /// Daily summaries merged into this row (store-days for the chain row).
    pub days: u32,
    /// Of those, days with a conflicting copy held aside (the first copy is merged).
    pub conflicted_days: u32,
    pub funnel: Funnel,
}

/// Merged figures over `from_date..=to_date`.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub from_date: String,
    pub to_date: String,
    /// One row per store with data, sorted by store id.
    pub stores: Vec<ReportRow>,
    /// The merge of every store row.
    pub chain: ReportRow,
}

/// Builds the report; `Ok(None)` when there is no daily summary in the range.
pub fn build_report(
    store: &dyn HqStore,
    from_date: &str,
    to_date: &str,
    only_store: Option<&str>,
) -> Result<Option<Report>, HqError> {
    DateRange::parse(from_date, to_date)?;
    let days = store.days(only_store, from_date, to_date)?;
    if days.is_empty() {
        return Ok(None);
    }
    let mut rows: BTreeMap<(String, String), ReportRow> = BTreeMap::new();
    for day in &days {
        let row = rows
            .entry((day.org.clone(), day.summary.store_id.clone()))
            .or_insert_with(|| ReportRow {
                org: day.org.clone(),
                store: day.summary.store_id.clone(),
                days: 0,
                conflicted_days: 0,
                funnel: Funnel::default(),
            });
        row.days = row.days.saturating_add(1);
        row.conflicted_days += u32::from(day.conflicted);
        row.funnel.merge(&day.summary.funnel);
    }
    let mut chain = ReportRow {
        org: String::new(),
        store: CHAIN.to_owned(),
        days: 0,
        conflicted_days: 0,
        funnel: Funnel::default(),
    };
    for row in rows.values() {
        chain.days = chain.days.saturating_add(row.days);
        chain.conflicted_days += row.conflicted_days;
        chain.funnel.merge(&row.funnel);
    }
    Ok(Some(Report {
        from_date: from_date.to_owned(),
        to_date: to_date.to_owned(),
        stores: rows.into_values().collect(),
        chain,
    }))
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn duration(seconds: Option<f64>) -> String {
    seconds.map_or_else(
        || "-".to_owned(),
        |s| {
            let s = s.round() as u64;
            format!("{}m{:02}s", s / 60, s % 60)
        },
    )
}

fn row_json(row: &ReportRow) -> Value {
    let f = &row.funnel;
    json!({
        "org": row.org,
        "store": row.store,
        "days": row.days,
        "conflicted_days": row.conflicted_days,
        "passers_by": f.passers_by,
        "entries": f.entries,
        "shopfront_conversion": f.shopfront_conversion(),
        "bounces": f.bounces,
        "bounce_rate": f.bounce_rate(),
        "visitors": f.visitors(),
        "median_visit_seconds": f.visit_duration.median(),
        "transactions": f.transactions,
        "sales_conversion": f.sales_conversion(),
        "door_in": f.door_in,
    })
}

impl Report {
    /// The rows as a fixed-width table, the chain row last.
    pub fn to_table(&self) -> String {
        let header = [
            "org",
            "store",
            "days",
            "conflicts",
            "passers_by",
            "entries",
            "shopfront",
            "bounce",
            "visitors",
            "median_visit",
            "transactions",
            "sales_conv",
            "door_in",
        ];
        let cells = |row: &ReportRow| {
            let f = &row.funnel;
            [
                row.org.clone(),
                row.store.clone(),
                row.days.to_string(),
                row.conflicted_days.to_string(),
                f.passers_by.to_string(),
                f.entries.to_string(),
                percent(f.shopfront_conversion()),
                percent(f.bounce_rate()),
                f.visitors().to_string(),
                duration(f.visit_duration.median()),
                f.transactions.to_string(),
                percent(f.sales_conversion()),
                f.door_in.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            ]
        };
        let mut lines: Vec<[String; 13]> = vec![header.map(str::to_owned)];
        lines.extend(self.stores.iter().map(cells));
        lines.push(cells(&self.chain));
        let mut widths = [0usize; 13];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!("Funnel {} to {}\n", self.from_date, self.to_date);
        for (i, line) in lines.iter().enumerate() {
            if i + 1 == lines.len() {
                let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                out.push_str(&"-".repeat(rule));
                out.push('\n');
            }
            for (j, (cell, w)) in line.iter().zip(widths).enumerate() {
                let sep = if j == 0 { "" } else { "  " };
                if j < 2 {
                    let _ = write!(out, "{sep}{cell:<w$}");
                } else {
                    let _ = write!(out, "{sep}{cell:>w$}");
                }
            }
            out.push('\n');
        }
        if self.chain.conflicted_days > 0 {
            let _ = writeln!(
                out,
                "{} store-days have a conflicting copy held aside: their first copy is counted (see the collector's log).",
                self.chain.conflicted_days
            );
        }
        out
    }

    /// `{ "from_date", "to_date", "stores": [...], "chain": {...} }` with derived rates
    /// (`null` when undefined, e.g. no entries).
    pub fn to_json(&self) -> Value {
        json!({
            "from_date": self.from_date,
            "to_date": self.to_date,
            "stores": self.stores.iter().map(row_json).collect::<Vec<_>>(),
            "chain": row_json(&self.chain),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryHqStore, tests::day};
    use storefront_protocol::{DailySummary, Distribution, SummaryPayload, SyncMessage, Timestamp};

    fn rich_day(store: &str, date: &str, start: i64, durations: &[f64], door: u64) -> SyncMessage {
        let mut d = DailySummary::new(store, date, Timestamp::from_secs(start));
        let mut dist = Distribution::new();
        for &v in durations {
            dist.add(v);
        }
        d.funnel.entries = durations.len() as u64;
        d.funnel.bounces = durations.iter().filter(|&&v| v < 120.0).count() as u64;
        d.funnel.passers_by = 100;
        d.funnel.transactions = 3;
        d.funnel.door_in = Some(door);
        d.funnel.visit_duration = dist;
        SyncMessage::new(1, d.idempotency_key(), SummaryPayload::Daily(d))
    }

    #[test]
    fn chain_row_is_the_merge_of_store_rows() {
        let store = MemoryHqStore::new();
        let a = rich_day(
            "a",
            "2026-11-18",
            1_794_956_400,
            &[30.0, 200.0, 400.0, 600.0, 900.0],
            10,
        );
        let b = rich_day(
            "b",
            "2026-11-18",
            1_794_956_400,
            &[60.0, 90.0, 300.0, 500.0, 700.0],
            12,
        );
        for m in [&a, &b] {
            store.upsert("acme", m).unwrap();
        }
        let report = build_report(&store, "2026-11-18", "2026-11-18", None)
            .unwrap()
            .unwrap();
        assert_eq!(report.stores.len(), 2);
        let chain = &report.chain.funnel;
        assert_eq!(chain.entries, 10);
        assert_eq!(chain.bounces, 3);
        assert_eq!(chain.passers_by, 200);
        assert_eq!(chain.door_in, Some(22));
        assert_eq!(chain.sales_conversion(), Some(6.0 / 22.0));
        let median = chain.visit_duration.median().unwrap();
        assert!((median - 300.0).abs() / 300.0 < 0.02, "{median}");
        let table = report.to_table();
        assert!(table.contains("CHAIN"), "{table}");
        assert_eq!(report.to_json()["chain"]["entries"], 10);
    }

    #[test]
    fn an_empty_range_gives_no_report() {
        let store = MemoryHqStore::new();
        store
            .upsert("acme", &day("a", "2026-11-18", 1_794_956_400, 5))
            .unwrap();
        assert!(
            build_report(&store, "2026-11-19", "2026-11-20", None)
                .unwrap()
                .is_none()
        );
        assert!(
            build_report(&store, "2026-11-18", "2026-11-18", Some("zz"))
                .unwrap()
                .is_none()
        );
        assert!(build_report(&store, "bad", "2026-11-18", None).is_err());
    }
}
