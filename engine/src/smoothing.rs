//! RSSI smoothing: the median of a device's recent readings at one scanner.

/// Readings kept per (device, scanner). Scanners report a device about once a second, so a
/// 10 s smoothing window holds ~10; one reporting more often is smoothed over its most recent
/// `CAPACITY` readings — the median of 16 is as robust as that of more, and the bound keeps a
/// tracked device small in memory.
pub const CAPACITY: usize = 16;

/// The recent readings of one device at one scanner, oldest first, in a fixed ring.
///
/// Times are milliseconds relative to the owning device's time base, so they fit in `u32`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ScannerTrack {
    pub scanner: u16,
    pub zone: u8,
    len: u8,
    head: u8,
    times: [u32; CAPACITY],
    rssi: [i8; CAPACITY],
    /// The same RSSI values kept sorted, so the median is a lookup, not a selection.
    sorted: [i8; CAPACITY],
}

impl ScannerTrack {
    pub fn new(scanner: u16, zone: u8) -> Self {
        ScannerTrack {
            scanner,
            zone,
            len: 0,
            head: 0,
            times: [0; CAPACITY],
            rssi: [0; CAPACITY],
            sorted: [0; CAPACITY],
        }
    }

    /// Time of the newest reading, when any.
    pub fn last_time(&self) -> Option<u32> {
        (self.len > 0).then(|| self.times[self.index(self.len as usize - 1)])
    }

    fn index(&self, i: usize) -> usize {
        (self.head as usize + i) % CAPACITY
    }

    /// Removes the oldest reading (the ring must not be empty).
    fn drop_oldest(&mut self) {
        let value = self.rssi[self.head as usize];
        let n = self.len as usize;
        if let Some(i) = self.sorted[..n].iter().position(|v| *v == value) {
            self.sorted.copy_within(i + 1..n, i);
        }
        self.head = ((self.head as usize + 1) % CAPACITY) as u8;
        self.len -= 1;
    }

    /// Drops readings at or before `cutoff` (they left the smoothing window).
    pub fn evict_through(&mut self, cutoff: i64) {
        while self.len > 0 && i64::from(self.times[self.head as usize]) <= cutoff {
            self.drop_oldest();
        }
    }

    /// Appends a reading; the oldest is dropped when the ring is full.
    pub fn push(&mut self, time: u32, rssi: i8) {
        if self.len as usize == CAPACITY {
            self.drop_oldest();
        }
        let slot = self.index(self.len as usize);
        self.times[slot] = time;
        self.rssi[slot] = rssi;
        let n = self.len as usize;
        let at = self.sorted[..n].partition_point(|v| *v <= rssi);
        self.sorted.copy_within(at..n, at + 1);
        self.sorted[at] = rssi;
        self.len += 1;
    }

    /// Moves every time back by `delta` ms (the device's time base moved forward), dropping
    /// readings that would fall before the new base.
    pub fn rebase(&mut self, delta: u32) {
        while self.len > 0 && self.times[self.head as usize] < delta {
            self.drop_oldest();
        }
        for i in 0..self.len as usize {
            let slot = self.index(i);
            self.times[slot] -= delta;
        }
    }

    /// Twice the median RSSI (so an even count's mean of the two middle readings stays an
    /// integer), when at least `min_samples` readings are in the ring.
    pub fn median_x2(&self, min_samples: usize) -> Option<i16> {
        let n = self.len as usize;
        if n < min_samples.max(1) {
            return None;
        }
        let upper = i16::from(self.sorted[n / 2]);
        if n % 2 == 1 {
            Some(upper * 2)
        } else {
            Some(i16::from(self.sorted[n / 2 - 1]) + upper)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(readings: &[(u32, i8)]) -> ScannerTrack {
        let mut t = ScannerTrack::new(0, 0);
        for &(time, rssi) in readings {
            t.push(time, rssi);
        }
        t
    }

    #[test]
    fn median_needs_min_samples() {
        assert_eq!(track(&[(0, -60), (1, -70)]).median_x2(3), None);
        assert_eq!(
            track(&[(0, -60), (1, -70), (2, -65)]).median_x2(3),
            Some(-130)
        );
    }

    #[test]
    fn even_count_median_is_mean_of_middles() {
        assert_eq!(
            track(&[(0, -60), (1, -70), (2, -64), (3, -90)]).median_x2(1),
            Some(-134)
        );
    }

    #[test]
    fn a_lone_strong_packet_does_not_move_the_median() {
        let t = track(&[(0, -88), (1, -86), (2, -40), (3, -87), (4, -85)]);
        assert_eq!(t.median_x2(3), Some(-172));
    }

    #[test]
    fn median_matches_a_full_sort_through_evictions_and_overflow() {
        let mut t = ScannerTrack::new(0, 0);
        let mut all: Vec<(u32, i8)> = Vec::new();
        for i in 0..200u32 {
            let rssi = -40 - ((i * 37 + i * i) % 50) as i8;
            t.push(i * 400, rssi);
            all.push((i * 400, rssi));
            let cutoff = i64::from(i * 400) - 10_000;
            t.evict_through(cutoff);
            let mut window: Vec<i8> = all
                .iter()
                .filter(|(time, _)| i64::from(*time) > cutoff)
                .map(|(_, r)| *r)
                .collect();
            window = window.split_off(window.len().saturating_sub(CAPACITY));
            window.sort();
            let n = window.len();
            let expected = if n % 2 == 1 {
                i16::from(window[n / 2]) * 2
            } else {
                i16::from(window[n / 2 - 1]) + i16::from(window[n / 2])
            };
            assert_eq!(t.median_x2(1), Some(expected), "after reading {i}");
        }
    }

    #[test]
    fn eviction_and_wraparound_keep_the_newest_readings() {
        let mut t = ScannerTrack::new(0, 0);
        for i in 0..100u32 {
            t.push(i * 100, -(i as i8 % 50) - 40);
        }
        assert_eq!(t.last_time(), Some(9_900));
        t.evict_through(9_000);
        assert_eq!(t.len, 9);
        t.rebase(9_000);
        assert_eq!(t.last_time(), Some(900));
        t.evict_through(10_000);
        assert_eq!(t.len, 0);
    }
}
