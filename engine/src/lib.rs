//! The funnel engine.
mod config;

pub use config::{EngineConfig, Thresholds, ZoneConfig, ZoneKind};
