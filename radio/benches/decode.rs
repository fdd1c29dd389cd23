//! Decodes per second of the shared corpus' valid frames, from raw bytes.
//!
//! `cargo bench -p storefront-radio --bench decode`; compare with
//! `python3 radio/benches/theengs_baseline.py` (TheengsDecoder on the same iBeacon frames).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use storefront_radio::advert::{self, ServiceUuid};

/// One frame as it arrives: manufacturer data with its company id, or service data.
enum Frame {
    Manufacturer(Vec<u8>),
    Service(u16, Vec<u8>),
}

fn corpus() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/ble-advertisements.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the BLE corpus {}: {e}", path.display()));
    serde_json::from_str::<Value>(&text)
        .expect("corpus JSON")
        .as_array()
        .expect("array")
        .clone()
}

fn frame(entry: &Value) -> Option<Frame> {
    let hex_of = |key: &str| {
        entry
            .get(key)?
            .as_str()
            .map(|h| hex::decode(h).expect("hex"))
    };
    if let Some(raw) = hex_of("manufacturer_data_hex") {
        return Some(Frame::Manufacturer(raw));
    }
    let uuid = u16::from_str_radix(entry.get("service_data_uuid")?.as_str()?, 16).ok()?;
    Some(Frame::Service(uuid, hex_of("service_data_hex")?))
}

fn decode(frame: &Frame) -> bool {
    match frame {
        Frame::Manufacturer(raw) => advert::decode_manufacturer_raw(raw).is_ok(),
        Frame::Service(uuid, data) => {
            advert::decode_service_data(ServiceUuid::Short(*uuid), data).is_ok()
        }
    }
}

fn bench(c: &mut Criterion) {
    let corpus = corpus();
    let ibeacon_hex: Vec<String> = corpus
        .iter()
        .filter(|e| e["kind"] == "ibeacon")
        .map(|e| e["manufacturer_data_hex"].as_str().unwrap().to_owned())
        .collect();
    let ibeacons: Vec<Frame> = ibeacon_hex
        .iter()
        .map(|h| Frame::Manufacturer(hex::decode(h).unwrap()))
        .collect();
    // Every valid frame once, iBeacons three times: about half the mix is iBeacon.
    let mut mix: Vec<Frame> = corpus
        .iter()
        .filter(|e| e["kind"] != "invalid")
        .filter_map(frame)
        .collect();
    mix.extend(ibeacon_hex.iter().flat_map(|h| {
        let raw = hex::decode(h).unwrap();
        [Frame::Manufacturer(raw.clone()), Frame::Manufacturer(raw)]
    }));
    assert!(mix.iter().all(decode), "every valid frame decodes");

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(ibeacons.len() as u64));
    group.bench_function("ibeacon_only", |b| {
        b.iter(|| {
            for f in &ibeacons {
                black_box(decode(black_box(f)));
            }
        })
    });
    group.throughput(Throughput::Elements(mix.len() as u64));
    group.bench_function("ibeacon_heavy_mix", |b| {
        b.iter(|| {
            for f in &mix {
                black_box(decode(black_box(f)));
            }
        })
    });
    // The same iBeacons from hex text, as TheengsDecoder takes them (minus its JSON).
    group.throughput(Throughput::Elements(ibeacon_hex.len() as u64));
    group.bench_function("ibeacon_only_from_hex", |b| {
        b.iter(|| {
            for h in &ibeacon_hex {
                let mut buf = [0u8; 32];
                let raw = &mut buf[..h.len() / 2];
                hex::decode_to_slice(black_box(h), raw).unwrap();
                black_box(advert::decode_manufacturer_raw(raw).is_ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
