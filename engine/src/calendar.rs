//! Local-time calendar arithmetic: windows aligned to the store's time zone, local days.
//! Pure functions of the time-zone database compiled into the binary.

use chrono::{NaiveDate, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;
use storefront_protocol::Timestamp;

const MS_PER_DAY: i64 = 86_400_000;

#[derive(Clone, Debug)]
pub struct Calendar {
    tz: Tz,
    window_ms: i64,
}

impl Calendar {
    pub fn new(tz: Tz, window_seconds: u32) -> Self {
        Calendar {
            tz,
            window_ms: i64::from(window_seconds.max(1)) * 1000,
        }
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// UTC offset in force at `t`, milliseconds.
    fn offset_ms(&self, t: Timestamp) -> i64 {
        match chrono::DateTime::from_timestamp_millis(t.millis()) {
            Some(utc) => {
                i64::from(
                    self.tz
                        .offset_from_utc_datetime(&utc.naive_utc())
                        .fix()
                        .local_minus_utc(),
                ) * 1000
            }
            None => 0,
        }
    }

    /// Start of the window holding `t`: windows tile local time.
    pub fn window_start(&self, t: Timestamp) -> Timestamp {
        let local = t.millis() + self.offset_ms(t);
        Timestamp(t.millis() - local.rem_euclid(self.window_ms))
    }

    /// Start of the window after the one starting at `start`.
    pub fn next_window(&self, start: Timestamp) -> Timestamp {
        let next = self.window_start(start.plus_millis(self.window_ms));
        // A DST shift smaller than a window could map back into this window; never stall.
        if next <= start {
            start.plus_millis(self.window_ms)
        } else {
            next
        }
    }

    /// Local calendar date at `t`.
    pub fn local_date(&self, t: Timestamp) -> NaiveDate {
        let local = t.millis() + self.offset_ms(t);
        let days = local.div_euclid(MS_PER_DAY);
        NaiveDate::from_num_days_from_ce_opt(719_163 + days as i32).unwrap_or_default()
    }

    /// Days since 1970-01-01 of the local date at `t` (for day differences).
    pub fn local_day_number(&self, t: Timestamp) -> i32 {
        (t.millis() + self.offset_ms(t)).div_euclid(MS_PER_DAY) as i32
    }

    /// Local hour (0..=23) at `t`.
    pub fn local_hour(&self, t: Timestamp) -> u8 {
        ((t.millis() + self.offset_ms(t)).rem_euclid(MS_PER_DAY) / 3_600_000) as u8
    }

    /// Start (UTC) of the local hour holding `t`.
    pub fn hour_start(&self, t: Timestamp) -> Timestamp {
        let local = t.millis() + self.offset_ms(t);
        Timestamp(t.millis() - local.rem_euclid(3_600_000))
    }

    /// The first instant of local date `date` (midnight, or the first valid local time when a
    /// DST change skips midnight).
    pub fn day_start(&self, date: NaiveDate) -> Timestamp {
        let mut time = NaiveTime::MIN;
        for _ in 0..4 {
            if let Some(dt) = self.tz.from_local_datetime(&date.and_time(time)).earliest() {
                return Timestamp(dt.timestamp_millis());
            }
            time += chrono::Duration::minutes(30);
        }
        Timestamp(date.and_time(NaiveTime::MIN).and_utc().timestamp_millis())
    }

    /// Number of windows in local date `date` (92, 96 or 100 for 15-minute windows).
    pub fn windows_in_day(&self, date: NaiveDate) -> u32 {
        let start = self.window_start(self.day_start(date));
        let end = self.day_start(date.succ_opt().unwrap_or(date));
        let mut count = 0;
        let mut w = start;
        while w < end {
            count += 1;
            w = self.next_window(w);
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> Calendar {
        Calendar::new(chrono_tz::Europe::Paris, 900)
    }

    fn utc(s: &str) -> Timestamp {
        Timestamp(
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis(),
        )
    }

    #[test]
    fn windows_align_to_local_quarter_hours() {
        let cal = Calendar::new(chrono_tz::Asia::Kolkata, 900);
        // 10:07 IST = 04:37 UTC; window starts 10:00 IST = 04:30 UTC
        assert_eq!(
            cal.window_start(utc("2026-03-02T04:37:10Z")),
            utc("2026-03-02T04:30:00Z")
        );
        let hourly = Calendar::new(chrono_tz::Asia::Kolkata, 3600);
        assert_eq!(
            hourly.window_start(utc("2026-03-02T04:37:10Z")),
            utc("2026-03-02T04:30:00Z")
        );
    }

    #[test]
    fn dst_days_have_92_and_100_windows() {
        let cal = paris();
        assert_eq!(
            cal.windows_in_day(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap()),
            92
        );
        assert_eq!(
            cal.windows_in_day(NaiveDate::from_ymd_opt(2026, 10, 25).unwrap()),
            100
        );
        assert_eq!(
            cal.windows_in_day(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()),
            96
        );
    }

    #[test]
    fn local_date_and_hour_follow_the_offset() {
        let cal = paris();
        let t = utc("2026-11-22T23:30:00Z"); // 00:30 in Paris, next day
        assert_eq!(
            cal.local_date(t),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
        assert_eq!(cal.local_hour(t), 0);
        assert_eq!(
            cal.day_start(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()),
            utc("2026-11-22T23:00:00Z")
        );
    }

    #[test]
    fn repeated_dst_hour_has_distinct_windows() {
        let cal = paris();
        // 2026-10-25: 02:00-03:00 CEST then 02:00-03:00 CET
        let first = cal.window_start(utc("2026-10-25T00:10:00Z"));
        let second = cal.window_start(utc("2026-10-25T01:10:00Z"));
        assert_ne!(first, second);
        assert_eq!(cal.local_hour(first), cal.local_hour(second));
    }
}
