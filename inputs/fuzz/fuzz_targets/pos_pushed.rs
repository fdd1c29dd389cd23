#![no_main]

use libfuzzer_sys::fuzz_target;
use storefront_inputs::parse_pushed_transaction;

fuzz_target!(|data: &[u8]| {
    let _ = parse_pushed_transaction(data);
});
