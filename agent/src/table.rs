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

fn funnel_row(out: &mut String, date: &str, source: &str, f: &Funnel) {
    let _ = writeln!(
        out,
        "{date:<11} {source:<8} {:>7} {:>9} {:>10} {:>8} {:>9} {:>13} {:>13} {:>11} {:>8} {:>7}",
        f.passers_by,
        f.entries,
        pct(f.shopfront_conversion()),
        pct(f.bounce_rate()),
        f.visitors(),
        secs(f.visit_duration.median()),
        f.transactions,
        pct(f.sales_conversion()),
        opt(f.door_in),
        pct(f.repeat_rate()),
    );
}

fn truth_row(out: &mut String, date: &str, source: &str, t: &TruthFunnel) {
    let _ = writeln!(
        out,
        "{date:<11} {source:<8} {:>7} {:>9} {:>10} {:>8} {:>9} {:>13} {:>13} {:>11} {:>8} {:>7}",
        t.passers_by,
        t.entries,
        pct(t.shopfront_conversion()),
        pct(t.bounce_rate()),
        t.entries - t.bounces,
        secs(t.median_visit_duration()),
        t.transactions,
        pct(t.sales_conversion()),
        t.door_in,
        pct(t.repeat_rate()),
    );
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
        for (zone, z) in &first.funnel.zones {
            let merged = &total.zones[zone];
            let _ = writeln!(
                out,
                "{zone:<12} {:>11} {:>9} {:>13}",
                merged.zone_visits,
                pct(total.exposure(zone)),
                secs(merged.dwell.median())
            );
            let _ = z;
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
