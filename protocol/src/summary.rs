//! Window and daily summaries: the engine's output, what the agent keeps and what HQ merges.
//! Every figure follows `METRICS.md`; rates are derived from the counts on demand, so
//! merging (counts add, sketches merge) is all HQ ever does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Distribution, Timestamp};

/// Version of the summary encoding, carried in every summary as `"schema"`.
pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// The store funnel over some span of time (a window, a day, a chain's day).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Funnel {
    /// Passes that never became an entry.
    pub passers_by: u64,
    /// Visits started (BLE).
    pub entries: u64,
    /// Visits shorter than `bounce_seconds`.
    pub bounces: u64,
    /// Visits closed at `visit_max_seconds`.
    pub capped: u64,
    /// POS transactions.
    pub transactions: u64,
    /// Sum of transaction amounts that were reported, minor units.
    pub revenue_minor: i64,
    /// Door-counter crossings in; absent when the store has no door sensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_out: Option<u64>,
    /// Repeat visits; absent when not measurable (pseudonyms do not live as long as the lookback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<RepeatCounts>,
    /// Visit durations, seconds.
    pub visit_duration: Distribution,
    /// Per in-store zone.
    #[serde(default)]
    pub zones: BTreeMap<String, ZoneSummary>,
}

/// Repeat visits among the entries whose device identity is stable enough to recognise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatCounts {
    /// Entries of devices with a stable identity (the denominator).
    pub eligible_entries: u64,
    /// Of those, visits whose device visited on an earlier local day within the lookback.
    pub repeat_visits: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneSummary {
    /// Visits that dwelt at least `zone_min_dwell_seconds` in the zone.
    pub zone_visits: u64,
    /// Dwell of those zone visits, seconds.
    pub dwell: Distribution,
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// Counts saturate rather than wrap (release builds do not check overflow): a chain-wide sum
/// stuck at `u64::MAX` is visibly wrong, a wrapped one looks plausible.
fn add_count(into: &mut u64, other: u64) {
    *into = into.saturating_add(other);
}

fn add_optional(into: &mut Option<u64>, other: Option<u64>) {
    if let Some(value) = other {
        *into = Some(into.unwrap_or(0).saturating_add(value));
    }
}

impl Funnel {
    /// Adds `other` into `self`: counts add, distributions merge.
    pub fn merge(&mut self, other: &Funnel) {
        add_count(&mut self.passers_by, other.passers_by);
        add_count(&mut self.entries, other.entries);
        add_count(&mut self.bounces, other.bounces);
        add_count(&mut self.capped, other.capped);
        add_count(&mut self.transactions, other.transactions);
        self.revenue_minor = self.revenue_minor.saturating_add(other.revenue_minor);
        add_optional(&mut self.door_in, other.door_in);
        add_optional(&mut self.door_out, other.door_out);
        if let Some(theirs) = other.repeat {
            let mine = self.repeat.get_or_insert_with(RepeatCounts::default);
            add_count(&mut mine.eligible_entries, theirs.eligible_entries);
            add_count(&mut mine.repeat_visits, theirs.repeat_visits);
        }
        self.visit_duration.merge(&other.visit_duration);
        for (zone, theirs) in &other.zones {
            let mine = self.zones.entry(zone.clone()).or_default();
            add_count(&mut mine.zone_visits, theirs.zone_visits);
            mine.dwell.merge(&theirs.dwell);
        }
    }

    /// Entries that were not bounces.
    pub fn visitors(&self) -> u64 {
        self.entries.saturating_sub(self.bounces)
    }

    /// entries / (entries + passers_by).
    pub fn shopfront_conversion(&self) -> Option<f64> {
        ratio(self.entries, self.entries.saturating_add(self.passers_by))
    }

    /// bounces / entries.
    pub fn bounce_rate(&self) -> Option<f64> {
        ratio(self.bounces, self.entries)
    }

    /// repeat visits / eligible entries; `None` when not measurable.
    pub fn repeat_rate(&self) -> Option<f64> {
        let repeat = self.repeat?;
        ratio(repeat.repeat_visits, repeat.eligible_entries)
    }

    /// transactions / entries, with door `in` as the denominator where a door sensor exists.
    pub fn sales_conversion(&self) -> Option<f64> {
        ratio(self.transactions, self.door_in.unwrap_or(self.entries))
    }

    /// zone visits / entries.
    pub fn exposure(&self, zone: &str) -> Option<f64> {
        ratio(self.zones.get(zone)?.zone_visits, self.entries)
    }

    /// door_in / entries: how many people each BLE entry stands for, where a door sensor exists.
    pub fn sampling_ratio(&self) -> Option<f64> {
        ratio(self.door_in?, self.entries)
    }

    /// A BLE count scaled to the whole population by the door counter's sampling ratio.
    pub fn door_scaled(&self, ble_count: u64) -> Option<f64> {
        Some(ble_count as f64 * self.sampling_ratio()?)
    }

    /// The copy that may leave the store: distributions over fewer than `min_count` values are
    /// reduced to their counts (k-anonymity). Counts stay exact.
    pub fn redacted(&self, min_count: u64) -> Funnel {
        let mut out = self.clone();
        out.visit_duration = self.visit_duration.redacted(min_count);
        for zone in out.zones.values_mut() {
            zone.dwell = zone.dwell.redacted(min_count);
        }
        out
    }
}

/// How many seconds each kind of input was alive ("no data" is not zero traffic): in a window,
/// the seconds of it some source of that kind was working (it reported, or said it was alive,
/// within the engine's grace before); in a day or an hour, the sum over its windows. A kind the
/// store does not have (no door sensor, no POS system configured) is absent, not 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub ble_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_seconds: Option<u32>,
}

impl Coverage {
    /// True when no input was alive at all: the span has no data.
    pub fn is_empty(&self) -> bool {
        self.ble_seconds == 0
            && self.door_seconds.unwrap_or(0) == 0
            && self.pos_seconds.unwrap_or(0) == 0
    }

    /// Adds `other` (a later window of the same day or hour).
    pub fn add(&mut self, other: &Coverage) {
        fn add_seconds(into: &mut Option<u32>, other: Option<u32>) {
            if let Some(seconds) = other {
                *into = Some(into.unwrap_or(0).saturating_add(seconds));
            }
        }
        self.ble_seconds = self.ble_seconds.saturating_add(other.ble_seconds);
        add_seconds(&mut self.door_seconds, other.door_seconds);
        add_seconds(&mut self.pos_seconds, other.pos_seconds);
    }
}

/// Adds a window's coverage into a day's or an hour's. `None` is "not recorded" (summaries
/// stored before coverage existed): the total is over the windows that recorded it.
fn add_coverage(into: &mut Option<Coverage>, other: Option<&Coverage>) {
    if let Some(other) = other {
        into.get_or_insert_with(Coverage::default).add(other);
    }
}

/// One final window of one store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    pub schema: u32,
    pub store_id: String,
    /// Start of the window (UTC); windows are aligned to the store's local time.
    pub window_start: Timestamp,
    pub window_seconds: u32,
    /// Local calendar date of `window_start`, `YYYY-MM-DD`: the day this window merges into.
    pub local_date: String,
    /// Local hour of `window_start` (0..=23), for traffic by hour.
    pub local_hour: u8,
    /// Start (UTC) of the local hour the window lies in: with half-hour time-zone offsets it is
    /// not a UTC hour boundary, and a repeated DST hour has two.
    pub hour_start: Timestamp,
    pub funnel: Funnel,
    /// Seconds of the window each input was alive; `None` in summaries stored before coverage
    /// was recorded (unknown, not "no data").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
}

/// Entries and passers-by in one local hour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourTraffic {
    /// Start of the hour (UTC); on a DST change day a local hour label can repeat or be missing.
    pub hour_start: Timestamp,
    pub local_hour: u8,
    pub entries: u64,
    pub passers_by: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_in: Option<u64>,
    /// Sum of the hour's windows' coverage (see [`WindowSummary::coverage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
}

/// One store's local day: the merge of that day's windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailySummary {
    pub schema: u32,
    pub store_id: String,
    pub local_date: String,
    /// First instant of the local day (UTC): the day's idempotency key.
    pub day_start: Timestamp,
    /// How many windows were merged: the day's windows that had data (at most 92, 96 or 100
    /// with 15-minute windows, by DST); windows no input covered are not emitted.
    pub windows: u32,
    pub funnel: Funnel,
    pub traffic_by_hour: Vec<HourTraffic>,
    /// Sum of the merged windows' coverage (see [`WindowSummary::coverage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
}

impl DailySummary {
    /// An empty day, to merge windows into.
    pub fn new(store_id: &str, local_date: &str, day_start: Timestamp) -> Self {
        DailySummary {
            schema: SUMMARY_SCHEMA_VERSION,
            store_id: store_id.to_owned(),
            local_date: local_date.to_owned(),
            day_start,
            windows: 0,
            funnel: Funnel::default(),
            traffic_by_hour: Vec::new(),
            coverage: None,
        }
    }

    /// Merges one window of this day. Windows may come in any order.
    pub fn add_window(&mut self, window: &WindowSummary) {
        self.windows = self.windows.saturating_add(1);
        self.funnel.merge(&window.funnel);
        add_coverage(&mut self.coverage, window.coverage.as_ref());
        let hour_start = window.hour_start;
        let slot = match self
            .traffic_by_hour
            .binary_search_by_key(&hour_start, |h| h.hour_start)
        {
            Ok(i) => i,
            Err(i) => {
                self.traffic_by_hour.insert(
                    i,
                    HourTraffic {
                        hour_start,
                        local_hour: window.local_hour,
                        ..Default::default()
                    },
                );
                i
            }
        };
        let hour = &mut self.traffic_by_hour[slot];
        add_count(&mut hour.entries, window.funnel.entries);
        add_count(&mut hour.passers_by, window.funnel.passers_by);
        add_optional(&mut hour.door_in, window.funnel.door_in);
        add_coverage(&mut hour.coverage, window.coverage.as_ref());
    }

    /// The copy that may leave the store (see [`Funnel::redacted`]).
    pub fn redacted(&self, min_count: u64) -> DailySummary {
        DailySummary {
            funnel: self.funnel.redacted(min_count),
            ..self.clone()
        }
    }
}

impl WindowSummary {
    /// The copy that may leave the store (see [`Funnel::redacted`]).
    pub fn redacted(&self, min_count: u64) -> WindowSummary {
        WindowSummary {
            funnel: self.funnel.redacted(min_count),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: i64, coverage: Option<Coverage>) -> WindowSummary {
        WindowSummary {
            schema: SUMMARY_SCHEMA_VERSION,
            store_id: "s1".into(),
            window_start: Timestamp(start),
            window_seconds: 900,
            local_date: "2026-11-23".into(),
            local_hour: 9,
            hour_start: Timestamp(0),
            funnel: Funnel::default(),
            coverage,
        }
    }

    #[test]
    fn a_summary_stored_before_coverage_existed_reads_as_not_recorded() {
        let mut old = serde_json::to_value(window(0, None)).unwrap();
        assert!(old.get("coverage").is_none(), "None is not written");
        old.as_object_mut().unwrap().remove("coverage");
        let read: WindowSummary = serde_json::from_value(old).unwrap();
        assert_eq!(read.coverage, None);
        let day =
            serde_json::to_value(DailySummary::new("s1", "2026-11-23", Timestamp(0))).unwrap();
        let read: DailySummary = serde_json::from_value(day).unwrap();
        assert_eq!(read.coverage, None);
    }

    #[test]
    fn a_day_and_its_hours_sum_the_coverage_of_their_windows() {
        let alive = |ble, door| Coverage {
            ble_seconds: ble,
            door_seconds: door,
            pos_seconds: None,
        };
        let mut day = DailySummary::new("s1", "2026-11-23", Timestamp(0));
        day.add_window(&window(0, Some(alive(900, Some(600)))));
        day.add_window(&window(900_000, Some(alive(120, Some(0)))));
        // Stored before coverage existed: counted as a window, adds no coverage.
        day.add_window(&window(1_800_000, None));
        let expected = alive(1020, Some(600));
        assert_eq!(day.coverage, Some(expected));
        assert_eq!(day.traffic_by_hour[0].coverage, Some(expected));
        assert_eq!(day.windows, 3);
        assert!(!expected.is_empty());
        assert!(alive(0, Some(0)).is_empty());
    }
}
