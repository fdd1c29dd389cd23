#![no_main]

use libfuzzer_sys::fuzz_target;
use storefront_inputs::parse_transactions;

fuzz_target!(|data: &[u8]| {
    let _ = parse_transactions(data);
});
