//! The engine under hostile input: floods of outside ids, implausible counter values, clock
//! steps and checkpoints restored under a changed config. One test per attack.

use storefront_engine::{
    Engine, EngineConfig, Limits, RejectReason, Snapshot, Thresholds, ZoneConfig, ZoneKind,
};
use storefront_protocol::{
    AddressKind, DailySummary, DeviceId, DoorCount, DoorEvent, Event, Sighting, Timestamp,
    Transaction, WindowSummary,
};

const T0: i64 = 1_763_884_800_000; // 2025-11-23T08:00:00Z, 09:00 in Paris
const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const DAY: i64 = 86_400 * SECOND;

fn zone(id: &str, kind: ZoneKind, scanners: &[&str]) -> ZoneConfig {
    ZoneConfig {
        id: id.into(),
        kind,
        scanners: scanners.iter().map(|s| s.to_string()).collect(),
        enter_rssi_dbm: -75,
        exit_rssi_dbm: -80,
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        store_id: "hostile-store".into(),
        timezone: chrono_tz::Europe::Paris,
        zones: vec![
            zone("storefront", ZoneKind::Storefront, &["sf"]),
            zone("entrance", ZoneKind::InStore, &["en"]),
            zone("apparel", ZoneKind::InStore, &["ap"]),
        ],
        door_sensors: vec!["door".into()],
        pos_sources: Vec::new(),
        staff_devices: Vec::new(),
        thresholds: Thresholds::default(),
        repeat_measurable: true,
        limits: Limits::default(),
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

fn door(t: i64, sensor: &str, count: DoorCount) -> Event {
    Event::Door(DoorEvent {
        t: Timestamp(t),
        sensor: sensor.into(),
        record: None,
        count,
    })
}

fn cumulative(t: i64, sensor: &str, in_total: u64) -> Event {
    door(
        t,
        sensor,
        DoorCount::Cumulative {
            in_total,
            out_total: 0,
        },
    )
}

fn sale(t: i64, id: &str, amount_minor: Option<i64>) -> Event {
    Event::Transaction(Transaction {
        t: Timestamp(t),
        id: id.into(),
        amount_minor,
    })
}

/// One reading a second at `scanner` over `[from, to)` (ms).
fn dwell(events: &mut Vec<Event>, device: u64, scanner: &str, from: i64, to: i64) {
    events.extend(
        (from..to)
            .step_by(SECOND as usize)
            .map(|t| sighting(t, scanner, device, -60)),
    );
}

/// Everything the engine has finished so far.
fn drain(engine: &mut Engine) -> (Vec<WindowSummary>, Vec<DailySummary>) {
    let windows = std::iter::from_fn(|| engine.poll_window()).collect();
    let days = std::iter::from_fn(|| engine.poll_daily()).collect();
    (windows, days)
}

/// Feeds `events` in event time (a replay) and ends the stream.
fn replay(engine: &mut Engine, events: &[Event]) -> (Vec<WindowSummary>, Vec<DailySummary>) {
    for e in events {
        engine.handle_event(e, e.time());
    }
    engine.end_of_stream();
    drain(engine)
}

fn snapshot_bytes(engine: &Engine) -> usize {
    serde_json::to_vec(&engine.snapshot())
        .expect("a snapshot serialises")
        .len()
}

fn restored(config: EngineConfig, snapshot: Snapshot) -> Engine {
    let json = serde_json::to_vec(&snapshot).expect("a snapshot serialises");
    let snapshot: Snapshot = serde_json::from_slice(&json).expect("and deserialises");
    Engine::restore(config, snapshot).expect("the snapshot is restored")
}

// ---------------------------------------------------------------------------------------------
// Item 8: every map fed from outside is bounded.

/// The legitimate shopper of the flood tests.
const SHOPPER: u64 = 0x5409;

/// Five minutes in the entrance zone, from `from`.
fn shopper(events: &mut Vec<Event>, from: i64) {
    dwell(events, SHOPPER, "en", from, from + 5 * MINUTE);
}

/// `n` distinct fake device ids, each heard once at the storefront scanner, spread over `span` ms.
fn fake_devices(n: u64, from: i64, span: i64) -> impl Iterator<Item = Event> {
    (0..n).map(move |i| {
        sighting(
            from + i as i64 * span / n as i64,
            "sf",
            0xF00D_0000_0000 + i,
            -70,
        )
    })
}

/// Merges two time-ordered event lists.
fn merged(mut a: Vec<Event>, b: impl IntoIterator<Item = Event>) -> Vec<Event> {
    a.extend(b);
    a.sort_by_key(|e| e.time());
    a
}

#[test]
fn a_flood_of_fake_device_ids_keeps_the_tracked_devices_at_the_bound_and_a_real_visit_still_counts()
{
    let bound = 20_000; // the default max_tracked_devices
    let flood = 10 * bound as u64;
    let mut alone = Vec::new();
    shopper(&mut alone, T0 + MINUTE);
    // The whole flood inside 100 s: no fake pass ends on its own before it is over.
    let events = merged(alone.clone(), fake_devices(flood, T0, 100 * SECOND));

    let (_, expected_days) = replay(&mut Engine::new(config()), &alone);

    // The snapshot of a table exactly full, every event taken.
    let mut at_bound = Engine::new(config());
    for e in fake_devices(bound as u64, T0, 100 * SECOND) {
        at_bound.handle_event(&e, e.time());
    }
    at_bound.handle_timeout(Timestamp(T0 + 110 * SECOND));
    assert_eq!(at_bound.live().tracked_devices, bound);
    let at_bound = snapshot_bytes(&at_bound);

    let mut engine = Engine::new(config());
    let mut most_tracked = 0;
    let flood_end = T0 + 110 * SECOND;
    let (during, after): (Vec<_>, Vec<_>) =
        events.iter().partition(|e| e.time().millis() < flood_end);
    for (i, e) in during.iter().enumerate() {
        engine.handle_event(e, e.time());
        if i % 100 == 0 {
            most_tracked = most_tracked.max(engine.live().tracked_devices);
        }
    }
    engine.handle_timeout(Timestamp(flood_end));
    assert!(
        most_tracked <= bound,
        "{most_tracked} devices tracked, bound {bound}"
    );
    let after_flood = snapshot_bytes(&engine);
    assert!(
        after_flood <= at_bound + at_bound / 10,
        "snapshot grew from {at_bound} bytes at the bound to {after_flood} after the flood"
    );
    let tracked = engine.live().tracked_devices as u64;
    assert_eq!(
        engine.stats().shed_total() + tracked,
        flood + 1,
        "every device not tracked is counted as shed"
    );

    for e in after {
        engine.handle_event(e, e.time());
    }
    engine.end_of_stream();
    let (_, days) = drain(&mut engine);
    assert_eq!(
        days.len(),
        1,
        "the day completes: shed passes do not hold windows open"
    );
    let (got, want) = (&days[0].funnel, &expected_days[0].funnel);
    assert_eq!(got.entries, want.entries);
    assert_eq!(got.entries, 1);
    assert_eq!(got.visit_duration, want.visit_duration);
    assert_eq!(got.zones, want.zones);
}

#[test]
fn a_flood_of_distinct_sale_ids_keeps_the_dedup_set_at_its_bound_and_a_recent_resend_is_still_refused()
 {
    let bound = 100_000; // the default max_dedup_ids
    let mut engine = Engine::new(config());
    let mut at_bound = None;
    let flood = 4 * bound;
    for i in 0..flood {
        // Within one window's count delay: a POS re-sending a huge page of ids.
        let t = T0 + i as i64 * (10 * MINUTE) / flood as i64;
        engine.handle_event(&sale(t, &format!("forged-{i:08}"), Some(1)), Timestamp(t));
        if i + 1 == bound {
            at_bound = Some(snapshot_bytes(&engine));
        }
    }
    // Past the reorder delay: every id has been taken.
    engine.handle_timeout(Timestamp(T0 + 11 * MINUTE));
    let at_bound = at_bound.expect("the flood reaches the bound");
    let after_flood = snapshot_bytes(&engine);
    assert!(
        after_flood <= at_bound + at_bound / 10,
        "snapshot grew from {at_bound} bytes at the bound to {after_flood} after the flood"
    );
    assert_eq!(engine.live().dedup_ids, bound);
    assert_eq!(engine.stats().shed_total(), flood as u64 - bound as u64);
    // The most recent ids are the ones kept: a re-send of the last page is still refused.
    let t = T0 + 10 * MINUTE;
    let resend = sale(t, &format!("forged-{:08}", flood - 1), Some(1));
    engine.handle_event(&resend, Timestamp(T0 + 11 * MINUTE));
    assert_eq!(
        engine.stats().rejected[&RejectReason::DuplicateTransaction],
        1
    );
}

#[test]
fn a_flood_of_distinct_door_record_ids_keeps_the_dedup_set_at_its_bound() {
    let bound = 100_000; // the default max_dedup_ids
    let mut engine = Engine::new(config());
    let mut at_bound = None;
    let flood = 4 * bound;
    for i in 0..flood {
        let t = T0 + i as i64 * (10 * MINUTE) / flood as i64;
        let event = Event::Door(DoorEvent {
            t: Timestamp(t),
            sensor: "door".into(),
            record: Some(format!("rec-{i:08}")),
            count: DoorCount::Crossing {
                direction: storefront_protocol::DoorDirection::In,
            },
        });
        engine.handle_event(&event, Timestamp(t));
        if i + 1 == bound {
            at_bound = Some(snapshot_bytes(&engine));
        }
    }
    // Past the reorder delay: every id has been taken.
    engine.handle_timeout(Timestamp(T0 + 11 * MINUTE));
    let at_bound = at_bound.expect("the flood reaches the bound");
    let after_flood = snapshot_bytes(&engine);
    assert!(
        after_flood <= at_bound + at_bound / 10,
        "snapshot grew from {at_bound} bytes at the bound to {after_flood} after the flood"
    );
    assert_eq!(engine.live().dedup_ids, bound);
    assert_eq!(engine.stats().shed_total(), flood as u64 - bound as u64);
}

#[test]
fn a_flood_of_repeat_eligible_visitors_keeps_the_visit_history_at_its_bound() {
    let bound = 200_000; // the default max_visit_history
    let visitors = bound + bound / 2;
    let mut engine = Engine::new(config());
    let mut at_bound = None;
    // Four visitors arrive each second and stay 10 s: readings fed in time order.
    let per_second = 4;
    let seconds = (visitors / per_second) as i64;
    let stay = 10;
    for second in 0..seconds + stay {
        let t = T0 + second * SECOND;
        for start in (second - stay + 1).max(0)..=second.min(seconds - 1) {
            for k in 0..per_second as i64 {
                let device = 0xAB00_0000_0000 + (start * per_second as i64 + k) as u64;
                engine.handle_event(&sighting(t, "en", device, -60), Timestamp(t));
            }
        }
        if (second + 1) * per_second as i64 == bound as i64 {
            at_bound = Some(snapshot_bytes(&engine));
        }
    }
    let second = seconds + stay;
    let at_bound = at_bound.expect("the flood reaches the bound");
    // Every visit closed, nothing tracked any more: what is left is the history.
    engine.handle_timeout(Timestamp(T0 + (second + 3600) * SECOND));
    let after_flood = snapshot_bytes(&engine);
    assert!(
        after_flood <= at_bound + at_bound / 10,
        "snapshot grew from {at_bound} bytes at the bound to {after_flood} after the flood"
    );
    assert!(engine.live().visit_history <= bound);
    assert!(engine.stats().shed_total() >= visitors as u64 - bound as u64);
}

// ---------------------------------------------------------------------------------------------
// Item 17: no integer wraps; a door counter cannot count faster than people walk.

fn door_in_total(windows: &[WindowSummary]) -> u64 {
    windows.iter().map(|w| w.funnel.door_in.unwrap_or(0)).sum()
}

#[test]
fn a_cumulative_register_jumping_to_u64_max_is_rejected_and_rebaselined() {
    let mut engine = Engine::new(config());
    let reads = [
        (T0, 100),
        (T0 + MINUTE, 110),
        (T0 + 2 * MINUTE, u64::MAX),
        (T0 + 3 * MINUTE, 120),
        (T0 + 4 * MINUTE, 135),
    ];
    let events: Vec<Event> = reads
        .iter()
        .map(|&(t, total)| cumulative(t, "door", total))
        .collect();
    let (windows, _) = replay(&mut engine, &events);
    // 110 - 100, then the garbage read is refused and the next read is a new baseline.
    assert_eq!(door_in_total(&windows), 10 + 15);
    assert_eq!(
        engine.stats().rejected[&RejectReason::ImplausibleDoorCount],
        1
    );
}

#[test]
fn an_interval_record_of_u32_max_crossings_is_rejected_not_added() {
    let mut engine = Engine::new(config());
    let interval = |t, entered| door(t, "door", DoorCount::Interval { entered, exited: 0 });
    let events = [
        interval(T0, 12),
        interval(T0 + MINUTE, u32::MAX),
        interval(T0 + 2 * MINUTE, 7),
    ];
    let (windows, _) = replay(&mut engine, &events);
    assert_eq!(door_in_total(&windows), 12 + 7);
    assert_eq!(
        engine.stats().rejected[&RejectReason::ImplausibleDoorCount],
        1
    );
}

#[test]
fn sales_of_i64_max_saturate_the_revenue_instead_of_wrapping_negative() {
    let mut engine = Engine::new(config());
    let events = [
        sale(T0, "big-1", Some(i64::MAX)),
        sale(T0 + SECOND, "big-2", Some(i64::MAX)),
        sale(T0 + 2 * SECOND, "refund-1", Some(i64::MIN)),
        sale(T0 + 3 * SECOND, "refund-2", Some(i64::MIN)),
    ];
    let (windows, days) = replay(&mut engine, &events[..2]);
    let revenue: Vec<i64> = windows.iter().map(|w| w.funnel.revenue_minor).collect();
    assert!(revenue.contains(&i64::MAX), "{revenue:?}");
    assert_eq!(days[0].funnel.revenue_minor, i64::MAX);
    let mut engine = Engine::new(config());
    let (windows, _) = replay(&mut engine, &events[2..]);
    let revenue: Vec<i64> = windows.iter().map(|w| w.funnel.revenue_minor).collect();
    assert!(revenue.contains(&i64::MIN), "{revenue:?}");
}

// ---------------------------------------------------------------------------------------------
// Item 13: checkpoints name their zones, scanners and sensors.

#[test]
fn restoring_after_door_sensors_are_reordered_keeps_each_sensors_baseline() {
    let mut before = config();
    before.door_sensors = vec!["door-a".into(), "door-b".into()];
    let mut engine = Engine::new(before.clone());
    engine.handle_event(&cumulative(T0, "door-a", 1_000), Timestamp(T0));
    engine.handle_event(&cumulative(T0, "door-b", 5_000), Timestamp(T0));
    engine.handle_timeout(Timestamp(T0 + 10 * SECOND));

    let mut after = before.clone();
    after.door_sensors.reverse();
    let mut engine = restored(after, engine.snapshot());
    let t = T0 + MINUTE;
    engine.handle_event(&cumulative(t, "door-a", 1_010), Timestamp(t));
    engine.handle_event(&cumulative(t, "door-b", 5_020), Timestamp(t));
    engine.end_of_stream();
    let (windows, _) = drain(&mut engine);
    assert_eq!(door_in_total(&windows), 10 + 20);
}

#[test]
fn restoring_after_a_zone_is_removed_does_not_panic_and_keeps_the_other_zones_state() {
    // Two shoppers mid-visit: one in apparel (the last zone), one in the entrance.
    let mut first = Vec::new();
    dwell(&mut first, 1, "ap", T0, T0 + 2 * MINUTE);
    dwell(&mut first, 2, "en", T0, T0 + 2 * MINUTE);
    first.sort_by_key(|e| e.time());
    let mut rest = Vec::new();
    dwell(&mut rest, 1, "ap", T0 + 2 * MINUTE, T0 + 6 * MINUTE);
    let mut engine = Engine::new(config());
    for e in &first {
        engine.handle_event(e, e.time());
    }
    let snapshot = engine.snapshot();

    // The expected apparel figures: the same shopper in a store that never had an entrance.
    let mut without_entrance = config();
    without_entrance.zones.remove(1);
    let mut alone = Vec::new();
    dwell(&mut alone, 1, "ap", T0, T0 + 6 * MINUTE);
    let (_, expected) = replay(&mut Engine::new(without_entrance.clone()), &alone);

    let mut engine = restored(without_entrance, snapshot);
    let (_, days) = replay(&mut engine, &rest);
    assert_eq!(days.len(), 1);
    let apparel = &days[0].funnel.zones["apparel"];
    assert_eq!(apparel, &expected[0].funnel.zones["apparel"]);
    // The entrance shopper's visit still ends and counts; only its entrance dwell is gone.
    assert_eq!(days[0].funnel.entries, 2);
}

#[test]
fn a_zone_beyond_the_engines_index_range_is_ignored_not_wrapped_onto_the_storefront() {
    let mut config = config();
    for i in config.zones.len()..257 {
        let scanner = format!("extra-{i}");
        config.zones.push(zone(
            &format!("extra-zone-{i}"),
            ZoneKind::InStore,
            &[scanner.as_str()],
        ));
    }
    let mut engine = Engine::new(config);
    let mut events = Vec::new();
    dwell(&mut events, 7, "extra-256", T0, T0 + 2 * MINUTE);
    let (windows, _) = replay(&mut engine, &events);
    // Zone 256 would wrap onto zone 0, the storefront, and make a passer-by.
    assert!(windows.iter().all(|w| w.funnel.passers_by == 0));
    assert_eq!(
        engine.stats().rejected[&RejectReason::UnknownScanner],
        events.len() as u64
    );
}

// ---------------------------------------------------------------------------------------------
// Item 10: the receiving clock steps.

#[test]
fn after_the_clock_steps_35_days_ahead_and_back_live_events_are_accepted_again() {
    let mut engine = Engine::new(config());
    let mut windows = Vec::new();
    let mut days = Vec::new();
    // As the daemon's wall-clock mode drives it: the clock is read before events are taken.
    let mut live = |engine: &mut Engine, events: &[Event], now: i64| {
        engine.observe_clock(Timestamp(now));
        for e in events {
            engine.handle_event(e, Timestamp(now));
        }
        engine.handle_timeout(Timestamp(now));
        let (w, d) = drain(engine);
        windows.extend(w);
        days.extend(d);
    };
    // A shopper at 09:00, live (stamped by the receiving clock, each second).
    for s in 0..120 {
        let t = T0 + s * SECOND;
        live(&mut engine, &[sighting(t, "en", 1, -60)], t);
    }
    // The clock jumps 35 days ahead for ten minutes: what is heard then is stamped then.
    let jump = 35 * DAY;
    for s in 120..720 {
        let t = T0 + jump + s * SECOND;
        live(&mut engine, &[sighting(t, "en", 2, -60)], t);
    }
    // ...and comes back: the real time is 09:12.
    let back = T0 + 12 * MINUTE;
    for s in 0..600 {
        let t = back + s * SECOND;
        live(&mut engine, &[sighting(t, "ap", 3, -60)], t);
    }
    assert_eq!(engine.stats().rejected.get(&RejectReason::Late), None);
    // Real time runs on to the end of the day.
    let mut t = back + 600 * SECOND;
    while t < T0 + 16 * 3600 * SECOND {
        t += 30 * SECOND;
        live(&mut engine, &[], t);
    }
    assert_eq!(engine.stats().clock_steps_back, 1);
    // The shopper after the step back counts, in the window of 09:00 (local 10:00 .. 10:15).
    let after_step: Vec<_> = windows
        .iter()
        .filter(|w| {
            w.window_start.millis() >= back - 15 * MINUTE
                && w.window_start.millis() < back + 10 * MINUTE
        })
        .filter(|w| w.funnel.entries > 0)
        .collect();
    assert!(
        after_step
            .iter()
            .any(|w| w.funnel.zones["apparel"].zone_visits == 1),
        "the visit after the step back is in its window: {after_step:?}"
    );
    // Every shopper counts once, whatever the clock did.
    let entries: u64 = windows.iter().map(|w| w.funnel.entries).sum();
    assert_eq!(entries, 3);
    // Bounded output: the step back emits only what was open, not the 35 days over again.
    let per_day = 24 * 3600 / Thresholds::default().window_seconds as usize + 4;
    assert!(windows.len() <= 37 * per_day, "{} windows", windows.len());
}

#[test]
fn an_event_dated_9999_is_rejected_as_future_and_does_not_move_the_watermark() {
    let mut engine = Engine::new(config());
    let year_9999 = 253_402_300_799_000;
    engine.handle_event(&cumulative(year_9999, "door", 5), Timestamp(T0));
    engine.handle_event(&sighting(year_9999, "sf", 9, -60), Timestamp(T0));
    assert_eq!(engine.stats().rejected[&RejectReason::Future], 2);
    engine.handle_timeout(Timestamp(T0));
    let t = T0 + SECOND;
    engine.handle_event(&sighting(t, "sf", 9, -60), Timestamp(t));
    assert_eq!(engine.stats().rejected.get(&RejectReason::Late), None);
    assert_eq!(engine.stats().accepted, 1);
}
