//! The figures of a date range, as the API, the page and the report show them: a merge of final
//! daily summaries, final windows and provisional windows, with every rate taken from
//! [`Funnel`]'s derived methods (`METRICS.md`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;
use storefront_engine::Calendar;
use storefront_protocol::{
    Coverage, DailySummary, Distribution, Funnel, HourTraffic, Timestamp, WindowSummary,
};

use crate::source::{DashboardSource, StoreView};

/// Bin edges (seconds) of the visit-duration histogram: the first edge is `bounce_seconds`,
/// the last bin runs to the `visit_max_seconds` cap.
pub const HISTOGRAM_EDGES_SECONDS: [u64; 7] = [0, 120, 300, 600, 1200, 1800, 3600];

/// The funnel of one local date or a range of them (`GET /api/v1/funnel`).
#[derive(Clone, Debug, Serialize)]
pub struct FunnelReport {
    pub store_id: String,
    pub timezone: String,
    /// First and last local date covered (inclusive).
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The store's local date now.
    pub today: NaiveDate,
    /// True when any figure includes windows that are not final yet.
    pub provisional: bool,
    /// Where each day's figures came from.
    pub days: Vec<DayStatus>,
    /// Why there are no figures: set (and `funnel`, `visit_duration` null, `zones` empty) when
    /// no day of the range has data, i.e. no input was alive in any of its windows. "No data"
    /// is never shown as 0 traffic.
    pub no_data: Option<String>,
    /// Seconds each input was alive over the range (the sum of its windows'); null when no
    /// window recorded it.
    pub coverage: Option<Coverage>,
    pub funnel: Option<FunnelFigures>,
    pub visit_duration: Option<DurationFigures>,
    pub zones: Vec<ZoneFigures>,
    /// Present where the store has a door sensor and the range has door counts.
    pub door_scaled: Option<DoorScaled>,
    /// One row per local hour actually lived (23 or 25 on DST days), ordered by `hour_start`.
    pub traffic_by_hour: Vec<HourRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DayStatus {
    pub date: NaiveDate,
    /// `daily_summary` (the final day), `windows` (a day not final yet: final and provisional
    /// windows merged) or `none` (no data: no input was alive in any window of it, or nothing
    /// of it has been seen yet).
    pub source: &'static str,
    pub final_windows: u32,
    pub provisional_windows: u32,
    /// Seconds each input was alive that day; null when no window recorded it.
    pub coverage: Option<Coverage>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunnelFigures {
    pub passers_by: u64,
    pub entries: u64,
    pub visitors: u64,
    pub bounces: u64,
    pub capped: u64,
    pub transactions: u64,
    pub revenue_minor: i64,
    pub door_in: Option<u64>,
    pub door_out: Option<u64>,
    /// entries / (entries + passers_by); null when both are 0.
    pub shopfront_conversion: Option<f64>,
    /// bounces / entries.
    pub bounce_rate: Option<f64>,
    /// transactions / door_in where a door sensor counted, else transactions / entries.
    pub sales_conversion: Option<f64>,
    /// `door_in` or `entries`: the denominator `sales_conversion` used.
    pub sales_conversion_denominator: &'static str,
    pub repeat: RepeatFigures,
}

/// Repeat visits, or "not measured" (never shown as 0 when it cannot be known).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RepeatFigures {
    pub measured: bool,
    pub rate: Option<f64>,
    pub repeat_visits: Option<u64>,
    pub eligible_entries: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DurationFigures {
    pub count: u64,
    /// False when the distribution was redacted (fewer than `min_count` visits in some part):
    /// then only the count is known.
    pub values_known: bool,
    pub mean_seconds: Option<f64>,
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    /// Visits per duration bin, estimated from the sketch's quantiles (percentile resolution,
    /// so each bin is within about 1 % of `count`); empty when the values are not known.
    pub histogram: Vec<HistogramBin>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistogramBin {
    pub from_seconds: u64,
    /// Exclusive upper edge; null for the last, open bin.
    pub to_seconds: Option<u64>,
    pub visits: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZoneFigures {
    pub zone: String,
    pub zone_visits: u64,
    /// zone visits / entries.
    pub exposure_rate: Option<f64>,
    pub dwell: DwellFigures,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DwellFigures {
    pub count: u64,
    pub mean_seconds: Option<f64>,
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
}

/// BLE counts scaled to everyone by the door counter's sampling ratio (door_in / entries).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DoorScaled {
    pub sampling_ratio: f64,
    pub passers_by: f64,
    pub entries: f64,
    pub visitors: f64,
    pub bounces: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HourRow {
    /// Start of the local hour, UTC milliseconds: the row's identity (a repeated DST hour has
    /// two rows with the same `local_time`).
    pub hour_start: Timestamp,
    pub local_date: NaiveDate,
    pub local_hour: u8,
    /// `HH:MM` local time of `hour_start`.
    pub local_time: String,
    /// UTC offset in force, e.g. `+02:00`: tells a repeated hour's two rows apart.
    pub utc_offset: String,
    /// Null when the hour has no data (no window of it was covered by any input, or it has
    /// not come yet): missing, not 0.
    pub entries: Option<u64>,
    pub passers_by: Option<u64>,
    pub door_in: Option<u64>,
    /// Seconds each input was alive in the hour; null when not recorded.
    pub coverage: Option<Coverage>,
    /// Some window of this hour is not final yet.
    pub provisional: bool,
    /// The same local hour on the same weekday a week earlier (the first occurrence of a
    /// repeated hour matches the first, and so on); null when that hour did not exist or had
    /// no data, so a comparison never sets a day against a gateway that was off.
    pub last_week: Option<LastWeekHour>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastWeekHour {
    pub local_date: NaiveDate,
    pub hour_start: Timestamp,
    pub entries: u64,
    pub passers_by: u64,
    pub door_in: Option<u64>,
}

/// One local day's data before it is shaped for display.
#[derive(Clone, Debug)]
struct DayData {
    status: DayStatus,
    summary: DailySummary,
    provisional_hours: BTreeSet<Timestamp>,
}

/// The store's local date at `now`.
pub fn local_today(tz: Tz, now: Timestamp) -> NaiveDate {
    Calendar::new(tz, 900).local_date(now)
}

/// Builds the report for local dates `from..=to`. "Today" follows `source.live().now`.
pub fn funnel_report(
    source: &dyn DashboardSource,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<FunnelReport> {
    let store = source.store();
    let today = local_today(store.timezone, source.live().now);
    let calendar = Calendar::new(store.timezone, 900);
    let week_before = from.checked_sub_days(Days::new(7)).unwrap_or(from);
    let days = load_days(source, &store, &calendar, week_before, to)?;

    let mut funnel = Funnel::default();
    let mut coverage: Option<Coverage> = None;
    let mut statuses = Vec::new();
    let mut rows = Vec::new();
    let mut provisional = false;
    let mut days_with_data = 0;
    for date in date_range(from, to) {
        let day = &days[&date];
        if day.summary.windows > 0 {
            days_with_data += 1;
            funnel.merge(&day.summary.funnel);
        }
        if let Some(day_coverage) = &day.summary.coverage {
            coverage
                .get_or_insert_with(Coverage::default)
                .add(day_coverage);
        }
        provisional |= day.status.provisional_windows > 0;
        statuses.push(day.status.clone());
        let last_week = date
            .checked_sub_days(Days::new(7))
            .and_then(|d| days.get(&d));
        rows.extend(hour_rows(&calendar, store.timezone, day, last_week));
    }

    let has_data = days_with_data > 0;
    Ok(FunnelReport {
        store_id: store.id.clone(),
        timezone: store.timezone.name().to_owned(),
        from,
        to,
        today,
        provisional,
        days: statuses,
        no_data: (!has_data).then(|| no_data_reason(from, to)),
        coverage,
        funnel: has_data.then(|| funnel_figures(&funnel)),
        visit_duration: has_data.then(|| duration_figures(&funnel.visit_duration)),
        zones: if has_data {
            zone_figures(&funnel, &store)
        } else {
            Vec::new()
        },
        door_scaled: door_scaled(&funnel, &store).filter(|_| has_data),
        traffic_by_hour: rows,
    })
}

/// What "no data" means, for the API and the report.
pub fn no_data_reason(from: NaiveDate, to: NaiveDate) -> String {
    let span = if from == to {
        from.to_string()
    } else {
        format!("{from} to {to}")
    };
    format!(
        "no data for {span}: no input (BLE scanners, door counter, POS) was alive in any window, \
         or nothing of it has been seen yet; this is missing data, not zero traffic"
    )
}

pub(crate) fn date_range(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

/// Every local date in `from..=to`: the final day where there is one, else the day's final and
/// provisional windows merged (final wins where both have a window).
fn load_days(
    source: &dyn DashboardSource,
    store: &StoreView,
    calendar: &Calendar,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<BTreeMap<NaiveDate, DayData>> {
    let mut finals: BTreeMap<NaiveDate, DailySummary> = BTreeMap::new();
    for day in source.days(from, to)? {
        if let Ok(date) = day.local_date.parse::<NaiveDate>()
            && (from..=to).contains(&date)
        {
            finals.insert(date, day);
        }
    }
    let provisional = source.provisional();
    let mut out = BTreeMap::new();
    for date in date_range(from, to) {
        let day = match finals.remove(&date) {
            Some(summary) => DayData {
                status: DayStatus {
                    date,
                    source: "daily_summary",
                    final_windows: summary.windows,
                    provisional_windows: 0,
                    coverage: summary.coverage,
                },
                summary,
                provisional_hours: BTreeSet::new(),
            },
            None => day_from_windows(source, store, calendar, date, &provisional)?,
        };
        out.insert(date, day);
    }
    Ok(out)
}

fn day_from_windows(
    source: &dyn DashboardSource,
    store: &StoreView,
    calendar: &Calendar,
    date: NaiveDate,
    provisional: &[WindowSummary],
) -> anyhow::Result<DayData> {
    let label = date.to_string();
    let start = calendar.day_start(date);
    let end = calendar.day_start(date.succ_opt().unwrap_or(date));
    // A date's windows are exactly those whose local_date is that date.
    let finals: Vec<WindowSummary> = source
        .windows(start, end)?
        .into_iter()
        .filter(|w| w.local_date == label)
        .collect();
    let final_starts: BTreeSet<Timestamp> = finals.iter().map(|w| w.window_start).collect();
    let mut summary = DailySummary::new(&store.id, &label, start);
    for window in &finals {
        summary.add_window(window);
    }
    let mut provisional_windows = 0;
    let mut provisional_hours = BTreeSet::new();
    for window in provisional
        .iter()
        .filter(|w| w.local_date == label && !final_starts.contains(&w.window_start))
    {
        summary.add_window(window);
        provisional_windows += 1;
        provisional_hours.insert(window.hour_start);
    }
    let source = if summary.windows == 0 {
        "none"
    } else {
        "windows"
    };
    Ok(DayData {
        status: DayStatus {
            date,
            source,
            final_windows: finals.len() as u32,
            provisional_windows,
            coverage: summary.coverage,
        },
        summary,
        provisional_hours,
    })
}

/// The local hours of `date` as lived: 23 on a spring-forward day, 25 on a fall-back day.
pub fn hours_of_day(calendar: &Calendar, date: NaiveDate) -> Vec<Timestamp> {
    let end = calendar.day_start(date.succ_opt().unwrap_or(date));
    let mut hours = Vec::with_capacity(25);
    let mut t = calendar.day_start(date);
    while t < end {
        let start = calendar.hour_start(t);
        if hours.last() != Some(&start) {
            hours.push(start);
        }
        t = start.plus_millis(3_600_000);
    }
    hours
}

/// One local hour's traffic; `traffic` is `None` when no window of it had data.
struct HourData {
    hour_start: Timestamp,
    traffic: Option<HourTraffic>,
}

/// A day's traffic on its full hour grid; an hour with no emitted window has no data.
fn day_hours(calendar: &Calendar, day: &DayData) -> Vec<HourData> {
    let mut by_start: BTreeMap<Timestamp, HourData> = hours_of_day(calendar, day.status.date)
        .into_iter()
        .map(|hour_start| {
            (
                hour_start,
                HourData {
                    hour_start,
                    traffic: None,
                },
            )
        })
        .collect();
    for hour in &day.summary.traffic_by_hour {
        by_start
            .entry(hour.hour_start)
            .or_insert(HourData {
                hour_start: hour.hour_start,
                traffic: None,
            })
            .traffic = Some(hour.clone());
    }
    by_start.into_values().collect()
}

fn hour_rows(
    calendar: &Calendar,
    tz: Tz,
    day: &DayData,
    last_week: Option<&DayData>,
) -> Vec<HourRow> {
    // Match hours by (local hour, occurrence): a repeated hour's second run matches the
    // second run a week earlier, if there was one.
    let mut earlier: BTreeMap<(u8, usize), HourData> = BTreeMap::new();
    if let Some(previous) = last_week {
        let mut seen: BTreeMap<u8, usize> = BTreeMap::new();
        for hour in day_hours(calendar, previous) {
            let local_hour = calendar.local_hour(hour.hour_start);
            let n = seen.entry(local_hour).or_default();
            earlier.insert((local_hour, *n), hour);
            *n += 1;
        }
    }
    let mut seen: BTreeMap<u8, usize> = BTreeMap::new();
    day_hours(calendar, day)
        .into_iter()
        .map(|hour| {
            let local_hour = calendar.local_hour(hour.hour_start);
            let n = seen.entry(local_hour).or_default();
            let occurrence = *n;
            *n += 1;
            let (local_time, utc_offset) = local_time_and_offset(tz, hour.hour_start);
            HourRow {
                hour_start: hour.hour_start,
                local_date: day.status.date,
                local_hour,
                local_time,
                utc_offset,
                entries: hour.traffic.as_ref().map(|h| h.entries),
                passers_by: hour.traffic.as_ref().map(|h| h.passers_by),
                door_in: hour.traffic.as_ref().and_then(|h| h.door_in),
                coverage: hour.traffic.as_ref().and_then(|h| h.coverage),
                provisional: day.provisional_hours.contains(&hour.hour_start),
                last_week: last_week.and_then(|previous| {
                    let h = earlier.remove(&(local_hour, occurrence))?;
                    let traffic = h.traffic?;
                    Some(LastWeekHour {
                        local_date: previous.status.date,
                        hour_start: h.hour_start,
                        entries: traffic.entries,
                        passers_by: traffic.passers_by,
                        door_in: traffic.door_in,
                    })
                }),
            }
        })
        .collect()
}

fn local_time_and_offset(tz: Tz, t: Timestamp) -> (String, String) {
    match tz.timestamp_millis_opt(t.millis()).single() {
        Some(local) => (
            local.format("%H:%M").to_string(),
            local.format("%:z").to_string(),
        ),
        None => (String::new(), String::new()),
    }
}

pub fn funnel_figures(funnel: &Funnel) -> FunnelFigures {
    FunnelFigures {
        passers_by: funnel.passers_by,
        entries: funnel.entries,
        visitors: funnel.visitors(),
        bounces: funnel.bounces,
        capped: funnel.capped,
        transactions: funnel.transactions,
        revenue_minor: funnel.revenue_minor,
        door_in: funnel.door_in,
        door_out: funnel.door_out,
        shopfront_conversion: funnel.shopfront_conversion(),
        bounce_rate: funnel.bounce_rate(),
        sales_conversion: funnel.sales_conversion(),
        sales_conversion_denominator: if funnel.door_in.is_some() {
            "door_in"
        } else {
            "entries"
        },
        repeat: match funnel.repeat {
            Some(counts) => RepeatFigures {
                measured: true,
                rate: funnel.repeat_rate(),
                repeat_visits: Some(counts.repeat_visits),
                eligible_entries: Some(counts.eligible_entries),
            },
            None => RepeatFigures {
                measured: false,
                rate: None,
                repeat_visits: None,
                eligible_entries: None,
            },
        },
    }
}

pub fn duration_figures(distribution: &Distribution) -> DurationFigures {
    let values_known = distribution.count > 0 && distribution.has_values();
    DurationFigures {
        count: distribution.count,
        values_known,
        mean_seconds: distribution.mean(),
        p50_seconds: distribution.median(),
        p90_seconds: distribution.quantile(0.9),
        histogram: if values_known {
            histogram(distribution)
        } else {
            Vec::new()
        },
    }
}

/// Visits per bin, from the sketch: the share of values below an edge is estimated as the
/// share of the 100 percentile midpoints below it. Cumulative rounding keeps the bins summing
/// to `count`.
fn histogram(distribution: &Distribution) -> Vec<HistogramBin> {
    let quantiles: Vec<f64> = (0..100)
        .filter_map(|i| distribution.quantile((f64::from(i) + 0.5) / 100.0))
        .collect();
    if quantiles.is_empty() {
        return Vec::new();
    }
    let count = distribution.count;
    let below = |edge: u64| -> u64 {
        let share =
            quantiles.iter().filter(|&&q| q < edge as f64).count() as f64 / quantiles.len() as f64;
        (share * count as f64).round() as u64
    };
    let edges = HISTOGRAM_EDGES_SECONDS;
    (0..edges.len())
        .map(|i| {
            let lower = below(edges[i]);
            let upper = edges.get(i + 1).map_or(count, |&e| below(e));
            HistogramBin {
                from_seconds: edges[i],
                to_seconds: edges.get(i + 1).copied(),
                visits: upper.saturating_sub(lower),
            }
        })
        .collect()
}

fn dwell_figures(distribution: &Distribution) -> DwellFigures {
    DwellFigures {
        count: distribution.count,
        mean_seconds: distribution.mean(),
        p50_seconds: distribution.median(),
        p90_seconds: distribution.quantile(0.9),
    }
}

/// The configured zones in order, then any other zone found in the data.
pub fn zone_figures(funnel: &Funnel, store: &StoreView) -> Vec<ZoneFigures> {
    let mut names: Vec<&str> = store.zones.iter().map(String::as_str).collect();
    for zone in funnel.zones.keys() {
        if !names.contains(&zone.as_str()) {
            names.push(zone);
        }
    }
    names
        .into_iter()
        .map(|zone| {
            let summary = funnel.zones.get(zone).cloned().unwrap_or_default();
            ZoneFigures {
                zone: zone.to_owned(),
                zone_visits: summary.zone_visits,
                exposure_rate: if funnel.entries > 0 {
                    Some(funnel.exposure(zone).unwrap_or(0.0))
                } else {
                    None
                },
                dwell: dwell_figures(&summary.dwell),
            }
        })
        .collect()
}

pub fn door_scaled(funnel: &Funnel, store: &StoreView) -> Option<DoorScaled> {
    if !store.has_door_sensor {
        return None;
    }
    Some(DoorScaled {
        sampling_ratio: funnel.sampling_ratio()?,
        passers_by: funnel.door_scaled(funnel.passers_by)?,
        entries: funnel.door_scaled(funnel.entries)?,
        visitors: funnel.door_scaled(funnel.visitors())?,
        bounces: funnel.door_scaled(funnel.bounces)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(tz: Tz) -> Calendar {
        Calendar::new(tz, 900)
    }

    #[test]
    fn dst_days_have_23_and_25_hours_and_ordinary_days_24() {
        let paris = cal(chrono_tz::Europe::Paris);
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(hours_of_day(&paris, day("2026-03-29")).len(), 23);
        assert_eq!(hours_of_day(&paris, day("2026-10-25")).len(), 25);
        assert_eq!(hours_of_day(&paris, day("2026-11-23")).len(), 24);
        let kathmandu = cal(chrono_tz::Asia::Kathmandu);
        let hours = hours_of_day(&kathmandu, day("2026-11-23"));
        assert_eq!(hours.len(), 24);
        // +05:45: local hours start at :15 past the UTC hour.
        assert_eq!(hours[0].millis().rem_euclid(3_600_000), 15 * 60_000);
    }

    #[test]
    fn histogram_bins_add_up_to_the_count_and_follow_the_values() {
        let mut d = Distribution::new();
        for _ in 0..30 {
            d.add(60.0);
        }
        for _ in 0..70 {
            d.add(400.0);
        }
        let bins = histogram(&d);
        assert_eq!(bins.iter().map(|b| b.visits).sum::<u64>(), 100);
        assert_eq!(bins[0].visits, 30);
        assert_eq!(bins[2].visits, 70);
        assert_eq!(bins.last().unwrap().to_seconds, None);
    }

    #[test]
    fn a_redacted_distribution_shows_its_count_and_no_values() {
        let mut d = Distribution::new();
        d.add(100.0);
        let figures = duration_figures(&d.redacted(5));
        assert_eq!(figures.count, 1);
        assert!(!figures.values_known);
        assert!(figures.histogram.is_empty());
        assert_eq!(figures.p50_seconds, None);
    }
}
