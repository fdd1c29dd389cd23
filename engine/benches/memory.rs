//! Memory per tracked device, measured with a counting allocator: the engine's heap growth
//! while it tracks many devices at once, divided by their number.
//! `cargo bench -p storefront-engine --bench memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use storefront_engine::Engine;
use storefront_protocol::{AddressKind, DeviceId, Event, Sighting, Timestamp};

mod common;

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes per tracked device at the busiest moment of a simulated mall day.
fn realistic(config: &storefront_engine::EngineConfig, events: &[Event]) {
    let empty = LIVE_BYTES.load(Ordering::Relaxed);
    let mut engine = Engine::new(config.clone());
    let (mut peak_devices, mut peak_bytes) = (0, 0);
    for (i, event) in events.iter().enumerate() {
        engine.handle_event(event, event.time());
        if i % 10_000 == 0 {
            let live = engine.live();
            if live.tracked_devices > peak_devices {
                peak_devices = live.tracked_devices;
                peak_bytes = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(empty);
            }
        }
    }
    println!(
        "realistic (simulated mall day, busiest moment): {peak_devices} tracked devices, engine heap {peak_bytes} bytes, {} bytes per device (windows, buffers and history included)",
        peak_bytes / peak_devices.max(1)
    );
}

/// Heap growth per device while `devices` devices are each heard by `heard_by` scanners and
/// are present in-store (a visit open): per-device state alone.
fn per_device(config: &storefront_engine::EngineConfig, start: i64, heard_by: usize) {
    let scanners: Vec<String> = config
        .zones
        .iter()
        .flat_map(|z| z.scanners.clone())
        .skip(1)
        .take(heard_by)
        .collect();
    let devices = 20_000u64;
    let mut engine = Engine::new(config.clone());
    // Warm up windows and buffers so only per-device state is measured.
    engine.handle_timeout(Timestamp(start));
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for second in 0..12i64 {
        for device in 0..devices {
            for (i, scanner) in scanners.iter().enumerate() {
                let t = Timestamp(start + second * 1000 + (device % 997) as i64 + i as i64);
                let event = Event::Sighting(Sighting {
                    t,
                    scanner: scanner.clone(),
                    device: DeviceId(device + 1),
                    rssi: -60 - (i as i16 * 3),
                    tx_power: None,
                    addr: AddressKind::Stable,
                });
                engine.handle_event(&event, t);
            }
        }
    }
    // Let the reorder buffer drain (devices stay present: nothing has timed out yet).
    engine.handle_timeout(Timestamp(start + 20_000));
    let grown = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    let live = engine.live();
    println!(
        "{} devices in store, each heard by {} scanners: {} bytes per device",
        live.devices_in_store,
        scanners.len(),
        grown / live.tracked_devices.max(1),
    );
}

/// Heap bytes per entry of the other bounded maps (`Limits`): a device's visit days (repeat
/// detection) and a de-dup id (a 36-character POS transaction id).
fn per_entry(config: &storefront_engine::EngineConfig, start: i64) {
    let entries = 50_000u64;
    let mut config = config.clone();
    config.repeat_measurable = true;
    let in_store = config
        .zones
        .iter()
        .find(|z| z.kind == storefront_engine::ZoneKind::InStore)
        .map(|z| z.scanners[0].clone())
        .expect("an in-store zone");
    let mut engine = Engine::new(config);
    engine.handle_timeout(Timestamp(start));
    // Ten seconds present: one visit each, spread so few are tracked at once.
    let mut visits: Vec<(i64, u64)> = (0..entries)
        .flat_map(|device| (0..10).map(move |s| (start + device as i64 * 50 + s * 1000, device)))
        .collect();
    visits.sort_unstable();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for &(t, device) in &visits {
        let event = Event::Sighting(Sighting {
            t: Timestamp(t),
            scanner: in_store.clone(),
            device: DeviceId(device + 1),
            rssi: -60,
            tx_power: None,
            addr: AddressKind::Stable,
        });
        engine.handle_event(&event, Timestamp(t));
    }
    let end = start + entries as i64 * 50 + 3_600_000;
    engine.handle_timeout(Timestamp(end));
    let grown = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    let live = engine.live();
    println!(
        "{} devices in the visit history ({} tracked): {} bytes each",
        live.visit_history,
        live.tracked_devices,
        grown / live.visit_history.max(1)
    );
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for i in 0..entries {
        let t = Timestamp(end + i as i64);
        let id = format!("{i:08x}-8d3c-4f7a-9b1e-2c6d5a4e3f21");
        let event = Event::Transaction(storefront_protocol::Transaction {
            t,
            id,
            amount_minor: Some(1999),
        });
        engine.handle_event(&event, t);
    }
    engine.handle_timeout(Timestamp(end + entries as i64 + 60_000));
    let grown = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    println!(
        "{} de-dup ids of 36 characters: {} bytes each",
        engine.live().dedup_ids,
        grown / engine.live().dedup_ids.max(1)
    );
}

fn main() {
    let (config, events) = common::mall_day();
    realistic(&config, &events);
    let start = events.first().map(|e| e.time().millis()).unwrap_or(0) + 10 * 3_600_000;
    // In the simulated stores a shopper is heard by 2-3 scanners; 4 is every in-store scanner
    // of the mall profile.
    for heard_by in [1, 2, 3, 4] {
        per_device(&config, start, heard_by);
    }
    per_entry(&config, start);
}
