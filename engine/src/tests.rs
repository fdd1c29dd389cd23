//! Engine behaviour on hand-built traces. Scenario helpers keep each test a few lines.

use super::*;
use storefront_protocol::{AddressKind, DoorEvent, Sighting, Transaction};

const T0: i64 = 1_763_884_800_000; // 2025-11-23T08:00:00Z, 09:00 in Paris

fn config() -> EngineConfig {
    let zone = |id: &str, kind, scanner: &str| ZoneConfig {
        id: id.into(),
        kind,
        scanners: vec![scanner.into()],
        enter_rssi_dbm: -75,
        exit_rssi_dbm: -80,
    };
    EngineConfig {
        store_id: "test-store".into(),
        timezone: chrono_tz::Europe::Paris,
        zones: vec![
            zone("storefront", ZoneKind::Storefront, "sf"),
            zone("entrance", ZoneKind::InStore, "en"),
            zone("apparel", ZoneKind::InStore, "ap"),
        ],
        door_sensors: vec!["door".into()],
        pos_sources: vec!["pos".into()],
        staff_devices: vec![DeviceId(0x5354)],
        thresholds: Thresholds::default(),
        repeat_measurable: true,
        limits: Limits::default(),
    }
}

fn sighting(t_ms: i64, scanner: &str, device: u64, rssi: i16) -> Event {
    Event::Sighting(Sighting {
        t: Timestamp(t_ms),
        scanner: scanner.into(),
        device: DeviceId(device),
        rssi,
        tx_power: None,
        addr: AddressKind::Stable,
    })
}

/// One reading a second from `scanner` over `[from_s, to_s)` seconds after `T0`.
fn dwell(events: &mut Vec<Event>, device: u64, scanner: &str, from_s: i64, to_s: i64, rssi: i16) {
    for s in from_s..to_s {
        events.push(sighting(T0 + s * 1000, scanner, device, rssi));
    }
}

fn run(events: &[Event]) -> (Engine, Vec<WindowSummary>, Vec<DailySummary>) {
    let mut engine = Engine::new(config());
    for e in events {
        engine.handle_event(e, e.time());
    }
    let last = events
        .iter()
        .map(|e| e.time())
        .max()
        .unwrap_or(Timestamp(T0));
    let day_end = engine
        .calendar
        .day_start(engine.calendar.local_date(last).succ_opt().unwrap());
    engine.finish(day_end);
    let mut windows = Vec::new();
    while let Some(w) = engine.poll_window() {
        windows.push(w);
    }
    let mut days = Vec::new();
    while let Some(d) = engine.poll_daily() {
        days.push(d);
    }
    (engine, windows, days)
}

fn day_funnel(events: &[Event]) -> Funnel {
    let (_, _, days) = run(events);
    assert_eq!(days.len(), 1, "one complete day expected");
    days[0].funnel.clone()
}

#[test]
fn a_visit_through_two_zones_counts_one_entry_with_partitioned_dwell() {
    let mut ev = Vec::new();
    dwell(&mut ev, 1, "sf", 0, 10, -70);
    dwell(&mut ev, 1, "en", 10, 70, -60);
    dwell(&mut ev, 1, "ap", 70, 400, -60);
    dwell(&mut ev, 1, "en", 400, 420, -60);
    ev.sort_by_key(|e| e.time());
    let f = day_funnel(&ev);
    assert_eq!((f.entries, f.passers_by, f.bounces), (1, 0, 0));
    let duration = f.visit_duration.median().unwrap();
    // visit starts at the first entrance reading (10 s), ends at the last in-store presence (419 s)
    assert!((duration - 409.0).abs() < 409.0 * 0.01, "{duration}");
    let entrance = f.zones["entrance"].dwell.median().unwrap();
    let apparel = f.zones["apparel"].dwell.median().unwrap();
    assert!(
        (entrance + apparel - duration).abs() < 10.0,
        "dwells add up to the duration"
    );
    assert!((apparel - 330.0).abs() < 15.0, "{apparel}");
    assert_eq!(f.zones["apparel"].zone_visits, 1);
}

#[test]
fn a_lone_strong_packet_does_not_make_an_entry() {
    let mut ev = Vec::new();
    dwell(&mut ev, 2, "sf", 0, 20, -72);
    ev.push(sighting(T0 + 10_500, "en", 2, -50));
    ev.sort_by_key(|e| e.time());
    let f = day_funnel(&ev);
    assert_eq!((f.entries, f.passers_by), (0, 1));
}

#[test]
fn presence_needs_five_seconds_above_the_enter_threshold() {
    let mut ev = Vec::new();
    dwell(&mut ev, 3, "en", 0, 4, -60); // 4 readings: confirmation would need 5 s
    let f = day_funnel(&ev);
    assert_eq!(f.entries, 0);
    assert_eq!(f.passers_by, 1);
}

#[test]
fn a_short_visit_is_a_bounce_and_a_brief_absence_does_not_split_a_visit() {
    let mut ev = Vec::new();
    dwell(&mut ev, 4, "en", 0, 60, -60);
    dwell(&mut ev, 5, "en", 0, 100, -60);
    dwell(&mut ev, 5, "en", 200, 300, -60); // 100 s gap < visit gap
    ev.sort_by_key(|e| e.time());
    let f = day_funnel(&ev);
    assert_eq!(f.entries, 2);
    assert_eq!(f.bounces, 1);
    assert!((f.visit_duration.quantile(1.0).unwrap() - 299.0).abs() < 3.0);
}

#[test]
fn a_gap_longer_than_visit_gap_starts_a_new_visit() {
    let mut ev = Vec::new();
    dwell(&mut ev, 6, "en", 0, 200, -60);
    dwell(&mut ev, 6, "en", 600, 800, -60);
    let f = day_funnel(&ev);
    assert_eq!(f.entries, 2);
}

#[test]
fn staff_badges_are_never_counted() {
    let mut ev = Vec::new();
    dwell(&mut ev, 0x5354, "en", 0, 600, -60);
    let (engine, _, days) = run(&ev);
    assert_eq!(days[0].funnel.entries, 0);
    assert_eq!(engine.stats().staff, 600);
}

#[test]
fn visits_longer_than_the_cap_are_capped_once() {
    let mut ev = Vec::new();
    dwell(&mut ev, 7, "en", 0, 4 * 3600, -60);
    let f = day_funnel(&ev);
    assert_eq!((f.entries, f.capped), (1, 1));
    assert_eq!(
        f.visit_duration.quantile(1.0).map(|d| (d / 100.0).round()),
        Some(108.0)
    );
}

#[test]
fn readings_below_detect_are_ignored_and_bad_events_are_counted_by_reason() {
    let mut engine = Engine::new(config());
    let now = Timestamp(T0);
    engine.handle_event(&sighting(T0, "sf", 8, -95), now);
    engine.handle_event(&sighting(T0, "nowhere", 8, -60), now);
    engine.handle_event(&sighting(T0, "sf", 8, 99), now);
    engine.handle_event(&sighting(1_000, "sf", 8, -60), now);
    engine.handle_event(&sighting(T0 + 3_600_000, "sf", 8, -60), now);
    engine.handle_timeout(Timestamp(T0 + 60_000));
    engine.handle_event(&sighting(T0, "sf", 8, -60), Timestamp(T0 + 60_000));
    let stats = engine.stats();
    assert_eq!(stats.below_detect, 1);
    assert_eq!(stats.rejected[&RejectReason::UnknownScanner], 1);
    assert_eq!(stats.rejected[&RejectReason::RssiOutOfRange], 1);
    assert_eq!(stats.rejected[&RejectReason::ClockNotSet], 1);
    assert_eq!(stats.rejected[&RejectReason::Future], 1);
    assert_eq!(stats.rejected[&RejectReason::Late], 1);
}

#[test]
fn out_of_order_events_within_the_delay_give_the_same_figures() {
    let mut ev = Vec::new();
    dwell(&mut ev, 9, "en", 0, 300, -62);
    dwell(&mut ev, 9, "ap", 300, 500, -61);
    dwell(&mut ev, 10, "sf", 0, 30, -70);
    ev.sort_by_key(|e| e.time());
    let ordered = day_funnel(&ev);
    // swap neighbours in pairs: each event arrives up to 1 s late
    let mut shuffled = ev.clone();
    for pair in shuffled.chunks_mut(2) {
        pair.reverse();
    }
    assert_eq!(day_funnel(&shuffled), ordered);
}

fn door(t: i64, record: &str, count: DoorCount) -> Event {
    Event::Door(DoorEvent {
        t: Timestamp(t),
        sensor: "door".into(),
        record: Some(record.into()),
        count,
    })
}

fn sale(t: i64, id: &str) -> Event {
    Event::Transaction(Transaction {
        t: Timestamp(t),
        id: id.into(),
        amount_minor: Some(1000),
    })
}

#[test]
fn door_counts_transactions_and_duplicates() {
    let ev = vec![
        door(
            T0,
            "a",
            DoorCount::Cumulative {
                in_total: 100,
                out_total: 90,
            },
        ),
        door(
            T0 + 1000,
            "b",
            DoorCount::Crossing {
                direction: DoorDirection::In,
            },
        ),
        door(
            T0 + 1000,
            "b",
            DoorCount::Crossing {
                direction: DoorDirection::In,
            },
        ),
        door(
            T0 + 2000,
            "c",
            DoorCount::Interval {
                entered: 3,
                exited: 1,
            },
        ),
        door(
            T0 + 3000,
            "d",
            DoorCount::Cumulative {
                in_total: 105,
                out_total: 92,
            },
        ),
        door(
            T0 + 4000,
            "e",
            DoorCount::Cumulative {
                in_total: 2,
                out_total: 1,
            },
        ), // reset
        sale(T0 + 5000, "x1"),
        sale(T0 + 6000, "x1"),
        sale(T0 + 7000, "x2"),
    ];
    let (engine, _, days) = run(&ev);
    let f = &days[0].funnel;
    assert_eq!(f.door_in, Some(1 + 3 + 5 + 2));
    assert_eq!(f.door_out, Some(1 + 2 + 1));
    assert_eq!(f.transactions, 2);
    assert_eq!(f.revenue_minor, 2000);
    assert_eq!(
        engine.stats().rejected[&RejectReason::DuplicateDoorRecord],
        1
    );
    assert_eq!(
        engine.stats().rejected[&RejectReason::DuplicateTransaction],
        1
    );
}

/// The final window starting at `start`, if it is among those ready (the others are dropped).
fn final_window_at(engine: &mut Engine, start: i64) -> Option<WindowSummary> {
    let mut found = None;
    while let Some(w) = engine.poll_window() {
        if w.window_start == Timestamp(start) {
            found = Some(w);
        }
    }
    found
}

#[test]
fn late_sales_and_door_records_count_while_their_window_is_open() {
    let mut engine = Engine::new(config());
    let register = |in_total| DoorCount::Cumulative {
        in_total,
        out_total: 0,
    };
    // Sightings keep the watermark near "now", as in a live store.
    for s in 0..=100 {
        let e = sighting(T0 + s * 1000, "sf", 1, -70);
        engine.handle_event(&e, e.time());
    }
    let now = Timestamp(T0 + 100_000);
    engine.handle_timeout(now);
    engine.handle_event(&door(T0 + 60_000, "r1", register(10)), now);
    // 30 s old: polled POS, an interval record sent at the interval's end.
    engine.handle_event(&sale(T0 + 70_000, "late"), now);
    let interval = DoorCount::Interval {
        entered: 4,
        exited: 1,
    };
    engine.handle_event(&door(T0 + 70_000, "i1", interval), now);
    // A register read older than one counted adds nothing the later one did not.
    engine.handle_event(&door(T0 + 50_000, "r0", register(7)), now);
    engine.handle_event(&door(T0 + 90_000, "r2", register(15)), now);
    // Sightings are never taken late.
    engine.handle_event(&sighting(T0 + 70_000, "sf", 2, -60), now);
    assert_eq!(engine.stats().late_counts, 5);
    assert_eq!(engine.stats().rejected[&RejectReason::Late], 1);
    assert_eq!(engine.stats().rejected[&RejectReason::StaleRegister], 1);

    // Once the window is final, a sale in it is late for good.
    let next_window = T0 + 900_000;
    let later = Timestamp(next_window + 600_000);
    engine.handle_timeout(later);
    let window = final_window_at(&mut engine, T0).expect("the 09:00 window is final");
    assert_eq!(window.funnel.transactions, 1);
    assert_eq!(window.funnel.door_in, Some(4 + 5));
    engine.handle_event(&sale(T0 + 80_000, "too-late"), later);
    assert_eq!(engine.stats().rejected[&RejectReason::Late], 2);
}

#[test]
fn a_window_waits_for_late_counts_before_it_is_final() {
    let mut engine = Engine::new(config());
    let e = sighting(T0, "sf", 1, -70);
    engine.handle_event(&e, e.time());
    let window_end = T0 + 900_000;
    let delay = Thresholds::default().max_count_delay_ms;
    engine.handle_timeout(Timestamp(window_end + delay - 10_000));
    // The passer-by's pass is decided, but a sale may still come.
    engine.handle_event(
        &sale(window_end - 1, "last-minute"),
        Timestamp(window_end + delay),
    );
    assert_eq!(final_window_at(&mut engine, T0), None);
    engine.handle_timeout(Timestamp(window_end + delay + 30_000));
    let window = final_window_at(&mut engine, T0).expect("final after the count delay");
    assert_eq!(window.funnel.transactions, 1);
}

#[test]
fn a_visit_on_an_earlier_day_makes_a_repeat() {
    let mut ev = Vec::new();
    dwell(&mut ev, 11, "en", 0, 200, -60);
    dwell(&mut ev, 11, "en", 86_400, 86_600, -60);
    dwell(&mut ev, 11, "en", 87_400, 87_600, -60); // same day again: repeat too
    dwell(&mut ev, 12, "en", 86_400, 86_600, -60);
    ev.sort_by_key(|e| e.time());
    let (_, _, days) = run(&ev);
    assert_eq!(days.len(), 2);
    assert_eq!(
        days[0].funnel.repeat,
        Some(RepeatCounts {
            eligible_entries: 1,
            repeat_visits: 0
        })
    );
    assert_eq!(
        days[1].funnel.repeat,
        Some(RepeatCounts {
            eligible_entries: 3,
            repeat_visits: 2
        })
    );
}

#[test]
fn every_window_an_input_covered_is_emitted_and_the_day_merges_them() {
    let mut ev = Vec::new();
    dwell(&mut ev, 13, "en", 0, 300, -60);
    dwell(&mut ev, 14, "sf", 5000, 5030, -70);
    let (_, windows, days) = run(&ev);
    // BLE alive over [0 s, 299 s + grace) and [5000 s, 5029 s + grace): one window each.
    assert_eq!(days[0].windows, 2);
    let day_windows: Vec<_> = windows
        .iter()
        .filter(|w| w.local_date == days[0].local_date)
        .collect();
    assert_eq!(day_windows.len(), 2);
    let grace_s = Thresholds::default().coverage_grace_ms / 1000;
    let alive_s = (299 + grace_s) + (29 + grace_s);
    assert_eq!(
        days[0].coverage,
        Some(storefront_protocol::Coverage {
            ble_seconds: alive_s as u32,
            door_seconds: Some(0),
            pos_seconds: Some(0),
        })
    );
    let entries: u64 = day_windows.iter().map(|w| w.funnel.entries).sum();
    let passers: u64 = day_windows.iter().map(|w| w.funnel.passers_by).sum();
    assert_eq!((entries, passers), (1, 1));
    assert_eq!(
        days[0]
            .traffic_by_hour
            .iter()
            .map(|h| h.entries)
            .sum::<u64>(),
        1
    );
}

#[test]
fn a_restored_snapshot_carries_on_exactly_as_the_uninterrupted_engine() {
    let mut ev = Vec::new();
    dwell(&mut ev, 21, "sf", 0, 20, -70);
    dwell(&mut ev, 21, "en", 20, 300, -60);
    dwell(&mut ev, 22, "ap", 100, 900, -62);
    dwell(&mut ev, 23, "sf", 500, 560, -72);
    ev.sort_by_key(|e| e.time());
    let (_, expected_windows, expected_days) = run(&ev);

    for cut in [1, ev.len() / 3, ev.len() / 2, ev.len() - 1] {
        let mut first = Engine::new(config());
        for e in &ev[..cut] {
            first.handle_event(e, e.time());
        }
        let mut windows = Vec::new();
        while let Some(w) = first.poll_window() {
            windows.push(w);
        }
        let mut engine = Engine::restore(config(), first.snapshot()).unwrap();
        for e in &ev[cut..] {
            engine.handle_event(e, e.time());
        }
        let day_end = engine.calendar.day_start(
            engine
                .calendar
                .local_date(ev[ev.len() - 1].time())
                .succ_opt()
                .unwrap(),
        );
        engine.finish(day_end);
        while let Some(w) = engine.poll_window() {
            windows.push(w);
        }
        let mut days = Vec::new();
        while let Some(d) = engine.poll_daily() {
            days.push(d);
        }
        assert_eq!(windows, expected_windows, "cut at {cut}");
        assert_eq!(days, expected_days, "cut at {cut}");
    }
}

#[test]
fn a_snapshot_of_another_store_is_refused() {
    let snapshot = Engine::new(config()).snapshot();
    let mut other = config();
    other.store_id = "elsewhere".into();
    assert!(matches!(
        Engine::restore(other, snapshot),
        Err(RestoreError::OtherStore { .. })
    ));
}

#[test]
fn a_restored_engine_still_knows_the_transactions_and_door_records_it_has_seen() {
    let sale = Event::Transaction(Transaction {
        t: Timestamp(T0),
        id: "x1".into(),
        amount_minor: None,
    });
    let door = Event::Door(DoorEvent {
        t: Timestamp(T0),
        sensor: "door".into(),
        record: Some("r1".into()),
        count: DoorCount::Crossing {
            direction: DoorDirection::In,
        },
    });
    let mut first = Engine::new(config());
    first.handle_event(&sale, sale.time());
    first.handle_event(&door, door.time());
    let mut restored = Engine::restore(config(), first.snapshot()).unwrap();
    restored.handle_event(&sale, sale.time());
    restored.handle_event(&door, door.time());
    restored.handle_timeout(Timestamp(T0 + 60_000));
    assert_eq!(
        restored.stats().rejected[&RejectReason::DuplicateTransaction],
        1
    );
    assert_eq!(
        restored.stats().rejected[&RejectReason::DuplicateDoorRecord],
        1
    );
}
