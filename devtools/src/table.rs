//! The funnel as a terminal table.

use std::fmt::Write;

use storefront_protocol::{DailySummary, Funnel};
use storefront_simulator::{TruthDay, TruthFunnel};

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn secs(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.0}s", v))
}

fn opt(x: Option<u64>) -> String {
    x.map_or_else(|| "-".into(), |v| v.to_string())
}

const HEADER: &str = "date        source   passers   entries  shopfront   bounce  visitors  median_visit  transactions  sales_conv  door_in  repeat";

/// One table row's figures, whichever side (engine or truth) they come from.
struct Row {
    passers_by: u64,
    entries: u64,
    shopfront_conversion: Option<f64>,
    bounce_rate: Option<f64>,
    visitors: u64,
    median_visit: Option<f64>,
    transactions: u64,
    sales_conversion: Option<f64>,
    door_in: Option<u64>,
    repeat_rate: Option<f64>,
}

fn write_row(out: &mut String, date: &str, source: &str, r: Row) {
    let _ = writeln!(
        out,
        "{date:<11} {source:<8} {:>7} {:>9} {:>10} {:>8} {:>9} {:>13} {:>13} {:>11} {:>8} {:>7}",
        r.passers_by,
        r.entries,
        pct(r.shopfront_conversion),
        pct(r.bounce_rate),
        r.visitors,
        secs(r.median_visit),
        r.transactions,
        pct(r.sales_conversion),
        opt(r.door_in),
        pct(r.repeat_rate),
    );
}

fn funnel_row(out: &mut String, date: &str, source: &str, f: &Funnel) {
    let row = Row {
        passers_by: f.passers_by,
        entries: f.entries,
        shopfront_conversion: f.shopfront_conversion(),
        bounce_rate: f.bounce_rate(),
        visitors: f.visitors(),
        median_visit: f.visit_duration.median(),
        transactions: f.transactions,
        sales_conversion: f.sales_conversion(),
        door_in: f.door_in,
        repeat_rate: f.repeat_rate(),
    };
    write_row(out, date, source, row);
}

fn truth_row(out: &mut String, date: &str, source: &str, t: &TruthFunnel) {
    let row = Row {
        passers_by: t.passers_by,
        entries: t.entries,
        shopfront_conversion: t.shopfront_conversion(),
        bounce_rate: t.bounce_rate(),
        visitors: t.entries - t.bounces,
        median_visit: t.median_visit_duration(),
        transactions: t.transactions,
        sales_conversion: t.sales_conversion(),
        door_in: Some(t.door_in),
        repeat_rate: t.repeat_rate(),
    };
    write_row(out, date, source, row);
}

/// One row per day (engine), with the truth's sample and population rows under it when given.
pub fn days(days: &[DailySummary], truth: Option<&[TruthDay]>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}");
    for day in days {
        funnel_row(&mut out, &day.local_date, "engine", &day.funnel);
        if let Some(t) = truth.and_then(|t| t.iter().find(|t| t.local_date == day.local_date)) {
            truth_row(&mut out, "", "sample", &t.sample);
            truth_row(&mut out, "", "everyone", &t.population);
        }
    }
    if let Some(first) = days.first() {
        let _ = writeln!(
            out,
            "\nzone         zone_visits  exposure  median_dwell   (all days)"
        );
        let mut total = Funnel::default();
        for day in days {
            total.merge(&day.funnel);
        }
        for zone in first.funnel.zones.keys() {
            let merged = &total.zones[zone];
            let _ = writeln!(
                out,
                "{zone:<12} {:>11} {:>9} {:>13}",
                merged.zone_visits,
                pct(total.exposure(zone)),
                secs(merged.dwell.median())
            );
        }
    }
    out
}

/// The demo's comparison: per day, the agent's funnel, HQ's copy, and the truth.
pub fn comparison(agent: &[DailySummary], hq: &[DailySummary], truth: &[TruthDay]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}");
    for day in agent {
        funnel_row(&mut out, &day.local_date, "agent", &day.funnel);
        if let Some(copy) = hq.iter().find(|d| d.local_date == day.local_date) {
            funnel_row(&mut out, "", "HQ", &copy.funnel);
        }
        if let Some(t) = truth.iter().find(|t| t.local_date == day.local_date) {
            truth_row(&mut out, "", "sample", &t.sample);
            truth_row(&mut out, "", "everyone", &t.population);
        }
    }
    out
}
