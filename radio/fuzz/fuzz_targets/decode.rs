//! Arbitrary bytes into every decoder entry point: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storefront_radio::advert::{self, ServiceUuid};

fuzz_target!(|data: &[u8]| {
    if let Ok(advert) = advert::decode_ad(data) {
        let _ = (advert.stable_identity(), advert.tx_power_1m());
        if let advert::Advert::Eddystone(advert::Eddystone::Url(url)) = advert {
            let _ = url.url();
        }
    }
    let _ = advert::decode_manufacturer_raw(data);
    let _ = advert::decode_service_data(ServiceUuid::Short(advert::EDDYSTONE_UUID16), data);
    if let Some((&first, rest)) = data.split_first() {
        // The first byte picks a company: Apple (iBeacon) or anything else (AltBeacon).
        let company = if first & 1 == 0 { advert::COMPANY_APPLE } else { u16::from(first) << 8 };
        let _ = advert::decode_manufacturer(company, rest);
        if let Ok(advert::Eddystone::Url(url)) = advert::decode_eddystone(rest) {
            let _ = url.url();
        }
    }
});
