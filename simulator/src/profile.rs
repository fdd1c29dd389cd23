//! Store profiles: the layout a real installer would set up, and every parameter of the world
//! (traffic, behaviour, radio). The figures and their sources are in the crate docs.

use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;
use storefront_protocol::DeviceId;

/// The three shipped store profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProfileName {
    /// Small fashion boutique on a Paris shopping street; no door counter.
    Boutique,
    /// Busy fashion store in a New Jersey mall, facing the mall corridor; door counter.
    Mall,
    /// High-street store in London: many passers-by, low capture rate; door counter.
    Street,
}

impl ProfileName {
    pub const ALL: [ProfileName; 3] = [
        ProfileName::Boutique,
        ProfileName::Mall,
        ProfileName::Street,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileName::Boutique => "boutique",
            ProfileName::Mall => "mall",
            ProfileName::Street => "street",
        }
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A profile name that is not one of `boutique`, `mall`, `street`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown store profile {0:?} (expected boutique, mall or street)")]
pub struct UnknownProfile(pub String);

impl FromStr for ProfileName {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProfileName::ALL
            .into_iter()
            .find(|name| name.as_str() == s)
            .ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

/// A point on the floor plan, metres. `y < 0` is outside (street or mall corridor), `y >= 0`
/// is inside the store; the shopfront is the line `y = 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub const fn new(x: f64, y: f64) -> Point {
        Point { x, y }
    }

    pub fn distance(self, other: Point) -> f64 {
        (self.x - other.x).hypot(self.y - other.y)
    }

    /// Outside the shopfront (street or corridor side).
    pub fn is_outside(self) -> bool {
        self.y < 0.0
    }
}

/// An axis-aligned rectangle on the floor plan, metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub const fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Rect {
        Rect { x0, y0, x1, y1 }
    }

    pub fn contains(&self, p: Point) -> bool {
        p.x >= self.x0 && p.x <= self.x1 && p.y >= self.y0 && p.y <= self.y1
    }

    /// Distance from `p` to the rectangle (0 inside).
    pub fn distance(&self, p: Point) -> f64 {
        let dx = (self.x0 - p.x).max(p.x - self.x1).max(0.0);
        let dy = (self.y0 - p.y).max(p.y - self.y1).max(0.0);
        dx.hypot(dy)
    }
}

/// The store as configured: what a matching agent config must name.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub store_id: String,
    /// The store's local time zone: windows and days are aligned to it.
    pub timezone: Tz,
    /// The storefront zone first, then the in-store zones in the order shoppers usually walk.
    pub zones: Vec<ZoneLayout>,
    /// Footfall sensor over the door, when the store has one.
    pub door_sensor: Option<String>,
    /// The POS system's id (the `source` of its signs of life).
    pub pos_system: String,
    /// Staff badges (stable beacon identities, the same for every seed): config lists them so
    /// the engine never counts them.
    pub staff_devices: Vec<DeviceId>,
    /// The door in the shopfront line (`y = 0`): every entry and exit crosses here.
    pub door: Point,
}

impl Layout {
    /// The storefront zone.
    pub fn storefront(&self) -> Option<&ZoneLayout> {
        self.zones.iter().find(|z| z.storefront)
    }

    /// In-store zones, in layout order.
    pub fn in_store_zones(&self) -> impl Iterator<Item = &ZoneLayout> {
        self.zones.iter().filter(|z| !z.storefront)
    }

    /// Every scanner with its position and zone id.
    pub fn scanners(&self) -> impl Iterator<Item = (&str, Point, &str)> {
        self.zones.iter().flat_map(|z| {
            z.scanners
                .iter()
                .zip(&z.scanner_positions)
                .map(move |(id, p)| (id.as_str(), *p, z.id.as_str()))
        })
    }
}

/// One zone of the layout.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneLayout {
    pub id: String,
    /// The zone outside the shopfront where passers-by are counted.
    pub storefront: bool,
    /// Scanner ids in this zone (one per zone in the shipped profiles).
    pub scanners: Vec<String>,
    /// Where each scanner hangs (same order as `scanners`), at `Profile::scanner_height_m`
    /// above the shoppers' phones.
    pub scanner_positions: Vec<Point>,
    /// The zone's floor area. In-store zones partition the shop floor; the storefront area is
    /// the stretch of pavement / corridor in front of the shop where a pass is counted.
    pub area: Rect,
}

/// How shoppers use one in-store zone. Non-bouncing visits go through the plans in order,
/// each zone with its probability.
#[derive(Clone, Debug, PartialEq)]
pub struct ZonePlan {
    pub zone: String,
    /// Probability that a non-bouncing shopper stops in this zone (the entrance zone is always
    /// visited; the checkout zone is always visited by buyers).
    pub visit_probability: f64,
    /// Median of the lognormal dwell in the zone, seconds.
    pub dwell_median_s: f64,
    /// Log-space standard deviation of the dwell.
    pub dwell_sigma: f64,
}

/// Every parameter of a simulated store. `Profile::named` gives the three shipped ones; the
/// crate docs give the sources of the figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: ProfileName,
    pub layout: Layout,
    /// How shoppers use each in-store zone, in walking order.
    pub zone_plans: Vec<ZonePlan>,
    /// The in-store zone where purchases are paid.
    pub checkout_zone: String,
    /// Staff working in the store during opening hours.
    pub staff_count: usize,
    /// Opening hours per weekday (Monday first): local minutes since midnight `[open, close)`.
    pub opening_minutes: [(u32, u32); 7],

    /// People walking through the storefront area on a Monday-to-Friday day (before the
    /// weekday factor); entrants are drawn from them.
    pub traffic_per_day: f64,
    /// Relative pedestrian flow per local hour (0..24); normalised internally.
    pub hourly_traffic: [f64; 24],
    /// Traffic multiplier per weekday, Monday first.
    pub weekday_factor: [f64; 7],
    /// Probability that a passer-by walks in, while the store is open (capture rate).
    pub enter_probability: f64,
    /// Share of passers-by who stop at the shop window without entering.
    pub window_shopper_share: f64,
    /// Share of entrants who only glance around the entrance and leave within two minutes.
    pub bounce_probability: f64,
    /// Probability that a non-bouncing entrant buys.
    pub purchase_probability: f64,
    /// Median basket, minor currency units (lognormal).
    pub basket_median_minor: f64,
    pub basket_sigma: f64,
    /// Probability that an entrant is a returning customer from an earlier day.
    pub repeat_probability: f64,

    /// Share of people carrying a device that advertises over BLE (all BLE can see).
    pub device_share: f64,
    /// Walking speed outside, m/s (mean and standard deviation, per person).
    pub walk_speed_mps: f64,
    pub walk_speed_sd_mps: f64,
    /// Walking speed between spots inside the shop, m/s.
    pub store_speed_mps: f64,
    /// Lateral distance band of pedestrian lanes from the shopfront, metres (near, far).
    pub lane_near_m: f64,
    pub lane_far_m: f64,
    /// Half-length of the walk along the street / corridor either side of the door, metres.
    pub walk_half_length_m: f64,
    /// Browsing spots lie within this distance (horizontal) of the zone's scanner.
    pub spot_radius_m: f64,

    /// Mean calibrated power at 1 m of shoppers' devices, dBm, and its spread across models.
    pub tx_power_dbm: f64,
    pub tx_power_sd_db: f64,
    /// Extra loss from carrying the phone in a pocket or bag: uniform in `[0, max]` per visit.
    pub carry_loss_max_db: f64,
    /// Log-distance path-loss exponent inside the shop.
    pub path_loss_exponent_indoor: f64,
    /// Log-distance path-loss exponent on the street / in the corridor.
    pub path_loss_exponent_outdoor: f64,
    /// Attenuation of the shopfront (glass, window display) between outside and inside, dB.
    pub wall_loss_db: f64,
    /// Standard deviation of per-packet shadowing / fading, dB.
    pub shadowing_sigma_db: f64,
    /// Standard deviation of slow fading (body shadowing as the shopper turns, people passing
    /// in between), dB: a time-correlated offset per (device, scanner) on top of the per-packet
    /// noise.
    pub slow_fading_sigma_db: f64,
    /// Correlation time of the slow fading, seconds.
    pub slow_fading_time_s: f64,
    /// Share of a scanner's per-second reports that are lost.
    pub packet_loss: f64,
    /// How often a scanner reports a device it hears, milliseconds (jittered).
    pub report_interval_ms: i64,
    /// Readings weaker than this are never reported (receiver sensitivity), dBm.
    pub sensitivity_dbm: f64,
    /// Height of scanners above the shoppers' phones, metres.
    pub scanner_height_m: f64,

    /// Private-address rotation period of phones, seconds, and its jitter (uniform ±).
    pub mac_rotation_s: f64,
    pub mac_rotation_jitter_s: f64,
    /// Share of door crossings the footfall sensor misses.
    pub door_miss_rate: f64,
    /// Reporting interval of the footfall sensor, seconds.
    pub door_interval_s: i64,
}

/// Staff badge ids: constants, independent of the seed, so config files can list them.
pub const STAFF_DEVICE_BASE: u64 = 0x5354_4146_4600_0001;

fn staff_devices(n: usize) -> Vec<DeviceId> {
    (0..n as u64)
        .map(|i| DeviceId(STAFF_DEVICE_BASE + i))
        .collect()
}

fn zone(id: &str, storefront: bool, scanner: Point, area: Rect) -> ZoneLayout {
    ZoneLayout {
        id: id.to_owned(),
        storefront,
        scanners: vec![format!("{id}-1")],
        scanner_positions: vec![scanner],
        area,
    }
}

fn plan(zone: &str, visit_probability: f64, dwell_median_s: f64, dwell_sigma: f64) -> ZonePlan {
    ZonePlan {
        zone: zone.to_owned(),
        visit_probability,
        dwell_median_s,
        dwell_sigma,
    }
}

/// Pedestrian flow on a shopping street by local hour: night trickle, a lunchtime peak and a
/// late-afternoon peak (Springboard / ShopperTrak footfall curves).
const STREET_HOURS: [f64; 24] = [
    0.4, 0.25, 0.15, 0.1, 0.1, 0.2, 0.6, 1.6, 3.0, 4.2, 5.5, 6.8, 8.2, 8.4, 7.4, 7.2, 7.8, 8.3,
    7.2, 5.2, 3.4, 2.2, 1.3, 0.7,
];

/// Mall corridor flow: the mall is shut at night (cleaners and security only), opens at 9.
const MALL_HOURS: [f64; 24] = [
    0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.05, 0.15, 0.5, 1.5, 4.0, 6.0, 8.0, 8.4, 7.6, 7.4, 7.8,
    8.2, 8.0, 7.0, 5.4, 3.2, 0.8, 0.1,
];

impl Profile {
    pub fn named(name: ProfileName) -> Profile {
        match name {
            ProfileName::Boutique => boutique(),
            ProfileName::Mall => mall(),
            ProfileName::Street => street(),
        }
    }

    /// Parameters shared by the three profiles (radio, people); each profile overrides the rest.
    fn base(name: ProfileName, layout: Layout) -> Profile {
        Profile {
            name,
            layout,
            zone_plans: Vec::new(),
            checkout_zone: String::new(),
            staff_count: 1,
            opening_minutes: [(600, 1140); 7],
            traffic_per_day: 1000.0,
            hourly_traffic: STREET_HOURS,
            weekday_factor: [0.9, 0.9, 1.0, 1.0, 1.1, 1.5, 0.7],
            enter_probability: 0.1,
            window_shopper_share: 0.08,
            bounce_probability: 0.3,
            purchase_probability: 0.3,
            basket_median_minor: 5000.0,
            basket_sigma: 0.6,
            repeat_probability: 0.15,
            device_share: 0.45,
            walk_speed_mps: 1.34,
            walk_speed_sd_mps: 0.2,
            store_speed_mps: 0.9,
            lane_near_m: 0.8,
            lane_far_m: 5.0,
            walk_half_length_m: 28.0,
            spot_radius_m: 2.5,
            tx_power_dbm: -59.0,
            tx_power_sd_db: 1.5,
            carry_loss_max_db: 3.0,
            path_loss_exponent_indoor: 2.2,
            path_loss_exponent_outdoor: 2.0,
            wall_loss_db: 8.0,
            shadowing_sigma_db: 5.0,
            slow_fading_sigma_db: 3.0,
            slow_fading_time_s: 8.0,
            packet_loss: 0.2,
            report_interval_ms: 1000,
            sensitivity_dbm: -100.0,
            scanner_height_m: 1.5,
            mac_rotation_s: 900.0,
            mac_rotation_jitter_s: 120.0,
            door_miss_rate: 0.02,
            door_interval_s: 60,
        }
    }

    pub fn in_store_zone_ids(&self) -> Vec<String> {
        self.layout.in_store_zones().map(|z| z.id.clone()).collect()
    }
}

/// A 10 m × 20 m fashion boutique on a Paris shopping street: front tables and the till by
/// the window, rails and fitting rooms at the back.
fn boutique() -> Profile {
    let layout = Layout {
        store_id: "boutique-paris-01".to_owned(),
        timezone: chrono_tz::Europe::Paris,
        zones: vec![
            zone(
                "storefront",
                true,
                Point::new(3.0, -0.3),
                Rect::new(-15.0, -6.0, 15.0, 0.0),
            ),
            zone(
                "entrance",
                false,
                Point::new(0.0, 6.0),
                Rect::new(-5.0, 0.0, 5.0, 10.5),
            ),
            zone(
                "fitting",
                false,
                Point::new(0.0, 15.5),
                Rect::new(-5.0, 10.5, 5.0, 20.0),
            ),
        ],
        door_sensor: Some("door-main".to_owned()),
        pos_system: "pos-main".to_owned(),
        staff_devices: staff_devices(1),
        door: Point::new(0.0, 0.0),
    };
    let mut p = Profile::base(ProfileName::Boutique, layout);
    p.zone_plans = vec![
        plan("entrance", 1.0, 110.0, 0.7),
        plan("fitting", 0.6, 260.0, 0.8),
    ];
    p.checkout_zone = "entrance".to_owned();
    p.staff_count = 1;
    // Mon–Sat 10:00–19:00; Sunday 11:00–18:00 (tourist zone, Sunday opening allowed).
    p.opening_minutes = [
        (600, 1140),
        (600, 1140),
        (600, 1140),
        (600, 1140),
        (600, 1140),
        (600, 1140),
        (660, 1080),
    ];
    p.traffic_per_day = 1750.0;
    p.weekday_factor = [0.85, 0.9, 1.0, 1.0, 1.1, 1.45, 0.65];
    p.enter_probability = 0.13;
    p.bounce_probability = 0.25;
    p.purchase_probability = 0.33;
    p.basket_median_minor = 12000.0;
    p.repeat_probability = 0.18;
    p.lane_far_m = 5.0;
    p.walk_half_length_m = 25.0;
    p
}

/// A 20 m × 22 m fashion store in a New Jersey mall, on the mall corridor: entrance tables,
/// apparel, fitting rooms and the tills at the front right.
fn mall() -> Profile {
    let layout = Layout {
        store_id: "mall-nj-01".to_owned(),
        timezone: chrono_tz::America::New_York,
        zones: vec![
            zone(
                "storefront",
                true,
                Point::new(1.0, -0.3),
                Rect::new(-22.0, -10.0, 24.0, 0.0),
            ),
            zone(
                "entrance",
                false,
                Point::new(-4.0, 6.0),
                Rect::new(-9.0, 0.0, 1.0, 12.0),
            ),
            zone(
                "apparel",
                false,
                Point::new(-4.0, 17.0),
                Rect::new(-9.0, 12.0, 1.0, 22.0),
            ),
            zone(
                "fitting",
                false,
                Point::new(6.0, 17.0),
                Rect::new(1.0, 12.0, 11.0, 22.0),
            ),
            zone(
                "checkout",
                false,
                Point::new(6.0, 6.0),
                Rect::new(1.0, 0.0, 11.0, 12.0),
            ),
        ],
        door_sensor: Some("door-main".to_owned()),
        pos_system: "pos-main".to_owned(),
        staff_devices: staff_devices(4),
        door: Point::new(-4.0, 0.0),
    };
    let mut p = Profile::base(ProfileName::Mall, layout);
    p.zone_plans = vec![
        plan("entrance", 1.0, 50.0, 0.6),
        plan("apparel", 0.85, 240.0, 0.8),
        plan("fitting", 0.35, 300.0, 0.7),
        plan("checkout", 0.05, 150.0, 0.6),
    ];
    p.checkout_zone = "checkout".to_owned();
    p.staff_count = 4;
    // Mon–Sat 10:00–21:00, Sunday 11:00–19:00.
    p.opening_minutes = [
        (600, 1260),
        (600, 1260),
        (600, 1260),
        (600, 1260),
        (600, 1260),
        (600, 1260),
        (660, 1140),
    ];
    p.traffic_per_day = 9300.0;
    p.hourly_traffic = MALL_HOURS;
    p.weekday_factor = [0.85, 0.85, 0.95, 1.0, 1.15, 1.6, 1.1];
    p.enter_probability = 0.14;
    p.window_shopper_share = 0.06;
    p.bounce_probability = 0.3;
    p.purchase_probability = 0.3;
    p.basket_median_minor = 4500.0;
    p.repeat_probability = 0.12;
    p.path_loss_exponent_outdoor = 2.2;
    p.lane_near_m = 1.0;
    p.lane_far_m = 9.0;
    p.walk_half_length_m = 32.0;
    p
}

/// A 21 m × 22 m high-street store in London: many passers-by on a wide pavement, few enter.
fn street() -> Profile {
    let layout = Layout {
        store_id: "street-london-01".to_owned(),
        timezone: chrono_tz::Europe::London,
        zones: vec![
            zone(
                "storefront",
                true,
                Point::new(4.5, -0.3),
                Rect::new(-20.0, -8.0, 25.0, 0.0),
            ),
            zone(
                "entrance",
                false,
                Point::new(-0.5, 6.0),
                Rect::new(-6.0, 0.0, 5.0, 11.0),
            ),
            zone(
                "apparel",
                false,
                Point::new(4.5, 16.5),
                Rect::new(-6.0, 11.0, 15.0, 22.0),
            ),
            zone(
                "checkout",
                false,
                Point::new(10.0, 6.0),
                Rect::new(5.0, 0.0, 15.0, 11.0),
            ),
        ],
        door_sensor: Some("door-main".to_owned()),
        pos_system: "pos-main".to_owned(),
        staff_devices: staff_devices(2),
        door: Point::new(-0.5, 0.0),
    };
    let mut p = Profile::base(ProfileName::Street, layout);
    p.zone_plans = vec![
        plan("entrance", 1.0, 70.0, 0.6),
        plan("apparel", 0.8, 200.0, 0.8),
        plan("checkout", 0.05, 120.0, 0.6),
    ];
    p.checkout_zone = "checkout".to_owned();
    p.staff_count = 2;
    // Mon–Sat 09:00–20:00; Sunday 11:00–17:00 (Sunday Trading Act 1994: six hours).
    p.opening_minutes = [
        (540, 1200),
        (540, 1200),
        (540, 1200),
        (540, 1200),
        (540, 1200),
        (540, 1200),
        (660, 1020),
    ];
    p.traffic_per_day = 5400.0;
    p.weekday_factor = [0.9, 0.9, 1.0, 1.0, 1.1, 1.35, 0.75];
    p.enter_probability = 0.085;
    p.window_shopper_share = 0.05;
    p.bounce_probability = 0.35;
    p.purchase_probability = 0.25;
    p.basket_median_minor = 3500.0;
    p.repeat_probability = 0.1;
    p.lane_near_m = 0.8;
    p.lane_far_m = 7.0;
    p.walk_half_length_m = 30.0;
    p
}
