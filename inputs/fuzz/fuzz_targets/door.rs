#![no_main]

use libfuzzer_sys::fuzz_target;
use storefront_inputs::parse_door;
use storefront_protocol::Timestamp;

fuzz_target!(|data: &[u8]| {
    let _ = parse_door(data, Timestamp::from_millis(1_763_888_400_000));
});
