//! BLE scanner nodes publishing over MQTT: ESPresense, Theengs Gateway / OpenMQTTGateway and
//! Home Assistant's `mqtt_room` format.
//!
//! [`parse_scanner`] takes the configured [`ScannerFormat`], the message's topic and payload,
//! and returns a [`ScannerMessage`]: a [`ScannerReading`] (one device heard by one node) or a
//! node's online/offline status. The caller maps `node` to a scanner id with
//! `ScannerMqttSource::scanner_id` and pseudonymises `identity` at once.
//!
//! # Topics and payloads
//! Only the last levels of a topic are matched, so a changed base topic (`home/` → `store1/`)
//! still parses.
//!
//! | format | topic | payload | result |
//! |---|---|---|---|
//! | ESPresense | `…/devices/<id>/<room>` | `{"id", "rssi", "rssi@1m"?, "idType"?, …}` | reading, node = `<room>` |
//! | ESPresense | `…/rooms/<room>/status` | `online` / `offline` | node status |
//! | Theengs, OpenMQTTGateway | `…/<gateway>/BTtoMQTT/<device>` or `…/<gateway>/BTtoMQTT` | `{"id", "rssi", "txpower"?, "mac_type"?, "model_id"?, …}` | reading, node = `<gateway>` |
//! | Theengs, OpenMQTTGateway | `…/<gateway>/LWT` | `online` / `offline` | node status |
//! | `mqtt_room` | `…/<room>` | `{"id", "distance"?, "rssi"?, "rssi@1m"?, …}` | reading, node = `<room>` |
//!
//! Status payloads compare case-insensitively (older OpenMQTTGateway sends `Online`). Other
//! topics of these systems (ESPresense's `rooms/<room>/max_distance`, `settings/…`) are
//! [`InputRejection::UnknownTopic`](crate::InputRejection::UnknownTopic): subscribe to the
//! narrowest filter ([`ScannerFormat::default_topic`]) so they are not delivered at all.
//!
//! Numbers may be strings (`"rssi": "-86"`); fractional RSSIs are rounded to whole dBm. An RSSI
//! outside −127..=20 dBm (ESPresense's "no RSSI" is −128) is
//! [`OutOfRange`](crate::InputRejection::OutOfRange); a message without one (sensor telemetry
//! from the same gateway, `monitor`'s `"rssi": ""`) is
//! [`MissingField`](crate::InputRejection::MissingField).
//!
//! # Identity
//! `identity` is the device id the message gives (`id`; for ESPresense the topic's `<id>` when
//! the payload has none). Ids that are MAC addresses (`aa:bb:cc:dd:ee:ff`, `AA-BB-…`,
//! `aabbccddeeff`) are written in one canonical form, lowercase with colons, so that nodes of
//! different makes (and OpenMQTTGateway's case drift) name a device the same way; every other id
//! (`watch:darrell`, `iBeacon:…`, a beacon UUID) is kept as sent.
//!
//! Note: ESPresense fingerprint ids such as `apple:1005:9-26` describe a device *model*, not one
//! device; two shoppers' phones can share one. Prefer enrolled aliases, IRKs or beacons.
//!
//! # Address kind
//! [`AddressKind::Rotating`] only when the message says the id is a private random address
//! that changes every ~15 minutes; otherwise [`AddressKind::Stable`]:
//! * ESPresense: `idType` 1 (the firmware's `ID_TYPE_RAND_MAC`: the id *is* a random MAC) is
//!   rotating. Beacon ids, IRK-resolved ids, enrolled aliases, public and static MACs and
//!   fingerprints are stable.
//! * Theengs / OpenMQTTGateway: an id that is a MAC with `mac_type` 1 (or `"random"`) is
//!   rotating unless its two top bits are `11` (a *static* random address, stable until power
//!   cycle). `mac_type` 0 or absent means a public MAC: stable. Ids that are not MACs (beacon
//!   UUIDs with `presenceUseBeaconUuid`) are stable.
//! * `mqtt_room`: stable (the id is the device Home Assistant was configured to track).
//!
//! # TX power
//! `tx_power` is the expected RSSI at 1 m, dBm: ESPresense's `rssi@1m` (per-node calibrated);
//! Theengs' `txpower` as is for iBeacon/AltBeacon decodes (`model_id` containing `BEACON`, the
//! beacon's measured power at 1 m) and minus 41 dB otherwise (the advertisement's TX Power
//! Level, dBm at 0 m; 41 dB is free-space loss over the first metre at 2.4 GHz, Eddystone's
//! convention). A missing, unreadable or implausible (outside −127..=20) value is `None`: it is
//! optional metadata and does not cost the reading.
//!
//! # `mqtt_room` without RSSI
//! Home Assistant's format carries a distance, not an RSSI. When `rssi` is absent it is derived
//! with the log-distance path-loss model
//! `rssi = MQTT_ROOM_REF_RSSI_1M − 10 · MQTT_ROOM_PATH_LOSS_EXPONENT · log10(d)`, with `d` at
//! least [`MQTT_ROOM_MIN_DISTANCE_M`], so the engine's RSSI thresholds apply to it: −59 dBm at
//! 1 m, −68 at 2 m, −80 at 5 m, −89 at 10 m. The exponent 3 is indoor propagation, the middle of
//! the 2.5–3.2 implied by the ESPresense captures in `testdata/`. Zone thresholds for
//! `mqtt_room` scanners should be set with this mapping in mind.

use serde::Deserialize;
use storefront_protocol::AddressKind;

use crate::loose::{ID_RANGE, Loose, MAX_ID_BYTES, present};
use crate::{InputError, ScannerFormat, from_json, payload_text};

/// Lowest plausible RSSI, dBm (ESPresense's "no RSSI" sentinel is −128).
pub const MIN_RSSI_DBM: i16 = -127;
/// Highest plausible RSSI, dBm.
pub const MAX_RSSI_DBM: i16 = 20;
/// `mqtt_room` distance model: RSSI at 1 m, dBm (the usual calibrated 1 m power of phones and
/// iBeacons).
pub const MQTT_ROOM_REF_RSSI_1M: f64 = -59.0;
/// `mqtt_room` distance model: path-loss exponent (2 is free space; indoors 2.5–4).
pub const MQTT_ROOM_PATH_LOSS_EXPONENT: f64 = 3.0;
/// `mqtt_room` distance model: distances below this are read as this (the model diverges at 0).
pub const MQTT_ROOM_MIN_DISTANCE_M: f64 = 0.1;
/// Free-space loss over the first metre at 2.4 GHz: TX Power Level (0 m) → expected RSSI at 1 m.
pub const TX_POWER_0M_TO_1M_DB: i16 = 41;

/// One MQTT message from a scanner node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScannerMessage {
    /// A device heard by a node.
    Reading(ScannerReading),
    /// A node's availability (ESPresense room status, Theengs / OpenMQTTGateway LWT): lets the
    /// agent tell "no one here" from "scanner down".
    NodeStatus { node: String, online: bool },
}

/// One device heard by one scanner node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannerReading {
    /// The room (ESPresense, `mqtt_room`) or gateway (Theengs) name from the topic; the config's
    /// `scanner_ids` maps it to a scanner id.
    pub node: String,
    /// The raw device id from the message: a MAC address or an alias. **Personal data**: the
    /// caller must pseudonymise it at once (`storefront_protocol::privacy::Pseudonymizer`) and
    /// must never store, log or send it. (`Debug` prints it; do not log readings.)
    pub identity: String,
    /// Received signal strength, dBm, in −127..=20.
    pub rssi: i16,
    /// Expected RSSI at 1 m, dBm, when the message carries it (see the module docs).
    pub tx_power: Option<i16>,
    /// Whether `identity` rotates (see the module docs for the rule per format).
    pub address_kind: AddressKind,
}

/// Parses one MQTT message from a scanner node of the given format.
pub fn parse_scanner(
    format: ScannerFormat,
    topic: &str,
    payload: &[u8],
) -> Result<ScannerMessage, InputError> {
    let text = payload_text(payload)?;
    match format {
        ScannerFormat::Espresense => espresense(topic, text),
        ScannerFormat::Theengs => theengs(topic, text),
        ScannerFormat::MqttRoom => mqtt_room(topic, text),
    }
}

/// The last three topic levels, last first.
fn tail(topic: &str) -> [Option<&str>; 3] {
    let mut levels = topic.rsplit('/');
    [levels.next(), levels.next(), levels.next()]
}

/// A topic level that can name a node or device.
fn level(level: Option<&str>) -> Option<&str> {
    level.filter(|l| !l.is_empty() && l.len() <= MAX_ID_BYTES)
}

const ESPRESENSE_TOPICS: &str = "ESPresense `…/devices/<id>/<room>` or `…/rooms/<room>/status`";
const THEENGS_TOPICS: &str = "Theengs `…/<gateway>/BTtoMQTT[/<device>]` or `…/<gateway>/LWT`";
const MQTT_ROOM_TOPICS: &str = "mqtt_room `<prefix>/<room>`";

fn espresense(topic: &str, text: &str) -> Result<ScannerMessage, InputError> {
    let unknown = InputError::UnknownTopic {
        expected: ESPRESENSE_TOPICS,
    };
    match tail(topic) {
        [room, id, Some("devices")] => {
            let (Some(room), Some(id)) = (level(room), level(id)) else {
                return Err(unknown);
            };
            #[derive(Deserialize)]
            struct Raw<'a> {
                #[serde(borrow, default)]
                id: Option<Loose<'a>>,
                #[serde(borrow, default)]
                rssi: Option<Loose<'a>>,
                #[serde(borrow, default, rename = "rssi@1m")]
                rssi_1m: Option<Loose<'a>>,
                #[serde(borrow, default, rename = "idType")]
                id_type: Option<Loose<'a>>,
            }
            let raw: Raw<'_> = from_json(text)?;
            let identity = match &raw.id {
                Some(Loose::Null) | None => canonical_identity(id),
                Some(v) => identity(v)?,
            };
            let rssi = rssi(present(&raw.rssi, "rssi")?.number("rssi")?, "rssi")?;
            let random_mac = raw
                .id_type
                .as_ref()
                .and_then(|t| t.number("idType").ok())
                .is_some_and(|t| t == 1.0);
            Ok(ScannerMessage::Reading(ScannerReading {
                node: room.to_owned(),
                identity,
                rssi,
                tx_power: optional_dbm(&raw.rssi_1m, 0),
                address_kind: if random_mac {
                    AddressKind::Rotating
                } else {
                    AddressKind::Stable
                },
            }))
        }
        [Some("status"), room, Some("rooms")] => {
            let room = level(room).ok_or(unknown)?;
            status(room, text)
        }
        _ => Err(unknown),
    }
}

fn theengs(topic: &str, text: &str) -> Result<ScannerMessage, InputError> {
    let unknown = InputError::UnknownTopic {
        expected: THEENGS_TOPICS,
    };
    // A topic naming BTtoMQTT twice is ambiguous: the device level could pass for the gateway,
    // and a device id (a MAC) must never become a scanner name.
    if topic.split('/').filter(|l| *l == "BTtoMQTT").count() > 1 {
        return Err(unknown);
    }
    let gateway = match tail(topic) {
        [Some(_), Some("BTtoMQTT"), gateway] | [Some("BTtoMQTT"), gateway, _] => {
            level(gateway).ok_or(unknown)?
        }
        [Some("LWT"), gateway, _] => return status(level(gateway).ok_or(unknown)?, text),
        _ => return Err(unknown),
    };
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow, default)]
        id: Option<Loose<'a>>,
        #[serde(borrow, default)]
        rssi: Option<Loose<'a>>,
        #[serde(borrow, default)]
        txpower: Option<Loose<'a>>,
        #[serde(borrow, default)]
        mac_type: Option<Loose<'a>>,
        #[serde(borrow, default)]
        model_id: Option<Loose<'a>>,
    }
    let raw: Raw<'_> = from_json(text)?;
    let rssi = rssi(present(&raw.rssi, "rssi")?.number("rssi")?, "rssi")?;
    let id = present(&raw.id, "id")?;
    let identity = identity(id)?;
    let beacon = matches!(&raw.model_id, Some(Loose::Str(m))
        if m.as_bytes().windows(6).any(|w| w.eq_ignore_ascii_case(b"BEACON")));
    let tx_power = optional_dbm(&raw.txpower, if beacon { 0 } else { TX_POWER_0M_TO_1M_DB });
    let random = match &raw.mac_type {
        Some(Loose::Int(1) | Loose::UInt(1)) => true,
        Some(Loose::Str(s)) => {
            let s = s.trim();
            s == "1" || s.eq_ignore_ascii_case("random")
        }
        _ => false,
    };
    let address_kind = match parse_mac(&identity) {
        // Two top bits 11: a static random address, kept until power cycle.
        Some(mac) if random && mac[0] & 0xc0 != 0xc0 => AddressKind::Rotating,
        _ => AddressKind::Stable,
    };
    Ok(ScannerMessage::Reading(ScannerReading {
        node: gateway.to_owned(),
        identity,
        rssi,
        tx_power,
        address_kind,
    }))
}

fn mqtt_room(topic: &str, text: &str) -> Result<ScannerMessage, InputError> {
    let unknown = InputError::UnknownTopic {
        expected: MQTT_ROOM_TOPICS,
    };
    let room = match tail(topic) {
        [room, Some(_), _] => level(room).ok_or(unknown)?,
        _ => return Err(unknown),
    };
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow, default)]
        id: Option<Loose<'a>>,
        #[serde(borrow, default)]
        rssi: Option<Loose<'a>>,
        #[serde(borrow, default)]
        distance: Option<Loose<'a>>,
        #[serde(borrow, default, rename = "rssi@1m")]
        rssi_1m: Option<Loose<'a>>,
    }
    let raw: Raw<'_> = from_json(text)?;
    let identity = identity(present(&raw.id, "id")?)?;
    let rssi = if let Ok(v) = present(&raw.rssi, "rssi") {
        rssi(v.number("rssi")?, "rssi")?
    } else if let Ok(v) = present(&raw.distance, "distance") {
        let d = v.number("distance")?;
        if d < 0.0 {
            return Err(InputError::out_of_range("distance", "0 m or more"));
        }
        rssi(rssi_from_distance(d), "distance")?
    } else {
        return Err(InputError::missing("rssi"));
    };
    Ok(ScannerMessage::Reading(ScannerReading {
        node: room.to_owned(),
        identity,
        rssi,
        tx_power: optional_dbm(&raw.rssi_1m, 0),
        address_kind: AddressKind::Stable,
    }))
}

/// The `mqtt_room` log-distance model (see the module docs), unrounded.
pub fn rssi_from_distance(distance_m: f64) -> f64 {
    MQTT_ROOM_REF_RSSI_1M
        - 10.0 * MQTT_ROOM_PATH_LOSS_EXPONENT * distance_m.max(MQTT_ROOM_MIN_DISTANCE_M).log10()
}

fn status(node: &str, text: &str) -> Result<ScannerMessage, InputError> {
    let state = text.trim();
    let online = if state.eq_ignore_ascii_case("online") {
        true
    } else if state.eq_ignore_ascii_case("offline") {
        false
    } else {
        return Err(InputError::invalid(
            "status payload",
            "`online` or `offline`",
        ));
    };
    Ok(ScannerMessage::NodeStatus {
        node: node.to_owned(),
        online,
    })
}

/// A dBm value rounded to whole dB, in −127..=20.
fn rssi(dbm: f64, field: &'static str) -> Result<i16, InputError> {
    let rounded = dbm.round();
    if (f64::from(MIN_RSSI_DBM)..=f64::from(MAX_RSSI_DBM)).contains(&rounded) {
        Ok(rounded as i16)
    } else {
        Err(InputError::out_of_range(field, "-127..=20 dBm"))
    }
}

/// An optional dBm field minus `offset` dB, or `None` when absent, unreadable or implausible.
fn optional_dbm(value: &Option<Loose<'_>>, offset: i16) -> Option<i16> {
    let v = present(value, "").ok()?.number("").ok()?;
    rssi(v - f64::from(offset), "").ok()
}

fn identity(value: &Loose<'_>) -> Result<String, InputError> {
    // Device ids are strings; `Loose::id` would also take numbers, which no node sends.
    let id = value.str("id")?;
    if id.trim().is_empty() {
        Err(InputError::missing("id"))
    } else if id.len() > MAX_ID_BYTES {
        Err(InputError::out_of_range("id", ID_RANGE))
    } else {
        Ok(canonical_identity(id))
    }
}

/// A MAC address written as `aa:bb:cc:dd:ee:ff`; any other id as is.
pub(crate) fn canonical_identity(id: &str) -> String {
    match parse_mac(id) {
        Some(mac) => format_mac(&mac),
        None => id.to_owned(),
    }
}

pub(crate) fn format_mac(mac: &[u8; 6]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// Six octets from `aa:bb:cc:dd:ee:ff`, `aa-bb-…` (either case) or `aabbccddeeff`.
pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let b = s.as_bytes();
    let (stride, sep) = match b.len() {
        12 => (2, None),
        17 => (3, Some(b[2]).filter(|c| *c == b':' || *c == b'-')?.into()),
        _ => return None,
    };
    let mut mac = [0u8; 6];
    for (i, octet) in mac.iter_mut().enumerate() {
        let at = i * stride;
        if let Some(sep) = sep
            && i > 0
            && b[at - 1] != sep
        {
            return None;
        }
        let hi = (b[at] as char).to_digit(16)?;
        let lo = (b[at + 1] as char).to_digit(16)?;
        *octet = (hi * 16 + lo) as u8;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputRejection;

    fn reading(format: ScannerFormat, topic: &str, payload: &str) -> ScannerReading {
        match parse_scanner(format, topic, payload.as_bytes()) {
            Ok(ScannerMessage::Reading(r)) => r,
            other => panic!("{topic} {payload}: {other:?}"),
        }
    }

    fn rejection(format: ScannerFormat, topic: &str, payload: &str) -> InputRejection {
        parse_scanner(format, topic, payload.as_bytes())
            .unwrap_err()
            .reason()
    }

    #[test]
    fn macs_are_canonicalised_and_other_ids_kept() {
        for id in ["C7:FA:AD:13:2C:00", "c7-fa-ad-13-2c-00", "C7FaaD132C00"] {
            assert_eq!(canonical_identity(id), "c7:fa:ad:13:2c:00", "{id}");
        }
        for id in [
            "watch:darrell",
            "F3:52:85",
            "1de4b189115e45f6b44e509352269977",
            "c7:fa-ad:13:2c:00",
            "zzfaad132c00",
        ] {
            assert_eq!(canonical_identity(id), id);
        }
    }

    #[test]
    fn espresense_random_mac_ids_rotate() {
        let r = reading(
            ScannerFormat::Espresense,
            "espresense/devices/5a1b2c3d4e5f/hall",
            r#"{"id":"5a1b2c3d4e5f","idType":1,"rssi":-70}"#,
        );
        assert_eq!(r.address_kind, AddressKind::Rotating);
        assert_eq!(r.identity, "5a:1b:2c:3d:4e:5f");
        assert_eq!(r.tx_power, None);
    }

    #[test]
    fn espresense_falls_back_to_the_topic_id_and_reads_string_numbers() {
        let r = reading(
            ScannerFormat::Espresense,
            "store1/devices/iBeacon:abc-1-2/fitting",
            r#"{"rssi":"-71.6","rssi@1m":"-59"}"#,
        );
        assert_eq!(r.identity, "iBeacon:abc-1-2");
        assert_eq!(r.node, "fitting");
        assert_eq!(r.rssi, -72);
        assert_eq!(r.tx_power, Some(-59));
    }

    #[test]
    fn rssi_outside_the_radio_range_is_out_of_range() {
        for rssi in ["-128", "21", "\"-300\"", "1e9"] {
            assert_eq!(
                rejection(
                    ScannerFormat::Theengs,
                    "home/gw/BTtoMQTT/112233445566",
                    &format!(r#"{{"id":"11:22:33:44:55:66","rssi":{rssi}}}"#),
                ),
                InputRejection::OutOfRange,
                "{rssi}"
            );
        }
    }

    #[test]
    fn implausible_tx_power_is_dropped_not_fatal() {
        let r = reading(
            ScannerFormat::Espresense,
            "espresense/devices/x/y",
            r#"{"id":"x","rssi":-60,"rssi@1m":"n/a"}"#,
        );
        assert_eq!(r.tx_power, None);
        let r = reading(
            ScannerFormat::Theengs,
            "home/gw/BTtoMQTT/x",
            r#"{"id":"x","rssi":-60,"txpower":120}"#,
        );
        assert_eq!(r.tx_power, None);
    }

    #[test]
    fn theengs_raw_tx_power_level_is_moved_to_one_metre() {
        let r = reading(
            ScannerFormat::Theengs,
            "home/gw/BTtoMQTT/AABBCCDDEEFF",
            r#"{"id":"AA:BB:CC:DD:EE:FF","rssi":-60,"txpower":4}"#,
        );
        assert_eq!(r.tx_power, Some(4 - 41));
    }

    #[test]
    fn theengs_static_random_addresses_are_stable() {
        let r = reading(
            ScannerFormat::Theengs,
            "home/gw/BTtoMQTT",
            r#"{"id":"C1:22:33:44:55:66","rssi":-60,"mac_type":"random"}"#,
        );
        assert_eq!(r.address_kind, AddressKind::Stable);
        let r = reading(
            ScannerFormat::Theengs,
            "home/gw/BTtoMQTT",
            r#"{"id":"41:22:33:44:55:66","rssi":-60,"mac_type":1}"#,
        );
        assert_eq!(r.address_kind, AddressKind::Rotating);
        assert_eq!(r.node, "gw");
    }

    #[test]
    fn mqtt_room_prefers_a_given_rssi_and_derives_one_from_distance() {
        let r = reading(
            ScannerFormat::MqttRoom,
            "room_presence/hall",
            r#"{"id":"a","distance":1,"rssi":-50}"#,
        );
        assert_eq!(r.rssi, -50);
        let at = |d: &str| {
            reading(
                ScannerFormat::MqttRoom,
                "room_presence/hall",
                &format!(r#"{{"id":"a","distance":{d}}}"#),
            )
            .rssi
        };
        assert_eq!(at("1"), -59);
        assert_eq!(at("2"), -68);
        assert_eq!(at("\"5\""), -80);
        assert_eq!(at("10"), -89);
        assert_eq!(at("0"), -29);
        assert_eq!(
            rejection(
                ScannerFormat::MqttRoom,
                "room_presence/hall",
                r#"{"id":"a","distance":1e6}"#
            ),
            InputRejection::OutOfRange
        );
        assert_eq!(
            rejection(
                ScannerFormat::MqttRoom,
                "room_presence/hall",
                r#"{"id":"a","distance":-1}"#
            ),
            InputRejection::OutOfRange
        );
        assert_eq!(
            rejection(
                ScannerFormat::MqttRoom,
                "room_presence/hall",
                r#"{"id":"a"}"#
            ),
            InputRejection::MissingField
        );
    }

    #[test]
    fn status_payloads_compare_without_case_and_others_are_malformed() {
        for (payload, online) in [("online", true), ("Online", true), (" OFFLINE\n", false)] {
            assert_eq!(
                parse_scanner(ScannerFormat::Theengs, "home/gw/LWT", payload.as_bytes()),
                Ok(ScannerMessage::NodeStatus {
                    node: "gw".into(),
                    online
                })
            );
        }
        assert_eq!(
            rejection(
                ScannerFormat::Espresense,
                "espresense/rooms/a/status",
                "maybe"
            ),
            InputRejection::Malformed
        );
    }

    #[test]
    fn topics_outside_the_format_are_unknown() {
        for (format, topic) in [
            (
                ScannerFormat::Espresense,
                "espresense/rooms/study/max_distance",
            ),
            (ScannerFormat::Espresense, "espresense/devices//hall"),
            (ScannerFormat::Espresense, "espresense/devices/x/"),
            (ScannerFormat::Espresense, "devices"),
            (ScannerFormat::Theengs, "home/gw/SYStoMQTT"),
            (ScannerFormat::Theengs, "BTtoMQTT"),
            (ScannerFormat::Theengs, "/BTtoMQTT/x"),
            (
                ScannerFormat::Theengs,
                "home/gw/BTtoMQTT/AABBCCDDEEFF/BTtoMQTT",
            ),
            (ScannerFormat::MqttRoom, "room_presence"),
            (ScannerFormat::MqttRoom, "room_presence/"),
            (ScannerFormat::MqttRoom, ""),
        ] {
            assert_eq!(
                rejection(format, topic, r#"{"id":"a","rssi":-50}"#),
                InputRejection::UnknownTopic,
                "{topic}"
            );
        }
    }

    #[test]
    fn errors_do_not_quote_identities() {
        let err = parse_scanner(
            ScannerFormat::Theengs,
            "home/gw/BTtoMQTT/112233445566",
            br#"{"id":"11:22:33:44:55:66","rssi":"11:22:33:44:55:66"}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("11:22"), "{err}");
    }
}
