//! The receiving clock can step: NTP correcting a wrong clock, an operator setting it, a
//! gateway without a battery-backed clock booting at an old time. A step forward is time
//! passing. A step back would leave the watermark in the future and reject every live event as
//! late until real time caught up, so the engine re-bases on it: what is open is closed out as
//! at the end of a stream (final windows and the day emitted up to the old time), then its
//! time restarts at the new `now`. The re-lived period's windows are emitted again under their
//! keys (HQ holds a different copy of a key aside as a conflict); it is counted in
//! [`IngestStats::clock_steps_back`](crate::IngestStats::clock_steps_back) for the caller to
//! log.

use storefront_protocol::{DailySummary, Timestamp};

use crate::Engine;

/// A receiving clock this far behind the watermark has stepped back. The watermark runs at most
/// the future tolerance (2 min) ahead of the receiving clock, so this is never ordinary jitter.
const CLOCK_STEP_BACK_MS: i64 = 10 * 60_000;

impl Engine {
    /// The receiving clock reads `now`: when it stepped back, re-base (see the module docs).
    /// [`Engine::handle_timeout`] calls it; a live caller (wall clock) also calls it before
    /// [`Engine::handle_event`], so that no event right after a step is taken as late. A
    /// replay, whose `now` is each event's own time, must not: an old event in a file is late,
    /// not a clock step.
    pub fn observe_clock(&mut self, now: Timestamp) {
        let release_to = now
            .millis()
            .saturating_sub(self.config.thresholds.max_event_delay_ms);
        if self.watermark == i64::MIN
            || release_to >= self.watermark.saturating_sub(CLOCK_STEP_BACK_MS)
        {
            return;
        }
        self.end_of_stream();
        // Everything is decided and final up to the old time; nothing was counted beyond it.
        self.windows.clear();
        self.days.clear();
        self.devices.clear();
        self.buffer.clear();
        self.buffer_sorted = true;
        self.max_seen = i64::MIN;
        self.watermark = release_to;
        self.clock = release_to;
        self.next_release = release_to;
        self.next_sweep = release_to;
        // Windows restart at the one holding the new time; the day's earlier windows were
        // emitted before the step, so they count as merged and the day still completes.
        let first = self.calendar.window_start(Timestamp(release_to));
        let date = self.calendar.local_date(first);
        let day_start = self.calendar.day_start(date);
        let mut day = DailySummary::new(&self.config.store_id, &date.to_string(), day_start);
        let mut window = self.calendar.window_start(day_start);
        while window < first {
            day.windows += 1;
            window = self.calendar.next_window(window);
        }
        self.days.insert(date, day);
        self.next_window = Some(first.millis());
        self.open_windows_through(release_to);
        self.stats.clock_steps_back = self.stats.clock_steps_back.saturating_add(1);
    }
}
