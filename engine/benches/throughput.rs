//! Engine throughput on a realistic mix (a simulated busy-mall day), against a bare
//! `HashMap` sessionizer on the same sightings as the baseline:
//! `cargo bench -p storefront-engine --bench throughput`.

use std::collections::HashMap;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use storefront_engine::Engine;
use storefront_protocol::{DeviceId, Event};

mod common;

/// The least a sessionizer can do: per device, extend or start a session on each sighting.
fn bare_sessionizer(events: &[Event]) -> usize {
    let mut sessions: HashMap<DeviceId, (i64, i64)> = HashMap::new();
    let mut count = 0;
    for event in events {
        if let Event::Sighting(s) = event {
            let t = s.t.millis();
            let entry = sessions.entry(s.device).or_insert_with(|| {
                count += 1;
                (t, t)
            });
            if t - entry.1 > 300_000 {
                count += 1;
                entry.0 = t;
            }
            entry.1 = t;
        }
    }
    count
}

fn throughput(c: &mut Criterion) {
    let (config, events) = common::mall_day();
    let mut group = c.benchmark_group("mall_day");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("engine", |b| {
        b.iter_batched(
            || Engine::new(config.clone()),
            |mut engine| {
                for event in &events {
                    engine.handle_event(event, event.time());
                }
                engine.finish(events.last().map(|e| e.time()).unwrap_or_default());
                engine
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("bare_hashmap_sessionizer", |b| {
        b.iter(|| bare_sessionizer(&events))
    });
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
