//! `agent report`: a day or a range of final days as a terminal table (one row per day and a
//! total row) or as JSON. Figures are the same as the API's ([`crate::figures`]). A date without
//! a final day has no data (no input was alive, or the day is not final yet): its row says so
//! instead of showing zeros, and the total is over the days with data.

use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::Serialize;
use storefront_protocol::{Coverage, DailySummary, Funnel};

use crate::figures::{
    DoorScaled, DurationFigures, FunnelFigures, ZoneFigures, date_range, door_scaled,
    duration_figures, funnel_figures, no_data_reason, zone_figures,
};
use crate::source::StoreView;

/// The JSON form of [`report_table`].
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub store_id: String,
    pub store_name: String,
    pub timezone: String,
    /// One row per date of the range, with data or not.
    pub days: Vec<ReportRow>,
    /// The merge of the days with data (counts add, sketches merge); absent when none has.
    pub total: Option<ReportRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportRow {
    /// The local date, or `total`.
    pub date: String,
    /// Windows with data merged into the row.
    pub windows: u32,
    /// Why the row has no figures (`funnel` and `visit_duration` null); absent when it has.
    pub no_data: Option<String>,
    /// Seconds each input was alive; null when not recorded.
    pub coverage: Option<Coverage>,
    pub funnel: Option<FunnelFigures>,
    pub visit_duration: Option<DurationFigures>,
    pub zones: Vec<ZoneFigures>,
    pub door_scaled: Option<DoorScaled>,
}

fn row(
    date: String,
    windows: u32,
    coverage: Option<Coverage>,
    funnel: &Funnel,
    store: &StoreView,
) -> ReportRow {
    ReportRow {
        date,
        windows,
        no_data: None,
        coverage,
        funnel: Some(funnel_figures(funnel)),
        visit_duration: Some(duration_figures(&funnel.visit_duration)),
        zones: zone_figures(funnel, store),
        door_scaled: door_scaled(funnel, store),
    }
}

fn no_data_row(date: NaiveDate) -> ReportRow {
    ReportRow {
        date: date.to_string(),
        windows: 0,
        no_data: Some(no_data_reason(date, date)),
        coverage: None,
        funnel: None,
        visit_duration: None,
        zones: Vec::new(),
        door_scaled: None,
    }
}

/// The report as data: one row per local date of `from..=to`, from the final `days`.
pub fn report(days: &[DailySummary], store: &StoreView, from: NaiveDate, to: NaiveDate) -> Report {
    let mut total = Funnel::default();
    let mut total_coverage: Option<Coverage> = None;
    let mut windows = 0;
    let mut with_data = 0;
    let rows = date_range(from, to)
        .map(|date| {
            let label = date.to_string();
            match days.iter().find(|d| d.local_date == label) {
                Some(day) => {
                    with_data += 1;
                    total.merge(&day.funnel);
                    if let Some(coverage) = &day.coverage {
                        total_coverage
                            .get_or_insert_with(Coverage::default)
                            .add(coverage);
                    }
                    windows += day.windows;
                    row(label, day.windows, day.coverage, &day.funnel, store)
                }
                None => no_data_row(date),
            }
        })
        .collect();
    Report {
        store_id: store.id.clone(),
        store_name: store.name.clone(),
        timezone: store.timezone.name().to_owned(),
        days: rows,
        total: (with_data > 0)
            .then(|| row("total".to_owned(), windows, total_coverage, &total, store)),
    }
}

/// The report as pretty JSON.
pub fn report_json(
    days: &[DailySummary],
    store: &StoreView,
    from: NaiveDate,
    to: NaiveDate,
) -> String {
    serde_json::to_string_pretty(&report(days, store, from, to))
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn minutes(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), |s| format!("{:.1}m", s / 60.0))
}

fn optional(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A plain-text table: a header, one row per date of `from..=to`, a rule and a total row.
/// Rates are percent with one decimal, durations minutes; `-` marks a figure that cannot be
/// computed, `n/m` a repeat rate that is not measured, and `no data` a date without a final
/// day (never zeros).
pub fn report_table(
    days: &[DailySummary],
    store: &StoreView,
    from: NaiveDate,
    to: NaiveDate,
) -> String {
    let report = report(days, store, from, to);
    let header = [
        "date",
        "passers-by",
        "entries",
        "visitors",
        "capture",
        "bounce",
        "trans",
        "sales conv",
        "p50 visit",
        "p90 visit",
        "repeat",
        "door in",
    ];
    let cells = |r: &ReportRow| -> Vec<String> {
        let (Some(f), Some(duration)) = (&r.funnel, &r.visit_duration) else {
            return vec![r.date.clone(), "no data".to_owned()];
        };
        vec![
            r.date.clone(),
            f.passers_by.to_string(),
            f.entries.to_string(),
            f.visitors.to_string(),
            percent(f.shopfront_conversion),
            percent(f.bounce_rate),
            f.transactions.to_string(),
            percent(f.sales_conversion),
            minutes(duration.p50_seconds),
            minutes(duration.p90_seconds),
            if f.repeat.measured {
                percent(f.repeat.rate)
            } else {
                "n/m".to_owned()
            },
            optional(f.door_in),
        ]
    };
    let mut rows: Vec<Vec<String>> = report.days.iter().map(cells).collect();
    let total = report.total.as_ref().map(cells);
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows.iter().chain(total.iter()) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}), {}",
        report.store_name, report.store_id, report.timezone
    );
    let line = |out: &mut String, r: &[String]| {
        let text: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &header.map(str::to_owned));
    if total.is_none() {
        let _ = writeln!(out, "(no final days in this range)");
        return out;
    }
    for r in rows.drain(..) {
        line(&mut out, &r);
    }
    let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    let _ = writeln!(out, "{}", "-".repeat(rule));
    if let Some(t) = total {
        line(&mut out, &t);
    }
    if report.days.iter().any(|r| r.no_data.is_some()) {
        let _ = writeln!(
            out,
            "no data: no input was alive that day, or the day is not final yet (not zero traffic)"
        );
    }
    out
}
