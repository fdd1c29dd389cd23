//! "No data" is not zero: a window says how long each input was alive in it, and a window no
//! input covered is not emitted at all (a gateway switched off, a clock jump forward).

use storefront_engine::{Engine, EngineConfig, RejectReason, Thresholds, ZoneConfig, ZoneKind};
use storefront_protocol::{
    AddressKind, Alive, Coverage, DailySummary, DeviceId, DoorCount, DoorEvent, Event, InputKind,
    Sighting, Timestamp, Transaction, WindowSummary,
};

/// 2025-11-24T08:00:00Z, 09:00 in Paris (a Monday).
const T0: i64 = 1_763_971_200_000;
const DAY_MS: i64 = 86_400_000;

fn config() -> EngineConfig {
    let zone = |id: &str, kind, scanner: &str| ZoneConfig {
        id: id.into(),
        kind,
        scanners: vec![scanner.into()],
        enter_rssi_dbm: -75,
        exit_rssi_dbm: -80,
    };
    EngineConfig {
        store_id: "coverage-store".into(),
        timezone: chrono_tz::Europe::Paris,
        zones: vec![
            zone("storefront", ZoneKind::Storefront, "sf"),
            zone("entrance", ZoneKind::InStore, "en"),
        ],
        door_sensors: vec!["door".into()],
        pos_sources: vec!["pos".into()],
        staff_devices: Vec::new(),
        thresholds: Thresholds::default(),
        repeat_measurable: false,
        limits: storefront_engine::Limits::default(),
    }
}

fn sighting(t: i64, scanner: &str, device: u64, rssi: i16) -> Event {
    Event::Sighting(Sighting {
        t: Timestamp(t),
        scanner: scanner.into(),
        device: DeviceId(device),
        rssi,
        tx_power: None,
        addr: AddressKind::Stable,
    })
}

/// A shopper's visit of `seconds` from `from` (one reading a second at the entrance).
fn visit(events: &mut Vec<Event>, device: u64, from: i64, seconds: i64) {
    for s in 0..seconds {
        events.push(sighting(from + s * 1000, "en", device, -60));
    }
}

fn alive(t: i64, input: InputKind, source: &str) -> Event {
    Event::Alive(Alive {
        t: Timestamp(t),
        input,
        source: source.into(),
    })
}

/// Signs of life from `source` every minute over `[from, from + minutes)`.
fn heartbeats(events: &mut Vec<Event>, input: InputKind, source: &str, from: i64, minutes: i64) {
    for m in 0..minutes {
        events.push(alive(from + m * 60_000, input, source));
    }
}

fn grace_s() -> u32 {
    (Thresholds::default().coverage_grace_ms / 1000) as u32
}

fn ble_only(seconds: u32) -> Option<Coverage> {
    Some(Coverage {
        ble_seconds: seconds,
        door_seconds: Some(0),
        pos_seconds: Some(0),
    })
}

/// Every event at its own time, then the stream's end; all windows and days polled.
fn run(events: &[Event]) -> (Engine, Vec<WindowSummary>, Vec<DailySummary>) {
    run_with(config(), events)
}

fn run_with(
    config: EngineConfig,
    events: &[Event],
) -> (Engine, Vec<WindowSummary>, Vec<DailySummary>) {
    let mut engine = Engine::new(config);
    for event in events {
        engine.handle_event(event, event.time());
    }
    engine.end_of_stream();
    let windows = std::iter::from_fn(|| engine.poll_window()).collect();
    let days = std::iter::from_fn(|| engine.poll_daily()).collect();
    (engine, windows, days)
}

#[test]
fn a_week_switched_off_emits_no_window_and_no_day_for_the_gap() {
    let mut events = Vec::new();
    visit(&mut events, 1, T0, 300);
    let back = T0 + 8 * DAY_MS;
    visit(&mut events, 2, back, 300);
    let (_, windows, days) = run(&events);

    let gap = (T0 + 3_600_000)..(back - 3_600_000);
    let in_gap: Vec<_> = windows
        .iter()
        .filter(|w| gap.contains(&w.window_start.millis()))
        .map(|w| w.local_date.clone())
        .collect();
    assert!(
        in_gap.is_empty(),
        "{} windows emitted while the gateway was off, on {:?}…",
        in_gap.len(),
        in_gap.first()
    );
    let dates: Vec<&str> = days.iter().map(|d| d.local_date.as_str()).collect();
    assert_eq!(dates, ["2025-11-24", "2025-12-02"]);
    // Each day around the gap says how little of it the store saw: 5 minutes of readings and
    // the grace after the last one.
    for day in &days {
        assert_eq!(
            day.coverage,
            ble_only(299 + grace_s()),
            "{}",
            day.local_date
        );
        assert_eq!(day.funnel.entries, 1, "{}", day.local_date);
    }
}

#[test]
fn a_35_day_jump_forward_in_event_time_emits_nothing_for_the_jumped_days() {
    let mut events = Vec::new();
    visit(&mut events, 1, T0, 120);
    // The gateway's clock jumps 35 days ahead and the next readings are stamped with it.
    visit(&mut events, 2, T0 + 35 * DAY_MS, 120);
    let (_, windows, days) = run(&events);
    assert_eq!(days.len(), 2, "the day before and the day after the jump");
    // Each run of readings (2 min, plus the grace it stays alive for) touches at most two
    // windows of 15 minutes.
    assert!(
        windows.len() <= 4,
        "{} windows emitted for two 2-minute runs of readings",
        windows.len()
    );
}

#[test]
fn a_window_where_the_scanners_were_alive_but_no_one_came_is_a_real_zero() {
    let mut events = Vec::new();
    heartbeats(&mut events, InputKind::Ble, "sf", T0, 60);
    let (engine, windows, days) = run(&events);
    assert_eq!(engine.stats().accepted, 60);
    // 09:00–10:00 covered whole, and the grace after the last heartbeat (10:59) into 10:00.
    let seconds: Vec<_> = windows.iter().map(|w| w.coverage).collect();
    let full = ble_only(900);
    assert_eq!(seconds, [full, full, full, full, ble_only(grace_s() - 60)]);
    assert!(
        windows
            .iter()
            .all(|w| w.funnel.entries == 0 && w.funnel.passers_by == 0)
    );
    assert_eq!(
        windows[0].funnel.door_in,
        Some(0),
        "a real zero, not missing"
    );
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].windows, 5);
    assert_eq!(days[0].funnel.entries, 0);
}

#[test]
fn door_records_and_sales_mark_their_inputs_alive_and_an_unconfigured_pos_is_absent() {
    let events = [
        Event::Door(DoorEvent {
            t: Timestamp(T0 + 60_000),
            sensor: "door".into(),
            record: None,
            count: DoorCount::Interval {
                entered: 3,
                exited: 1,
            },
        }),
        Event::Transaction(Transaction {
            t: Timestamp(T0 + 120_000),
            id: "sale-1".into(),
            amount_minor: Some(1250),
        }),
    ];
    let (_, windows, _) = run(&events);
    assert_eq!(windows.len(), 1);
    let expected = Coverage {
        ble_seconds: 0,
        door_seconds: Some(grace_s()),
        pos_seconds: Some(grace_s()),
    };
    assert_eq!(windows[0].coverage, Some(expected));
    assert_eq!(windows[0].funnel.door_in, Some(3));

    let no_pos = EngineConfig {
        pos_sources: Vec::new(),
        ..config()
    };
    let (_, windows, _) = run_with(no_pos, &events);
    let coverage = windows[0].coverage.expect("recorded");
    assert_eq!(
        coverage.pos_seconds, None,
        "the store has no POS system configured"
    );
    assert_eq!(windows[0].funnel.transactions, 1, "its sales still count");
}

#[test]
fn a_sign_of_life_from_an_unknown_source_is_rejected_and_covers_nothing() {
    let events = [
        alive(T0, InputKind::Ble, "nowhere"),
        alive(T0, InputKind::Door, "sf"),
        alive(T0, InputKind::Pos, "till-9"),
    ];
    let (engine, windows, days) = run(&events);
    let rejected = &engine.stats().rejected;
    assert_eq!(rejected[&RejectReason::UnknownScanner], 1);
    assert_eq!(rejected[&RejectReason::UnknownDoorSensor], 1);
    assert_eq!(rejected[&RejectReason::UnknownPosSystem], 1);
    assert!(windows.is_empty() && days.is_empty());
}

#[test]
fn a_late_sign_of_life_still_covers_its_open_window() {
    let mut engine = Engine::new(config());
    let mut events = Vec::new();
    visit(&mut events, 1, T0, 30);
    for e in &events {
        engine.handle_event(e, e.time());
    }
    // The door counter's heartbeat from 09:05 arrives a minute late, its window still open.
    let late = alive(T0 + 300_000, InputKind::Door, "door");
    engine.handle_timeout(Timestamp(T0 + 360_000));
    engine.handle_event(&late, Timestamp(T0 + 360_000));
    engine.end_of_stream();
    let window = engine.poll_window().expect("09:00 had data");
    assert_eq!(engine.stats().late_counts, 1);
    assert_eq!(
        window.coverage.and_then(|c| c.door_seconds),
        Some(grace_s())
    );
}

#[test]
fn a_restored_snapshot_carries_coverage_on_exactly() {
    let mut events = Vec::new();
    heartbeats(&mut events, InputKind::Ble, "sf", T0, 20);
    visit(&mut events, 1, T0 + 1_800_000, 200);
    heartbeats(&mut events, InputKind::Door, "door", T0 + 2_000_000, 30);
    heartbeats(&mut events, InputKind::Pos, "pos", T0 + 7_200_000, 10);
    events.sort_by_key(Event::time);
    let (_, expected_windows, expected_days) = run(&events);
    assert!(expected_windows.len() > 4);

    for cut in [1, events.len() / 3, events.len() / 2, events.len() - 1] {
        let mut first = Engine::new(config());
        for e in &events[..cut] {
            first.handle_event(e, e.time());
        }
        let mut windows: Vec<_> = std::iter::from_fn(|| first.poll_window()).collect();
        let mut days: Vec<_> = std::iter::from_fn(|| first.poll_daily()).collect();
        let json = serde_json::to_string(&first.snapshot()).unwrap();
        let mut restored = Engine::restore(config(), serde_json::from_str(&json).unwrap()).unwrap();
        for e in &events[cut..] {
            restored.handle_event(e, e.time());
        }
        restored.end_of_stream();
        windows.extend(std::iter::from_fn(|| restored.poll_window()));
        days.extend(std::iter::from_fn(|| restored.poll_daily()));
        assert_eq!(windows, expected_windows, "cut at {cut}");
        assert_eq!(days, expected_days, "cut at {cut}");
    }
}

#[test]
fn a_snapshot_taken_before_coverage_existed_still_restores() {
    let mut engine = Engine::new(config());
    let mut events = Vec::new();
    visit(&mut events, 1, T0, 30);
    for e in &events {
        engine.handle_event(e, e.time());
    }
    let mut json: serde_json::Value = serde_json::to_value(engine.snapshot()).unwrap();
    assert!(json.as_object_mut().unwrap().remove("coverage").is_some());
    let mut restored = Engine::restore(config(), serde_json::from_value(json).unwrap()).unwrap();
    restored.end_of_stream();
    let window = restored.poll_window().expect("the window with the visit");
    assert_eq!(window.funnel.entries, 1);
}
