//! The local radio path on a simulated day. Every simulated sighting becomes the advertisement
//! its device would send — an iBeacon of the store's app for half the devices, a bare static
//! random address for the others — heard by its scanner's adapter; the radio's own
//! `sighting_from` decodes it and pseudonymises it in place, as the btleplug scanner does for
//! each event. The engine's day on those sightings equals its day on the simulator's events,
//! and the truth within the accuracy tolerances. (The btleplug event stream itself needs a
//! Bluetooth adapter; `radio::scan`'s own tests cover running without one.)

use storefront_protocol::privacy::Pseudonymizer;
use storefront_protocol::{DeviceId, Event};
use storefront_radio::advert::{COMPANY_APPLE, IBeacon};
use storefront_radio::scan::{AddressType, BDAddr, PeripheralProperties, sighting_from};
use storefront_simulator::ProfileName;
use storefront_tests::{
    assert_within_tolerances, example_config, funnel_figures, replay_day, simulated_day,
};

/// The proximity UUID of the store's loyalty app.
const APP_UUID: [u8; 16] = *b"storefront-app-1";

/// What a simulated device advertises.
fn advertisement(device: DeviceId) -> PeripheralProperties {
    let b = device.0.to_be_bytes();
    let mut properties = PeripheralProperties {
        address_type: Some(AddressType::Random),
        ..Default::default()
    };
    if device.0 % 2 == 0 {
        let beacon = IBeacon {
            uuid: APP_UUID,
            major: u16::from_be_bytes([b[4], b[5]]),
            minor: u16::from_be_bytes([b[6], b[7]]),
            measured_power: -59,
            extra_bytes: 0,
        };
        properties
            .manufacturer_data
            .insert(COMPANY_APPLE, beacon.encode().to_vec());
        // A phone's private address: the beacon id, not the address, names the device.
        properties.address = BDAddr::from([0x4b, b[3], b[4], b[5], b[6], b[7]]);
    } else {
        // Static random: the two top bits set.
        properties.address = BDAddr::from([b[2] | 0xc0, b[3], b[4], b[5], b[6], b[7]]);
    }
    properties
}

#[test]
fn a_simulated_day_heard_by_the_local_radio_gives_the_days_figures() {
    let config = example_config(ProfileName::Boutique).unwrap();
    let day = simulated_day(ProfileName::Boutique, 41);
    let key = Pseudonymizer::new(&[7; 32]);
    let heard: Vec<Event> = day
        .events
        .iter()
        .map(|event| match event {
            Event::Sighting(s) => Event::Sighting(sighting_from(
                &advertisement(s.device),
                s.rssi,
                &s.scanner,
                &key,
                s.t,
            )),
            other => other.clone(),
        })
        .collect();
    let hashed = heard
        .iter()
        .zip(&day.events)
        .filter(|(a, b)| matches!((a, b), (Event::Sighting(a), Event::Sighting(b)) if a.device != b.device))
        .count();
    let sightings = day
        .events
        .iter()
        .filter(|e| matches!(e, Event::Sighting(_)))
        .count();
    assert_eq!(hashed, sightings, "every device is named by its pseudonym");

    // The staff badge is listed under the pseudonym the radio gives it.
    let mut radio_config = config.engine_config();
    radio_config.staff_devices = radio_config
        .staff_devices
        .iter()
        .map(|&badge| {
            let heard = sighting_from(
                &advertisement(badge),
                -60,
                "entrance-1",
                &key,
                day.events[0].time(),
            );
            heard.device
        })
        .collect();
    let expected = replay_day(config.engine_config(), &day.events);
    let radio = replay_day(radio_config, &heard);
    assert_eq!(
        funnel_figures(&radio.funnel),
        funnel_figures(&expected.funnel)
    );
    assert!(radio.funnel.entries > 50, "{:?}", radio.funnel);

    assert_within_tolerances("radio", &radio, &day.truth);
}
