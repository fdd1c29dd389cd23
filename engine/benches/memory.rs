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

fn main() {
    let (config, events) = common::mall_day();
    realistic(&config, &events);
    let start = events.first().map(|e| e.time().millis()).unwrap_or(0) + 10 * 3_600_000;
    // In the simulated stores a shopper is heard by 2-3 scanners; 4 is every in-store scanner
    // of the mall profile.
    for heard_by in [1, 2, 3, 4] {
        per_device(&config, start, heard_by);
    }
}
