//! Property tests: encoders and parsers round-trip, and no input — arbitrary bytes, or real
//! and encoded payloads with random damage — makes a parser panic.

mod support {
    pub mod testdata;
}

use proptest::prelude::*;
use storefront_inputs::door::MAX_INTERVAL_CROSSINGS;
use storefront_inputs::encode::{
    encode_door, encode_espresense, encode_mqtt_room, encode_pushed_transaction, encode_theengs,
    encode_transactions,
};
use storefront_inputs::pos::MAX_AMOUNT_MINOR;
use storefront_inputs::{
    ScannerFormat, ScannerMessage, ScannerReading, TransactionPage, parse_door,
    parse_pushed_transaction, parse_scanner, parse_transactions,
};
use storefront_protocol::{
    AddressKind, DoorCount, DoorDirection, DoorEvent, Timestamp, Transaction,
};

const FORMATS: [ScannerFormat; 3] = [
    ScannerFormat::Espresense,
    ScannerFormat::Theengs,
    ScannerFormat::MqttRoom,
];
const NOW: Timestamp = Timestamp::from_millis(1_763_888_400_000);

/// A valid topic level: a room, gateway or alias name.
fn level() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_:.-]{1,24}".prop_filter("not a reserved level", |l| {
        !matches!(
            l.as_str(),
            "devices" | "rooms" | "status" | "BTtoMQTT" | "LWT"
        )
    })
}

fn mac() -> impl Strategy<Value = [u8; 6]> {
    any::<[u8; 6]>()
}

fn mac_text(mac: &[u8; 6], sep: &str, upper: bool) -> String {
    let s = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep);
    if upper { s.to_uppercase() } else { s }
}

fn canonical(mac: &[u8; 6]) -> String {
    mac_text(mac, ":", false)
}

/// A time the parsers accept (2000..=9999).
fn time() -> impl Strategy<Value = Timestamp> {
    (946_684_800_000i64..=253_402_300_799_999).prop_map(Timestamp::from_millis)
}

fn door_event() -> impl Strategy<Value = DoorEvent> {
    let count = prop_oneof![
        prop_oneof![Just(DoorDirection::In), Just(DoorDirection::Out)]
            .prop_map(|direction| DoorCount::Crossing { direction }),
        (
            0..=MAX_INTERVAL_CROSSINGS as u32,
            0..=MAX_INTERVAL_CROSSINGS as u32
        )
            .prop_map(|(entered, exited)| DoorCount::Interval { entered, exited }),
        (any::<u64>(), any::<u64>()).prop_map(|(in_total, out_total)| DoorCount::Cumulative {
            in_total,
            out_total
        }),
    ];
    (
        time(),
        "[a-z0-9-]{1,16}",
        proptest::option::of("\\PC{1,20}".prop_filter("not blank", |s| !s.trim().is_empty())),
        count,
    )
        .prop_map(|(t, sensor, record, count)| DoorEvent {
            t,
            sensor,
            record,
            count,
        })
}

fn transaction() -> impl Strategy<Value = Transaction> {
    (
        time(),
        "\\PC{1,30}".prop_filter("not blank", |s| !s.trim().is_empty()),
        proptest::option::of(0i64..=MAX_AMOUNT_MINOR),
    )
        .prop_map(|(t, id, amount_minor)| Transaction {
            t,
            id,
            amount_minor,
        })
}

/// Valid payloads to damage: every recorded scanner message plus encoded door and POS ones.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<_> = support::testdata::scanner_messages()
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect();
    let door = DoorEvent {
        t: NOW,
        sensor: "door-main".into(),
        record: Some("r-1".into()),
        count: DoorCount::Interval {
            entered: 4,
            exited: 3,
        },
    };
    seeds.push(("doors".into(), encode_door(&door)));
    seeds.push((
        "pos".into(),
        br#"{"transactions":[{"id":"till2-000812","time":"2025-11-23T09:01:40Z","amount":25.99},{"id":813,"time":"1763888500000","amount_minor":"1250"}],"next_cursor":"c-2"}"#.to_vec(),
    ));
    seeds.push((
        "doors".into(),
        br#"[{"sensor":"a","direction":"in","time":"2025-11-23T09:00:01+01:00","record_id":17},{"sensor":"a","in_total":"812","out_total":790.0}]"#.to_vec(),
    ));
    seeds
}

#[derive(Clone, Debug)]
enum Damage {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b"{}[]\",:-.0123456789eE\\ ntuflsa\x00\xff".to_vec())
        )
            .prop_map(|(i, b)| Damage::Insert(i, b)),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Damage::Delete(i, n)),
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Damage::Duplicate(i, n)),
    ];
    prop::collection::vec(one, 1..6)
}

fn apply(mut bytes: Vec<u8>, damage: &[Damage]) -> Vec<u8> {
    for d in damage {
        let len = bytes.len();
        let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
        match *d {
            Damage::Flip(i, b) if len > 0 => bytes[i % len] ^= b,
            Damage::Flip(..) => {}
            Damage::Insert(i, b) => bytes.insert(at(i), b),
            Damage::Delete(i, n) => {
                let from = at(i);
                bytes.drain(from..(from + n).min(len));
            }
            Damage::Truncate(i) => bytes.truncate(at(i)),
            Damage::Duplicate(i, n) => {
                let from = at(i);
                let piece = bytes[from..(from + n).min(len)].to_vec();
                bytes.splice(from..from, piece);
            }
        }
    }
    bytes
}

/// Runs every parser on the bytes; none may panic (the property is that this returns).
fn parse_all(topic: &str, payload: &[u8]) {
    for format in FORMATS {
        let _ = parse_scanner(format, topic, payload);
    }
    let _ = parse_door(payload, NOW);
    let _ = parse_transactions(payload);
    let _ = parse_pushed_transaction(payload);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_a_parser(
        topic in "\\PC{0,40}",
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        parse_all(&topic, &payload);
    }

    #[test]
    fn arbitrary_json_text_never_panics_a_parser(
        topic in "[a-z/]{0,30}",
        payload in r#"[\[\]{}":,0-9.eE+\- a-z]{0,120}"#,
    ) {
        parse_all(&topic, payload.as_bytes());
    }

    #[test]
    fn damaged_valid_payloads_never_panic_a_parser(
        seed in prop::sample::select(seeds()),
        damage in damage(),
    ) {
        let (topic, payload) = seed;
        parse_all(&topic, &apply(payload, &damage));
        let topic = apply(topic.into_bytes(), &damage);
        parse_all(&String::from_utf8_lossy(&topic), b"online");
    }

    #[test]
    fn espresense_reports_round_trip(
        room in level(),
        // An alias (never MAC-shaped: `g`-`z` are not hex digits) or a bare MAC.
        id in prop_oneof![
            "[g-z]{1,8}:[a-z0-9-]{1,12}".prop_map(|alias| (alias.clone(), alias)),
            mac().prop_map(|m| (mac_text(&m, "", false), canonical(&m))),
        ],
        rssi in -127i16..=20,
        tx_power in proptest::option::of(-127i16..=20),
    ) {
        let (sent, identity) = id;
        let (topic, payload) = encode_espresense(&room, &sent, rssi, tx_power);
        prop_assert_eq!(
            parse_scanner(ScannerFormat::Espresense, &topic, &payload),
            Ok(ScannerMessage::Reading(ScannerReading {
                node: room,
                identity,
                rssi,
                tx_power,
                address_kind: AddressKind::Stable,
            }))
        );
    }

    #[test]
    fn theengs_reports_round_trip(
        gateway in level(),
        mac in mac(),
        sep in prop::sample::select(vec![":", "-", ""]),
        upper in any::<bool>(),
        rssi in -127i16..=20,
    ) {
        let (topic, payload) = encode_theengs(&gateway, &mac_text(&mac, sep, upper), rssi);
        prop_assert_eq!(
            parse_scanner(ScannerFormat::Theengs, &topic, &payload),
            Ok(ScannerMessage::Reading(ScannerReading {
                node: gateway,
                identity: canonical(&mac),
                rssi,
                tx_power: None,
                address_kind: AddressKind::Stable,
            }))
        );
    }

    #[test]
    fn mqtt_room_reports_round_trip(
        room in level(),
        mac in mac(),
        // Stronger than -29 dBm is nearer than the model's 0.1 m floor.
        rssi in -127i16..=-29,
    ) {
        let (topic, payload) =
            encode_mqtt_room("room_presence", &room, &mac_text(&mac, ":", false), rssi);
        prop_assert_eq!(
            parse_scanner(ScannerFormat::MqttRoom, &topic, &payload),
            Ok(ScannerMessage::Reading(ScannerReading {
                node: room,
                identity: canonical(&mac),
                rssi,
                tx_power: None,
                address_kind: AddressKind::Stable,
            }))
        );
    }

    #[test]
    fn door_records_round_trip(events in prop::collection::vec(door_event(), 1..8)) {
        for event in &events {
            prop_assert_eq!(parse_door(&encode_door(event), NOW), Ok(vec![event.clone()]));
        }
        // A batch is the records joined into an array.
        let mut batch = b"[".to_vec();
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                batch.push(b',');
            }
            batch.extend(encode_door(event));
        }
        batch.push(b']');
        prop_assert_eq!(parse_door(&batch, NOW), Ok(events));
    }

    #[test]
    fn transaction_pages_round_trip(
        transactions in prop::collection::vec(transaction(), 0..8),
        next_cursor in proptest::option::of("[A-Za-z0-9=_-]{1,20}"),
    ) {
        let page = encode_transactions(&transactions, next_cursor.as_deref());
        for t in &transactions {
            prop_assert_eq!(
                parse_pushed_transaction(&encode_pushed_transaction(t)),
                Ok(t.clone())
            );
        }
        prop_assert_eq!(
            parse_transactions(&page),
            Ok(TransactionPage { transactions, next_cursor })
        );
    }

    #[test]
    fn decimal_amounts_convert_exactly(major in 0u64..10_000_000, cents in 0u64..100) {
        let expected = Some((major * 100 + cents) as i64);
        for amount in [
            format!("{major}.{cents:02}"),
            format!("\"{major}.{cents:02}\""),
            format!("{}", (major * 100 + cents) as f64 / 100.0),
        ] {
            let payload = format!(r#"{{"id":"x","time":1763888500000,"amount":{amount}}}"#);
            prop_assert_eq!(
                parse_pushed_transaction(payload.as_bytes()).map(|t| t.amount_minor),
                Ok(expected),
                "{}", amount
            );
        }
    }
}
