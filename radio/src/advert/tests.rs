use super::*;
use proptest::prelude::*;
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// The corpus of real frames: testdata/ble-advertisements.json at the workspace root
// ---------------------------------------------------------------------------------------------

fn corpus() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/ble-advertisements.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the BLE test corpus {} is missing or unreadable ({e}); it lives in testdata/ \
             at the workspace root",
            path.display()
        )
    });
    let value: Value = serde_json::from_str(&text).expect("the corpus is valid JSON");
    value
        .as_array()
        .expect("the corpus is a JSON array")
        .clone()
}

fn hex_field(entry: &Value, key: &str) -> Option<Vec<u8>> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .map(|h| hex::decode(h).unwrap_or_else(|e| panic!("{key} is not hex: {e}")))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.replace('-', "")).expect("hex")
}

/// How an entry's payload is decoded: manufacturer data, service data, or a URL body.
fn decode_entry(entry: &Value) -> Option<Result<Advert, DecodeError>> {
    if let Some(raw) = hex_field(entry, "manufacturer_data_hex") {
        return Some(decode_manufacturer_raw(&raw));
    }
    if let (Some(uuid), Some(data)) = (
        entry.get("service_data_uuid").and_then(Value::as_str),
        hex_field(entry, "service_data_hex"),
    ) {
        let uuid = u16::from_str_radix(uuid, 16).expect("16-bit service uuid");
        return Some(decode_service_data(ServiceUuid::Short(uuid), &data));
    }
    if let Some(body) = hex_field(entry, "url_body_hex") {
        // The corpus gives scheme + URL only; the frame type and a TX power byte go first.
        let mut data = vec![0x10, 0xe7];
        data.extend_from_slice(&body);
        return Some(decode_service_data(
            ServiceUuid::Short(EDDYSTONE_UUID16),
            &data,
        ));
    }
    None
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected an integer, got {v}"))
}

/// Checks one object of expected values against a decoded advert. Keys this decoder has no
/// counterpart for (another decoder's view of the same bytes) are listed and skipped; any other
/// key fails the test so that no expectation is silently ignored.
fn check_fields(advert: &Advert, fields: &Map<String, Value>, ctx: &str) -> usize {
    let mut checked = 0;
    const OTHER_DECODERS_VIEWS: &[&str] = &[
        "theengs_decoder_output",
        "note",
        "local_name",
        "tx_power_level_ad",
        "ad_structure_types",
        "ad_structure_count",
        "espresense_v2_0_27_id",
        "cypress_temperature_x100_int",
        "cypress_humidity_x100_int",
        "cypress_temperature",
        "cypress_humidity",
        "comments_in_source",
        "abl_fixed_length_layout_parsed",
    ];
    for (key, want) in fields {
        let ctx = format!("{ctx}: field {key}");
        if OTHER_DECODERS_VIEWS.contains(&key.as_str()) {
            continue;
        }
        checked += 1;
        match (key.as_str(), advert) {
            ("parsed" | "valid", _) => assert_eq!(want, &Value::Bool(true), "{ctx}"),
            ("company_id_hex_le", Advert::IBeacon(_)) => {
                assert_eq!(want.as_str(), Some("4c00"), "{ctx}")
            }
            ("company_id", _) => {
                let want = u16::from_str_radix(
                    want.as_str().expect("hex string").trim_start_matches("0x"),
                    16,
                )
                .expect("company id");
                let got = match advert {
                    Advert::IBeacon(_) => COMPANY_APPLE,
                    Advert::AltBeacon(b) => b.company_id,
                    Advert::Manufacturer { company_id } => *company_id,
                    other => panic!("{ctx}: {other:?} has no company id"),
                };
                assert_eq!(got, want, "{ctx}");
            }
            ("uuid", Advert::IBeacon(b)) => {
                assert_eq!(b.uuid.to_vec(), unhex(want.as_str().unwrap()), "{ctx}")
            }
            ("uuid" | "id1", Advert::AltBeacon(b)) => {
                assert_eq!(b.id1.to_vec(), unhex(want.as_str().unwrap()), "{ctx}")
            }
            ("major", Advert::IBeacon(b)) => assert_eq!(i64::from(b.major), int(want), "{ctx}"),
            ("minor", Advert::IBeacon(b)) => assert_eq!(i64::from(b.minor), int(want), "{ctx}"),
            ("measured_power", Advert::IBeacon(b)) => {
                assert_eq!(i64::from(b.measured_power), int(want), "{ctx}")
            }
            ("major" | "id2", Advert::AltBeacon(b)) => {
                assert_eq!(i64::from(b.id2), int(want), "{ctx}")
            }
            ("minor" | "id3", Advert::AltBeacon(b)) => {
                assert_eq!(i64::from(b.id3), int(want), "{ctx}")
            }
            ("measured_power" | "reference_rssi", Advert::AltBeacon(b)) => {
                assert_eq!(i64::from(b.reference_rssi), int(want), "{ctx}")
            }
            ("mfg_reserved", Advert::AltBeacon(b)) => {
                assert_eq!(i64::from(b.mfg_reserved), int(want), "{ctx}")
            }
            ("beacon_id", Advert::AltBeacon(b)) => {
                let mut id = b.id1.to_vec();
                id.extend_from_slice(&b.id2.to_be_bytes());
                id.extend_from_slice(&b.id3.to_be_bytes());
                assert_eq!(id, unhex(want.as_str().unwrap()), "{ctx}");
            }
            (_, Advert::Eddystone(e)) => check_eddystone_field(e, advert, key, want, &ctx),
            _ => panic!("{ctx}: no check for this key on {advert:?}"),
        }
    }
    checked
}

fn check_eddystone_field(e: &Eddystone, advert: &Advert, key: &str, want: &Value, ctx: &str) {
    let tx_0m = match e {
        Eddystone::Uid(u) => Some(u.tx_power_0m),
        Eddystone::Url(u) => Some(u.tx_power_0m),
        Eddystone::Eid(u) => Some(u.tx_power_0m),
        _ => None,
    };
    match (key, e) {
        ("frame", _) => {
            let got = match e {
                Eddystone::Uid(_) => "uid",
                Eddystone::Url(_) => "url",
                Eddystone::Tlm(_) | Eddystone::EncryptedTlm(_) => "tlm",
                Eddystone::Eid(_) => "eid",
            };
            assert_eq!(want.as_str(), Some(got), "{ctx}");
        }
        ("tx_power" | "tx_power_0m", _) => {
            assert_eq!(tx_0m.map(i64::from), Some(int(want)), "{ctx}")
        }
        ("abl_tx_power_1m", _) => {
            assert_eq!(
                advert.tx_power_1m().map(i64::from),
                Some(int(want)),
                "{ctx}"
            )
        }
        ("namespace", Eddystone::Uid(u)) => {
            assert_eq!(u.namespace.to_vec(), unhex(want.as_str().unwrap()), "{ctx}")
        }
        ("instance", Eddystone::Uid(u)) => {
            assert_eq!(u.instance.to_vec(), unhex(want.as_str().unwrap()), "{ctx}")
        }
        ("url", Eddystone::Url(u)) => assert_eq!(Some(u.url().as_str()), want.as_str(), "{ctx}"),
        ("url_identifier_length", Eddystone::Url(u)) => {
            // The identifier is the scheme byte plus the encoded URL.
            assert_eq!(1 + u.encoded().len() as i64, int(want), "{ctx}")
        }
        ("version", Eddystone::Tlm(_)) => assert_eq!(int(want), 0, "{ctx}"),
        ("version", Eddystone::EncryptedTlm(_)) => assert_eq!(int(want), 1, "{ctx}"),
        ("battery_mv", Eddystone::Tlm(t)) => {
            assert_eq!(i64::from(t.battery_mv), int(want), "{ctx}")
        }
        ("battery_supported", Eddystone::Tlm(t)) => {
            assert_eq!(Some(t.battery().is_some()), want.as_bool(), "{ctx}")
        }
        ("temperature_c", Eddystone::Tlm(t)) => assert_eq!(
            t.temperature_celsius().map(f64::from),
            want.as_f64(),
            "{ctx}"
        ),
        ("adv_count", Eddystone::Tlm(t)) => {
            assert_eq!(i64::from(t.adv_count), int(want), "{ctx}")
        }
        ("sec_count", Eddystone::Tlm(t)) => {
            assert_eq!(i64::from(t.sec_count), int(want), "{ctx}")
        }
        ("uptime_s", Eddystone::Tlm(t)) => {
            assert_eq!(Some(t.uptime().as_secs_f64()), want.as_f64(), "{ctx}")
        }
        ("encrypted", Eddystone::EncryptedTlm(_)) => assert_eq!(want, &Value::Bool(true)),
        ("encrypted_data_hex", Eddystone::EncryptedTlm(t)) => {
            assert_eq!(t.encrypted.to_vec(), unhex(want.as_str().unwrap()), "{ctx}")
        }
        // beacontools reads salt and MIC little-endian; the bytes are what this crate keeps.
        ("salt", Eddystone::EncryptedTlm(t)) => {
            assert_eq!(i64::from(u16::from_le_bytes(t.salt)), int(want), "{ctx}")
        }
        ("mic", Eddystone::EncryptedTlm(t)) => {
            assert_eq!(i64::from(u16::from_le_bytes(t.mic)), int(want), "{ctx}")
        }
        ("eid_hex", Eddystone::Eid(d)) => {
            assert_eq!(d.eid.to_vec(), unhex(want.as_str().unwrap()), "{ctx}")
        }
        ("eid_ascii", Eddystone::Eid(d)) => {
            assert_eq!(Some(&d.eid[..]), want.as_str().map(str::as_bytes), "{ctx}")
        }
        _ => panic!("{ctx}: no check for this key on {e:?}"),
    }
}

/// The outcome pinned for every frame the corpus marks invalid, keyed by its description's
/// start. "Rejected" means an error — or, for bytes that are merely no beacon (an unknown
/// company's layout, an AltBeacon-shaped frame with another beacon code), plain manufacturer
/// data of that company with no identity: a standard decoder "must not match any beacon
/// format", and unknown manufacturer data is not an error.
fn invalid_outcome(description: &str) -> Result<Advert, DecodeError> {
    let table: &[(&str, Result<Advert, DecodeError>)] = &[
        (
            "BlueCharm BC08 KSensor",
            Err(DecodeError::UnknownFrameType(0x21)),
        ),
        (
            "Random manufacturer data",
            Ok(Advert::Manufacturer { company_id: 0x0227 }),
        ),
        (
            "AltBeacon with AD length 0x1a",
            Err(DecodeError::Truncated {
                format: Format::AltBeacon,
                needed: 24,
                got: 23,
            }),
        ),
        (
            "AltBeacon-shaped frame with beacon code 0xAABB",
            Ok(Advert::Manufacturer { company_id: 0x0118 }),
        ),
        (
            "Wrong beacon code 0xFFFF",
            Ok(Advert::Manufacturer { company_id: 0x0118 }),
        ),
        (
            "AltBeacon truncated",
            Err(DecodeError::Truncated {
                format: Format::AltBeacon,
                needed: 24,
                got: 17,
            }),
        ),
        (
            "TLM-like frame: version byte 0x01",
            Err(DecodeError::Truncated {
                format: Format::EddystoneEtlm,
                needed: 18,
                got: 14,
            }),
        ),
        (
            "TLM with version byte 0x10",
            Err(DecodeError::UnknownTlmVersion(0x10)),
        ),
        (
            "beacontools bad packet: ASCII",
            Err(DecodeError::AdOverrun {
                offset: 0,
                claimed: 0x30,
                available: 6,
            }),
        ),
        ("beacontools bad packet: empty", Err(DecodeError::Empty)),
        (
            "beacontools bad packet: valid Eddystone-UID",
            Err(DecodeError::EddystoneNotListed),
        ),
        (
            "beacontools bad packet: Eddystone frame type 0x01",
            Err(DecodeError::UnknownFrameType(0x01)),
        ),
    ];
    table
        .iter()
        .find(|(start, _)| description.starts_with(start))
        .map(|(_, outcome)| *outcome)
        .unwrap_or_else(|| panic!("no pinned outcome for invalid frame {description:?}"))
}

/// Expected and spec-derived values this decoder has a counterpart for.
const FIELDS_IN_CORPUS: usize = 142;

#[test]
fn every_frame_of_the_shared_corpus_decodes_as_its_source_says() {
    let corpus = corpus();
    assert_eq!(
        corpus.len(),
        59,
        "the corpus changed: review the new entries"
    );
    let mut fields_checked = 0;
    for (i, entry) in corpus.iter().enumerate() {
        let kind = entry["kind"].as_str().expect("kind");
        let description = entry["description"].as_str().expect("description");
        let ctx = format!("entry {i} ({kind}: {description})");
        let raw_adv = hex_field(entry, "raw_adv_hex");
        let expected = entry.get("expected").and_then(Value::as_object);
        let derived = entry.get("derived_by_spec").and_then(Value::as_object);

        if kind == "invalid" {
            let want = invalid_outcome(description);
            // Invalid frames given as data are rejected from the data; those given only as a
            // whole advertisement (or whose flaw lies in it) from the advertisement.
            let got = match decode_entry(entry) {
                Some(got) if description.contains("Complete 16-bit UUID list") => {
                    // The service data alone is a valid UID: only the advertisement is bad.
                    assert!(matches!(got, Ok(Advert::Eddystone(Eddystone::Uid(_)))));
                    decode_ad(&raw_adv.clone().expect("raw advertisement"))
                }
                Some(got) => got,
                None => decode_ad(&raw_adv.clone().expect("raw advertisement")),
            };
            assert_eq!(got, want, "{ctx}");
            if let Ok(advert) = got {
                assert!(!advert.is_beacon() && advert.identity().is_none(), "{ctx}");
            }
            continue;
        }

        let advert = decode_entry(entry)
            .unwrap_or_else(|| panic!("{ctx}: no payload"))
            .unwrap_or_else(|e| panic!("{ctx}: rejected: {e}"));
        match kind {
            "ibeacon" => {
                let Advert::IBeacon(b) = advert else {
                    panic!("{ctx}: {advert:?}")
                };
                // The btleplug shape (company id apart) decodes the same.
                let raw = hex_field(entry, "manufacturer_data_hex").unwrap();
                assert_eq!(decode_manufacturer(0x004c, &raw[2..]), Ok(advert), "{ctx}");
                // Power bytes with the sign bit clear are no calibrated power.
                let want_power = (b.measured_power < 0).then_some(i16::from(b.measured_power));
                assert_eq!(advert.tx_power_1m(), want_power, "{ctx}");
                assert_eq!(b.extra_bytes, u8::from(raw.len() == 26), "{ctx}");
                assert!(advert.identity().is_some(), "{ctx}");
            }
            "altbeacon" => {
                assert!(matches!(advert, Advert::AltBeacon(_)), "{ctx}: {advert:?}");
                assert!(advert.identity().is_some(), "{ctx}");
            }
            "eddystone-uid" | "eddystone-url" | "eddystone-tlm" | "eddystone-eid" => {
                let Advert::Eddystone(e) = advert else {
                    panic!("{ctx}: {advert:?}")
                };
                let frame_ok = match kind {
                    "eddystone-uid" => matches!(e, Eddystone::Uid(_)),
                    "eddystone-url" => matches!(e, Eddystone::Url(_)),
                    "eddystone-tlm" => {
                        matches!(e, Eddystone::Tlm(_) | Eddystone::EncryptedTlm(_))
                    }
                    _ => matches!(e, Eddystone::Eid(_)),
                };
                assert!(frame_ok, "{ctx}: {e:?}");
                assert_eq!(
                    advert.identity().is_some(),
                    kind == "eddystone-uid",
                    "{ctx}"
                );
            }
            "apple-other" => {
                assert_eq!(advert, Advert::Manufacturer { company_id: 0x004c }, "{ctx}");
                // Apple Continuity carries other keys (overflow ids, PDU layout): not ours.
                assert!(advert.identity().is_none());
                if let Some(raw) = raw_adv {
                    assert_eq!(decode_ad(&raw), Ok(advert), "{ctx}: whole advertisement");
                }
                continue;
            }
            "manufacturer-other" => {
                assert!(!advert.is_beacon() && advert.identity().is_none(), "{ctx}");
                if let Some(Value::String(id)) = expected.and_then(|e| e.get("company_id")) {
                    let id = u16::from_str_radix(id.trim_start_matches("0x"), 16).unwrap();
                    assert_eq!(advert, Advert::Manufacturer { company_id: id }, "{ctx}");
                }
                if let Some(raw) = raw_adv {
                    assert_eq!(decode_ad(&raw), Ok(advert), "{ctx}: whole advertisement");
                }
                // Estimote telemetry fields are that vendor's format, not decoded here.
                continue;
            }
            other => panic!("{ctx}: unknown kind {other}"),
        }

        if let Some(expected) = expected {
            fields_checked += check_fields(&advert, expected, &ctx);
        }
        if let Some(derived) = derived {
            // Spec-derived values: each was checked by hand against the bytes and the spec
            // (Eddystone URL codes, 8.8 temperature, iBeacon big-endian major/minor).
            fields_checked += check_fields(&advert, derived, &format!("{ctx} derived_by_spec"));
        }
        if let Some(raw) = raw_adv {
            let whole = decode_ad(&raw);
            if description.starts_with("Eddystone encrypted TLM") {
                // Its AD length (0x11) cuts the ETLM body to 14 bytes; the corpus' service
                // data is what beacontools read past the structure's end.
                assert_eq!(
                    whole,
                    Err(DecodeError::Truncated {
                        format: Format::EddystoneEtlm,
                        needed: 18,
                        got: 14
                    }),
                    "{ctx}"
                );
            } else {
                assert_eq!(whole, Ok(advert), "{ctx}: whole advertisement");
            }
        }
    }
    // Every expected value the sources state, and every spec-derived one, was compared.
    assert_eq!(fields_checked, FIELDS_IN_CORPUS, "fields checked");
}

// ---------------------------------------------------------------------------------------------
// Hand-picked behaviour
// ---------------------------------------------------------------------------------------------

#[test]
fn a_govee_block_with_an_appended_ibeacon_is_not_an_ibeacon() {
    let raw = unhex("88ec000384e45c004c000215494e54454c4c495f524f434b535f48575075f2ffc2");
    assert_eq!(
        decode_manufacturer_raw(&raw),
        Ok(Advert::Manufacturer { company_id: 0xec88 })
    );
}

#[test]
fn an_ibeacon_with_a_wrong_length_byte_is_rejected() {
    let mut raw = unhex("4c000215426c7565436861726d426561636f6e730efe1355c5");
    raw[3] = 0x16;
    assert_eq!(
        decode_manufacturer_raw(&raw),
        Err(DecodeError::BadLength {
            format: Format::IBeacon,
            expected: 21,
            got: 22
        })
    );
    assert_eq!(
        decode_manufacturer_raw(&raw[..3]),
        Err(DecodeError::Truncated {
            format: Format::IBeacon,
            needed: 23,
            got: 1
        })
    );
    assert!(matches!(
        decode_manufacturer_raw(&unhex("4c000215426c")),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn eddystone_power_is_reported_at_one_metre() {
    let advert = decode_service_data(
        ServiceUuid::Short(EDDYSTONE_UUID16),
        &unhex("00ec00010203040506070809aabbccddeeff0000"),
    )
    .unwrap();
    assert_eq!(advert.tx_power_1m(), Some(-20 - 41));
}

#[test]
fn eddystone_service_data_under_its_128_bit_uuid_decodes() {
    let uuid = 0x0000_feaa_0000_1000_8000_0080_5f9b_34fb_u128;
    assert_eq!(
        ServiceUuid::from_u128(uuid),
        ServiceUuid::Short(EDDYSTONE_UUID16)
    );
    assert!(matches!(
        ServiceUuid::from_u128(uuid | 1 << 120),
        ServiceUuid::Long(_)
    ));
}

#[test]
fn identities_of_formats_and_mac_addresses_cannot_collide() {
    let ib = decode_manufacturer_raw(&unhex("4c000215426c7565436861726d426561636f6e730efe1355c5"))
        .unwrap();
    let id = ib.stable_identity().unwrap();
    assert_eq!(id.len(), 21);
    assert_eq!(id[0], IDENTITY_TAG_PROXIMITY);
    let uid = decode_eddystone(&unhex("00ec00010203040506070809aabbccddeeff0000")).unwrap();
    let id = Advert::Eddystone(uid).stable_identity().unwrap();
    assert_eq!(id.len(), 17);
    assert_eq!(id[0], IDENTITY_TAG_EDDYSTONE_UID);
}

#[test]
fn urls_with_reserved_bytes_or_schemes_are_rejected() {
    assert_eq!(
        decode_eddystone(&unhex("10e704676f6f")),
        Err(DecodeError::BadUrlScheme(4))
    );
    assert_eq!(
        decode_eddystone(&unhex("10e702676f0f")),
        Err(DecodeError::BadUrlByte(0x0f))
    );
    assert_eq!(
        decode_eddystone(&unhex("10e702ff")),
        Err(DecodeError::BadUrlByte(0xff))
    );
}

// ---------------------------------------------------------------------------------------------
// Properties: no panics; encoders round-trip
// ---------------------------------------------------------------------------------------------

fn encode_ibeacon(b: &IBeacon) -> Vec<u8> {
    let mut out = vec![0x4c, 0x00, 0x02, 0x15];
    out.extend_from_slice(&b.uuid);
    out.extend_from_slice(&b.major.to_be_bytes());
    out.extend_from_slice(&b.minor.to_be_bytes());
    out.push(b.measured_power as u8);
    out.extend(std::iter::repeat_n(0xaa, usize::from(b.extra_bytes)));
    out
}

fn encode_altbeacon(b: &AltBeacon) -> Vec<u8> {
    let mut out = b.company_id.to_le_bytes().to_vec();
    out.extend_from_slice(&ALTBEACON_CODE);
    out.extend_from_slice(&b.id1);
    out.extend_from_slice(&b.id2.to_be_bytes());
    out.extend_from_slice(&b.id3.to_be_bytes());
    out.push(b.reference_rssi as u8);
    out.push(b.mfg_reserved);
    out
}

fn encode_eddystone_uid(u: &EddystoneUid, rfu: bool) -> Vec<u8> {
    let mut out = vec![0x00, u.tx_power_0m as u8];
    out.extend_from_slice(&u.namespace);
    out.extend_from_slice(&u.instance);
    if rfu {
        out.extend_from_slice(&[0, 0]);
    }
    out
}

/// An advertising payload around Eddystone service data, as a beacon would send it.
fn eddystone_advertisement(service_data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02, 0x01, 0x06, 0x03, 0x03, 0xaa, 0xfe];
    out.push(3 + service_data.len() as u8);
    out.extend_from_slice(&[0x16, 0xaa, 0xfe]);
    out.extend_from_slice(service_data);
    out
}

fn arb_ibeacon() -> impl Strategy<Value = IBeacon> {
    (
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u16>(),
        any::<i8>(),
        0u8..4,
    )
        .prop_map(
            |(uuid, major, minor, measured_power, extra_bytes)| IBeacon {
                uuid,
                major,
                minor,
                measured_power,
                extra_bytes,
            },
        )
}

fn arb_altbeacon() -> impl Strategy<Value = AltBeacon> {
    (
        any::<u16>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u16>(),
        any::<i8>(),
        any::<u8>(),
    )
        .prop_map(
            |(company_id, id1, id2, id3, reference_rssi, mfg_reserved)| AltBeacon {
                company_id,
                id1,
                id2,
                id3,
                reference_rssi,
                mfg_reserved,
            },
        )
        // Apple's iBeacon type byte decides first; an AltBeacon under Apple's id is not 0x02.
        .prop_filter("not Apple", |b| b.company_id != COMPANY_APPLE)
}

fn arb_uid() -> impl Strategy<Value = EddystoneUid> {
    (any::<i8>(), any::<[u8; 10]>(), any::<[u8; 6]>()).prop_map(
        |(tx_power_0m, namespace, instance)| EddystoneUid {
            tx_power_0m,
            namespace,
            instance,
        },
    )
}

/// Bytes that look like the start of a known frame, then anything.
fn arb_frame_like() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop::sample::select(vec![
        vec![],
        vec![0x4c, 0x00, 0x02, 0x15],
        vec![0x4c, 0x00, 0x02],
        vec![0x18, 0x01, 0xbe, 0xac],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x00],
        vec![0x20, 0x01],
        vec![0x30],
        vec![0x02, 0x01, 0x06, 0x03, 0x03, 0xaa, 0xfe],
    ]);
    (prefix, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(mut p, tail)| {
        p.extend(tail);
        p
    })
}

proptest! {
    #[test]
    fn no_bytes_panic_any_decoder(bytes in arb_frame_like(), company in any::<u16>(), long in any::<u128>()) {
        let _ = decode_manufacturer_raw(&bytes);
        let _ = decode_manufacturer(company, &bytes);
        let _ = decode_manufacturer(COMPANY_APPLE, &bytes);
        let _ = decode_service_data(ServiceUuid::Short(EDDYSTONE_UUID16), &bytes);
        let _ = decode_service_data(ServiceUuid::from_u128(long), &bytes);
        if let Ok(advert) = decode_ad(&bytes) {
            let _ = (advert.stable_identity(), advert.tx_power_1m(), format!("{advert:?}"));
        }
        for s in ad_structures(&bytes) {
            let _ = s;
        }
    }

    #[test]
    fn ibeacons_round_trip(b in arb_ibeacon()) {
        let raw = encode_ibeacon(&b);
        prop_assert_eq!(decode_manufacturer_raw(&raw), Ok(Advert::IBeacon(b)));
        let mut ad = vec![raw.len() as u8 + 1, 0xff];
        ad.extend_from_slice(&raw);
        prop_assert_eq!(decode_ad(&ad), Ok(Advert::IBeacon(b)));
    }

    #[test]
    fn altbeacons_round_trip(b in arb_altbeacon()) {
        prop_assert_eq!(decode_manufacturer_raw(&encode_altbeacon(&b)), Ok(Advert::AltBeacon(b)));
    }

    #[test]
    fn eddystone_uids_round_trip(u in arb_uid(), rfu in any::<bool>()) {
        let data = encode_eddystone_uid(&u, rfu);
        let want = Ok(Advert::Eddystone(Eddystone::Uid(u)));
        prop_assert_eq!(decode_service_data(ServiceUuid::Short(EDDYSTONE_UUID16), &data), want);
        prop_assert_eq!(decode_ad(&eddystone_advertisement(&data)), want);
    }

    #[test]
    fn eddystone_urls_round_trip(
        tx in any::<i8>(),
        scheme in 0u8..4,
        body in prop::collection::vec(prop_oneof![0u8..=0x0d, 0x21u8..=0x7e], 0..=32),
    ) {
        let mut data = vec![0x10, tx as u8, scheme];
        data.extend_from_slice(&body);
        let Ok(Eddystone::Url(url)) = decode_eddystone(&data) else {
            panic!("rejected {data:02x?}");
        };
        prop_assert_eq!(url.tx_power_0m, tx);
        prop_assert_eq!(url.encoded(), &body[..]);
        prop_assert!(url.url().starts_with(url.scheme()));
    }

    #[test]
    fn a_truncated_ibeacon_is_rejected_and_never_yields_an_identity(b in arb_ibeacon(), cut in 0usize..25) {
        let raw = encode_ibeacon(&b);
        let decoded = decode_manufacturer_raw(&raw[..cut]);
        prop_assert!(decoded.is_ok_and(|a| a.identity().is_none()) || decoded.is_err());
        // Past the company id, the iBeacon type byte commits the frame: short is an error.
        if cut > 2 {
            prop_assert!(decoded.is_err());
        }
    }
}
