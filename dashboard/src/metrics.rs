//! `/metrics`: the agent's counters and gauges in the OpenMetrics text format, encoded by
//! prometheus-client from a fresh registry per scrape (the source hands over a snapshot, so
//! there is no long-lived metric state to keep in step).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use crate::source::{HealthView, MetricsView};

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

fn gauge_f64(value: f64) -> Gauge<f64, AtomicU64> {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(value);
    g
}

fn by_label(
    label: &str,
    values: &std::collections::BTreeMap<String, u64>,
) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    for (value_label, value) in values {
        family
            .get_or_create(&vec![(label.to_owned(), value_label.clone())])
            .inc_by(*value);
    }
    family
}

fn last_seen(health: &HealthView) -> Family<Labels, Gauge<f64, AtomicU64>> {
    let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for sensor in &health.sensors {
        if let Some(t) = sensor.last_seen {
            let labels = vec![
                ("kind".to_owned(), sensor.kind.as_str().to_owned()),
                ("id".to_owned(), sensor.id.clone()),
            ];
            family
                .get_or_create(&labels)
                .set(t.millis() as f64 / 1000.0);
        }
    }
    family
}

/// Every metric is prefixed `storefront_`; counters get `_total`, units their suffix.
pub fn encode_metrics(m: &MetricsView, health: &HealthView) -> anyhow::Result<String> {
    let mut registry = Registry::with_prefix("storefront");
    registry.register("events_in", "Events taken in", counter(m.events_in_total));
    registry.register(
        "events_rejected",
        "Events rejected, by reason",
        by_label("reason", &m.events_rejected_total),
    );
    registry.register(
        "events_dropped",
        "Events shed before the engine, by reason",
        by_label("reason", &m.events_dropped_total),
    );
    registry.register(
        "engine_shed",
        "State the engine let go of at its [limits], by kind (a flood of made-up ids, or limits \
         too small for the store)",
        by_label("kind", &m.engine_shed_total),
    );
    registry.register(
        "clock_steps_back",
        "Times the agent's clock stepped back and the engine restarted its time",
        counter(m.clock_steps_back_total),
    );
    registry.register(
        "commit_failures",
        "Commits of summaries and checkpoint that failed; each is tried again (a full disk or \
         file table)",
        counter(m.commit_failures_total),
    );
    registry.register(
        "windows_final",
        "Windows that became final",
        counter(m.windows_final_total),
    );
    registry.register(
        "outbox_depth",
        "Summaries waiting in the outbox",
        gauge(i64::try_from(m.outbox_depth).unwrap_or(i64::MAX)),
    );
    registry.register(
        "sync_acks_ignored",
        "Sequence numbers in acks the agent was not waiting on (forged or duplicated): ignored",
        counter(m.sync_acks_ignored_total),
    );
    registry.register_with_unit(
        "sync_lag",
        "How long the oldest summary HQ has not acknowledged has been over (0: none waiting)",
        Unit::Seconds,
        gauge_f64(m.sync_lag_seconds),
    );
    registry.register_with_unit(
        "window_finality_lag",
        "The agent's clock minus the start of the oldest window not final yet (0: none open)",
        Unit::Seconds,
        gauge_f64(m.window_finality_lag_seconds),
    );
    if let Some(size) = m.sled_size_bytes {
        registry.register_with_unit(
            "sled_size",
            "Size of the sled database on disk",
            Unit::Bytes,
            gauge(i64::try_from(size).unwrap_or(i64::MAX)),
        );
    }
    registry.register_with_unit(
        "source_last_seen_timestamp",
        "When each scanner node, door counter, POS and BLE adapter was last heard from, by the \
         agent's clock (Unix time); a source never heard from has no sample",
        Unit::Seconds,
        last_seen(health),
    );
    registry.register(
        "sync_connected",
        "1 while connected to HQ",
        gauge(i64::from(health.sync.connected)),
    );
    registry.register(
        "ready",
        "1 when the agent is ready",
        gauge(i64::from(health.ready)),
    );
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}
