//! Every real scanner message in `testdata/scanner-messages.json` parses to the values
//! its entry states, or is rejected where it is not a reading.

mod support {
    pub mod testdata;
}

use serde_json::Value;
use storefront_inputs::{
    InputRejection, ScannerFormat, ScannerMessage, ScannerReading, parse_scanner,
};
use storefront_protocol::AddressKind::{self, Rotating, Stable};
use support::testdata::{self, Message};

/// What each entry must parse to, by index.
enum Expect {
    Reading {
        node: &'static str,
        identity: &'static str,
        rssi: i16,
        tx_power: Option<i16>,
        kind: AddressKind,
    },
    Status {
        node: &'static str,
        online: bool,
    },
    Rejected(InputRejection),
    /// `monitor`, which the agent has no format for: rejected by every format, with the reason
    /// given for `mqtt_room` (whose topic pattern is loose enough to reach the payload).
    NotForUs(InputRejection),
}

fn reading(
    node: &'static str,
    identity: &'static str,
    rssi: i16,
    tx_power: Option<i16>,
    kind: AddressKind,
) -> Expect {
    Expect::Reading {
        node,
        identity,
        rssi,
        tx_power,
        kind,
    }
}

fn expectations() -> Vec<Expect> {
    use Expect::*;
    use InputRejection::*;
    vec![
        // ESPresense device reports (enrolled alias, old v2 schema, redacted iBeacon / iTag).
        reading("basement", "watch:darrell", -86, Some(-64), Stable),
        reading("laundry", "watch:darrell", -76, Some(-71), Stable),
        reading("office", "watch:darrell", -68, Some(-69), Stable),
        reading("test-room", "apple:iphone12-3", -65, Some(-65), Stable),
        reading("test-room", "iBeacon:xxx", -93, Some(-69), Stable),
        reading("test-room", "itag:xxx", -89, Some(-60), Stable),
        // ESPresense room status, then retained settings that are not readings.
        Status {
            node: "study",
            online: true,
        },
        Rejected(UnknownTopic),
        Rejected(UnknownTopic),
        Rejected(UnknownTopic),
        // Theengs Gateway: a 3-octet doc id kept as is, an IRK identity address, LWT.
        reading("TheengsGateway", "F3:52:85", -82, None, Stable),
        reading("TheengsGateway", "11:22:33:44:55:66", -42, None, Stable),
        Status {
            node: "TheengsGateway",
            online: true,
        },
        Status {
            node: "TheengsGateway",
            online: false,
        },
        // OpenMQTTGateway: mixed-case topic, sensor data without id or rssi, iBeacons behind
        // resolvable private addresses (mac_type 1, top bits 01) and by UUID.
        reading("OpenMQTTGateway", "c7:fa:ad:13:2c:00", -68, None, Stable),
        Rejected(MissingField),
        reading(
            "OpenMQTTGateway",
            "60:87:57:4c:9b:c2",
            -78,
            Some(-66),
            Rotating,
        ),
        reading(
            "OpenMQTTGateway",
            "1de4b189115e45f6b44e509352269977",
            -78,
            Some(-66),
            Stable,
        ),
        reading(
            "OpenMQTTGateway",
            "52:10:a8:46:90:ac",
            -77,
            Some(-66),
            Rotating,
        ),
        reading(
            "OpenMQTTGateway",
            "52:10:a8:46:90:ac",
            -76,
            Some(-66),
            Rotating,
        ),
        reading(
            "OpenMQTTGateway",
            "7b:63:c6:82:dc:57",
            -83,
            Some(-66),
            Rotating,
        ),
        Status {
            node: "OpenMQTTGateway",
            online: true,
        },
        // Home Assistant mqtt_room: RSSI derived from distance (10, 1, 20, 5.678 m).
        reading("bedroom", "123TESTMAC", -89, None, Stable),
        reading("living_room", "123TESTMAC", -59, None, Stable),
        reading("bedroom", "123TESTMAC", -98, None, Stable),
        reading("test_room", "123testid", -82, None, Stable),
        // monitor: pasted with a trailing quote (invalid JSON), a report without RSSI, and an
        // inbound plain-text command.
        NotForUs(Malformed),
        NotForUs(Malformed),
        NotForUs(MissingField),
        NotForUs(Malformed),
    ]
}

fn describe(m: &Message) -> String {
    format!("entry {} ({}, topic {})", m.index, m.system, m.topic)
}

/// A stated number, which drifts between JSON numbers and strings.
fn stated_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The reading agrees with the values its entry states, field by field.
fn cross_check(m: &Message, r: &ScannerReading) {
    let what = describe(m);
    let stated = &m.stated;
    if let Some(rssi) = stated.get("rssi").and_then(stated_number) {
        assert_eq!(f64::from(r.rssi), rssi.round(), "{what}: rssi");
    } else if let Some(d) = stated.get("distance").and_then(stated_number) {
        let derived = storefront_inputs::scanner::rssi_from_distance(d).round();
        assert_eq!(f64::from(r.rssi), derived, "{what}: rssi from distance");
    }
    let id = stated["id"].as_str().expect("readings state an id");
    assert!(
        r.identity == id || r.identity.eq_ignore_ascii_case(id),
        "{what}: identity {} vs stated {id}",
        r.identity
    );
    let stated_tx = stated
        .get("rssi@1m")
        .or_else(|| stated.get("txpower"))
        .and_then(stated_number);
    assert_eq!(r.tx_power.map(f64::from), stated_tx, "{what}: tx_power");
    let last = m.topic.rsplit('/').next().unwrap();
    match m.format {
        Some(ScannerFormat::Theengs) => {
            assert!(m.topic.contains(&format!("/{}/BTtoMQTT", r.node)), "{what}")
        }
        _ => assert_eq!(r.node, last, "{what}: node"),
    }
}

#[test]
fn every_recorded_scanner_message_parses_to_its_stated_values() {
    let messages = testdata::scanner_messages();
    let expectations = expectations();
    assert_eq!(
        messages.len(),
        expectations.len(),
        "{} changed: update the expectation table",
        testdata::path().display()
    );
    for (m, expect) in messages.iter().zip(expectations) {
        let what = describe(m);
        match expect {
            Expect::Reading {
                node,
                identity,
                rssi,
                tx_power,
                kind,
            } => {
                let format = m.format.expect("readings come from a supported system");
                let got = parse_scanner(format, &m.topic, &m.payload);
                let Ok(ScannerMessage::Reading(r)) = got else {
                    panic!("{what}: expected a reading, got {got:?}");
                };
                assert_eq!(
                    r,
                    ScannerReading {
                        node: node.into(),
                        identity: identity.into(),
                        rssi,
                        tx_power,
                        address_kind: kind,
                    },
                    "{what}"
                );
                cross_check(m, &r);
            }
            Expect::Status { node, online } => {
                let format = m.format.expect("statuses come from a supported system");
                assert_eq!(
                    parse_scanner(format, &m.topic, &m.payload),
                    Ok(ScannerMessage::NodeStatus {
                        node: node.into(),
                        online
                    }),
                    "{what}"
                );
                let stated = m.stated.as_str().expect("status payloads are text");
                assert_eq!(online, stated.eq_ignore_ascii_case("online"), "{what}");
            }
            Expect::Rejected(reason) => {
                let format = m.format.expect("supported system");
                let got = parse_scanner(format, &m.topic, &m.payload);
                assert_eq!(got.map_err(|e| e.reason()), Err(reason), "{what}");
            }
            Expect::NotForUs(reason) => {
                for format in [ScannerFormat::Espresense, ScannerFormat::Theengs] {
                    let got = parse_scanner(format, &m.topic, &m.payload);
                    assert_eq!(
                        got.map_err(|e| e.reason()),
                        Err(InputRejection::UnknownTopic),
                        "{what} as {format:?}"
                    );
                }
                let got = parse_scanner(ScannerFormat::MqttRoom, &m.topic, &m.payload);
                assert_eq!(got.map_err(|e| e.reason()), Err(reason), "{what}");
            }
        }
    }
}

#[test]
fn recorded_messages_under_the_wrong_format_are_rejected_not_misread() {
    for m in testdata::scanner_messages() {
        if let Some(format) = m.format {
            for other in [ScannerFormat::Espresense, ScannerFormat::Theengs] {
                if other != format {
                    assert!(
                        parse_scanner(other, &m.topic, &m.payload).is_err(),
                        "{} as {other:?}",
                        describe(&m)
                    );
                }
            }
        }
    }
}
