//! Semantic checks of a summary: does it describe something one store can have produced?
//!
//! [`SyncMessage::decode`](crate::SyncMessage::decode) checks the shape of a message (size,
//! schema, key against payload) and decoding checks every sketch's internals
//! ([`crate::SketchError`]). This module checks the figures: a calendar that exists, windows
//! that tile a day, counts that are consistent with each other and within what one store can
//! produce in the span. It is pure (no clock, no I/O), so HQ runs it on receipt and the agent
//! can run it before publishing.
//!
//! The bounds are deliberately generous — they catch corrupt, forged or wrapped figures, not
//! unusual days:
//! * every count of one summary (window or day) is at most [`MAX_COUNT`] (10 M: a day of 10 M
//!   entries is 115 a second around the clock, far beyond any single store);
//! * revenue is within ±[`MAX_REVENUE_MINOR`] minor units (10^12, ten billion in major units);
//! * durations (visits, zone dwell) lie in `0..=`[`MAX_DURATION_SECONDS`] (a year, the longest
//!   `visit_max_seconds` the config accepts);
//! * dates lie in [`YEARS`]; a UTC offset is between −12 h and +14 h (every time zone in use)
//!   and a multiple of 15 minutes, so windows start on multiples of `gcd(window, 900 s)`;
//! * a day merges at most [`MAX_DAY_WINDOWS`] windows (25 hours of the shortest window the
//!   config allows, 60 s) and has at most 25 hours of traffic rows (a DST fall-back day);
//! * at most [`MAX_ZONES`] zones, each named by 1 to 64 bytes.
//!
//! Consistency: bounces, capped visits, zone visits and eligible entries are each at most the
//! entries; repeat visits at most the eligible entries; a distribution counts exactly what it
//! describes (visit durations: one per entry; a zone's dwell: one per zone visit) and its
//! sketch holds exactly that many values; a day's traffic rows add up to its entries and
//! passers-by.

use std::ops::RangeInclusive;

use chrono::{Datelike, NaiveDate};

use crate::topic::check_id;
use crate::{
    Coverage, DailySummary, Distribution, Funnel, SUMMARY_SCHEMA_VERSION, SummaryPayload,
    Timestamp, WindowSummary,
};

/// Largest count of any kind in one summary (window or day).
pub const MAX_COUNT: u64 = 10_000_000;
/// Largest revenue magnitude of one summary, minor units.
pub const MAX_REVENUE_MINOR: i64 = 1_000_000_000_000;
/// Longest duration a distribution may hold, seconds (a year).
pub const MAX_DURATION_SECONDS: f64 = 366.0 * 86_400.0;
/// Most windows one day can merge: 25 hours of 60-second windows.
pub const MAX_DAY_WINDOWS: u32 = 25 * 60;
/// Most traffic-by-hour rows of one day (a day with a repeated DST hour has 25).
pub const MAX_DAY_HOURS: usize = 25;
/// Most zones of one store.
pub const MAX_ZONES: usize = 256;
/// Years a summary may be dated in.
pub const YEARS: RangeInclusive<i32> = 2020..=2100;

/// Furthest a local time runs ahead of UTC (UTC+14, Line Islands) and behind it (UTC−12).
const MAX_OFFSET_EAST_SECONDS: i64 = 14 * 3600;
const MAX_OFFSET_WEST_SECONDS: i64 = 12 * 3600;
/// Every UTC offset in use is a multiple of 15 minutes.
const OFFSET_STEP_SECONDS: i64 = 900;
const DAY_SECONDS: i64 = 86_400;

/// What is wrong with a summary, as a short stable label (for counters and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Violation {
    /// The payload's schema version is not this build's.
    Schema,
    /// The store id cannot stand as a topic level.
    StoreId,
    /// `window_seconds` is 0, over a day, or does not divide a day.
    WindowLength,
    /// A start is not on a whole second, or not on a window (or hour, day) boundary any UTC
    /// offset can produce.
    Alignment,
    /// `local_date` is not a real `YYYY-MM-DD` date in [`YEARS`], or does not match the start
    /// under any UTC offset.
    LocalDate,
    /// `local_hour` is over 23, or does not match the start under any UTC offset.
    LocalHour,
    /// A count over [`MAX_COUNT`] or a revenue over [`MAX_REVENUE_MINOR`].
    Bound,
    /// Counts that contradict each other (e.g. more bounces than entries).
    Inconsistent,
    /// A distribution whose count or values do not match what it describes.
    Distribution,
    /// Too many zones, or a zone name that is empty or too long.
    Zones,
    /// A day's windows or traffic rows that no calendar produces.
    Day,
    /// An input alive longer than the span it covers.
    Coverage,
}

impl Violation {
    pub fn as_str(self) -> &'static str {
        match self {
            Violation::Schema => "schema",
            Violation::StoreId => "store_id",
            Violation::WindowLength => "window_length",
            Violation::Alignment => "alignment",
            Violation::LocalDate => "local_date",
            Violation::LocalHour => "local_hour",
            Violation::Bound => "bound",
            Violation::Inconsistent => "inconsistent",
            Violation::Distribution => "distribution",
            Violation::Zones => "zones",
            Violation::Day => "day",
            Violation::Coverage => "coverage",
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A summary that fails a check: which kind of check, and what exactly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{violation}: {detail}")]
pub struct Invalid {
    pub violation: Violation,
    pub detail: String,
}

fn invalid<T>(violation: Violation, detail: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        violation,
        detail: detail.into(),
    })
}

fn ensure(ok: bool, violation: Violation, detail: impl FnOnce() -> String) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        invalid(violation, detail())
    }
}

/// Checks a window or daily summary.
pub fn validate_payload(payload: &SummaryPayload) -> Result<(), Invalid> {
    match payload {
        SummaryPayload::Window(w) => validate_window(w),
        SummaryPayload::Daily(d) => validate_daily(d),
    }
}

/// Checks one window summary.
pub fn validate_window(w: &WindowSummary) -> Result<(), Invalid> {
    check_header(w.schema, &w.store_id)?;
    let length = i64::from(w.window_seconds);
    ensure(
        length > 0 && DAY_SECONDS % length == 0,
        Violation::WindowLength,
        || format!("window_seconds {length} does not divide a day"),
    )?;
    let start = whole_seconds(w.window_start, "window_start")?;
    let step = gcd(length, OFFSET_STEP_SECONDS);
    ensure(start % step == 0, Violation::Alignment, || {
        format!("window_start {start} s is not on a {step} s boundary")
    })?;
    let hour_start = whole_seconds(w.hour_start, "hour_start")?;
    ensure(
        hour_start % OFFSET_STEP_SECONDS == 0 && hour_start <= start && start < hour_start + 3600,
        Violation::Alignment,
        || format!("window_start {start} s does not lie in the hour starting at {hour_start} s"),
    )?;
    ensure(w.local_hour <= 23, Violation::LocalHour, || {
        format!("local_hour {} is over 23", w.local_hour)
    })?;
    // The local start lies in [date + hour, date + hour + 1 h); local = UTC + offset.
    let local_hour_start = local_midnight(&w.local_date)? + i64::from(w.local_hour) * 3600;
    ensure(
        local_hour_start - MAX_OFFSET_EAST_SECONDS <= start
            && start < local_hour_start + 3600 + MAX_OFFSET_WEST_SECONDS,
        Violation::LocalHour,
        || {
            format!(
                "window_start {start} s is not {} {:02}h local under any UTC offset",
                w.local_date, w.local_hour
            )
        },
    )?;
    check_coverage(w.coverage.as_ref(), length)?;
    check_funnel(&w.funnel)
}

/// Each input's alive seconds fit in the span (`span_seconds`) the summary covers.
fn check_coverage(coverage: Option<&Coverage>, span_seconds: i64) -> Result<(), Invalid> {
    let Some(c) = coverage else {
        return Ok(());
    };
    for (input, seconds) in [
        ("ble", Some(c.ble_seconds)),
        ("door", c.door_seconds),
        ("pos", c.pos_seconds),
    ] {
        let seconds = i64::from(seconds.unwrap_or(0));
        ensure(seconds <= span_seconds, Violation::Coverage, || {
            format!("{input} alive {seconds} s in a span of {span_seconds} s")
        })?;
    }
    Ok(())
}

/// Checks one daily summary.
pub fn validate_daily(d: &DailySummary) -> Result<(), Invalid> {
    check_header(d.schema, &d.store_id)?;
    let day_start = whole_seconds(d.day_start, "day_start")?;
    ensure(
        day_start % OFFSET_STEP_SECONDS == 0,
        Violation::Alignment,
        || format!("day_start {day_start} s is not on a 15-minute boundary"),
    )?;
    let midnight = local_midnight(&d.local_date)?;
    ensure(
        midnight - MAX_OFFSET_EAST_SECONDS <= day_start
            && day_start <= midnight + MAX_OFFSET_WEST_SECONDS,
        Violation::LocalDate,
        || {
            format!(
                "day_start {day_start} s is not the start of {} under any UTC offset",
                d.local_date
            )
        },
    )?;
    ensure(d.windows <= MAX_DAY_WINDOWS, Violation::Day, || {
        format!(
            "{} windows in one day (at most {MAX_DAY_WINDOWS})",
            d.windows
        )
    })?;
    ensure(
        d.traffic_by_hour.len() <= MAX_DAY_HOURS,
        Violation::Day,
        || {
            format!(
                "{} traffic rows in one day (at most {MAX_DAY_HOURS})",
                d.traffic_by_hour.len()
            )
        },
    )?;
    let day_end = day_start + (MAX_DAY_HOURS as i64) * 3600;
    let (mut entries, mut passers_by) = (0u64, 0u64);
    let mut previous: Option<Timestamp> = None;
    for hour in &d.traffic_by_hour {
        let at = whole_seconds(hour.hour_start, "traffic_by_hour.hour_start")?;
        ensure(
            hour.local_hour <= 23 && day_start <= at && at < day_end,
            Violation::Day,
            || {
                format!(
                    "traffic row at {at} s ({}h) is not an hour of this day",
                    hour.local_hour
                )
            },
        )?;
        ensure(
            previous.is_none_or(|p| p < hour.hour_start),
            Violation::Day,
            || "traffic rows are not in increasing time order".to_owned(),
        )?;
        previous = Some(hour.hour_start);
        for count in [Some(hour.entries), Some(hour.passers_by), hour.door_in] {
            check_bound(count.unwrap_or(0))?;
        }
        entries += hour.entries;
        passers_by += hour.passers_by;
    }
    if !d.traffic_by_hour.is_empty() {
        ensure(
            entries == d.funnel.entries && passers_by == d.funnel.passers_by,
            Violation::Inconsistent,
            || "the traffic rows do not add up to the day's entries and passers-by".to_owned(),
        )?;
    }
    check_coverage(d.coverage.as_ref(), (MAX_DAY_HOURS as i64) * 3600)?;
    check_funnel(&d.funnel)
}

fn check_header(schema: u32, store_id: &str) -> Result<(), Invalid> {
    ensure(schema == SUMMARY_SCHEMA_VERSION, Violation::Schema, || {
        format!("schema {schema} (this build reads {SUMMARY_SCHEMA_VERSION})")
    })?;
    check_id(store_id).or_else(|e| invalid(Violation::StoreId, e.to_string()))
}

fn whole_seconds(t: Timestamp, field: &str) -> Result<i64, Invalid> {
    let millis = t.millis();
    ensure(millis % 1000 == 0, Violation::Alignment, || {
        format!("{field} {millis} ms is not a whole second")
    })?;
    Ok(millis / 1000)
}

/// `YYYY-MM-DD` in [`YEARS`] → its midnight, in seconds of a UTC-like count.
fn local_midnight(date: &str) -> Result<i64, Invalid> {
    let parsed = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%Y-%m-%d").to_string() == date && YEARS.contains(&d.year()));
    match parsed.and_then(|d| d.and_hms_opt(0, 0, 0)) {
        Some(midnight) => Ok(midnight.and_utc().timestamp()),
        None => invalid(
            Violation::LocalDate,
            format!(
                "local_date {:?} is not a YYYY-MM-DD date in {}..={}",
                truncated(date),
                YEARS.start(),
                YEARS.end()
            ),
        ),
    }
}

/// At most 32 characters of outside text, for error details.
fn truncated(text: &str) -> String {
    text.chars().take(32).collect()
}

fn check_bound(count: u64) -> Result<(), Invalid> {
    ensure(count <= MAX_COUNT, Violation::Bound, || {
        format!("count {count} is over {MAX_COUNT}")
    })
}

fn check_distribution(d: &Distribution, describes: u64, what: &str) -> Result<(), Invalid> {
    ensure(d.count == describes, Violation::Distribution, || {
        format!("{what} counts {} values for {describes}", d.count)
    })?;
    d.check_values(MAX_DURATION_SECONDS)
        .or_else(|e| invalid(Violation::Distribution, format!("{what}: {e}")))
}

fn check_funnel(f: &Funnel) -> Result<(), Invalid> {
    let counts = [
        Some(f.passers_by),
        Some(f.entries),
        Some(f.bounces),
        Some(f.capped),
        Some(f.transactions),
        f.door_in,
        f.door_out,
        f.repeat.map(|r| r.eligible_entries),
        f.repeat.map(|r| r.repeat_visits),
    ];
    for count in counts.into_iter().flatten() {
        check_bound(count)?;
    }
    ensure(
        f.revenue_minor.unsigned_abs() <= MAX_REVENUE_MINOR.unsigned_abs(),
        Violation::Bound,
        || format!("revenue {} is beyond ±{MAX_REVENUE_MINOR}", f.revenue_minor),
    )?;
    ensure(
        f.bounces <= f.entries && f.capped <= f.entries,
        Violation::Inconsistent,
        || {
            format!(
                "{} bounces and {} capped visits for {} entries",
                f.bounces, f.capped, f.entries
            )
        },
    )?;
    if let Some(repeat) = f.repeat {
        ensure(
            repeat.repeat_visits <= repeat.eligible_entries && repeat.eligible_entries <= f.entries,
            Violation::Inconsistent,
            || {
                format!(
                    "{} repeat visits of {} eligible entries of {} entries",
                    repeat.repeat_visits, repeat.eligible_entries, f.entries
                )
            },
        )?;
    }
    check_distribution(&f.visit_duration, f.entries, "visit_duration")?;
    ensure(f.zones.len() <= MAX_ZONES, Violation::Zones, || {
        format!("{} zones (at most {MAX_ZONES})", f.zones.len())
    })?;
    for (name, zone) in &f.zones {
        ensure(
            !name.is_empty() && name.len() <= crate::topic::MAX_ID_LEN,
            Violation::Zones,
            || format!("zone name {:?} is empty or too long", truncated(name)),
        )?;
        check_bound(zone.zone_visits)?;
        ensure(
            zone.zone_visits <= f.entries,
            Violation::Inconsistent,
            || {
                format!(
                    "zone {:?} has {} visits for {} entries",
                    truncated(name),
                    zone.zone_visits,
                    f.entries
                )
            },
        )?;
        check_distribution(&zone.dwell, zone.zone_visits, "zone dwell")?;
    }
    Ok(())
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RepeatCounts, ZoneSummary};

    /// 2026-11-18T09:00Z, 10:00 in Paris (UTC+1).
    const START: i64 = 1_794_992_400;

    fn window() -> WindowSummary {
        let mut visit_duration = Distribution::new();
        let mut dwell = Distribution::new();
        for v in [30.0, 200.0, 900.0] {
            visit_duration.add(v);
        }
        dwell.add(120.0);
        WindowSummary {
            schema: SUMMARY_SCHEMA_VERSION,
            store_id: "paris-01".into(),
            window_start: Timestamp::from_secs(START),
            window_seconds: 900,
            local_date: "2026-11-18".into(),
            local_hour: 10,
            hour_start: Timestamp::from_secs(START),
            funnel: Funnel {
                passers_by: 20,
                entries: 3,
                bounces: 1,
                transactions: 1,
                revenue_minor: 4_999,
                repeat: Some(RepeatCounts {
                    eligible_entries: 2,
                    repeat_visits: 1,
                }),
                visit_duration,
                zones: [(
                    "shoes".to_owned(),
                    ZoneSummary {
                        zone_visits: 1,
                        dwell,
                    },
                )]
                .into(),
                ..Funnel::default()
            },
            coverage: None,
        }
    }

    fn day() -> DailySummary {
        let w = window();
        // Paris's day starts at 23:00Z the evening before.
        let midnight = Timestamp::from_secs(START - 10 * 3600);
        let mut d = DailySummary::new("paris-01", "2026-11-18", midnight);
        d.add_window(&w);
        d
    }

    fn violation_of(w: &WindowSummary) -> Option<Violation> {
        validate_window(w).err().map(|e| e.violation)
    }

    #[test]
    fn what_the_engine_produces_passes() {
        validate_window(&window()).unwrap();
        validate_daily(&day()).unwrap();
        // Redacted copies (what leaves the store) pass too, sketch or none.
        validate_window(&window().redacted(2)).unwrap();
        validate_window(&window().redacted(100)).unwrap();
        // Nepal (UTC+5:45): hourly windows start at :15 UTC.
        let mut nepal = window();
        nepal.window_seconds = 3600;
        nepal.window_start = Timestamp::from_secs(START + 900);
        nepal.hour_start = nepal.window_start;
        nepal.local_hour = 15;
        validate_window(&nepal).unwrap();
    }

    #[test]
    fn each_impossible_figure_is_named() {
        type Craft = fn(&mut WindowSummary);
        let cases: [(Craft, Violation); 17] = [
            (|w| w.schema = 9, Violation::Schema),
            (|w| w.store_id = "a/b".into(), Violation::StoreId),
            (|w| w.window_seconds = 0, Violation::WindowLength),
            (|w| w.window_seconds = 1000, Violation::WindowLength),
            (
                |w| w.window_start = Timestamp(START * 1000 + 1),
                Violation::Alignment,
            ),
            (
                |w| w.window_start = Timestamp::from_secs(START + 60),
                Violation::Alignment,
            ),
            (|w| w.local_hour = 255, Violation::LocalHour),
            (
                |w| {
                    w.coverage = Some(Coverage {
                        ble_seconds: 901,
                        door_seconds: None,
                        pos_seconds: None,
                    })
                },
                Violation::Coverage,
            ),
            (|w| w.local_date = "2026-11-16".into(), Violation::LocalHour),
            (|w| w.local_date = "9999-11-18".into(), Violation::LocalDate),
            (|w| w.local_date = "2026-02-30".into(), Violation::LocalDate),
            (|w| w.local_date = "2026-11-20".into(), Violation::LocalHour),
            (|w| w.funnel.bounces = 4, Violation::Inconsistent),
            (|w| w.funnel.passers_by = u64::MAX, Violation::Bound),
            (|w| w.funnel.revenue_minor = i64::MIN, Violation::Bound),
            (|w| w.funnel.entries = 4, Violation::Distribution),
            (
                |w| {
                    w.funnel.zones.get_mut("shoes").unwrap().zone_visits = 2;
                },
                Violation::Distribution,
            ),
        ];
        for (i, (craft, expected)) in cases.into_iter().enumerate() {
            let mut w = window();
            craft(&mut w);
            assert_eq!(violation_of(&w), Some(expected), "case {i}");
        }
    }

    #[test]
    fn impossible_days_are_refused() {
        let mut d = day();
        d.windows = 5_000;
        assert_eq!(validate_daily(&d).unwrap_err().violation, Violation::Day);
        let mut d = day();
        d.traffic_by_hour[0].local_hour = 24;
        assert_eq!(validate_daily(&d).unwrap_err().violation, Violation::Day);
        let mut d = day();
        d.traffic_by_hour[0].entries += 1;
        assert_eq!(
            validate_daily(&d).unwrap_err().violation,
            Violation::Inconsistent
        );
        let mut d = day();
        d.day_start = Timestamp::from_secs(START + 3 * 86_400);
        assert_eq!(
            validate_daily(&d).unwrap_err().violation,
            Violation::LocalDate
        );
        let mut d = day();
        let row = d.traffic_by_hour[0].clone();
        d.traffic_by_hour = vec![row; 30];
        assert_eq!(validate_daily(&d).unwrap_err().violation, Violation::Day);
    }

    #[test]
    fn chain_sums_saturate_instead_of_wrapping() {
        let mut chain = Funnel {
            entries: u64::MAX - 1,
            revenue_minor: i64::MAX,
            door_in: Some(u64::MAX),
            ..Funnel::default()
        };
        let store = Funnel {
            entries: 10,
            revenue_minor: 1,
            door_in: Some(3),
            ..Funnel::default()
        };
        chain.merge(&store);
        assert_eq!(chain.entries, u64::MAX);
        assert_eq!(chain.revenue_minor, i64::MAX);
        assert_eq!(chain.door_in, Some(u64::MAX));
    }
}
