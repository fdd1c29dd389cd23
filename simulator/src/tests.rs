//! Whole-simulator tests: determinism, event invariants, truth invariants, realism.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone};
use storefront_protocol::{AddressKind, Event, EventLine, InputKind};

use crate::*;

/// A Monday.
fn monday() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, 24).unwrap()
}

fn spec(name: ProfileName, seed: u64, days: u32) -> SimulationSpec {
    SimulationSpec::new(Profile::named(name), seed, days, monday())
}

fn run(spec: SimulationSpec) -> Vec<SimulatedDay> {
    let mut sim = Simulator::new(spec);
    std::iter::from_fn(|| sim.next_day()).collect()
}

fn fingerprint(days: &[SimulatedDay]) -> String {
    let mut out = String::new();
    for day in days {
        for event in &day.events {
            out.push_str(&EventLine::encode(event));
            out.push('\n');
        }
        out.push_str(&serde_json::to_string(&day.truth).unwrap());
        out.push('\n');
    }
    out
}

#[test]
fn same_spec_gives_identical_events_and_truth() {
    let a = fingerprint(&run(spec(ProfileName::Boutique, 11, 2)));
    let b = fingerprint(&run(spec(ProfileName::Boutique, 11, 2)));
    assert_eq!(a, b);
    let c = fingerprint(&run(spec(ProfileName::Boutique, 12, 2)));
    assert_ne!(a, c, "another seed gives another world");
}

#[test]
fn next_day_stops_after_the_requested_days() {
    let mut sim = Simulator::new(spec(ProfileName::Boutique, 1, 2));
    assert_eq!(sim.next_day().map(|d| d.date), Some(monday()));
    assert_eq!(
        sim.next_day().map(|d| d.truth.local_date),
        Some("2025-11-25".to_owned())
    );
    assert!(sim.next_day().is_none());
}

#[test]
fn events_are_sorted_by_time_and_stay_inside_their_local_day() {
    for day in run(spec(ProfileName::Street, 3, 2)) {
        assert!(day.events.windows(2).all(|w| w[0].time() <= w[1].time()));
        let first = day.truth.windows.first().unwrap().window_start;
        let last = day
            .truth
            .windows
            .last()
            .unwrap()
            .window_start
            .plus_secs(900);
        assert!(
            day.events
                .iter()
                .all(|e| e.time() >= first && e.time() < last),
            "{}",
            day.date
        );
    }
}

#[test]
fn every_sighting_names_a_scanner_and_every_door_event_the_door_sensor() {
    for name in ProfileName::ALL {
        let days = run(spec(name, 5, 1));
        let layout = Profile::named(name).layout;
        let scanners: BTreeSet<&str> = layout.scanners().map(|(id, _, _)| id).collect();
        let mut doors = 0;
        for event in &days[0].events {
            match event {
                Event::Sighting(s) => {
                    assert!(scanners.contains(s.scanner.as_str()), "{}", s.scanner);
                    assert!(s.rssi >= -100 && s.rssi < -20, "{}", s.rssi);
                }
                Event::Door(d) => {
                    doors += 1;
                    assert_eq!(Some(&d.sensor), layout.door_sensor.as_ref());
                }
                Event::Transaction(_) => {}
                Event::Alive(a) => match a.input {
                    InputKind::Ble => assert!(scanners.contains(a.source.as_str()), "{a:?}"),
                    InputKind::Door => assert_eq!(Some(&a.source), layout.door_sensor.as_ref()),
                    InputKind::Pos => assert_eq!(a.source, layout.pos_system),
                },
            }
        }
        assert_eq!(doors > 0, layout.door_sensor.is_some(), "{name}");
    }
}

#[test]
fn every_sensor_says_it_is_alive_at_least_every_minute_all_day() {
    let day = run(spec(ProfileName::Street, 3, 1)).remove(0);
    let tz = Profile::named(ProfileName::Street).layout.timezone;
    let local_ms = |date: chrono::NaiveDate| {
        tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .timestamp_millis()
    };
    let (start, end) = (local_ms(day.date), local_ms(day.date.succ_opt().unwrap()));
    let mut last_seen: BTreeMap<(InputKind, String), i64> = BTreeMap::new();
    for event in &day.events {
        if let Event::Alive(a) = event {
            let t = a.t.millis();
            let previous = last_seen
                .insert((a.input, a.source.clone()), t)
                .unwrap_or(start);
            assert!(t - previous <= 60_000, "{a:?}: silent since {previous}");
        }
    }
    let layout = Profile::named(ProfileName::Street).layout;
    assert_eq!(
        last_seen.len(),
        layout.scanners().count() + 2,
        "every scanner, the door counter and the POS"
    );
    for ((input, source), last) in last_seen {
        assert!(
            end - last <= 60_000,
            "{input:?} {source} silent from {last}"
        );
    }
}

#[test]
fn transaction_ids_are_unique_and_counted_in_the_truth() {
    let days = run(spec(ProfileName::Boutique, 8, 2));
    let mut ids = BTreeSet::new();
    for day in &days {
        let mut n = 0;
        for event in &day.events {
            if let Event::Transaction(x) = event {
                assert!(ids.insert(x.id.clone()), "{}", x.id);
                n += 1;
            }
        }
        assert_eq!(n, day.truth.population.transactions);
    }
}

#[test]
fn window_truths_add_up_to_the_day_truth() {
    for day in run(spec(ProfileName::Mall, 2, 1)) {
        assert_eq!(day.truth.windows.len(), 96);
        let mut population = TruthFunnel::default();
        let mut sample = TruthFunnel::default();
        for w in &day.truth.windows {
            population.merge(&w.population);
            sample.merge(&w.sample);
        }
        assert_eq!(population, day.truth.population);
        assert_eq!(sample, day.truth.sample);
        assert!(
            day.truth
                .windows
                .windows(2)
                .all(|w| w[1].window_start.millis_since(w[0].window_start) == 900_000)
        );
    }
}

#[test]
fn sample_is_a_subset_of_the_population() {
    for day in run(spec(ProfileName::Street, 4, 2)) {
        for w in &day.truth.windows {
            let (p, s) = (&w.population, &w.sample);
            assert!(s.passers_by <= p.passers_by);
            assert!(s.entries <= p.entries);
            assert!(s.bounces <= p.bounces);
            assert!(s.capped <= p.capped);
            assert!(s.transactions <= p.transactions);
            assert!(s.door_in <= p.door_in);
            assert!(s.repeat_visits <= p.repeat_visits);
            for (zone, dwells) in &s.zone_dwell_s {
                assert!(dwells.len() <= p.zone_dwell_s[zone].len());
            }
        }
        let (p, s) = (&day.truth.population, &day.truth.sample);
        assert!(s.entries > 0 && s.entries < p.entries);
        assert_eq!(p.visit_durations_s.len() as u64, p.entries);
        assert_eq!(s.visit_durations_s.len() as u64, s.entries);
    }
}

#[test]
fn staff_are_never_in_the_truth() {
    let mut profile = Profile::named(ProfileName::Mall);
    profile.traffic_per_day = 0.0;
    let days = run(SimulationSpec::new(profile.clone(), 9, 1, monday()));
    let staff: BTreeSet<_> = profile.layout.staff_devices.iter().copied().collect();
    let sightings: Vec<_> = days[0]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Sighting(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(sightings.len() > 10_000);
    assert!(sightings.iter().all(|s| staff.contains(&s.device)));
    let truth = &days[0].truth;
    assert_eq!(
        truth.population.entries + truth.population.passers_by + truth.population.door_in,
        0
    );
    assert_eq!(truth.population.transactions, 0);
}

#[test]
fn staff_badges_are_the_same_for_every_seed() {
    let a = Simulator::new(spec(ProfileName::Mall, 1, 1));
    let b = Simulator::new(spec(ProfileName::Mall, 2, 1));
    assert_eq!(a.layout().staff_devices, b.layout().staff_devices);
    assert_eq!(a.layout().staff_devices.len(), 4);
    assert_eq!(
        a.layout().staff_devices[0],
        storefront_protocol::DeviceId(0x5354_4146_4600_0001)
    );
}

#[test]
fn with_mac_rotation_no_phone_id_lives_longer_than_twenty_minutes() {
    let mut s = spec(ProfileName::Boutique, 6, 1);
    s.mac_rotation = true;
    let days = run(s);
    let mut life: BTreeMap<_, (i64, i64)> = BTreeMap::new();
    let mut rotating = 0;
    for event in &days[0].events {
        if let Event::Sighting(s) = event {
            if s.addr == AddressKind::Rotating {
                rotating += 1;
                let e = life.entry(s.device).or_insert((s.t.millis(), s.t.millis()));
                e.1 = s.t.millis();
            }
        }
    }
    assert!(rotating > 1000);
    let longest = life.values().map(|(a, b)| b - a).max().unwrap();
    assert!(longest <= 20 * 60_000, "{longest} ms");
}

#[test]
fn stable_ids_make_repeat_visits_visible_across_days() {
    let days = run(spec(ProfileName::Boutique, 10, 5));
    assert_eq!(
        days[0].truth.population.repeat_visits, 0,
        "nobody has visited before day one"
    );
    let later: u64 = days[1..]
        .iter()
        .map(|d| d.truth.population.repeat_visits)
        .sum();
    let entries: u64 = days[1..].iter().map(|d| d.truth.population.entries).sum();
    let rate = later as f64 / entries as f64;
    assert!((0.08..0.25).contains(&rate), "{rate}");
    // A repeat customer's phone shows up with the same id on two days.
    let ids = |d: &SimulatedDay| -> BTreeSet<_> {
        d.events
            .iter()
            .filter_map(|e| match e {
                Event::Sighting(s) if s.scanner != "storefront-1" => Some(s.device),
                _ => None,
            })
            .collect()
    };
    assert!(ids(&days[0]).intersection(&ids(&days[4])).count() > 0);
}

#[test]
fn dst_days_have_all_their_windows() {
    let mut s = spec(ProfileName::Boutique, 1, 1);
    s.start_date = NaiveDate::from_ymd_opt(2025, 10, 26).unwrap();
    let day = run(s).remove(0);
    assert_eq!(day.truth.windows.len(), 100);
    assert!(day.truth.population.entries > 50);
}

/// Checks a profile's first weekday against the figures it was designed for.
fn check_realism(
    name: ProfileName,
    entries: std::ops::Range<u64>,
    conversion: std::ops::Range<f64>,
    bounce: std::ops::Range<f64>,
) {
    let day = run(spec(name, 21, 1)).remove(0);
    let p = &day.truth.population;
    assert!(
        entries.contains(&p.entries),
        "{name}: {} entries",
        p.entries
    );
    let c = p.shopfront_conversion().unwrap();
    assert!(conversion.contains(&c), "{name}: conversion {c}");
    let b = p.bounce_rate().unwrap();
    assert!(bounce.contains(&b), "{name}: bounce {b}");
    let sales = p.sales_conversion().unwrap();
    assert!(
        (0.1..0.35).contains(&sales),
        "{name}: sales conversion {sales}"
    );
    let median = p.median_visit_duration().unwrap();
    assert!(
        (150.0..900.0).contains(&median),
        "{name}: median visit {median}"
    );
    let share = day.truth.sample.entries as f64 / p.entries as f64;
    assert!(
        (0.35..0.55).contains(&share),
        "{name}: device share {share}"
    );
    assert_eq!(p.capped, 0);
}

#[test]
fn boutique_sees_about_two_hundred_entries_a_weekday() {
    check_realism(ProfileName::Boutique, 120..260, 0.07..0.16, 0.15..0.35);
}

#[test]
fn mall_store_sees_over_a_thousand_entries_and_eight_thousand_passers_by() {
    check_realism(ProfileName::Mall, 900..1500, 0.1..0.18, 0.2..0.4);
    let day = run(spec(ProfileName::Mall, 21, 1)).remove(0);
    assert!(
        (6500..10_000).contains(&day.truth.population.passers_by),
        "{}",
        day.truth.population.passers_by
    );
}

#[test]
fn street_store_converts_few_of_many_passers_by() {
    check_realism(ProfileName::Street, 250..500, 0.05..0.1, 0.25..0.45);
    let day = run(spec(ProfileName::Street, 21, 1)).remove(0);
    assert!(
        (4000..6500).contains(&day.truth.population.passers_by),
        "{}",
        day.truth.population.passers_by
    );
}

#[test]
fn layouts_keep_zones_distinguishable() {
    for name in ProfileName::ALL {
        let profile = Profile::named(name);
        let scanners: Vec<_> = profile.layout.scanners().collect();
        for (i, (a, pa, za)) in scanners.iter().enumerate() {
            for (b, pb, zb) in &scanners[i + 1..] {
                if *za != "storefront" && *zb != "storefront" {
                    assert!(pa.distance(*pb) >= 8.0, "{name}: {a} and {b} too close");
                }
            }
            let zone = profile.layout.zones.iter().find(|z| z.id == *za).unwrap();
            if !zone.storefront {
                assert!(pa.y >= 6.0, "{name}: {a} is {} m from the shopfront", pa.y);
                // Every browsing spot lies inside the zone.
                let r = profile.spot_radius_m;
                assert!(
                    zone.area.contains(Point::new(pa.x - r, pa.y - r)),
                    "{name}: {a}"
                );
                assert!(
                    zone.area.contains(Point::new(pa.x + r, pa.y + r)),
                    "{name}: {a}"
                );
            }
        }
        let plans: Vec<_> = profile.zone_plans.iter().map(|p| p.zone.clone()).collect();
        assert!(
            plans
                .iter()
                .all(|z| profile.in_store_zone_ids().contains(z))
        );
        assert!(profile.in_store_zone_ids().contains(&profile.checkout_zone));
        assert_eq!(
            profile.layout.zones.iter().filter(|z| z.storefront).count(),
            1
        );
        assert_eq!(profile.layout.door.y, 0.0);
    }
}

#[test]
fn profile_names_round_trip() {
    for name in ProfileName::ALL {
        assert_eq!(name.to_string().parse::<ProfileName>(), Ok(name));
    }
    assert!("kiosk".parse::<ProfileName>().is_err());
}
