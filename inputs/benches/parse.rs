//! Scanner-node ingest speed on the real ESPresense and Theengs / OpenMQTTGateway device
//! reports of `testdata/scanner-messages.json`:
//! `cargo bench -p storefront-inputs --bench parse`.
//!
//! `parse_scanner` is the parse alone; `parse_and_pseudonymise` adds the HMAC-SHA-256 the
//! caller applies to every identity at once, i.e. the per-message work of the MQTT input task.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use storefront_inputs::{ScannerFormat, ScannerMessage, parse_scanner};
use storefront_protocol::privacy::Pseudonymizer;

#[path = "../tests/support/testdata.rs"]
mod testdata;

fn device_reports() -> Vec<(ScannerFormat, String, Vec<u8>)> {
    testdata::scanner_messages()
        .into_iter()
        .filter(|m| matches!(m.system.as_str(), "espresense" | "theengs" | "omg"))
        .filter_map(|m| {
            let format = m.format?;
            matches!(
                parse_scanner(format, &m.topic, &m.payload),
                Ok(ScannerMessage::Reading(_))
            )
            .then_some((format, m.topic, m.payload))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let messages = device_reports();
    assert!(
        messages.len() >= 10,
        "too few device reports in the test vectors"
    );
    let pseudonymizer = Pseudonymizer::new(&[7; 32]);
    let mut group = c.benchmark_group("scanner_ingest");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("parse_scanner", |b| {
        b.iter(|| {
            for (format, topic, payload) in &messages {
                let _ = black_box(parse_scanner(*format, topic, black_box(payload)));
            }
        })
    });
    group.bench_function("parse_and_pseudonymise", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for (format, topic, payload) in &messages {
                if let Ok(ScannerMessage::Reading(r)) =
                    parse_scanner(*format, topic, black_box(payload))
                {
                    acc ^= pseudonymizer.pseudonym(r.identity.as_bytes()).0;
                }
            }
            black_box(acc)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
