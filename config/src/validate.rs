//! Raw → typed. Every check records a [`Problem`] and carries on with a stand-in value, so one
//! pass reports everything wrong with the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use storefront_engine::{Limits, MAX_DOOR_SENSORS, MAX_SCANNERS, MAX_ZONES, ZoneKind};
use storefront_protocol::DeviceId;
use storefront_protocol::topic::{MAX_ID_LEN, check_id};

use crate::StoreConfig;
use crate::error::Problem;
use crate::raw::*;
use crate::types::*;

/// Lowest RSSI accepted anywhere, dBm.
const MIN_RSSI_DBM: i64 = -120;
/// Longest duration accepted (a year): keeps every millisecond count far from overflow.
const MAX_SECONDS: i64 = 366 * 86_400;
/// Longest silence that still counts as alive: an hour would already hide a real outage.
const MAX_COVERAGE_GRACE_SECONDS: i64 = 3600;

pub(crate) fn validate(raw: RawConfig, origin: &Path) -> Result<StoreConfig, Vec<Problem>> {
    let mut c = Checker::default();
    let base = origin.parent().unwrap_or(Path::new(""));

    let store = c.store(raw.store);
    let metrics = c.metrics(&raw.metrics);
    let zones = c.zones(raw.zones, &raw.metrics, &metrics);
    let door_sensors = c.door_sensors(raw.door_sensors, &zones);
    let pos_systems = c.pos_systems(raw.pos_systems, &zones, &door_sensors);
    let privacy = c.privacy(raw.privacy);
    let storage = c.storage(raw.storage, base);
    let sync = c.sync(raw.sync, &store, base);
    let sources = c.sources(raw.sources, &zones, &pos_systems, &metrics, base);
    let dashboard = c.dashboard(raw.dashboard, base);
    let limits = c.limits(&raw.limits);
    c.ingest_guarded(&sources, &dashboard);

    if c.problems.is_empty() {
        Ok(StoreConfig {
            path: origin.to_owned(),
            store,
            metrics,
            zones,
            door_sensors,
            pos_systems,
            privacy,
            storage,
            sync,
            sources,
            dashboard,
            limits,
        })
    } else {
        Err(c.problems)
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

const ID_FIX: &str = "use letters, digits, '-' or '_' (at most 64 bytes), e.g. \"paris-rivoli\"";

impl Checker {
    fn report(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem {
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// An id that may become an MQTT topic level or a label: non-empty and topic-safe.
    fn id(&mut self, field: &str, id: &str) {
        if let Err(e) = check_id(id) {
            let message = match e {
                storefront_protocol::topic::TopicIdError::Empty => "is empty".to_owned(),
                storefront_protocol::topic::TopicIdError::TooLong { .. } => {
                    format!("{id:?} is longer than {MAX_ID_LEN} bytes")
                }
                storefront_protocol::topic::TopicIdError::Reserved { found, .. } => {
                    format!("{id:?} contains {found:?}, which has a meaning in MQTT topics")
                }
            };
            self.report(field, message, ID_FIX);
        } else if id.trim() != id || id.chars().any(char::is_control) {
            self.report(
                field,
                format!("{id:?} has surrounding spaces or control characters"),
                ID_FIX,
            );
        }
    }

    fn rssi(&mut self, field: &str, value: i64) -> i16 {
        if (MIN_RSSI_DBM..=0).contains(&value) {
            value as i16
        } else {
            self.report(
                field,
                format!("{value} dBm is outside {MIN_RSSI_DBM}..=0"),
                "RSSI is negative dBm: write a value between -120 and 0, e.g. -75",
            );
            -75
        }
    }

    /// A duration in seconds; zero is allowed only where it means "no wait".
    fn seconds(&mut self, field: &str, value: i64, zero_ok: bool) -> Duration {
        let min = if zero_ok { 0 } else { 1 };
        if (min..=MAX_SECONDS).contains(&value) {
            Duration::from_secs(value as u64)
        } else {
            let fix = if value > MAX_SECONDS {
                format!("write at most {MAX_SECONDS} (a year)")
            } else if zero_ok {
                "write 0 or more seconds".to_owned()
            } else {
                "write a positive number of seconds".to_owned()
            };
            self.report(field, format!("{value} seconds is out of range"), fix);
            Duration::from_secs(1)
        }
    }

    /// A whole number in `min..=max`.
    fn count(&mut self, field: &str, value: i64, min: i64, max: i64, fix: &str) -> u64 {
        if (min..=max).contains(&value) {
            value as u64
        } else {
            self.report(field, format!("{value} is outside {min}..={max}"), fix);
            min.max(1) as u64
        }
    }

    fn store(&mut self, raw: RawStore) -> StoreInfo {
        self.id("store.id", &raw.id);
        self.id("store.org", &raw.org);
        let timezone = match raw.timezone.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                let fix = match suggest_timezone(&raw.timezone) {
                    Some(name) => format!("write \"{name}\" (IANA time zone names are Area/City)"),
                    None => "write an IANA time zone name, e.g. \"Europe/Paris\" or \"America/New_York\"".to_owned(),
                };
                self.report(
                    "store.timezone",
                    format!("{:?} is not a known time zone", raw.timezone),
                    fix,
                );
                Tz::UTC
            }
        };
        let name = if raw.name.trim().is_empty() {
            raw.id.clone()
        } else {
            raw.name
        };
        StoreInfo {
            id: raw.id,
            org: raw.org,
            name,
            timezone,
        }
    }

    fn metrics(&mut self, m: &RawMetrics) -> Metrics {
        let p = |k: &str| format!("metrics.{k}");
        let detect = self.rssi(&p("detect_rssi_dbm"), m.detect_rssi_dbm);
        let enter = self.rssi(&p("enter_rssi_dbm"), m.enter_rssi_dbm);
        let exit = self.rssi(&p("exit_rssi_dbm"), m.exit_rssi_dbm);
        self.rssi_order(
            "metrics",
            m.detect_rssi_dbm,
            m.enter_rssi_dbm,
            m.exit_rssi_dbm,
            (true, true),
        );

        let out = Metrics {
            detect_rssi_dbm: detect,
            smoothing: self.seconds(&p("smoothing_seconds"), m.smoothing_seconds, false),
            min_samples: self.count(
                &p("min_samples"),
                m.min_samples,
                1,
                1000,
                "write at least 1 (3 is the default: a lone packet is noise)",
            ) as usize,
            enter_rssi_dbm: enter,
            exit_rssi_dbm: exit,
            presence_confirm: self.seconds(
                &p("presence_confirm_seconds"),
                m.presence_confirm_seconds,
                true,
            ),
            presence_timeout: self.seconds(
                &p("presence_timeout_seconds"),
                m.presence_timeout_seconds,
                false,
            ),
            visit_gap: self.seconds(&p("visit_gap_seconds"), m.visit_gap_seconds, false),
            visit_max: self.seconds(&p("visit_max_seconds"), m.visit_max_seconds, false),
            bounce: self.seconds(&p("bounce_seconds"), m.bounce_seconds, true),
            zone_min_dwell: self.seconds(
                &p("zone_min_dwell_seconds"),
                m.zone_min_dwell_seconds,
                true,
            ),
            repeat_lookback_days: self.count(
                &p("repeat_lookback_days"),
                m.repeat_lookback_days,
                1,
                3660,
                "write a number of days, at least 1 (30 is the default)",
            ) as u32,
            window_seconds: self.window(m.window_seconds),
            max_event_delay: self.seconds(
                &p("max_event_delay_seconds"),
                m.max_event_delay_seconds,
                true,
            ),
            max_count_delay: self.seconds(
                &p("max_count_delay_seconds"),
                m.max_count_delay_seconds,
                true,
            ),
            coverage_grace: Duration::from_secs(self.count(
                &p("coverage_grace_seconds"),
                m.coverage_grace_seconds,
                1,
                MAX_COVERAGE_GRACE_SECONDS,
                "write the seconds a working input can stay silent, at least 1 and at most 3600 (120 is the default): longer would count an outage as covered",
            )),
        };
        if m.visit_gap_seconds > 0 && m.visit_gap_seconds < m.presence_timeout_seconds {
            self.report(
                p("visit_gap_seconds"),
                format!(
                    "{} s is shorter than presence_timeout_seconds ({} s): a visit would end before its presence does",
                    m.visit_gap_seconds, m.presence_timeout_seconds
                ),
                format!("write at least {}", m.presence_timeout_seconds),
            );
        }
        if m.visit_max_seconds > 0 && m.bounce_seconds >= m.visit_max_seconds {
            self.report(
                p("bounce_seconds"),
                format!(
                    "{} s is not shorter than visit_max_seconds ({} s): every visit would be a bounce",
                    m.bounce_seconds, m.visit_max_seconds
                ),
                "write a value below visit_max_seconds (120 is the default)",
            );
        }
        out
    }

    /// `exit <= enter` and `detect <= exit`, reported on the fields of `table` that were written
    /// there (`written` = whether enter / exit were set in that table rather than inherited).
    fn rssi_order(
        &mut self,
        table: &str,
        detect: i64,
        enter: i64,
        exit: i64,
        written: (bool, bool),
    ) {
        if exit > enter {
            let field = if written.1 {
                "exit_rssi_dbm"
            } else {
                "enter_rssi_dbm"
            };
            self.report(
                format!("{table}.{field}"),
                format!(
                    "exit_rssi_dbm ({exit}) is above enter_rssi_dbm ({enter}): presence would flap"
                ),
                "make exit_rssi_dbm at or below enter_rssi_dbm, e.g. 5 dB below it",
            );
        }
        if written.1 && detect > exit {
            self.report(
                format!("{table}.exit_rssi_dbm"),
                format!("exit_rssi_dbm ({exit}) is below metrics.detect_rssi_dbm ({detect}): presence could never end on signal"),
                "make exit_rssi_dbm at or above detect_rssi_dbm, or lower detect_rssi_dbm",
            );
        }
    }

    fn window(&mut self, seconds: i64) -> u32 {
        const VALID: [i64; 12] = [60, 120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800, 3600];
        if VALID.contains(&seconds) {
            return seconds as u32;
        }
        let nearest = VALID
            .iter()
            .min_by_key(|v| (**v - seconds).abs())
            .copied()
            .unwrap_or(900);
        self.report(
            "metrics.window_seconds",
            format!("{seconds} does not divide an hour into whole minutes, so windows would not align with local hours"),
            format!(
                "write one of {} (nearest: {nearest})",
                VALID.map(|v| v.to_string()).join(", ")
            ),
        );
        900
    }

    fn zones(&mut self, raw: Vec<RawZone>, m: &RawMetrics, metrics: &Metrics) -> Vec<Zone> {
        let mut zone_ids: HashMap<String, usize> = HashMap::new();
        let mut scanner_owner: HashMap<String, String> = HashMap::new();
        let (mut storefronts, mut in_store) = (Vec::new(), 0);
        let mut zones = Vec::with_capacity(raw.len());
        for (i, z) in raw.into_iter().enumerate() {
            let f = format!("zones[{i}]");
            self.id(&format!("{f}.id"), &z.id);
            if let Some(first) = zone_ids.insert(z.id.clone(), i) {
                self.report(
                    format!("{f}.id"),
                    format!("zone id {:?} is already used by zones[{first}]", z.id),
                    "give every zone its own id",
                );
            }
            let kind = match z.kind.as_str() {
                "storefront" => {
                    storefronts.push(i);
                    ZoneKind::Storefront
                }
                "in_store" => {
                    in_store += 1;
                    ZoneKind::InStore
                }
                other => {
                    self.report(
                        format!("{f}.kind"),
                        format!("{other:?} is not a zone kind"),
                        "write \"storefront\" (facing the street or mall) or \"in_store\"",
                    );
                    ZoneKind::InStore
                }
            };
            if z.scanners.is_empty() {
                self.report(
                    format!("{f}.scanners"),
                    "the zone has no scanner, so nothing can be seen in it",
                    "list at least one scanner id, e.g. scanners = [\"sf-1\"]",
                );
            }
            for (j, s) in z.scanners.iter().enumerate() {
                let sf = format!("{f}.scanners[{j}]");
                self.id(&sf, s);
                match scanner_owner.get(s) {
                    Some(owner) => self.report(
                        sf,
                        format!("scanner {s:?} is already listed at {owner}; a scanner belongs to one zone"),
                        "remove it from one of the two zones",
                    ),
                    None => {
                        scanner_owner.insert(s.clone(), format!("zones[{i}].scanners[{j}]"));
                    }
                }
            }
            let enter = match z.enter_rssi_dbm {
                Some(v) => self.rssi(&format!("{f}.enter_rssi_dbm"), v),
                None => metrics.enter_rssi_dbm,
            };
            let exit = match z.exit_rssi_dbm {
                Some(v) => self.rssi(&format!("{f}.exit_rssi_dbm"), v),
                None => metrics.exit_rssi_dbm,
            };
            let written = (z.enter_rssi_dbm.is_some(), z.exit_rssi_dbm.is_some());
            if written.0 || written.1 {
                self.rssi_order(
                    &f,
                    m.detect_rssi_dbm,
                    z.enter_rssi_dbm.unwrap_or(m.enter_rssi_dbm),
                    z.exit_rssi_dbm.unwrap_or(m.exit_rssi_dbm),
                    written,
                );
            }
            zones.push(Zone {
                id: z.id,
                kind,
                scanners: z.scanners,
                enter_rssi_dbm: enter,
                exit_rssi_dbm: exit,
            });
        }
        match storefronts.as_slice() {
            [_] => {}
            [] => self.report(
                "zones",
                "there is no storefront zone, so passers-by and conversion cannot be measured",
                "add a [[zones]] with kind = \"storefront\" and the scanner(s) facing the street or mall",
            ),
            [_, rest @ ..] => {
                for i in rest {
                    self.report(
                        format!("zones[{i}].kind"),
                        "a second storefront zone; a store has exactly one",
                        "merge the storefront zones' scanners into one zone, or make this one \"in_store\"",
                    );
                }
            }
        }
        if in_store == 0 {
            self.report(
                "zones",
                "there is no in_store zone, so no visit can start",
                "add a [[zones]] with kind = \"in_store\" and its scanner(s)",
            );
        }
        if zones.len() > MAX_ZONES {
            self.report(
                "zones",
                format!(
                    "{} zones; the engine indexes at most {MAX_ZONES}",
                    zones.len()
                ),
                "merge zones: a zone is an area a shopper walks through, not a shelf",
            );
        }
        if scanner_owner.len() > MAX_SCANNERS {
            self.report(
                "zones",
                format!(
                    "{} scanners; the engine indexes at most {MAX_SCANNERS}",
                    scanner_owner.len()
                ),
                "list only the store's real scanners",
            );
        }
        zones
    }

    fn limits(&mut self, raw: &RawLimits) -> Limits {
        let p = |k: &str| format!("limits.{k}");
        let mut count = |key: &str, value: i64, max: i64, fix: &str| {
            self.count(&p(key), value, 1, max, fix) as usize
        };
        Limits {
            max_tracked_devices: count(
                "max_tracked_devices",
                raw.max_tracked_devices,
                10_000_000,
                "write a number of devices, at least 1 (20000 is the default: up to ~0.9 KB of memory each)",
            ),
            max_visit_history: count(
                "max_visit_history",
                raw.max_visit_history,
                100_000_000,
                "write a number of devices, at least 1 (200000 is the default: ~100 bytes each)",
            ),
            max_dedup_ids: count(
                "max_dedup_ids",
                raw.max_dedup_ids,
                100_000_000,
                "write a number of ids, at least 1 (100000 is the default: ~125 bytes each)",
            ),
            max_door_crossings_per_minute: count(
                "max_door_crossings_per_minute",
                raw.max_door_crossings_per_minute,
                1_000_000,
                "write how many people a door counter can count in a minute, at least 1 (600 is the default)",
            ) as u32,
        }
    }

    fn door_sensors(&mut self, raw: Vec<RawDoorSensor>, zones: &[Zone]) -> Vec<String> {
        if raw.len() > MAX_DOOR_SENSORS {
            self.report(
                "door_sensors",
                format!(
                    "{} door sensors; the engine indexes at most {MAX_DOOR_SENSORS}",
                    raw.len()
                ),
                "list only the store's real door counters",
            );
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, d) in raw.iter().enumerate() {
            let f = format!("door_sensors[{i}].id");
            self.id(&f, &d.id);
            if let Some(first) = seen.insert(d.id.clone(), i) {
                self.report(
                    f,
                    format!(
                        "door sensor {:?} is already listed at door_sensors[{first}]",
                        d.id
                    ),
                    "list each door sensor once",
                );
            } else if zones.iter().any(|z| z.scanners.contains(&d.id)) {
                self.report(
                    f,
                    format!("{:?} is also a scanner id", d.id),
                    "give the door sensor an id of its own, e.g. \"door-main\"",
                );
            }
        }
        raw.into_iter().map(|d| d.id).collect()
    }

    /// The POS system the poller reads: the one named, or the only one listed.
    fn polled_pos_system(&mut self, named: &str, pos_systems: &[String]) -> Option<String> {
        const FIELD: &str = "sources.pos.system";
        match (named, pos_systems) {
            ("", []) => None,
            ("", [only]) => Some(only.clone()),
            ("", several) => {
                self.report(
                    FIELD,
                    format!(
                        "is empty and {} POS systems are listed: the poller's signs of life \
                         cannot be given to one",
                        several.len()
                    ),
                    format!(
                        "name the POS system the endpoint serves, e.g. {:?}",
                        several[0]
                    ),
                );
                None
            }
            (named, listed) if listed.iter().any(|id| id == named) => Some(named.to_owned()),
            (named, listed) => {
                self.report(
                    FIELD,
                    format!("{named:?} is not a listed POS system"),
                    if listed.is_empty() {
                        format!("add [[pos_systems]] with id = {named:?}, or leave it empty")
                    } else {
                        format!("use one of the [[pos_systems]] ids: {}", listed.join(", "))
                    },
                );
                None
            }
        }
    }

    fn pos_systems(
        &mut self,
        raw: Vec<RawPosSystem>,
        zones: &[Zone],
        door_sensors: &[String],
    ) -> Vec<String> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, pos) in raw.iter().enumerate() {
            let f = format!("pos_systems[{i}].id");
            self.id(&f, &pos.id);
            if let Some(first) = seen.insert(pos.id.clone(), i) {
                self.report(
                    f,
                    format!(
                        "POS system {:?} is already listed at pos_systems[{first}]",
                        pos.id
                    ),
                    "list each POS system once",
                );
            } else if zones.iter().any(|z| z.scanners.contains(&pos.id))
                || door_sensors.contains(&pos.id)
            {
                self.report(
                    f,
                    format!("{:?} is also a scanner or door sensor id", pos.id),
                    "give the POS system an id of its own, e.g. \"pos-main\"",
                );
            }
        }
        raw.into_iter().map(|pos| pos.id).collect()
    }

    fn privacy(&mut self, raw: RawPrivacy) -> Privacy {
        let rotation = self.count(
            "privacy.pseudonym_rotation_days",
            raw.pseudonym_rotation_days,
            1,
            3660,
            "write a number of days, at least 1 (1 is the default: CNIL's 24 h tier)",
        ) as u32;
        let retention = self.count(
            "privacy.retention_days",
            raw.retention_days,
            1,
            36_600,
            "write a number of days, at least 1 (400 is the default)",
        ) as u32;
        let min_count = self.count(
            "privacy.min_count",
            raw.min_count,
            1,
            1_000_000,
            "write at least 1 (5 is the default)",
        ) as u32;
        let mut staff = Vec::new();
        for (i, s) in raw.staff_devices.iter().enumerate() {
            match s.parse::<DeviceId>() {
                Ok(id) if s.bytes().all(|b| b.is_ascii_hexdigit()) => staff.push(id),
                _ => self.report(
                    format!("privacy.staff_devices[{i}]"),
                    format!("{s:?} is not a device pseudonym"),
                    "write the badge's 16-hex-digit pseudonym as shown by the agent (never a MAC address), e.g. \"00abcdef01234567\"",
                ),
            }
        }
        Privacy {
            pseudonym_rotation_days: rotation,
            retention_days: retention,
            min_count,
            staff_devices: staff,
        }
    }

    fn dashboard(&mut self, raw: RawDashboard, base: &Path) -> Dashboard {
        let bind = match raw.bind.parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) if raw.bind.trim().is_empty() => None,
            Err(_) => {
                self.report(
                    "dashboard.bind",
                    format!("{:?} is not an address and port", raw.bind),
                    "write e.g. \"127.0.0.1:8080\" (loopback only) or \"0.0.0.0:8080\" (the shop's network); empty turns the dashboard off",
                );
                None
            }
        };
        let token_file = file(base, &raw.token_file);
        let max_connections = self.count(
            "dashboard.max_connections",
            raw.max_connections,
            1,
            4096,
            "write how many HTTP connections to serve at once (64 is the default; each holds a file descriptor)",
        ) as usize;
        let header_timeout = self.seconds(
            "dashboard.header_timeout_seconds",
            raw.header_timeout_seconds,
            false,
        );
        let request_timeout = self.seconds(
            "dashboard.request_timeout_seconds",
            raw.request_timeout_seconds,
            false,
        );
        Dashboard {
            bind,
            token_file,
            max_connections,
            header_timeout,
            request_timeout,
        }
    }

    fn storage(&mut self, raw: RawStorage, base: &Path) -> Storage {
        if raw.path.trim().is_empty() {
            self.report(
                "storage.path",
                "is empty",
                "write a directory for the database, e.g. \"storefront-data\" (relative to this file)",
            );
        }
        let mb = self.count(
            "storage.cache_capacity_mb",
            raw.cache_capacity_mb,
            1,
            1 << 20,
            "write a size in MiB, at least 1 (16 is the default)",
        );
        Storage {
            path: base.join(&raw.path),
            cache_capacity_bytes: mb * 1024 * 1024,
        }
    }

    fn sync(&mut self, raw: RawSync, store: &StoreInfo, base: &Path) -> SyncConfig {
        let broker = match parse_broker(&raw.broker) {
            Ok(b) => b,
            Err((message, fix)) => {
                self.report("sync.broker", message, fix);
                Broker::default()
            }
        };
        let tls = broker.tls;
        for (key, value) in [
            ("ca_file", &raw.ca_file),
            ("client_cert_file", &raw.client_cert_file),
            ("client_key_file", &raw.client_key_file),
        ] {
            if !value.is_empty() && !tls {
                self.report(
                    format!("sync.{key}"),
                    format!(
                        "a TLS file is set but the broker {:?} does not use TLS",
                        raw.broker
                    ),
                    format!("use an mqtts:// broker, or remove {key}"),
                );
            }
        }
        if raw.client_cert_file.is_empty() != raw.client_key_file.is_empty() {
            let missing = if raw.client_cert_file.is_empty() {
                "client_cert_file"
            } else {
                "client_key_file"
            };
            self.report(
                format!("sync.{missing}"),
                "mutual TLS needs both a client certificate and its key",
                "set both client_cert_file and client_key_file, or neither",
            );
        }
        if !raw.password_file.is_empty() && raw.username.is_empty() {
            self.report(
                "sync.username",
                "password_file is set without a username",
                "set username, or remove password_file",
            );
        }
        let client_id = if raw.client_id.is_empty() {
            format!("storefront-{}-{}", store.org, store.id)
        } else {
            if raw.client_id.len() > u16::MAX as usize
                || raw.client_id.chars().any(char::is_control)
            {
                self.report(
                    "sync.client_id",
                    "is too long or contains control characters",
                    "leave it empty for \"storefront-<org>-<store>\", or write a short printable id",
                );
            }
            raw.client_id
        };
        let publish_per_second = self.count(
            "sync.publish_per_second",
            raw.publish_per_second,
            1,
            100_000,
            "write a positive rate (20 is the default)",
        ) as u32;
        let outbox_max_entries = self.count(
            "sync.outbox_max_entries",
            raw.outbox_max_entries,
            1,
            i64::MAX,
            "write a positive number of summaries (100000 is the default)",
        );
        let keep_alive = if (1..=i64::from(u16::MAX)).contains(&raw.keep_alive_seconds) {
            Duration::from_secs(raw.keep_alive_seconds as u64)
        } else {
            self.report(
                "sync.keep_alive_seconds",
                format!(
                    "{} is outside 1..=65535 (MQTT's limit)",
                    raw.keep_alive_seconds
                ),
                "write a number of seconds, e.g. 30",
            );
            Duration::from_secs(30)
        };
        SyncConfig {
            broker,
            client_id,
            username: (!raw.username.is_empty()).then_some(raw.username),
            password_file: file(base, &raw.password_file),
            ca_file: file(base, &raw.ca_file),
            client_cert_file: file(base, &raw.client_cert_file),
            client_key_file: file(base, &raw.client_key_file),
            publish_per_second,
            outbox_max_entries,
            keep_alive,
        }
    }

    fn sources(
        &mut self,
        raw: RawSources,
        zones: &[Zone],
        pos_systems: &[String],
        metrics: &Metrics,
        base: &Path,
    ) -> Sources {
        for (i, a) in raw.ble.adapters.iter().enumerate() {
            if a.trim().is_empty() {
                self.report(
                    format!("sources.ble.adapters[{i}]"),
                    "is empty",
                    "write an adapter name such as \"hci0\", or leave the list empty for all adapters",
                );
            }
        }
        let known: Vec<&str> = zones
            .iter()
            .flat_map(|z| z.scanners.iter().map(String::as_str))
            .collect();
        let mut scanner_mqtt = Vec::new();
        for (i, s) in raw.scanner_mqtt.into_iter().enumerate() {
            let f = format!("sources.scanner_mqtt[{i}]");
            let format = match ScannerFormat::ALL
                .iter()
                .find(|(name, _)| *name == s.format)
            {
                Some((_, format)) => *format,
                None => {
                    self.report(
                        format!("{f}.format"),
                        format!("{:?} is not a known scanner format", s.format),
                        "write \"espresense\", \"theengs\" or \"mqtt_room\"",
                    );
                    ScannerFormat::Espresense
                }
            };
            let topic = if s.topic.is_empty() {
                format.default_topic().to_owned()
            } else {
                s.topic
            };
            if let Err(message) = check_topic_filter(&topic) {
                self.report(
                    format!("{f}.topic"),
                    message,
                    format!(
                        "write an MQTT topic filter such as {:?}",
                        format.default_topic()
                    ),
                );
            }
            let mut scanner_ids = BTreeMap::new();
            for (node, scanner) in s.scanner_ids {
                let sf = format!("{f}.scanner_ids.{node}");
                self.id(&sf, &scanner);
                if !known.contains(&scanner.as_str()) {
                    self.report(
                        sf.clone(),
                        format!(
                            "scanner {scanner:?} is in no zone, so its sightings would be ignored"
                        ),
                        "add it to a zone's scanners, or correct the id",
                    );
                }
                scanner_ids.insert(node, scanner);
            }
            scanner_mqtt.push(ScannerMqttSource {
                format,
                topic,
                scanner_ids,
            });
        }
        let pos = if raw.pos.url.is_empty() {
            if !raw.pos.auth_header_file.is_empty() {
                self.report(
                    "sources.pos.auth_header_file",
                    "is set but sources.pos.url is empty",
                    "set url to the POS endpoint, or remove auth_header_file",
                );
            }
            None
        } else {
            let url = raw.pos.url.trim();
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                self.report(
                    "sources.pos.url",
                    format!("{url:?} is not an http:// or https:// URL"),
                    "write the endpoint's full URL, e.g. \"https://pos.example.com/api/transactions\"",
                );
            }
            let poll_interval =
                self.seconds("sources.pos.poll_seconds", raw.pos.poll_seconds, false);
            if poll_interval >= metrics.max_count_delay {
                self.report(
                    "sources.pos.poll_seconds",
                    format!(
                        "{} s is not shorter than metrics.max_count_delay_seconds ({} s): most sales would arrive after their window is final and be rejected as late",
                        poll_interval.as_secs(),
                        metrics.max_count_delay.as_secs()
                    ),
                    format!(
                        "poll more often (30 is the default), or raise metrics.max_count_delay_seconds above {}",
                        poll_interval.as_secs()
                    ),
                );
            } else if poll_interval > metrics.coverage_grace {
                self.report(
                    "sources.pos.poll_seconds",
                    format!(
                        "{} s is longer than metrics.coverage_grace_seconds ({} s): the POS would count as down between polls",
                        poll_interval.as_secs(),
                        metrics.coverage_grace.as_secs()
                    ),
                    format!(
                        "poll more often (30 is the default), or raise metrics.coverage_grace_seconds to {}",
                        poll_interval.as_secs()
                    ),
                );
            }
            Some(PosSource {
                url: url.to_owned(),
                poll_interval,
                auth_header_file: file(base, &raw.pos.auth_header_file),
                system: self.polled_pos_system(raw.pos.system.trim(), pos_systems),
            })
        };
        Sources {
            ble: BleSource {
                enabled: raw.ble.enabled,
                adapters: raw.ble.adapters,
            },
            scanner_mqtt,
            pos,
            ingest: IngestSource {
                token_file: file(base, &raw.ingest.token_file),
            },
        }
    }

    /// The ingest routes take door counts and sales: beyond loopback, only with a token.
    fn ingest_guarded(&mut self, sources: &Sources, dashboard: &Dashboard) {
        let open = dashboard
            .bind
            .filter(|bind| !bind.ip().is_loopback() && sources.ingest.token_file.is_none());
        if let Some(bind) = open {
            self.report(
                "sources.ingest.token_file",
                format!(
                    "is not set, but dashboard.bind ({bind}) is reachable beyond this machine, where anyone could push door counts and sales"
                ),
                "write the path of a file holding a token (door counters and the POS send `Authorization: Bearer <token>`), or bind the dashboard to 127.0.0.1",
            );
        }
    }
}

/// An optional file setting: empty means unset; relative paths are relative to the config file.
fn file(base: &Path, value: &str) -> Option<PathBuf> {
    (!value.trim().is_empty()).then(|| base.join(value))
}

/// `mqtt://host[:port]` or `mqtts://host[:port]`; ports default to 1883 / 8883.
fn parse_broker(s: &str) -> Result<Broker, (String, String)> {
    const FIX: &str = "write \"mqtt://host:1883\" or \"mqtts://host:8883\"";
    let bad = |why: &str| Err((format!("{s:?} {why}"), FIX.to_owned()));
    if s == "embedded" {
        // Earlier agents could start a broker of their own; the gateway's binary carries none.
        return Err((
            "\"embedded\": the agent has no broker of its own (the embedded one is the \
             developer demo's, `storefront-dev demo`)"
                .to_owned(),
            "write the broker the agent publishes to: the gateway's mosquitto \
             (\"mqtt://127.0.0.1:1883\", bridged to HQ) or HQ's (\"mqtts://hq.example.com:8883\")"
                .to_owned(),
        ));
    }
    let (rest, tls) = if let Some(rest) = s.strip_prefix("mqtts://") {
        (rest, true)
    } else if let Some(rest) = s.strip_prefix("mqtt://") {
        (rest, false)
    } else {
        return bad("has no mqtt:// or mqtts:// scheme");
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err((
            format!("{s:?} carries credentials"),
            "move the user to sync.username and the password into the file named by sync.password_file".to_owned(),
        ));
    }
    if rest.contains(['/', '?', '#']) {
        return bad("has a path; a broker address is only host and port");
    }
    // [v6]:port, host:port or host
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return bad("has an unclosed '['");
        };
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return bad("has no valid host");
    }
    let port = match port {
        None => {
            if tls {
                8883
            } else {
                1883
            }
        }
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return bad("has an invalid port (1..=65535)"),
        },
    };
    Ok(Broker {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// An MQTT subscription filter: non-empty, `#` only as the whole last level, `+` only as a whole level.
fn check_topic_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("is empty".to_owned());
    }
    if filter.contains('\0') {
        return Err("contains NUL".to_owned());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "{filter:?} has '#' other than as the whole last level"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("{filter:?} has '+' inside a level"));
        }
    }
    Ok(())
}

/// The time zone someone most likely meant: a case or separator slip, a city name alone, or a
/// near miss in spelling.
fn suggest_timezone(input: &str) -> Option<&'static str> {
    let norm = |s: &str| s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    let wanted = norm(input);
    if wanted.is_empty() {
        return Some("Europe/Paris");
    }
    let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
    if let Some(n) = names.clone().find(|n| norm(n) == wanted) {
        return Some(n);
    }
    if let Some(n) = names
        .clone()
        .find(|n| n.contains('/') && norm(n.rsplit('/').next().unwrap_or(n)) == wanted)
    {
        return Some(n);
    }
    let (best, distance) = names
        .map(|n| (n, edit_distance(&norm(n), &wanted)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= 3).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses_parse_with_default_ports() {
        assert!(
            parse_broker("embedded")
                .unwrap_err()
                .1
                .contains("mqtt://127.0.0.1:1883")
        );
        assert_eq!(
            parse_broker("mqtt://hq.example.com"),
            Ok(Broker {
                host: "hq.example.com".into(),
                port: 1883,
                tls: false
            })
        );
        assert_eq!(
            parse_broker("mqtts://10.0.0.2:8884"),
            Ok(Broker {
                host: "10.0.0.2".into(),
                port: 8884,
                tls: true
            })
        );
        assert_eq!(
            parse_broker("mqtt://[::1]:1884"),
            Ok(Broker {
                host: "::1".into(),
                port: 1884,
                tls: false
            })
        );
        for bad in [
            "",
            "tcp://x:1883",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:99999",
            "mqtt://u:p@x",
            "mqtt://x/a",
        ] {
            assert!(parse_broker(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn topic_filters_follow_mqtt_wildcard_rules() {
        assert!(check_topic_filter("espresense/devices/#").is_ok());
        assert!(check_topic_filter("home/+/BTtoMQTT/#").is_ok());
        for bad in ["", "a/#/b", "a#", "a/b+"] {
            assert!(check_topic_filter(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timezone_slips_are_corrected() {
        assert_eq!(suggest_timezone("europe/paris"), Some("Europe/Paris"));
        assert_eq!(suggest_timezone("Paris"), Some("Europe/Paris"));
        assert_eq!(suggest_timezone("Europe/Pari"), Some("Europe/Paris"));
        assert_eq!(suggest_timezone("New York"), Some("America/New_York"));
        assert_eq!(suggest_timezone("qqqqqqqqqqqqqqqqq"), None);
    }
}
