//! A seeded, realistic synthetic store: the event stream its sensors would produce (BLE
//! sightings, door-counter intervals, POS transactions) and the **ground truth** of the funnel
//! computed from the true paths by this crate's own code (it does not depend on the engine: a
//! bug shared by both would pass unseen). Definitions follow `METRICS.md`.
//!
//! ```no_run
//! use storefront_simulator::{Profile, ProfileName, SimulationSpec, Simulator};
//! let start = chrono::NaiveDate::from_ymd_opt(2025, 11, 24).unwrap();
//! let mut sim = Simulator::new(SimulationSpec::new(Profile::named(ProfileName::Mall), 7, 2, start));
//! while let Some(day) = sim.next_day() {
//!     println!("{}: {} events, {} entries", day.date, day.events.len(), day.truth.population.entries);
//! }
//! ```
//!
//! # The model
//! **Floor plan.** Metres; the shopfront is the line `y = 0`, the street or mall corridor is
//! `y < 0`. In-store zones are rectangles that partition the shop floor, each with one scanner
//! at its centre, ≥ 6 m from the shopfront and ≥ 9.5 m from the next scanner; the storefront
//! zone is the stretch of pavement / corridor in front of the shop, with one scanner in the
//! window facing out. Shoppers browse at spots within `spot_radius_m` (2.5 m) of a zone's
//! scanner, as a real installer would hang a scanner over the tables people stop at.
//!
//! **People.** Pedestrians reach the shop as a non-homogeneous Poisson process: a daily volume
//! (`traffic_per_day` × weekday factor, Saturday busiest at 1.35–1.6×) spread over the local
//! hours by a curve with a lunchtime and a late-afternoon peak, the shape of the
//! ShopperTrak / Springboard footfall curves; mall corridors are empty at night, streets are
//! not. While the shop is open each pedestrian walks in with `enter_probability` (the capture
//! rate: footfall-analytics vendors such as Aura Vision, RetailNext and Springboard quote
//! roughly 5–15 % on high streets and 10–20 % for mall units); the others pass, at a lateral
//! distance drawn from the pavement / corridor width, 5–8 % of them stopping at the window.
//! Walking speed is N(1.34, 0.2) m/s outside (Bohannon 1997, *Age and Ageing*: comfortable
//! gait 1.3–1.46 m/s), 0.9 m/s between spots in the shop.
//!
//! An entrant turns into the door, then either **bounces** (25–35 % of entrants: a look around
//! the entrance zone of 12–95 s; vendors using the 2-minute definition — Tapway,
//! analytics4wifi — report 20–40 % of visits below it) or browses the zones in walking order,
//! each with a visit probability and a lognormal dwell (medians 50 s – 5 min, σ 0.6–0.8:
//! Envirosell's observational work in Underhill, *Why We Buy*, puts typical fashion visits at
//! a few minutes to a quarter of an hour), then may **buy** (non-bouncers buy with 25–33 %,
//! i.e. sales conversion 16–25 %, within the 15–30 % ShopperTrak and RetailNext publish for
//! apparel): the purchase is paid in the checkout zone, near the end of the stay there, and
//! leaves a POS transaction (`pos-YYYYMMDD-nnnnn`, lognormal basket). Customers are kept in a
//! pool across days: each entrant is a returning customer with `repeat_probability`
//! (10–18 %, an assumption in the range loyalty programmes report for monthly returns).
//!
//! Staff (`staff_count`) come in 10–20 min before opening and leave 10–20 min after closing,
//! moving between zones all day (40 % of their time at the checkout); they carry badges with
//! fixed ids ([`STAFF_DEVICE_BASE`] + n, independent of the seed) and are never in the truth.
//!
//! **Devices.** 45 % of people carry a device that advertises over BLE all the time:
//! iPhones broadcast Apple Continuity frames whenever the screen is used or a paired watch is
//! near (Martin et al., "Handoff All Your Privacy", PoPETs 2019; Celosia & Cunche,
//! "Discontinued Privacy", PoPETs 2020), iOS holds roughly 30–55 % of smartphones in Europe and
//! the US (StatCounter), and wearables and earbuds add to it, while most Android phones do not
//! advertise by default. Without `mac_rotation` a person keeps one stable id for the whole run
//! (so repeat visits are visible); with it, phones use resolvable private addresses re-drawn
//! every 15 ± 2 min (the Bluetooth Core Specification's recommended private-address timeout,
//! `TGAP(private_addr_int)` = 15 min) and marked `addr: rotating`.
//!
//! **Radio.** Calibrated power at 1 m is −59 dBm (the iBeacon convention) ± 1.5 dB per device
//! (clamped at ±3; the Exposure Notification per-model calibration tables show a wider spread
//! — widen `tx_power_sd_db` to stress the engine), minus a carry loss of 0–3 dB (pocket, bag)
//! per trip. Path loss is log-distance over the 3-D distance (scanners 1.5 m above phones) with
//! exponent 2.2 indoors (Rappaport, *Wireless Communications*, Table 4.6 after Andersen,
//! Rappaport & Yoshida 1995: retail store n = 2.2) and 2.0–2.2 outside, plus 8 dB through the
//! shopfront (clear glass costs 2–3 dB at 2.4 GHz, window displays, frames and coated glass
//! more; ITU-R P.2040 tabulates materials). Shadowing and fast fading are Gaussian per packet
//! with σ = 5 dB (Faragher & Harle, "Location Fingerprinting With Bluetooth Low Energy
//! Beacons", IEEE JSAC 2015, observe per-packet swings of this size across the three
//! advertising channels; Rappaport's σ = 8.7 dB also holds location-to-location variation,
//! which the geometry here models explicitly). On top of that, slow fading — the shopper's
//! body turning between phone and scanner, other people walking through the path — is an
//! Ornstein-Uhlenbeck offset per (device, scanner) with σ = 3 dB and an 8 s correlation time
//! (body shadowing costs 3–10 dB at 2.4 GHz depending on orientation: Faragher & Harle 2015;
//! Ghaddar et al., "A conducting cylinder for modeling human body presence in indoor
//! propagation channel", IEEE TAP 2007). Devices advertise every 20 ms – 1 s (Apple's
//! Accessory Design Guidelines); a scanner gateway de-duplicates to about one report per
//! device per second (jitter ±125 ms), and 20 % of those reports are lost (collisions, scan
//! duty cycle, channel hopping). Nothing below −100 dBm (receiver sensitivity) is reported.
//! With these figures a shopper at a browsing spot reads about −63 to −75 dBm (mean) at the
//! zone's scanner, the next zone's scanner reads ≥ 8 dB less, and in-store scanners read a
//! passer-by outside at about −85 dBm or less, so the engine's −75 / −80 / −90 dBm thresholds
//! are meaningful. A plain reading of `METRICS.md` (the workspace engine at the time of
//! writing) lands within 1 pp of the sample truth's conversion and bounce rate and within 5 %
//! of its median durations on these profiles; raise `shadowing_sigma_db`, `tx_power_sd_db`,
//! `carry_loss_max_db` or `packet_loss` to make the world harder.
//!
//! **Door counter** (mall, street): per-minute `interval` counts of in/out crossings (staff
//! included, as a real counter would), each crossing missed with 2 % probability (Xovis and
//! Irisys quote ≥ 98 % for stereo-vision / thermal counters; ShopperTrak ~95 %+).
//!
//! # Ground truth
//! Computed from the true paths ([`TruthDay`]), per window of the store's local time (DST days
//! have 23 / 25 h) and per day, over the population and over the device carriers (the sample):
//! a pass counts at the moment the person walks into the storefront area; an entry at the moment
//! they cross the door, its duration until they cross it back out; zone dwell is the exact
//! partition of the visit among the in-store zones the person is physically in (walking time
//! included); transactions and door crossings count at their own time. `door_in` in the truth
//! is the true number of shoppers' inward crossings (no misses, no staff), also for the
//! boutique, which has no sensor.
//!
//! # Profiles
//! See [`Profile::named`]: `boutique` (Europe/Paris, 2 in-store zones, no door counter, 1
//! staff), `mall` (America/New_York, 4 in-store zones, door counter, 4 staff), `street`
//! (Europe/London, 3 in-store zones, door counter, 2 staff).
//!
//! # Determinism
//! One ChaCha8 stream from the seed drives everything, and output goes through `Vec`s and
//! `BTreeMap`s only: the same spec gives the same events and truth, byte for byte.

mod path;
mod profile;
mod radio;
mod truth;
mod world;

pub use profile::{
    Layout, Point, Profile, ProfileName, Rect, STAFF_DEVICE_BASE, UnknownProfile, ZoneLayout,
    ZonePlan,
};
pub use truth::{TruthDay, TruthFunnel, TruthParams, TruthWindow, lower_median};
pub use world::{SimulatedDay, SimulationSpec, Simulator};

#[cfg(test)]
mod tests;
