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

fn main() {
    let (config, events) = common::mall_day();
    // Every in-store scanner hears every device: the worst case for per-device state.
    let scanners: Vec<String> = config
        .zones
        .iter()
        .flat_map(|z| z.scanners.clone())
        .collect();
    let start = events.first().map(|e| e.time().millis()).unwrap_or(0) + 10 * 3_600_000;
    let devices = 20_000u64;
    let mut engine = Engine::new(config);
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
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    let live = engine.live();
    println!(
        "tracked devices: {}  heard by {} scanners each  heap growth: {} bytes  per device: {} bytes  (in store: {})",
        live.tracked_devices,
        scanners.len(),
        after.saturating_sub(before),
        after.saturating_sub(before) / live.tracked_devices.max(1),
        live.devices_in_store
    );
}
