//! The store's TOML config, in two phases (the ripgrep LowArgs → HiArgs style): a raw serde layer that
//! mirrors the file (unknown keys rejected, every optional setting defaulted), then validation
//! into a typed [`StoreConfig`] that reports **every** problem at once, each naming the file, the
//! field (`zones[2].scanners[0]`) and the fix. [`StoreConfig::engine_config`] hands the engine
//! what it needs; [`generate_config_template`] is the commented file `agent generate-config`
//! prints.
//!
//! Parsing does no I/O beyond [`StoreConfig::load`] reading the file: secret and TLS files are
//! only named here (resolved against the config file's directory) and opened by the agent; the
//! access tokens through [`StoreConfig::dashboard_token`] and [`StoreConfig::ingest_token`],
//! which report an unreadable or empty file as a config error.

mod error;
mod raw;
mod types;
mod validate;

use std::path::{Path, PathBuf};

use storefront_engine::{EngineConfig, Thresholds, ZoneConfig};

pub use storefront_engine::Limits;

pub use error::{ConfigError, Problem};
pub use storefront_engine::ZoneKind;
pub use types::{
    BleSource, Broker, Dashboard, IngestSource, Metrics, PosSource, Privacy, ScannerFormat,
    ScannerMqttSource, Sources, Storage, StoreInfo, SyncConfig, Zone,
};

/// A validated config for one store.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    /// The file it came from, for messages and for resolving relative paths.
    pub path: PathBuf,
    pub store: StoreInfo,
    pub metrics: Metrics,
    pub zones: Vec<Zone>,
    /// Door-counter sensor ids.
    pub door_sensors: Vec<String>,
    /// POS system ids; with none, summaries carry no POS coverage.
    pub pos_systems: Vec<String>,
    pub privacy: Privacy,
    pub storage: Storage,
    pub sync: SyncConfig,
    pub sources: Sources,
    pub dashboard: Dashboard,
    /// Bounds on the engine's state fed from outside.
    pub limits: Limits,
}

impl StoreConfig {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<StoreConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`; `origin` is the file it is said to come from (named in
    /// errors; relative paths in the config are resolved against its directory). No I/O.
    pub fn parse(text: &str, origin: &Path) -> Result<StoreConfig, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| error::syntax_error(&e, text, origin))?;
        validate::validate(raw, origin).map_err(|problems| ConfigError::Invalid {
            path: origin.to_owned(),
            problems,
        })
    }

    /// The engine's view: thresholds in milliseconds, zones with resolved thresholds, and
    /// whether repeat visits are measurable (pseudonyms live at least the lookback).
    pub fn engine_config(&self) -> EngineConfig {
        let m = &self.metrics;
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        EngineConfig {
            store_id: self.store.id.clone(),
            timezone: self.store.timezone,
            zones: self
                .zones
                .iter()
                .map(|z| ZoneConfig {
                    id: z.id.clone(),
                    kind: z.kind,
                    scanners: z.scanners.clone(),
                    enter_rssi_dbm: z.enter_rssi_dbm,
                    exit_rssi_dbm: z.exit_rssi_dbm,
                })
                .collect(),
            door_sensors: self.door_sensors.clone(),
            pos_sources: self.pos_systems.clone(),
            staff_devices: self.privacy.staff_devices.clone(),
            thresholds: Thresholds {
                detect_rssi_dbm: m.detect_rssi_dbm,
                smoothing_ms: ms(m.smoothing),
                min_samples: m.min_samples,
                presence_confirm_ms: ms(m.presence_confirm),
                presence_timeout_ms: ms(m.presence_timeout),
                visit_gap_ms: ms(m.visit_gap),
                visit_max_ms: ms(m.visit_max),
                bounce_ms: ms(m.bounce),
                zone_min_dwell_ms: ms(m.zone_min_dwell),
                repeat_lookback_days: m.repeat_lookback_days,
                window_seconds: m.window_seconds,
                max_event_delay_ms: ms(m.max_event_delay),
                max_count_delay_ms: ms(m.max_count_delay),
                coverage_grace_ms: ms(m.coverage_grace),
            },
            repeat_measurable: self.repeat_measurable(),
            limits: self.limits.clone(),
        }
    }

    /// The dashboard's access token (`dashboard.token_file`), if one is configured.
    pub fn dashboard_token(&self) -> Result<Option<String>, ConfigError> {
        self.token("dashboard.token_file", self.dashboard.token_file.as_deref())
    }

    /// The ingest routes' token (`sources.ingest.token_file`), if one is configured.
    pub fn ingest_token(&self) -> Result<Option<String>, ConfigError> {
        self.token(
            "sources.ingest.token_file",
            self.sources.ingest.token_file.as_deref(),
        )
    }

    /// A token file's content, trimmed. An empty file is an error, never "no token": a
    /// truncated or mis-provisioned secret must not open what it was meant to close.
    fn token(&self, field: &str, file: Option<&Path>) -> Result<Option<String>, ConfigError> {
        let Some(file) = file else {
            return Ok(None);
        };
        let problem = |message: String, fix: &str| ConfigError::Invalid {
            path: self.path.clone(),
            problems: vec![Problem {
                field: field.to_owned(),
                message,
                fix: fix.to_owned(),
            }],
        };
        let text = std::fs::read_to_string(file).map_err(|e| {
            problem(
                format!("cannot read {}: {e}", file.display()),
                "check the path (relative paths are relative to the config file) and that the agent may read it",
            )
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(problem(
                format!("{} is empty", file.display()),
                "write the token into the file (e.g. the output of `openssl rand -hex 32`), or remove the setting",
            ));
        }
        Ok(Some(token.to_owned()))
    }

    /// Whether a pseudonym lives long enough to recognise a repeat visit.
    pub fn repeat_measurable(&self) -> bool {
        self.privacy.pseudonym_rotation_days >= self.metrics.repeat_lookback_days
    }
}

/// A fully commented config with every key at its default: what `agent generate-config` prints.
pub fn generate_config_template() -> String {
    include_str!("template.toml").to_owned()
}

#[cfg(test)]
mod tests;
