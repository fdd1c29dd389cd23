//! Coverage: for how long each kind of input (BLE scanners, door counters, POS) was alive in
//! each window, so that "no data" is never read as zero traffic.
//!
//! Every accepted event of a kind (a sighting → BLE, a door record → door, a sale → POS) and
//! every `Alive` from a configured source marks that kind alive for `[t, t + grace)`; a window's
//! coverage of a kind is the length of the union of those spans inside it. A window no input
//! covered and with nothing counted is not emitted, and a day none of whose windows was emitted
//! is not emitted either: a gateway switched off for a week, or a clock that jumped forward,
//! leaves a gap, not a week of zeros.

use storefront_protocol::{Coverage, Funnel, InputKind};

/// The union of one input kind's alive spans `[start, end)` (ms): sorted, disjoint, and never
/// touching (touching spans are merged).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Spans(Vec<(i64, i64)>);

impl Spans {
    fn insert(&mut self, start: i64, end: i64) {
        // Events come in time order but for late counts: extend or append at the back.
        match self.0.last_mut() {
            None => {
                self.0.push((start, end));
                return;
            }
            Some(last) if start >= last.0 => {
                if start <= last.1 {
                    last.1 = last.1.max(end);
                } else {
                    self.0.push((start, end));
                }
                return;
            }
            Some(_) => {}
        }
        // Spans that overlap or touch [start, end] are merged into one.
        let first = self.0.partition_point(|&(_, e)| e < start);
        let past = self.0.partition_point(|&(s, _)| s <= end);
        if first == past {
            self.0.insert(first, (start, end));
        } else {
            let merged = (start.min(self.0[first].0), end.max(self.0[past - 1].1));
            self.0.splice(first..past, [merged]);
        }
    }

    /// Milliseconds of `[from, to)` inside the spans.
    fn covered_ms(&self, from: i64, to: i64) -> i64 {
        let first = self.0.partition_point(|&(_, e)| e <= from);
        self.0[first..]
            .iter()
            .take_while(|&&(s, _)| s < to)
            .map(|&(s, e)| (e.min(to) - s.max(from)).max(0))
            .sum()
    }

    fn forget_before(&mut self, t: i64) {
        let done = self.0.partition_point(|&(_, e)| e <= t);
        self.0.drain(..done);
    }
}

/// The alive spans of every input kind that can still reach an open or future window. Part of
/// the engine's snapshot.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct CoverageState {
    ble: Spans,
    door: Spans,
    pos: Spans,
}

impl CoverageState {
    fn spans(&mut self, input: InputKind) -> &mut Spans {
        match input {
            InputKind::Ble => &mut self.ble,
            InputKind::Door => &mut self.door,
            InputKind::Pos => &mut self.pos,
        }
    }

    /// `input` was alive at `t`: it counts as alive for `grace_ms` from then.
    pub(crate) fn mark(&mut self, input: InputKind, t: i64, grace_ms: i64) {
        self.spans(input).insert(t, t.saturating_add(grace_ms));
    }

    /// Seconds of `[from, to)` each input was alive; the kinds the store does not have are
    /// absent.
    pub(crate) fn seconds(&self, from: i64, to: i64, has_door: bool, has_pos: bool) -> Coverage {
        let seconds =
            |spans: &Spans| u32::try_from(spans.covered_ms(from, to) / 1000).unwrap_or(u32::MAX);
        Coverage {
            ble_seconds: seconds(&self.ble),
            door_seconds: has_door.then(|| seconds(&self.door)),
            pos_seconds: has_pos.then(|| seconds(&self.pos)),
        }
    }

    /// Drops the spans that end before `t` (the start of the earliest window still open).
    pub(crate) fn forget_before(&mut self, t: i64) {
        self.ble.forget_before(t);
        self.door.forget_before(t);
        self.pos.forget_before(t);
    }
}

/// A window is "no data" when no input covered any of it and nothing was counted in it.
pub(crate) fn no_data(coverage: &Coverage, funnel: &Funnel) -> bool {
    coverage.is_empty()
        && funnel.passers_by == 0
        && funnel.entries == 0
        && funnel.transactions == 0
        && funnel.door_in.unwrap_or(0) == 0
        && funnel.door_out.unwrap_or(0) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_merge_in_and_out_of_order_and_cover_their_union() {
        let mut spans = Spans::default();
        spans.insert(0, 100);
        spans.insert(50, 150);
        spans.insert(300, 400);
        spans.insert(200, 250); // late: between two spans
        spans.insert(140, 210); // late: bridges the first two
        assert_eq!(spans.0, [(0, 250), (300, 400)]);
        assert_eq!(spans.covered_ms(0, 1000), 350);
        assert_eq!(spans.covered_ms(100, 350), 200);
        assert_eq!(spans.covered_ms(250, 300), 0);
        spans.forget_before(260);
        assert_eq!(spans.0, [(300, 400)]);
    }
}
