//! True paths: piecewise-linear walks and stops on the floor plan, in seconds since the start
//! of the simulated local day. The truth (zone dwell, pass start) is computed from these
//! exactly, and the radio model samples positions from them.

use crate::profile::{Point, Rect};

/// One straight walk (or a stop, when `a == b`) from `t0` to `t1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Leg {
    pub t0: f64,
    pub t1: f64,
    pub a: Point,
    pub b: Point,
}

impl Leg {
    fn at(&self, t: f64) -> Point {
        let span = self.t1 - self.t0;
        if span <= 0.0 {
            return self.b;
        }
        let s = ((t - self.t0) / span).clamp(0.0, 1.0);
        Point::new(
            self.a.x + (self.b.x - self.a.x) * s,
            self.a.y + (self.b.y - self.a.y) * s,
        )
    }
}

/// A person's whole path: contiguous legs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Path {
    pub legs: Vec<Leg>,
    now: f64,
    here: Point,
}

impl Path {
    pub fn new(t: f64, at: Point) -> Path {
        Path {
            legs: Vec::new(),
            now: t,
            here: at,
        }
    }

    pub fn now(&self) -> f64 {
        self.now
    }

    pub fn start(&self) -> f64 {
        self.legs.first().map_or(self.now, |l| l.t0)
    }

    /// Walks in a straight line to `to` at `speed` m/s.
    pub fn walk_to(&mut self, to: Point, speed: f64) {
        let d = self.here.distance(to);
        if d <= 0.0 {
            return;
        }
        let t1 = self.now + d / speed.max(0.1);
        self.legs.push(Leg {
            t0: self.now,
            t1,
            a: self.here,
            b: to,
        });
        self.now = t1;
        self.here = to;
    }

    /// Stands still for `seconds`.
    pub fn stay(&mut self, seconds: f64) {
        if seconds <= 0.0 {
            return;
        }
        let t1 = self.now + seconds;
        self.legs.push(Leg {
            t0: self.now,
            t1,
            a: self.here,
            b: self.here,
        });
        self.now = t1;
    }

    /// Position at `t`; `hint` is the leg index to start looking from (keep it between calls
    /// with increasing `t`).
    pub fn position(&self, t: f64, hint: &mut usize) -> Point {
        while *hint + 1 < self.legs.len() && self.legs[*hint].t1 < t {
            *hint += 1;
        }
        match self.legs.get(*hint) {
            Some(leg) => leg.at(t),
            None => self.here,
        }
    }

    /// First time the path is inside `area`, if ever.
    pub fn first_time_in(&self, area: &Rect) -> Option<f64> {
        for leg in &self.legs {
            if area.contains(leg.a) {
                return Some(leg.t0);
            }
            if let Some(s) = segment_entry(leg.a, leg.b, area) {
                return Some(leg.t0 + s * (leg.t1 - leg.t0));
            }
        }
        None
    }

    /// Partition of `[from, to]` among `areas`: seconds spent in each (a point in no area
    /// counts for the nearest). The parts add up to `to - from`.
    pub fn partition(&self, from: f64, to: f64, areas: &[Rect]) -> Vec<f64> {
        let mut out = vec![0.0; areas.len()];
        if areas.is_empty() {
            return out;
        }
        for leg in &self.legs {
            let (u0, u1) = (leg.t0.max(from), leg.t1.min(to));
            if u1 <= u0 {
                continue;
            }
            let (pa, pb) = (leg.at(u0), leg.at(u1));
            let duration = u1 - u0;
            let mut cuts = vec![0.0, 1.0];
            let (dx, dy) = (pb.x - pa.x, pb.y - pa.y);
            for r in areas {
                for (edge, start, delta) in [
                    (r.x0, pa.x, dx),
                    (r.x1, pa.x, dx),
                    (r.y0, pa.y, dy),
                    (r.y1, pa.y, dy),
                ] {
                    if delta != 0.0 {
                        let s = (edge - start) / delta;
                        if s > 0.0 && s < 1.0 {
                            cuts.push(s);
                        }
                    }
                }
            }
            cuts.sort_by(f64::total_cmp);
            for pair in cuts.windows(2) {
                let (s0, s1) = (pair[0], pair[1]);
                if s1 <= s0 {
                    continue;
                }
                let m = (s0 + s1) / 2.0;
                let mid = Point::new(pa.x + dx * m, pa.y + dy * m);
                out[zone_of(mid, areas)] += (s1 - s0) * duration;
            }
        }
        out
    }
}

/// Index of the area containing `p`, or of the nearest one.
pub(crate) fn zone_of(p: Point, areas: &[Rect]) -> usize {
    if let Some(i) = areas.iter().position(|r| r.contains(p)) {
        return i;
    }
    let mut best = 0;
    for (i, r) in areas.iter().enumerate() {
        if r.distance(p) < areas[best].distance(p) {
            best = i;
        }
    }
    best
}

/// Smallest `s` in `[0, 1]` where the segment `a → b` enters `r` (Liang–Barsky clipping).
fn segment_entry(a: Point, b: Point, r: &Rect) -> Option<f64> {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let (mut s0, mut s1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.x - r.x0),
        (dx, r.x1 - a.x),
        (-dy, a.y - r.y0),
        (dy, r.y1 - a.y),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let s = q / p;
            if p < 0.0 {
                s0 = s0.max(s);
            } else {
                s1 = s1.min(s);
            }
        }
    }
    (s0 <= s1).then_some(s0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_zones() -> Vec<Rect> {
        vec![
            Rect::new(-5.0, 0.0, 5.0, 10.0),
            Rect::new(-5.0, 10.0, 5.0, 20.0),
        ]
    }

    #[test]
    fn walking_between_zones_splits_at_the_boundary() {
        let mut p = Path::new(0.0, Point::new(0.0, 5.0));
        p.stay(30.0);
        p.walk_to(Point::new(0.0, 15.0), 1.0); // 5 s in each zone
        p.stay(60.0);
        let parts = p.partition(0.0, p.now(), &two_zones());
        assert!((parts[0] - 35.0).abs() < 1e-9, "{parts:?}");
        assert!((parts[1] - 65.0).abs() < 1e-9, "{parts:?}");
    }

    #[test]
    fn dwells_of_a_wandering_path_sum_to_its_duration() {
        let mut p = Path::new(100.0, Point::new(0.0, 0.0));
        let spots = [
            (1.0, 3.0),
            (-4.0, 12.0),
            (3.3, 18.0),
            (4.9, 9.9),
            (0.0, 0.0),
        ];
        for (i, (x, y)) in spots.into_iter().enumerate() {
            p.walk_to(Point::new(x, y), 0.9);
            p.stay(7.5 * i as f64);
        }
        let parts = p.partition(p.start(), p.now(), &two_zones());
        let total: f64 = parts.iter().sum();
        assert!((total - (p.now() - p.start())).abs() < 1e-9);
    }

    #[test]
    fn first_time_in_finds_the_crossing_of_the_area_edge() {
        let mut p = Path::new(0.0, Point::new(-30.0, -2.0));
        p.walk_to(Point::new(30.0, -2.0), 1.5);
        let t = p.first_time_in(&Rect::new(-15.0, -6.0, 15.0, 0.0)).unwrap();
        assert!((t - 10.0).abs() < 1e-9, "{t}");
        assert_eq!(p.first_time_in(&Rect::new(-15.0, 0.0, 15.0, 5.0)), None);
    }

    #[test]
    fn position_interpolates_along_legs() {
        let mut p = Path::new(0.0, Point::new(0.0, 0.0));
        p.walk_to(Point::new(10.0, 0.0), 2.0);
        p.stay(5.0);
        let mut hint = 0;
        assert_eq!(p.position(2.5, &mut hint), Point::new(5.0, 0.0));
        assert_eq!(p.position(7.0, &mut hint), Point::new(10.0, 0.0));
    }
}
