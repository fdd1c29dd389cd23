//! The simulated world, one local day at a time: arrivals, paths, purchases, staff, sensors,
//! and the truth of each day.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Poisson};
use storefront_protocol::{
    Alive, DeviceId, DoorCount, DoorEvent, Event, InputKind, Timestamp, Transaction,
};

use crate::path::Path;
#[cfg(test)]
use crate::path::zone_of;
use crate::profile::{Point, Profile, Rect};
use crate::radio::{Carrier, Identity, Radio, mix64};
use crate::truth::{DayTruthBuilder, TruthDay, TruthParams, VisitTruth};

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulationSpec {
    pub profile: Profile,
    pub seed: u64,
    /// Number of local days to simulate.
    pub days: u32,
    /// First local day.
    pub start_date: NaiveDate,
    /// Phones advertise rotating private addresses (new id every ~15 min) instead of one
    /// stable id for the whole run.
    pub mac_rotation: bool,
    pub truth: TruthParams,
}

impl SimulationSpec {
    /// A shipped profile with stable device ids and the default truth parameters.
    pub fn new(profile: Profile, seed: u64, days: u32, start_date: NaiveDate) -> SimulationSpec {
        SimulationSpec {
            profile,
            seed,
            days,
            start_date,
            mac_rotation: false,
            truth: TruthParams::default(),
        }
    }
}

/// One simulated local day.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatedDay {
    pub date: NaiveDate,
    /// Sightings, door counts, transactions and the sensors' signs of life, sorted by time
    /// (stable).
    pub events: Vec<Event>,
    pub truth: TruthDay,
}

/// A shopper the store may see again.
#[derive(Clone, Debug)]
struct Customer {
    device: Option<Device>,
    /// Local dates of visits, oldest first.
    visits: Vec<NaiveDate>,
}

/// A person's phone (or watch): fixed across days.
#[derive(Clone, Copy, Debug)]
struct Device {
    id: DeviceId,
    key: u64,
    tx_power_dbm: f64,
    rotation_period_ms: i64,
    rotation_phase_ms: i64,
}

/// How often the simulated store's POS is polled (the config's default `poll_seconds`).
const POS_POLL_MS: i64 = 30_000;

/// Seeded synthetic store producing events and ground truth, one local day per call.
pub struct Simulator {
    spec: SimulationSpec,
    rng: ChaCha8Rng,
    day: u32,
    customers: Vec<Customer>,
    radio: Radio,
    /// In-store zone ids and areas, in layout order.
    zone_ids: Vec<String>,
    zone_areas: Vec<Rect>,
    /// Scanner position of each in-store zone (browsing spots are around it).
    zone_centres: Vec<Point>,
    storefront_area: Rect,
    hourly: [f64; 24],
}

/// Everything that happens in one day, before it is sorted into events.
struct DayLog {
    events: Vec<Event>,
    crossings: Vec<(i64, bool)>,
    sales: Vec<(i64, i64, bool)>,
}

impl Simulator {
    pub fn new(spec: SimulationSpec) -> Simulator {
        let profile = &spec.profile;
        let in_store: Vec<_> = profile.layout.in_store_zones().collect();
        let zone_ids = in_store.iter().map(|z| z.id.clone()).collect();
        let zone_areas = in_store.iter().map(|z| z.area).collect();
        let zone_centres = in_store
            .iter()
            .map(|z| {
                z.scanner_positions.first().copied().unwrap_or(Point::new(
                    (z.area.x0 + z.area.x1) / 2.0,
                    (z.area.y0 + z.area.y1) / 2.0,
                ))
            })
            .collect();
        let storefront_area = profile
            .layout
            .storefront()
            .map_or(Rect::new(-15.0, -6.0, 15.0, 0.0), |z| z.area);
        let total: f64 = profile.hourly_traffic.iter().sum();
        let hourly = profile
            .hourly_traffic
            .map(|w| if total > 0.0 { w / total } else { 1.0 / 24.0 });
        Simulator {
            radio: Radio::new(profile),
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            day: 0,
            customers: Vec::new(),
            zone_ids,
            zone_areas,
            zone_centres,
            storefront_area,
            hourly,
            spec,
        }
    }

    pub fn layout(&self) -> &crate::Layout {
        &self.spec.profile.layout
    }

    pub fn spec(&self) -> &SimulationSpec {
        &self.spec
    }

    /// Simulates the next local day; `None` after `days` days. Days share state (returning
    /// customers).
    pub fn next_day(&mut self) -> Option<SimulatedDay> {
        if self.day >= self.spec.days {
            return None;
        }
        let date = self
            .spec
            .start_date
            .checked_add_days(chrono::Days::new(u64::from(self.day)))?;
        self.day += 1;
        Some(self.simulate_day(date))
    }

    fn tz(&self) -> Tz {
        self.spec.profile.layout.timezone
    }

    fn local_ms(&self, date: NaiveDate, minutes: u32) -> i64 {
        let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default()
            + chrono::Duration::minutes(i64::from(minutes));
        let tz = self.tz();
        match tz.from_local_datetime(&naive).earliest() {
            Some(t) => t.timestamp_millis(),
            // A local time in a DST gap: an hour later exists.
            None => tz
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
                .map_or(naive.and_utc().timestamp_millis(), |t| t.timestamp_millis()),
        }
    }

    fn simulate_day(&mut self, date: NaiveDate) -> SimulatedDay {
        let day_start = self.local_ms(date, 0);
        let day_end = self.local_ms(date.succ_opt().unwrap_or(date), 0);
        let weekday = date.weekday().num_days_from_monday() as usize;
        let (open_min, close_min) = self.spec.profile.opening_minutes[weekday];
        let open_ms = self.local_ms(date, open_min);
        let close_ms = self.local_ms(date, close_min);
        let mut truth = DayTruthBuilder::new(
            self.tz(),
            self.spec.truth,
            &self.zone_ids,
            day_start,
            day_end,
        );
        let mut log = DayLog {
            events: Vec::new(),
            crossings: Vec::new(),
            sales: Vec::new(),
        };
        let today_first_customer = self.customers.len();

        for arrival in self.arrivals(day_start, day_end, weekday) {
            let p = &self.spec.profile;
            let enters = arrival >= open_ms
                && arrival < close_ms - 60_000
                && self.rng.random::<f64>() < p.enter_probability;
            if enters {
                self.shopper(
                    date,
                    day_start,
                    arrival,
                    today_first_customer,
                    &mut truth,
                    &mut log,
                );
            } else {
                self.passer_by(day_start, day_end, arrival, &mut truth, &mut log);
            }
        }
        for staff in 0..self.spec.profile.staff_count {
            self.staff_member(staff, day_start, open_ms, close_ms, &mut log);
        }

        let DayLog {
            mut events,
            crossings,
            mut sales,
        } = log;
        self.door_events(crossings, open_ms, close_ms, &mut events);
        sales.sort_by_key(|s| s.0);
        let day_label = date.format("%Y%m%d").to_string();
        for (n, (t, amount, sampled)) in sales.into_iter().enumerate() {
            truth.transaction(t, sampled);
            events.push(Event::Transaction(Transaction {
                t: Timestamp(t),
                id: format!("pos-{day_label}-{:05}", n + 1),
                amount_minor: Some(amount),
            }));
        }
        self.signs_of_life(day_start, day_end, &mut events);
        events.sort_by_key(Event::time);
        SimulatedDay {
            date,
            events,
            truth: truth.finish(date.format("%Y-%m-%d").to_string()),
        }
    }

    /// Arrival times (UTC ms) at the shop of everyone walking by today, sorted: a
    /// non-homogeneous Poisson process, piecewise constant per local hour.
    fn arrivals(&mut self, day_start: i64, day_end: i64, weekday: usize) -> Vec<i64> {
        let p = &self.spec.profile;
        let per_day = p.traffic_per_day * p.weekday_factor[weekday];
        let tz = self.tz();
        let mut out = Vec::new();
        let mut t = day_start;
        while t < day_end {
            let end = (t + 3_600_000).min(day_end);
            let local = chrono::DateTime::from_timestamp_millis(t)
                .unwrap_or_default()
                .with_timezone(&tz);
            let lambda =
                per_day * self.hourly[local.hour() as usize] * (end - t) as f64 / 3_600_000.0;
            let n = if lambda > 0.0 {
                Poisson::new(lambda).map_or(0.0, |d| d.sample(&mut self.rng)) as u64
            } else {
                0
            };
            for _ in 0..n {
                out.push(self.rng.random_range(t..end));
            }
            t = end;
        }
        out.sort_unstable();
        out
    }

    fn walk_speed(&mut self) -> f64 {
        let p = &self.spec.profile;
        let normal = Normal::new(p.walk_speed_mps, p.walk_speed_sd_mps.max(1e-6)).ok();
        normal
            .map_or(p.walk_speed_mps, |n| n.sample(&mut self.rng))
            .clamp(0.8, 2.0)
    }

    fn new_device(&mut self) -> Device {
        let p = &self.spec.profile;
        let tx = p.tx_power_dbm
            + (self.rng.sample::<f64, _>(rand_distr::StandardNormal) * p.tx_power_sd_db)
                .clamp(-2.0 * p.tx_power_sd_db, 2.0 * p.tx_power_sd_db);
        let jitter = p.mac_rotation_jitter_s.abs();
        let period_s = p.mac_rotation_s + self.rng.random_range(-jitter..=jitter);
        let period_ms = ((period_s * 1000.0) as i64).max(1000);
        let key = self.rng.random::<u64>();
        Device {
            id: DeviceId(mix64(key)),
            key,
            tx_power_dbm: tx,
            rotation_period_ms: period_ms,
            rotation_phase_ms: self.rng.random_range(0..period_ms),
        }
    }

    fn carrier(&mut self, device: &Device) -> Carrier {
        let identity = if self.spec.mac_rotation {
            Identity::Rotating {
                key: device.key,
                period_ms: device.rotation_period_ms,
                phase_ms: device.rotation_phase_ms,
            }
        } else {
            Identity::Stable(device.id)
        };
        let carry = self.rng.random::<f64>() * self.spec.profile.carry_loss_max_db;
        Carrier {
            identity,
            tx_power_dbm: device.tx_power_dbm,
            tx_field: None,
            carry_loss_db: carry,
        }
    }

    /// A random browsing spot in in-store zone `z`, near its scanner.
    fn spot(&mut self, z: usize) -> Point {
        let radius = self.spec.profile.spot_radius_m;
        let r = (radius * self.rng.random::<f64>().sqrt()).max(0.3);
        let angle = self.rng.random::<f64>() * std::f64::consts::TAU;
        let c = self.zone_centres[z];
        let a = self.zone_areas[z];
        Point::new(
            (c.x + r * angle.cos()).clamp(a.x0 + 0.5, a.x1 - 0.5),
            (c.y + r * angle.sin()).clamp(a.y0.max(1.0) + 0.5, a.y1 - 0.5),
        )
    }

    /// Browses zone `z` for about `dwell` seconds (after walking to its first spot): short
    /// stops at spots near the scanner, slow walks between them.
    fn browse(&mut self, path: &mut Path, z: usize, dwell: f64) {
        let speed = self.spec.profile.store_speed_mps;
        let first = self.spot(z);
        path.walk_to(first, speed);
        let mut remaining = dwell;
        loop {
            let stop = self.rng.random_range(12.0..50.0f64).min(remaining);
            path.stay(stop);
            remaining -= stop;
            if remaining < 8.0 {
                path.stay(remaining);
                return;
            }
            let next = self.spot(z);
            let before = path.now();
            path.walk_to(next, speed);
            remaining -= path.now() - before;
        }
    }

    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        LogNormal::new(median.max(1e-3).ln(), sigma.max(1e-6))
            .map_or(median, |d| d.sample(&mut self.rng))
    }

    fn zone_index(&self, id: &str) -> Option<usize> {
        self.zone_ids.iter().position(|z| z == id)
    }

    /// A shopper walking in at `arrival`.
    fn shopper(
        &mut self,
        date: NaiveDate,
        origin: i64,
        arrival: i64,
        today_first: usize,
        truth: &mut DayTruthBuilder,
        log: &mut DayLog,
    ) {
        let who = self.pick_customer(date, today_first);
        let profile = &self.spec.profile;
        let (bounce_p, buy_p, half, near, far) = (
            profile.bounce_probability,
            profile.purchase_probability,
            profile.walk_half_length_m,
            profile.lane_near_m,
            profile.lane_far_m,
        );
        let door = profile.layout.door;
        let speed = self.walk_speed();

        // Approach along the street, turn into the door at `arrival`.
        let side = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
        let lane = self.rng.random_range(near..far);
        let start = Point::new(
            door.x + side * half * self.rng.random_range(0.5..1.0),
            -lane,
        );
        let turn = Point::new(door.x + side * 1.5, -lane);
        let approach = (start.distance(turn) + turn.distance(door)) / speed;
        let t_enter = (arrival - origin) as f64 / 1000.0;
        let mut path = Path::new(t_enter - approach, start);
        path.walk_to(turn, speed);
        path.walk_to(door, speed);
        let t_enter = path.now();

        // Inside: the zones in walking order.
        let bounce = self.rng.random::<f64>() < bounce_p;
        let buys = !bounce && self.rng.random::<f64>() < buy_p;
        let checkout = self.zone_index(&self.spec.profile.checkout_zone.clone());
        let mut last_zone = None;
        let mut pay_window = None;
        if bounce {
            let dwell = self.lognormal(45.0, 0.45).clamp(12.0, 95.0);
            self.browse(&mut path, 0, dwell);
        } else {
            let plans = self.spec.profile.zone_plans.clone();
            for (i, plan) in plans.iter().enumerate() {
                let Some(z) = self.zone_index(&plan.zone) else {
                    continue;
                };
                let forced = i == 0 || (buys && Some(z) == checkout);
                if !forced && self.rng.random::<f64>() >= plan.visit_probability {
                    continue;
                }
                let dwell = self
                    .lognormal(plan.dwell_median_s, plan.dwell_sigma)
                    .clamp(if i == 0 { 20.0 } else { 15.0 }, 2400.0);
                let begin = path.now();
                self.browse(&mut path, z, dwell);
                if Some(z) == checkout {
                    pay_window = Some((begin, path.now()));
                }
                last_zone = Some(z);
            }
            // Whoever came to shop stays over two minutes: bounces (≤ ~110 s) and visits (≥ 130 s)
            // stay apart by more than any presence-detection lag.
            let least = self.rng.random_range(130.0..220.0);
            if path.now() - t_enter < least {
                path.stay(least - (path.now() - t_enter));
                if let (Some((begin, _)), true) = (pay_window, last_zone == checkout) {
                    pay_window = Some((begin, path.now()));
                }
            }
            if buys && (last_zone != checkout || pay_window.is_none()) {
                if let Some(z) = checkout {
                    let dwell = self.lognormal(90.0, 0.5).clamp(30.0, 900.0);
                    let begin = path.now();
                    self.browse(&mut path, z, dwell);
                    pay_window = Some((begin, path.now()));
                }
            }
        }
        let in_speed = self.spec.profile.store_speed_mps;
        path.walk_to(door, in_speed);
        let t_exit = path.now();

        // Out along the street.
        let side = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
        let lane = self.rng.random_range(near..far);
        path.walk_to(Point::new(door.x + side * 1.5, -lane), speed);
        path.walk_to(
            Point::new(
                door.x + side * half * self.rng.random_range(0.5..1.0),
                -lane,
            ),
            speed,
        );

        // Truth of the visit.
        let params = self.spec.truth;
        let cap = f64::from(params.visit_max_seconds);
        let duration = t_exit - t_enter;
        let capped = duration > cap;
        let counted_end = if capped { t_enter + cap } else { t_exit };
        let parts = path.partition(t_enter, counted_end, &self.zone_areas);
        let customer = &mut self.customers[who];
        let lookback = i64::from(params.repeat_lookback_days);
        let repeat = customer.visits.iter().any(|d| {
            let days = (date - *d).num_days();
            days >= 1 && days <= lookback
        });
        if customer.visits.last() != Some(&date) {
            customer.visits.push(date);
        }
        let device = customer.device;
        let sampled = device.is_some();
        let start_ms = origin + (t_enter * 1000.0).round() as i64;
        truth.visit(&VisitTruth {
            start_ms,
            duration_s: duration.min(cap),
            zone_dwell_s: self
                .zone_ids
                .iter()
                .cloned()
                .zip(parts)
                .filter(|(_, d)| *d > 0.0)
                .collect(),
            capped,
            repeat,
            sampled,
        });
        log.crossings.push((start_ms, true));
        log.crossings
            .push((origin + (t_exit * 1000.0).round() as i64, false));
        if buys {
            if let Some((begin, end)) = pay_window {
                let before_leaving = self
                    .rng
                    .random_range(5.0..((end - begin) / 2.0).clamp(6.0, 40.0));
                let t = (end - before_leaving).max(begin);
                let amount = self.lognormal(
                    self.spec.profile.basket_median_minor,
                    self.spec.profile.basket_sigma,
                );
                log.sales.push((
                    origin + (t * 1000.0).round() as i64,
                    amount.round().max(100.0) as i64,
                    sampled,
                ));
            }
        }
        if let Some(device) = device {
            let carrier = self.carrier(&device);
            self.radio
                .emit(&path, &carrier, origin, &mut self.rng, &mut log.events);
        }
    }

    /// A returning customer (one who has not visited yet today) or a new one; its index.
    fn pick_customer(&mut self, date: NaiveDate, today_first: usize) -> usize {
        if today_first > 0 && self.rng.random::<f64>() < self.spec.profile.repeat_probability {
            for _ in 0..8 {
                let i = self.rng.random_range(0..today_first);
                if self.customers[i].visits.last() != Some(&date) {
                    return i;
                }
            }
        }
        let device =
            (self.rng.random::<f64>() < self.spec.profile.device_share).then(|| self.new_device());
        self.customers.push(Customer {
            device,
            visits: Vec::new(),
        });
        self.customers.len() - 1
    }

    /// Someone walking past (passing the shop's centre at `arrival`), maybe stopping at the
    /// window.
    fn passer_by(
        &mut self,
        origin: i64,
        day_end: i64,
        arrival: i64,
        truth: &mut DayTruthBuilder,
        log: &mut DayLog,
    ) {
        let p = &self.spec.profile;
        let (half, near, far, window_share) = (
            p.walk_half_length_m,
            p.lane_near_m,
            p.lane_far_m,
            p.window_shopper_share,
        );
        let door = p.layout.door;
        let area = self.storefront_area;
        let centre = (area.x0 + area.x1) / 2.0;
        let speed = self.walk_speed();
        let side = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
        let lane = self.rng.random_range(near..far);
        let start = Point::new(centre - side * half, -lane);
        let end = Point::new(centre + side * half, -lane);
        let t_mid = (arrival - origin) as f64 / 1000.0;
        let mut path = Path::new(t_mid - half / speed, start);
        if self.rng.random::<f64>() < window_share {
            let x = door.x + self.rng.random_range(-4.0..4.0);
            path.walk_to(Point::new(x, -lane), speed);
            path.walk_to(Point::new(x, -0.8), speed);
            let look = self.lognormal(15.0, 0.6).clamp(3.0, 120.0);
            path.stay(look);
            path.walk_to(Point::new(x, -lane), speed);
        }
        path.walk_to(end, speed);
        // Keep every pass inside its local day.
        if path.start() < 0.0 || origin + (path.now() * 1000.0) as i64 >= day_end {
            return;
        }
        let Some(t_pass) = path.first_time_in(&area) else {
            return;
        };
        let device =
            (self.rng.random::<f64>() < self.spec.profile.device_share).then(|| self.new_device());
        truth.pass(origin + (t_pass * 1000.0).round() as i64, device.is_some());
        if let Some(device) = device {
            let carrier = self.carrier(&device);
            self.radio
                .emit(&path, &carrier, origin, &mut self.rng, &mut log.events);
        }
    }

    /// A staff member: in before opening, moving between zones all day, out after closing.
    fn staff_member(
        &mut self,
        n: usize,
        origin: i64,
        open_ms: i64,
        close_ms: i64,
        log: &mut DayLog,
    ) {
        let Some(&badge) = self.spec.profile.layout.staff_devices.get(n) else {
            return;
        };
        let door = self.spec.profile.layout.door;
        let speed = self.walk_speed();
        let in_speed = self.spec.profile.store_speed_mps;
        let arrive = (open_ms - origin) as f64 / 1000.0 - self.rng.random_range(600.0..1200.0);
        let leave = (close_ms - origin) as f64 / 1000.0 + self.rng.random_range(600.0..1200.0);
        let start = Point::new(door.x + 20.0, -2.0);
        let mut path = Path::new(arrive - start.distance(door) / speed, start);
        path.walk_to(door, speed);
        let t_in = path.now();
        let checkout = self
            .zone_index(&self.spec.profile.checkout_zone.clone())
            .unwrap_or(0);
        let zones = self.zone_ids.len().max(1);
        while path.now() < leave {
            let z = if self.rng.random::<f64>() < 0.4 {
                checkout
            } else {
                self.rng.random_range(0..zones)
            };
            let dwell = self
                .lognormal(300.0, 0.7)
                .clamp(30.0, 3600.0)
                .min(leave - path.now() + 1.0);
            self.browse(&mut path, z, dwell);
        }
        path.walk_to(door, in_speed);
        let t_out = path.now();
        path.walk_to(start, speed);
        log.crossings.push((origin + (t_in * 1000.0) as i64, true));
        log.crossings
            .push((origin + (t_out * 1000.0) as i64, false));
        let carrier = Carrier {
            identity: Identity::Stable(badge),
            tx_power_dbm: -59.0,
            tx_field: Some(-59),
            carry_loss_db: 0.0,
        };
        self.radio
            .emit(&path, &carrier, origin, &mut self.rng, &mut log.events);
    }

    /// Every sensor says it is alive all day, as real ones do while powered: each scanner and
    /// the door counter every 30–60 s (a status or heartbeat message), the POS at every poll
    /// that found nothing new. The jitter comes from a hash of the time, not the seeded
    /// stream, so the rest of the day (and its truth) is the same with or without these.
    fn signs_of_life(&self, day_start: i64, day_end: i64, events: &mut Vec<Event>) {
        let layout = &self.spec.profile.layout;
        let mut sources: Vec<(InputKind, &str)> = layout
            .scanners()
            .map(|(id, _, _)| (InputKind::Ble, id))
            .collect();
        sources.extend(
            layout
                .door_sensor
                .iter()
                .map(|id| (InputKind::Door, id.as_str())),
        );
        for (n, (input, source)) in sources.into_iter().enumerate() {
            let mut t = day_start;
            while t < day_end {
                events.push(Event::Alive(Alive {
                    t: Timestamp(t),
                    input,
                    source: source.to_owned(),
                }));
                let jitter = mix64(self.spec.seed ^ ((n as u64) << 48) ^ t as u64) % 30_001;
                t += 30_000 + jitter as i64;
            }
        }
        let mut t = day_start;
        while t < day_end {
            events.push(Event::Alive(Alive {
                t: Timestamp(t),
                input: InputKind::Pos,
                source: layout.pos_system.clone(),
            }));
            t += POS_POLL_MS;
        }
    }

    /// The footfall sensor's per-minute counts, with its misses.
    fn door_events(
        &mut self,
        crossings: Vec<(i64, bool)>,
        open_ms: i64,
        close_ms: i64,
        events: &mut Vec<Event>,
    ) {
        let Some(sensor) = self.spec.profile.layout.door_sensor.clone() else {
            return;
        };
        let interval = self.spec.profile.door_interval_s.max(1) * 1000;
        let mut bins: BTreeMap<i64, (u32, u32)> = BTreeMap::new();
        let mut t = (open_ms - 1_800_000).div_euclid(interval) * interval;
        while t < close_ms + 1_800_000 {
            bins.insert(t + interval, (0, 0));
            t += interval;
        }
        for (t, inward) in crossings {
            if self.rng.random::<f64>() < self.spec.profile.door_miss_rate {
                continue;
            }
            // Interval (end - interval, end], reported at its end.
            let end = (t - 1).div_euclid(interval) * interval + interval;
            let bin = bins.entry(end).or_default();
            if inward {
                bin.0 += 1;
            } else {
                bin.1 += 1;
            }
        }
        for (end, (entered, exited)) in bins {
            events.push(Event::Door(DoorEvent {
                t: Timestamp(end),
                sensor: sensor.clone(),
                record: Some(format!("{sensor}-{}", end / 1000)),
                count: DoorCount::Interval { entered, exited },
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProfileName, SimulationSpec};

    #[test]
    fn dwells_of_each_visit_sum_to_its_duration() {
        for name in ProfileName::ALL {
            let start = NaiveDate::from_ymd_opt(2025, 11, 24).unwrap();
            let mut sim = Simulator::new(SimulationSpec::new(Profile::named(name), 3, 1, start));
            let day_start = sim.local_ms(start, 0);
            let day_end = sim.local_ms(start.succ_opt().unwrap(), 0);
            let mut truth =
                DayTruthBuilder::new(sim.tz(), sim.spec.truth, &sim.zone_ids, day_start, day_end);
            let mut log = DayLog {
                events: Vec::new(),
                crossings: Vec::new(),
                sales: Vec::new(),
            };
            for i in 0..200 {
                let arrival = day_start + 12 * 3_600_000 + i * 10_000;
                sim.shopper(start, day_start, arrival, 0, &mut truth, &mut log);
            }
            assert_eq!(truth.visits.len(), 200);
            for v in &truth.visits {
                let total: f64 = v.zone_dwell_s.values().sum();
                assert!(
                    (total - v.duration_s).abs() < 1e-6,
                    "{name}: {total} vs {}",
                    v.duration_s
                );
                assert!(
                    v.zone_dwell_s.contains_key("entrance"),
                    "{name}: every visit crosses the entrance"
                );
            }
            // Every visit enters and leaves through the door.
            assert_eq!(log.crossings.len(), 400);
        }
    }

    #[test]
    fn browsing_spots_lie_in_their_zone() {
        let start = NaiveDate::from_ymd_opt(2025, 11, 24).unwrap();
        let mut sim = Simulator::new(SimulationSpec::new(
            Profile::named(ProfileName::Mall),
            3,
            1,
            start,
        ));
        for z in 0..sim.zone_ids.len() {
            for _ in 0..500 {
                let p = sim.spot(z);
                assert_eq!(zone_of(p, &sim.zone_areas), z);
                assert!(p.distance(sim.zone_centres[z]) <= sim.spec.profile.spot_radius_m + 1e-9);
            }
        }
    }
}
