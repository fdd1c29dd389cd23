//! The store manager's local dashboard: a JSON API (`/api/v1/...`, described in
//! `openapi.yaml`), one self-contained web page at `/` (inline CSS, JS and SVG, no external
//! assets, works offline), and the ops endpoints `/metrics`, `/healthz` and `/readyz`.
//!
//! The agent implements [`DashboardSource`] and serves [`router`]; `agent report` prints
//! [`report_table`] or [`report_json`]. Every figure follows `METRICS.md` and is taken
//! from `storefront_protocol::Funnel`'s derived methods, never recomputed here.
//!
//! Architecture invariant: the dashboard only reads; nothing it serves can change the agent's
//! state.
//! Architecture invariant: the page needs no network beyond this server (no CDN, no fonts).

mod api;
pub mod figures;
pub mod metrics;
mod report;
mod source;

#[cfg(feature = "testing")]
pub mod testing;

pub use api::{ApiError, DashboardOptions, LiveResponse, MAX_RANGE_DAYS, router};
pub use figures::{FunnelReport, funnel_report};
pub use report::{Report, ReportRow, report, report_json, report_table};
pub use source::{
    DashboardSource, HealthView, LiveView, MetricsView, SensorHealth, SensorKind, SensorStatus,
    StoreView, SyncView,
};
