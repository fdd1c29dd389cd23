//! Ground truth: the funnel computed from the true paths, per window and per day, over the
//! whole population and over the shoppers who carried an advertising device (the sample).

use std::collections::BTreeMap;

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use storefront_protocol::Timestamp;

/// Thresholds of `METRICS.md` that shape the truth. `Default` is the documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TruthParams {
    pub window_seconds: u32,
    pub bounce_seconds: u32,
    pub zone_min_dwell_seconds: u32,
    pub visit_max_seconds: u32,
    pub repeat_lookback_days: u32,
}

impl Default for TruthParams {
    fn default() -> Self {
        TruthParams {
            window_seconds: 900,
            bounce_seconds: 120,
            zone_min_dwell_seconds: 10,
            visit_max_seconds: 10_800,
            repeat_lookback_days: 30,
        }
    }
}

/// The truth of one local day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthDay {
    /// `YYYY-MM-DD`, local.
    pub local_date: String,
    /// Every window of the local day, in order, empty ones included (92, 96 or 100 at 15 min).
    pub windows: Vec<TruthWindow>,
    /// Merge of the windows over everyone.
    pub population: TruthFunnel,
    /// Merge of the windows over device carriers.
    pub sample: TruthFunnel,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthWindow {
    pub window_start: Timestamp,
    pub population: TruthFunnel,
    pub sample: TruthFunnel,
}

/// True funnel figures over a span (window or day). Lists are in the order visits started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TruthFunnel {
    /// Passes of the storefront that did not become an entry (by the time the pass started).
    pub passers_by: u64,
    /// People crossing into the store (by the time they entered).
    pub entries: u64,
    /// Entries whose visit lasted less than `bounce_seconds`.
    pub bounces: u64,
    /// Entries whose visit lasted more than `visit_max_seconds` (their duration is capped).
    pub capped: u64,
    /// POS transactions (by transaction time).
    pub transactions: u64,
    /// True inward door crossings of shoppers (by crossing time), whether or not the store has
    /// a door sensor; staff crossings are not counted.
    pub door_in: u64,
    /// Entries whose person visited on an earlier local day within `repeat_lookback_days`.
    pub repeat_visits: u64,
    /// One per entry, seconds (capped at `visit_max_seconds`).
    pub visit_durations_s: Vec<f64>,
    /// Per in-store zone: the dwell of each zone visit (dwell ≥ `zone_min_dwell_seconds`).
    pub zone_dwell_s: BTreeMap<String, Vec<f64>>,
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// Lower median (`sorted[(n-1)/2]`), DDSketch's rank convention.
pub fn lower_median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted[(sorted.len() - 1) / 2])
}

impl TruthFunnel {
    /// Adds `other` into `self`: counts add, lists concatenate.
    pub fn merge(&mut self, other: &TruthFunnel) {
        self.passers_by += other.passers_by;
        self.entries += other.entries;
        self.bounces += other.bounces;
        self.capped += other.capped;
        self.transactions += other.transactions;
        self.door_in += other.door_in;
        self.repeat_visits += other.repeat_visits;
        self.visit_durations_s
            .extend_from_slice(&other.visit_durations_s);
        for (zone, dwells) in &other.zone_dwell_s {
            self.zone_dwell_s
                .entry(zone.clone())
                .or_default()
                .extend_from_slice(dwells);
        }
    }

    /// entries / (entries + passers_by).
    pub fn shopfront_conversion(&self) -> Option<f64> {
        ratio(self.entries, self.entries + self.passers_by)
    }

    /// bounces / entries.
    pub fn bounce_rate(&self) -> Option<f64> {
        ratio(self.bounces, self.entries)
    }

    pub fn median_visit_duration(&self) -> Option<f64> {
        lower_median(&self.visit_durations_s)
    }

    pub fn median_zone_dwell(&self, zone: &str) -> Option<f64> {
        lower_median(self.zone_dwell_s.get(zone)?)
    }

    /// zone visits / entries.
    pub fn exposure(&self, zone: &str) -> Option<f64> {
        let visits = self.zone_dwell_s.get(zone).map_or(0, |d| d.len() as u64);
        ratio(visits, self.entries)
    }

    /// transactions / entries (true entries: in the truth every entry is known, so no door
    /// denominator is needed).
    pub fn sales_conversion(&self) -> Option<f64> {
        ratio(self.transactions, self.entries)
    }

    /// repeat visits / entries.
    pub fn repeat_rate(&self) -> Option<f64> {
        ratio(self.repeat_visits, self.entries)
    }
}

/// Offset of `tz` from UTC at `t`, milliseconds.
pub(crate) fn utc_offset_ms(tz: Tz, t_ms: i64) -> i64 {
    let utc = chrono::DateTime::from_timestamp_millis(t_ms).unwrap_or_default();
    tz.offset_from_utc_datetime(&utc.naive_utc())
        .fix()
        .local_minus_utc() as i64
        * 1000
}

/// Start (UTC ms) of the window holding `t`, aligned to local time:
/// `t - ((t + offset(t)) mod window)`.
pub(crate) fn window_start_ms(tz: Tz, t_ms: i64, window_ms: i64) -> i64 {
    t_ms - (t_ms + utc_offset_ms(tz, t_ms)).rem_euclid(window_ms)
}

/// One visit's truth, before it is filed into its window.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct VisitTruth {
    pub start_ms: i64,
    pub duration_s: f64,
    /// Zone dwell of the visit (capped), every in-store zone the person was in.
    pub zone_dwell_s: BTreeMap<String, f64>,
    pub capped: bool,
    pub repeat: bool,
    pub sampled: bool,
}

/// Collects the truth of one day, window by window.
pub(crate) struct DayTruthBuilder {
    tz: Tz,
    window_ms: i64,
    params: TruthParams,
    starts: Vec<i64>,
    windows: Vec<(TruthFunnel, TruthFunnel)>,
    /// Every visit filed, for tests of the path model.
    #[cfg(test)]
    pub visits: Vec<VisitTruth>,
}

impl DayTruthBuilder {
    /// Windows from `day_start_ms` (local midnight) up to `day_end_ms` (next local midnight).
    pub fn new(
        tz: Tz,
        params: TruthParams,
        zones: &[String],
        day_start_ms: i64,
        day_end_ms: i64,
    ) -> Self {
        let window_ms = i64::from(params.window_seconds.max(1)) * 1000;
        let mut starts = Vec::new();
        let mut t = day_start_ms;
        while t < day_end_ms {
            let start = window_start_ms(tz, t, window_ms);
            if starts.last() != Some(&start) {
                starts.push(start);
            }
            t = start + window_ms;
        }
        let empty = TruthFunnel {
            zone_dwell_s: zones.iter().map(|z| (z.clone(), Vec::new())).collect(),
            ..TruthFunnel::default()
        };
        let windows = vec![(empty.clone(), empty); starts.len()];
        DayTruthBuilder {
            tz,
            window_ms,
            params,
            starts,
            windows,
            #[cfg(test)]
            visits: Vec::new(),
        }
    }

    fn slot(&mut self, t_ms: i64) -> Option<&mut (TruthFunnel, TruthFunnel)> {
        let start = window_start_ms(self.tz, t_ms, self.window_ms);
        let i = self.starts.binary_search(&start).ok()?;
        self.windows.get_mut(i)
    }

    fn apply(&mut self, t_ms: i64, sampled: bool, f: impl Fn(&mut TruthFunnel)) {
        if let Some((population, sample)) = self.slot(t_ms) {
            f(population);
            if sampled {
                f(sample);
            }
        }
    }

    pub fn pass(&mut self, t_ms: i64, sampled: bool) {
        self.apply(t_ms, sampled, |f| f.passers_by += 1);
    }

    pub fn transaction(&mut self, t_ms: i64, sampled: bool) {
        self.apply(t_ms, sampled, |f| f.transactions += 1);
    }

    pub fn visit(&mut self, v: &VisitTruth) {
        let bounce = v.duration_s < f64::from(self.params.bounce_seconds);
        let min_dwell = f64::from(self.params.zone_min_dwell_seconds);
        #[cfg(test)]
        self.visits.push(v.clone());
        self.apply(v.start_ms, v.sampled, |f| {
            f.entries += 1;
            f.door_in += 1;
            f.bounces += u64::from(bounce);
            f.capped += u64::from(v.capped);
            f.repeat_visits += u64::from(v.repeat);
            f.visit_durations_s.push(v.duration_s);
            for (zone, &dwell) in &v.zone_dwell_s {
                if dwell >= min_dwell {
                    f.zone_dwell_s.entry(zone.clone()).or_default().push(dwell);
                }
            }
        });
    }

    pub fn finish(self, local_date: String) -> TruthDay {
        let mut population = TruthFunnel::default();
        let mut sample = TruthFunnel::default();
        let windows = self
            .starts
            .into_iter()
            .zip(self.windows)
            .map(|(start, (p, s))| {
                population.merge(&p);
                sample.merge(&s);
                TruthWindow {
                    window_start: Timestamp(start),
                    population: p,
                    sample: s,
                }
            })
            .collect();
        TruthDay {
            local_date,
            windows,
            population,
            sample,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local_midnight(tz: Tz, date: NaiveDate) -> i64 {
        tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn dst_days_have_92_and_100_quarter_hour_windows() {
        let tz = chrono_tz::Europe::Paris;
        for (date, expected) in [
            (NaiveDate::from_ymd_opt(2025, 3, 30).unwrap(), 92),
            (NaiveDate::from_ymd_opt(2025, 10, 26).unwrap(), 100),
            (NaiveDate::from_ymd_opt(2025, 11, 24).unwrap(), 96),
        ] {
            let start = local_midnight(tz, date);
            let end = local_midnight(tz, date.succ_opt().unwrap());
            let b = DayTruthBuilder::new(tz, TruthParams::default(), &[], start, end);
            assert_eq!(b.starts.len(), expected, "{date}");
            assert_eq!(b.starts[0], start);
        }
    }

    #[test]
    fn window_start_is_aligned_to_local_time() {
        let tz = chrono_tz::America::New_York;
        // 2025-11-24 10:07:30 EST = 15:07:30 UTC
        let t = chrono::NaiveDate::from_ymd_opt(2025, 11, 24)
            .unwrap()
            .and_hms_opt(15, 7, 30)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        assert_eq!(t - window_start_ms(tz, t, 900_000), 7 * 60_000 + 30_000);
    }

    #[test]
    fn lower_median_takes_the_lower_middle_value() {
        assert_eq!(lower_median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(lower_median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(lower_median(&[]), None);
    }

    #[test]
    fn rates_follow_the_metric_definitions() {
        let f = TruthFunnel {
            passers_by: 90,
            entries: 10,
            bounces: 3,
            transactions: 2,
            repeat_visits: 1,
            zone_dwell_s: [("apparel".to_owned(), vec![30.0; 4])]
                .into_iter()
                .collect(),
            ..TruthFunnel::default()
        };
        assert_eq!(f.shopfront_conversion(), Some(0.1));
        assert_eq!(f.bounce_rate(), Some(0.3));
        assert_eq!(f.exposure("apparel"), Some(0.4));
        assert_eq!(f.exposure("fitting"), Some(0.0));
        assert_eq!(f.sales_conversion(), Some(0.2));
        assert_eq!(f.repeat_rate(), Some(0.1));
        assert_eq!(TruthFunnel::default().bounce_rate(), None);
    }
}
