//! Shared by the engine benchmarks: a realistic event mix and the matching engine config.

use storefront_engine::{EngineConfig, Thresholds, ZoneConfig, ZoneKind};
use storefront_protocol::Event;
use storefront_simulator::{Profile, ProfileName, SimulationSpec, Simulator, TruthParams};

/// One simulated busy-mall day: the realistic mix of sightings, door counts and sales.
pub fn mall_day() -> (EngineConfig, Vec<Event>) {
    let profile = Profile::named(ProfileName::Mall);
    let layout = profile.layout.clone();
    let mut simulator = Simulator::new(SimulationSpec {
        profile,
        seed: 7,
        days: 1,
        start_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 18).expect("valid date"),
        mac_rotation: false,
        truth: TruthParams::default(),
    });
    let events = simulator.next_day().expect("one day").events;
    let zones = layout
        .zones
        .iter()
        .map(|z| ZoneConfig {
            id: z.id.clone(),
            kind: if z.storefront {
                ZoneKind::Storefront
            } else {
                ZoneKind::InStore
            },
            scanners: z.scanners.clone(),
            enter_rssi_dbm: -75,
            exit_rssi_dbm: -80,
        })
        .collect();
    let config = EngineConfig {
        store_id: layout.store_id.clone(),
        timezone: layout.timezone,
        zones,
        door_sensors: layout.door_sensor.iter().cloned().collect(),
        pos_sources: vec![layout.pos_system.clone()],
        staff_devices: layout.staff_devices.clone(),
        thresholds: Thresholds::default(),
        repeat_measurable: false,
        limits: storefront_engine::Limits::default(),
    };
    (config, events)
}
