//! `parse_scanner` on every format: the first byte picks the format, bytes up to the first
//! NUL are the topic (lossy UTF-8), the rest the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storefront_inputs::{ScannerFormat, parse_scanner};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let format = match selector % 3 {
        0 => ScannerFormat::Espresense,
        1 => ScannerFormat::Theengs,
        _ => ScannerFormat::MqttRoom,
    };
    let (topic, payload) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b"espresense/devices/id/room"[..], rest),
    };
    let topic = String::from_utf8_lossy(topic);
    let _ = parse_scanner(format, &topic, payload);
});
