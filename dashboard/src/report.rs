//! `agent report`: a day or a range of final days as a terminal table (one row per day and a
//! total row) or as JSON. Figures are the same as the API's ([`crate::figures`]).

use std::fmt::Write as _;

use serde::Serialize;
use storefront_protocol::{DailySummary, Funnel};

use crate::figures::{
    DoorScaled, DurationFigures, FunnelFigures, ZoneFigures, door_scaled, duration_figures,
    funnel_figures, zone_figures,
};
use crate::source::StoreView;

/// The JSON form of [`report_table`].
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub store_id: String,
    pub store_name: String,
    pub timezone: String,
    pub days: Vec<ReportRow>,
    /// The merge of all the days (counts add, sketches merge); absent when there are no days.
    pub total: Option<ReportRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportRow {
    /// The local date, or `total`.
    pub date: String,
    pub windows: u32,
    pub funnel: FunnelFigures,
    pub visit_duration: DurationFigures,
    pub zones: Vec<ZoneFigures>,
    pub door_scaled: Option<DoorScaled>,
}

fn row(date: String, windows: u32, funnel: &Funnel, store: &StoreView) -> ReportRow {
    ReportRow {
        date,
        windows,
        funnel: funnel_figures(funnel),
        visit_duration: duration_figures(&funnel.visit_duration),
        zones: zone_figures(funnel, store),
        door_scaled: door_scaled(funnel, store),
    }
}

/// The report as data, days sorted by date.
pub fn report(days: &[DailySummary], store: &StoreView) -> Report {
    let mut sorted: Vec<&DailySummary> = days.iter().collect();
    sorted.sort_by(|a, b| a.local_date.cmp(&b.local_date));
    let mut total = Funnel::default();
    let mut windows = 0;
    let rows = sorted
        .iter()
        .map(|day| {
            total.merge(&day.funnel);
            windows += day.windows;
            row(day.local_date.clone(), day.windows, &day.funnel, store)
        })
        .collect();
    Report {
        store_id: store.id.clone(),
        store_name: store.name.clone(),
        timezone: store.timezone.name().to_owned(),
        days: rows,
        total: (!days.is_empty()).then(|| row("total".to_owned(), windows, &total, store)),
    }
}

/// The report as pretty JSON.
pub fn report_json(days: &[DailySummary], store: &StoreView) -> String {
    serde_json::to_string_pretty(&report(days, store))
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

/// A plain-text table: a header, one row per day, a rule and a total row. Rates are percent
/// with one decimal, durations minutes; `-` marks a figure that cannot be computed and
/// `n/m` a repeat rate that is not measured.
pub fn report_table(days: &[DailySummary], store: &StoreView) -> String {
    let report = report(days, store);
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
        let f = &r.funnel;
        vec![
            r.date.clone(),
            f.passers_by.to_string(),
            f.entries.to_string(),
            f.visitors.to_string(),
            percent(f.shopfront_conversion),
            percent(f.bounce_rate),
            f.transactions.to_string(),
            percent(f.sales_conversion),
            minutes(r.visit_duration.p50_seconds),
            minutes(r.visit_duration.p90_seconds),
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
    if rows.is_empty() {
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
    out
}
