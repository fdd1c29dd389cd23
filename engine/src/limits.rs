//! Bounds on the state outside input can grow, and on what a door counter can plausibly count.
//!
//! Every map keyed by outside values has a bound ([`Limits`]). At the bound the cheapest state
//! is shed — a share of the bound at once, so choosing what to shed costs O(log n) per entry
//! amortised — and counted in [`IngestStats::shed`](crate::IngestStats::shed):
//!
//! * tracked devices: those never confirmed present (no visit open), least recently heard
//!   first. A fake id is such a device; a shopper mid-visit is never shed. A shed device's
//!   undecided pass is dropped uncounted (whether it was a passer-by is unknown). When every
//!   tracked device has a visit open, a new device's sighting is dropped instead.
//! * visit history (repeat detection): the devices whose last visit is oldest first.
//! * de-duplication ids (door records, transactions): the oldest first; re-sends come within
//!   minutes, so only an id older than the most recent `max_dedup_ids` can count twice.

use std::collections::VecDeque;

use rustc_hash::FxHashSet;
use storefront_protocol::DeviceId;

use crate::stats::Shed;
use crate::{Engine, OutcomeSink};

/// Bounds on the engine's state. The defaults fit a Pi-class gateway in ~64 MB: measured with
/// `cargo bench -p storefront-engine --bench memory` (BENCHMARKS.md), a tracked device takes
/// 474-906 bytes (heard by 1-4 scanners), a visit-history entry ~100 and a 36-character de-dup
/// id ~125, so 20 000 devices take ≤ 18 MB, 200 000 history entries ~20 MB and 100 000 ids
/// ~12.5 MB per set (the POS's, and each door sensor's that sends record ids): ~63 MB with the
/// POS and one such door counter at their bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Devices tracked at once (a busy mall store has ~2 000 around it at its peak).
    pub max_tracked_devices: usize,
    /// Devices remembered for repeat detection (~30 days of a busy store's stable devices).
    pub max_visit_history: usize,
    /// Ids kept for de-duplication per door sensor, and for transactions.
    pub max_dedup_ids: usize,
    /// What one door counter can count in a minute; a record counting more for the time since
    /// the sensor's previous record is rejected.
    pub max_door_crossings_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tracked_devices: 20_000,
            max_visit_history: 200_000,
            max_dedup_ids: 100_000,
            max_door_crossings_per_minute: 600,
        }
    }
}

/// At a bound, the oldest eighth of it is shed at once.
const SHED_SHARE: usize = 8;

/// How many entries to shed from a map of `len` entries bounded by `max`, so that one more
/// fits: down to 7/8 of the bound.
fn excess(len: usize, max: usize) -> usize {
    let keep = (max - max / SHED_SHARE).min(max.saturating_sub(1));
    len.saturating_sub(keep)
}

/// A door record's crossings are judged against at least this much time.
const MIN_DOOR_ELAPSED_MS: i64 = 60_000;

/// Whether an id is new.
pub(crate) enum Novelty {
    Duplicate,
    /// New; `shed` older ids were let go of to keep the set at its bound.
    New {
        shed: u64,
    },
}

/// Ids seen within a retention period, at most a bound of them, for de-duplicating re-sent
/// records. Serialised as the time-ordered list; the set is rebuilt from it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(from = "VecDeque<(i64, Box<str>)>", into = "VecDeque<(i64, Box<str>)>")]
pub(crate) struct RecentIds {
    set: FxHashSet<Box<str>>,
    order: VecDeque<(i64, Box<str>)>,
}

impl From<VecDeque<(i64, Box<str>)>> for RecentIds {
    fn from(order: VecDeque<(i64, Box<str>)>) -> Self {
        RecentIds {
            set: order.iter().map(|(_, id)| id.clone()).collect(),
            order,
        }
    }
}

impl From<RecentIds> for VecDeque<(i64, Box<str>)> {
    fn from(ids: RecentIds) -> Self {
        ids.order
    }
}

impl RecentIds {
    /// Whether `id` (seen at `t`) is new; ids older than `retention_ms`, and the oldest beyond
    /// `max_ids`, are forgotten.
    pub(crate) fn first_time(
        &mut self,
        t: i64,
        id: Box<str>,
        retention_ms: i64,
        max_ids: usize,
    ) -> Novelty {
        if !self.set.insert(id.clone()) {
            return Novelty::Duplicate;
        }
        self.order.push_back((t, id));
        while self
            .order
            .front()
            .is_some_and(|(seen, _)| t.saturating_sub(*seen) > retention_ms)
        {
            self.forget_oldest();
        }
        let shed = self.order.len().saturating_sub(max_ids);
        for _ in 0..shed {
            self.forget_oldest();
        }
        Novelty::New { shed: shed as u64 }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, old)) = self.order.pop_front() {
            self.set.remove(&old);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

impl Engine {
    /// Makes room for one more tracked device by shedding devices never confirmed present,
    /// least recently heard first. False when every tracked device has a visit open.
    pub(crate) fn make_room_for_device(&mut self) -> bool {
        let max = self.config.limits.max_tracked_devices;
        if self.devices.len() < max {
            return true;
        }
        let mut cheap: Vec<(i64, DeviceId)> = self
            .devices
            .iter()
            .filter(|(_, state)| state.sheddable())
            .map(|(id, state)| (state.last_heard(), *id))
            .collect();
        if cheap.is_empty() {
            return false;
        }
        let n = excess(self.devices.len(), max).min(cheap.len());
        cheap.select_nth_unstable(n - 1);
        let mut shed = cheap[..n].to_vec();
        // Outcomes in device order, as a sweep applies them: deterministic.
        shed.sort_unstable_by_key(|(_, id)| *id);
        let mut outcomes = std::mem::take(&mut self.outcomes);
        for (_, device) in shed {
            if let Some(state) = self.devices.remove(&device) {
                let stable = state.stable_address;
                state.shed(&mut OutcomeSink {
                    device,
                    stable,
                    out: &mut outcomes,
                });
            }
        }
        self.apply_outcomes(&mut outcomes);
        self.outcomes = outcomes;
        self.stats.shed(Shed::Device, n as u64);
        true
    }

    /// Keeps the visit history at its bound: the devices whose last visit is oldest go first.
    pub(crate) fn bound_history(&mut self) {
        let max = self.config.limits.max_visit_history;
        if self.history.len() <= max {
            return;
        }
        let n = excess(self.history.len(), max);
        let mut oldest: Vec<(i32, DeviceId)> = self
            .history
            .iter()
            .map(|(id, days)| (days.last_day, *id))
            .collect();
        oldest.select_nth_unstable(n - 1);
        for (_, device) in &oldest[..n] {
            self.history.remove(device);
        }
        self.stats.shed(Shed::VisitHistory, n as u64);
    }

    /// Whether a door record of `crossings` (the larger of in and out) at `t` is possible for a
    /// counter whose previous record was at `previous` (none: judged over one window).
    pub(crate) fn plausible_crossings(
        &self,
        previous: Option<i64>,
        t: i64,
        crossings: u64,
    ) -> bool {
        let elapsed_ms = previous
            .map_or(self.calendar.window_ms(), |p| t.saturating_sub(p))
            .max(MIN_DOOR_ELAPSED_MS);
        let per_minute = u128::from(self.config.limits.max_door_crossings_per_minute);
        let allowed = per_minute * elapsed_ms as u128 / 60_000;
        u128::from(crossings) <= allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shedding_leaves_room_for_one_more_even_at_tiny_bounds() {
        for max in 1..40 {
            assert!(max - excess(max, max) < max, "{max}");
            assert!(max - excess(max, max) >= max - max / SHED_SHARE - 1);
        }
    }

    #[test]
    fn recent_ids_keep_the_newest_at_the_bound() {
        let mut ids = RecentIds::default();
        for i in 0..10 {
            assert!(matches!(
                ids.first_time(i, format!("id-{i}").into(), i64::MAX, 4),
                Novelty::New { shed } if shed == u64::from(i >= 4)
            ));
        }
        assert_eq!(ids.len(), 4);
        assert!(matches!(
            ids.first_time(10, "id-9".into(), i64::MAX, 4),
            Novelty::Duplicate
        ));
        assert!(matches!(
            ids.first_time(10, "id-0".into(), i64::MAX, 4),
            Novelty::New { .. }
        ));
    }
}
