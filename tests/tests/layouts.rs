//! The shipped example configs describe exactly the stores the simulator simulates, so
//! `storefront-dev replay --config config/examples/<profile>.toml` reads `storefront-dev simulate` output right.

use storefront_engine::ZoneKind;
use storefront_simulator::{Profile, ProfileName};
use storefront_tests::example_config;

#[test]
fn every_example_config_matches_its_simulator_profile() {
    for name in [
        ProfileName::Boutique,
        ProfileName::Mall,
        ProfileName::Street,
    ] {
        let layout = Profile::named(name).layout;
        let config = example_config(name).unwrap();
        assert_eq!(config.store.id, layout.store_id, "{name}");
        assert_eq!(config.store.timezone, layout.timezone, "{name}");
        let config_zones: Vec<_> = config
            .zones
            .iter()
            .map(|z| {
                (
                    z.id.clone(),
                    z.kind == ZoneKind::Storefront,
                    z.scanners.clone(),
                )
            })
            .collect();
        let layout_zones: Vec<_> = layout
            .zones
            .iter()
            .map(|z| (z.id.clone(), z.storefront, z.scanners.clone()))
            .collect();
        assert_eq!(config_zones, layout_zones, "{name}");
        assert_eq!(
            config.door_sensors,
            layout.door_sensor.iter().cloned().collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(
            config.pos_systems,
            std::slice::from_ref(&layout.pos_system),
            "{name}"
        );
        assert_eq!(config.privacy.staff_devices, layout.staff_devices, "{name}");
    }
}
