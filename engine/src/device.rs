//! One device's state machine: smoothing per scanner, presence per zone, its current pass and
//! visit. It reports what happens through a [`Sink`]; the engine turns that into windows.
//!
//! Every rule here is a line of `METRICS.md`; the comments quote which.

use crate::smoothing::ScannerTrack;

/// Thresholds the state machine needs, pre-converted (RSSI thresholds doubled to compare with
/// doubled medians).
#[derive(Clone, Debug)]
pub struct Params {
    pub smoothing_ms: i64,
    pub min_samples: usize,
    pub confirm_ms: i64,
    pub presence_timeout_ms: i64,
    pub visit_gap_ms: i64,
    pub visit_max_ms: i64,
    pub zones: Vec<ZoneParams>,
}

#[derive(Clone, Debug)]
pub struct ZoneParams {
    pub in_store: bool,
    pub enter_x2: i16,
    pub exit_x2: i16,
}

/// A finished visit, as the engine needs it for the window it started in.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VisitRecord {
    pub start: i64,
    pub duration_ms: i64,
    pub capped: bool,
    /// Dwell per zone index, ms; sums to `duration_ms`.
    pub dwell_ms: Vec<i64>,
}

/// Receives what a device's readings mean.
pub trait Sink {
    fn pass_opened(&mut self, start: i64);
    /// The pass that started at `start` is decided: a passer-by, or it became an entry.
    fn pass_resolved(&mut self, start: i64, passer_by: bool);
    fn visit_opened(&mut self, start: i64);
    fn visit_closed(&mut self, visit: VisitRecord);
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct ZonePresence {
    present: bool,
    /// First reading of the current run at or above the enter threshold.
    run_start: Option<i64>,
    last_reading: i64,
    smoothed_x2: Option<i16>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Pass {
    start: i64,
    entered: bool,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Visit {
    start: i64,
    last_presence: i64,
    last_instore_reading: i64,
    current_zone: u8,
    dwell_ms: Vec<i64>,
    /// Time since the last in-store presence, owed to `current_zone` if the device shows up
    /// present again before the visit ends (a brief dip does not stop the clock).
    unconfirmed_ms: i64,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DeviceState {
    /// Time base for the smoothing rings' `u32` offsets.
    base: i64,
    tracks: Vec<ScannerTrack>,
    zones: Vec<(u8, ZonePresence)>,
    last_heard: i64,
    pass: Option<Pass>,
    visit: Option<Visit>,
    /// After a capped visit no new visit may start until the device has been absent from the
    /// store for the visit gap: a resident device is one capped visit, not one every 3 hours.
    capped_until: Option<i64>,
    pub stable_address: bool,
}

const REBASE_AFTER_MS: i64 = 1 << 31;

impl DeviceState {
    pub fn new(now: i64, stable_address: bool) -> Self {
        DeviceState {
            base: now,
            tracks: Vec::new(),
            zones: Vec::new(),
            last_heard: now,
            pass: None,
            visit: None,
            capped_until: None,
            stable_address,
        }
    }

    fn zone_mut(&mut self, zone: u8) -> &mut ZonePresence {
        let i = match self.zones.iter().position(|(z, _)| *z == zone) {
            Some(i) => i,
            None => {
                // Exact growth: a device is heard by a handful of zones, and memory per
                // tracked device is what bounds a gateway.
                self.zones.reserve_exact(1);
                self.zones.push((zone, ZonePresence::default()));
                self.zones.len() - 1
            }
        };
        &mut self.zones[i].1
    }

    /// The in-store zone the device is in: "when several in-store zones hear a device, it is
    /// in the zone with the strongest smoothed RSSI". Candidates are the zones the device is
    /// present in and the zone it is in now: a fade that ends presence in the current zone
    /// hands the time to another zone only if that zone hears the device better, and a zone
    /// must confirm presence before it can take the time, like an entry.
    fn strongest_zone(&self, current: u8, now: i64, p: &Params) -> u8 {
        self.zones
            .iter()
            .filter(|(z, zp)| p.zones[*z as usize].in_store && (zp.present || *z == current))
            .filter(|(_, zp)| now - zp.last_reading < p.smoothing_ms)
            .filter_map(|(z, zp)| Some((zp.smoothed_x2?, std::cmp::Reverse(*z))))
            .max()
            .map_or(current, |(_, std::cmp::Reverse(z))| z)
    }

    fn any_present_in_store(&self, p: &Params) -> bool {
        self.zones
            .iter()
            .any(|(z, zp)| zp.present && p.zones[*z as usize].in_store)
    }

    /// Applies every rule that fires by the passing of time alone. Safe to call at any time
    /// not before the last reading, any number of times.
    pub fn expire(&mut self, now: i64, p: &Params, sink: &mut impl Sink) {
        for (_, zp) in &mut self.zones {
            // "nothing is heard for presence_timeout_seconds" ends presence.
            if zp.present && now - zp.last_reading > p.presence_timeout_ms {
                zp.present = false;
            }
            // A run needs fresh readings; once its smoothing window is empty it is over.
            if !zp.present && now - zp.last_reading >= p.smoothing_ms {
                zp.run_start = None;
            }
        }
        let present = self.any_present_in_store(p);
        if let Some(visit) = &self.visit {
            // "Visits longer than visit_max_seconds are closed at the cap."
            let over_cap = visit.last_presence - visit.start >= p.visit_max_ms
                || (present && now - visit.start >= p.visit_max_ms);
            if over_cap {
                self.close_visit(true, p, sink);
            } else if !present && now - visit.last_presence >= p.visit_gap_ms {
                // "A visit ends when the device has not been present in any in-store zone for
                // visit_gap_seconds; its end time is the last in-store presence."
                self.close_visit(false, p, sink);
            }
        }
        if let Some(until) = self.capped_until {
            if !present && now - until >= p.visit_gap_ms {
                self.capped_until = None;
            }
        }
        if let Some(pass) = &self.pass {
            // "a pass ends after visit_gap_seconds of silence"; an undecided pass is also
            // decided at the visit cap so a device parked outside cannot hold a window open.
            let silent = now - self.last_heard >= p.visit_gap_ms;
            let overlong = !pass.entered && now - pass.start >= p.visit_max_ms;
            if silent || overlong {
                if !pass.entered {
                    sink.pass_resolved(pass.start, true);
                }
                self.pass = None;
            }
        }
    }

    fn close_visit(&mut self, capped: bool, p: &Params, sink: &mut impl Sink) {
        let Some(mut visit) = self.visit.take() else {
            return;
        };
        let mut duration_ms = visit.last_presence - visit.start;
        if capped || duration_ms > p.visit_max_ms {
            // Closed at the cap: trim the excess from the latest zones back.
            let mut excess = duration_ms - p.visit_max_ms;
            duration_ms = p.visit_max_ms;
            let current = visit.current_zone as usize;
            let order =
                std::iter::once(current).chain((0..visit.dwell_ms.len()).filter(|z| *z != current));
            for z in order {
                let cut = excess.min(visit.dwell_ms[z]);
                visit.dwell_ms[z] -= cut;
                excess -= cut;
            }
            self.capped_until = Some(visit.last_presence);
            sink.visit_closed(VisitRecord {
                start: visit.start,
                duration_ms,
                capped: true,
                dwell_ms: visit.dwell_ms,
            });
        } else {
            sink.visit_closed(VisitRecord {
                start: visit.start,
                duration_ms,
                capped: false,
                dwell_ms: visit.dwell_ms,
            });
        }
    }

    /// One sighting at or above the detection threshold, in time order for this device.
    pub fn on_reading(
        &mut self,
        now: i64,
        scanner: u16,
        zone: u8,
        rssi: i8,
        p: &Params,
        sink: &mut impl Sink,
    ) {
        self.expire(now, p, sink);
        if self.pass.is_none() {
            self.pass = Some(Pass {
                start: now,
                entered: false,
            });
            sink.pass_opened(now);
        }
        self.last_heard = now;

        if now - self.base >= REBASE_AFTER_MS {
            let delta = (now - self.base - p.smoothing_ms).max(0);
            for track in &mut self.tracks {
                track.rebase(delta as u32);
            }
            self.base += delta;
        }
        let offset = (now - self.base) as u32;
        let track = match self.tracks.iter().position(|t| t.scanner == scanner) {
            Some(i) => &mut self.tracks[i],
            None => {
                self.tracks.reserve_exact(1);
                self.tracks.push(ScannerTrack::new(scanner, zone));
                self.tracks.last_mut().expect("just pushed")
            }
        };
        track.evict_through(i64::from(offset) - p.smoothing_ms);
        track.push(offset, rssi);
        let median = track.median_x2(p.min_samples);
        // A zone's smoothed RSSI is the best of its scanners'.
        let smoothed = self
            .tracks
            .iter()
            .filter(|t| t.zone == zone && t.scanner != scanner)
            .filter(|t| {
                t.last_time()
                    .is_some_and(|last| i64::from(offset) - i64::from(last) < p.smoothing_ms)
            })
            .filter_map(|t| t.median_x2(p.min_samples))
            .fold(median, |best, m| Some(best.map_or(m, |b| b.max(m))));

        let zp_params = &p.zones[zone as usize];
        let (enter_x2, exit_x2, in_store) =
            (zp_params.enter_x2, zp_params.exit_x2, zp_params.in_store);
        let zp = self.zone_mut(zone);
        zp.last_reading = now;
        zp.smoothed_x2 = smoothed;
        let mut became_present_from = None;
        if !zp.present {
            match smoothed {
                Some(m) if m >= enter_x2 => {
                    let run_start = *zp.run_start.get_or_insert(now);
                    if now - run_start >= p.confirm_ms {
                        zp.present = true;
                        became_present_from = Some(run_start);
                    }
                }
                _ => zp.run_start = None,
            }
        } else if smoothed.is_some_and(|m| m < exit_x2) {
            zp.present = false;
            zp.run_start = None;
        }

        if !in_store {
            return;
        }
        if let Some(visit) = &mut self.visit {
            visit.unconfirmed_ms += now - visit.last_instore_reading;
            visit.last_instore_reading = now;
        }
        if !self.any_present_in_store(p) {
            return;
        }
        if let Some(until) = &mut self.capped_until {
            *until = now;
            return;
        }
        let strongest = self
            .visit
            .as_ref()
            .map(|v| self.strongest_zone(v.current_zone, now, p));
        match &mut self.visit {
            Some(visit) => {
                visit.dwell_ms[visit.current_zone as usize] += visit.unconfirmed_ms;
                visit.unconfirmed_ms = 0;
                visit.last_presence = now;
                visit.current_zone = strongest.unwrap_or(visit.current_zone);
            }
            None => {
                // "Entry: a device becomes present in any in-store zone. The visit starts at
                // that moment" — presence starts at the first reading of the confirming run.
                let start = became_present_from.unwrap_or(now);
                let mut dwell_ms = vec![0; p.zones.len()];
                dwell_ms[zone as usize] = now - start;
                self.visit = Some(Visit {
                    start,
                    last_presence: now,
                    last_instore_reading: now,
                    current_zone: zone,
                    dwell_ms,
                    unconfirmed_ms: 0,
                });
                sink.visit_opened(start);
                if let Some(pass) = &mut self.pass {
                    if !pass.entered {
                        pass.entered = true;
                        sink.pass_resolved(pass.start, false);
                    }
                }
            }
        }
    }

    /// True when nothing about this device can change any figure any more.
    pub fn is_idle(&self) -> bool {
        self.pass.is_none()
            && self.visit.is_none()
            && self.capped_until.is_none()
            && self.zones.iter().all(|(_, z)| !z.present)
    }

    /// True when losing this device loses no visit: it was never confirmed present in-store
    /// (no visit open, not held out after a capped one).
    pub fn sheddable(&self) -> bool {
        self.visit.is_none() && self.capped_until.is_none()
    }

    pub fn last_heard(&self) -> i64 {
        self.last_heard
    }

    /// Lets the device go (at a limit): its undecided pass no longer holds its window open,
    /// and counts as nothing — whether it was a passer-by is unknown.
    pub fn shed(self, sink: &mut impl Sink) {
        if let Some(pass) = self.pass {
            if !pass.entered {
                sink.pass_resolved(pass.start, false);
            }
        }
    }

    /// Re-indexes the state for a changed config (a restored checkpoint): `scanners[old]` is
    /// the scanner's new `(index, zone)` and `zones[old]` the zone's new index, `None` when
    /// removed. What was heard by a removed scanner or zone is dropped; a visit whose current
    /// zone was removed carries on in an in-store zone it is present in, else the first one.
    pub fn remap(&mut self, scanners: &[Option<(u16, u8)>], zones: &[Option<u8>], p: &Params) {
        self.tracks.retain_mut(|track| {
            match scanners.get(usize::from(track.scanner)).copied().flatten() {
                Some((scanner, zone)) => {
                    track.scanner = scanner;
                    track.zone = zone;
                    true
                }
                None => false,
            }
        });
        let new_zone = |z: u8| zones.get(usize::from(z)).copied().flatten();
        self.zones.retain_mut(|(z, _)| match new_zone(*z) {
            Some(new) => {
                *z = new;
                true
            }
            None => false,
        });
        let in_store = |z: u8| p.zones.get(usize::from(z)).is_some_and(|zp| zp.in_store);
        let present = self
            .zones
            .iter()
            .find(|(z, zp)| zp.present && in_store(*z))
            .map(|(z, _)| *z);
        let first_in_store = (0..=u8::MAX).find(|z| in_store(*z)).unwrap_or(0);
        if let Some(visit) = &mut self.visit {
            let mut dwell_ms = vec![0; p.zones.len()];
            for (old, ms) in visit.dwell_ms.iter().enumerate() {
                if let Some(new) = u8::try_from(old).ok().and_then(new_zone) {
                    dwell_ms[usize::from(new)] = *ms;
                }
            }
            visit.dwell_ms = dwell_ms;
            visit.current_zone = new_zone(visit.current_zone)
                .or(present)
                .unwrap_or(first_in_store);
        }
    }

    /// True while the device is present in an in-store zone (for live occupancy).
    pub fn in_store(&self, p: &Params) -> bool {
        self.visit.is_some() && self.any_present_in_store(p)
    }
}
