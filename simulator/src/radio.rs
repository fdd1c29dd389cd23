//! The radio model: what each scanner reports about each advertising device along its path.
//!
//! Received power = calibrated power at 1 m − 10·n·log10(d) − shopfront loss (when scanner and
//! device are on different sides of the glass) − carry loss + Gaussian shadowing, where `d` is
//! the 3-D distance (scanners hang `scanner_height_m` above the phones) and `n` the indoor or
//! outdoor path-loss exponent. Each scanner reports a device about once per report interval
//! (jittered), loses a share of the reports, and never reports below its sensitivity.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use storefront_protocol::{AddressKind, DeviceId, Event, Sighting, Timestamp};

use crate::path::Path;
use crate::profile::{Point, Profile};

/// A scanner as the radio model needs it.
#[derive(Clone, Debug)]
pub(crate) struct ScannerSite {
    pub id: String,
    pub pos: Point,
}

/// How a device's advertised identity evolves.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Identity {
    /// Same id all along (static address, beacon, staff badge, or a phone without rotation).
    Stable(DeviceId),
    /// Resolvable private address re-drawn every `period_ms`, phase-shifted per device.
    Rotating {
        key: u64,
        period_ms: i64,
        phase_ms: i64,
    },
}

impl Identity {
    pub fn at(&self, t_ms: i64) -> (DeviceId, AddressKind) {
        match *self {
            Identity::Stable(id) => (id, AddressKind::Stable),
            Identity::Rotating {
                key,
                period_ms,
                phase_ms,
            } => {
                let epoch = (t_ms - phase_ms).div_euclid(period_ms);
                (
                    DeviceId(mix64(
                        key ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    )),
                    AddressKind::Rotating,
                )
            }
        }
    }
}

/// SplitMix64 finaliser: a bijective 64-bit mix, for ids derived from keys.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One advertising device carried along a path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Carrier {
    pub identity: Identity,
    /// True calibrated power at 1 m, dBm.
    pub tx_power_dbm: f64,
    /// What the frames advertise as their power at 1 m, when they carry it.
    pub tx_field: Option<i16>,
    /// Pocket / bag / body loss for this trip, dB.
    pub carry_loss_db: f64,
}

pub(crate) struct Radio {
    scanners: Vec<ScannerSite>,
    n_in: f64,
    n_out: f64,
    wall_db: f64,
    sigma: f64,
    slow_sigma: f64,
    slow_time_s: f64,
    loss: f64,
    interval_ms: i64,
    sensitivity: f64,
    height2: f64,
}

impl Radio {
    pub fn new(profile: &Profile) -> Radio {
        let scanners = profile
            .layout
            .scanners()
            .map(|(id, pos, _)| ScannerSite {
                id: id.to_owned(),
                pos,
            })
            .collect();
        Radio {
            scanners,
            n_in: profile.path_loss_exponent_indoor,
            n_out: profile.path_loss_exponent_outdoor,
            wall_db: profile.wall_loss_db,
            sigma: profile.shadowing_sigma_db,
            slow_sigma: profile.slow_fading_sigma_db,
            slow_time_s: profile.slow_fading_time_s.max(0.001),
            loss: profile.packet_loss,
            interval_ms: profile.report_interval_ms.max(1),
            sensitivity: profile.sensitivity_dbm,
            height2: profile.scanner_height_m * profile.scanner_height_m,
        }
    }

    /// Mean received power at scanner `s` from a device at `p` (before shadowing).
    fn mean_rssi(&self, s: &ScannerSite, p: Point, carrier: &Carrier) -> f64 {
        let horizontal2 = (s.pos.x - p.x).powi(2) + (s.pos.y - p.y).powi(2);
        let d = (horizontal2 + self.height2).sqrt().max(0.5);
        let (n, wall) = match (s.pos.is_outside(), p.is_outside()) {
            (true, true) => (self.n_out, 0.0),
            (false, false) => (self.n_in, 0.0),
            _ => (self.n_in, self.wall_db),
        };
        carrier.tx_power_dbm - 10.0 * n * d.log10() - wall - carrier.carry_loss_db
    }

    /// Appends the sightings of `carrier` along `path` (path times are seconds after
    /// `origin_ms`) to `out`.
    pub fn emit(
        &self,
        path: &Path,
        carrier: &Carrier,
        origin_ms: i64,
        rng: &mut ChaCha8Rng,
        out: &mut Vec<Event>,
    ) {
        let start_ms = origin_ms + (path.start() * 1000.0).ceil() as i64;
        let end_ms = origin_ms + (path.now() * 1000.0).floor() as i64;
        let jitter = self.interval_ms / 8;
        // Slow fading as an Ornstein-Uhlenbeck process sampled at the report interval.
        let rho = (-(self.interval_ms as f64) / 1000.0 / self.slow_time_s).exp();
        let innovation = self.slow_sigma * (1.0 - rho * rho).sqrt();
        for scanner in &self.scanners {
            let phase = rng.random_range(0..self.interval_ms);
            let mut hint = 0;
            let mut base = start_ms + phase;
            let mut fade = self.slow_sigma * rng.sample::<f64, _>(StandardNormal);
            while base <= end_ms {
                let t_ms = (base + rng.random_range(-jitter..=jitter)).clamp(start_ms, end_ms);
                base += self.interval_ms;
                fade = rho * fade + innovation * rng.sample::<f64, _>(StandardNormal);
                let p = path.position((t_ms - origin_ms) as f64 / 1000.0, &mut hint);
                let mean = self.mean_rssi(scanner, p, carrier) + fade;
                if mean + 4.0 * self.sigma < self.sensitivity {
                    continue;
                }
                if rng.random::<f64>() < self.loss {
                    continue;
                }
                let noise: f64 = rng.sample(StandardNormal);
                let rssi = (mean + self.sigma * noise).round();
                if rssi < self.sensitivity {
                    continue;
                }
                let (device, addr) = carrier.identity.at(t_ms);
                out.push(Event::Sighting(Sighting {
                    t: Timestamp(t_ms),
                    scanner: scanner.id.clone(),
                    device,
                    rssi: rssi.min(-20.0) as i16,
                    tx_power: carrier.tx_field,
                    addr,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Profile, ProfileName};

    #[test]
    fn rotating_identity_changes_every_period_and_is_stable_within_it() {
        let id = Identity::Rotating {
            key: 42,
            period_ms: 900_000,
            phase_ms: 123_000,
        };
        assert_eq!(id.at(200_000).0, id.at(1_000_000).0);
        assert_ne!(id.at(1_000_000).0, id.at(1_024_000).0);
        assert_eq!(id.at(0).1, AddressKind::Rotating);
    }

    #[test]
    fn shopfront_glass_attenuates_between_street_and_store() {
        let profile = Profile::named(ProfileName::Boutique);
        let radio = Radio::new(&profile);
        let carrier = Carrier {
            identity: Identity::Stable(DeviceId(1)),
            tx_power_dbm: -59.0,
            tx_field: None,
            carry_loss_db: 0.0,
        };
        let entrance = &radio.scanners[1];
        let inside = radio.mean_rssi(entrance, Point::new(0.0, 3.0), &carrier);
        let outside = radio.mean_rssi(entrance, Point::new(0.0, -1.0), &carrier);
        assert!(inside > -75.0, "{inside}");
        assert!(outside < -85.0, "{outside}");
    }
}
