//! Encoders for the simulator: each writes a message the matching parser reads back, in the
//! shape the real device or service publishes, so every input path can be driven end to end.
//!
//! Names used as topic levels (`room`, `gateway`, device ids) must be valid topic levels: not
//! empty, no `/`, `+` or `#`. Times are written as epoch milliseconds.

use serde::Serialize;
use storefront_protocol::{DoorCount, DoorDirection, DoorEvent, Transaction};

use crate::scanner::{MQTT_ROOM_PATH_LOSS_EXPONENT, MQTT_ROOM_REF_RSSI_1M, format_mac, parse_mac};

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // These are plain structs of strings and integers: serialising them cannot fail.
    serde_json::to_vec(value).expect("plain structs always serialise")
}

/// An ESPresense device report as node `room` publishes it: topic
/// `espresense/devices/<id>/<room>`, payload `{"id","rssi@1m"?,"rssi"}`.
pub fn encode_espresense(
    room: &str,
    id: &str,
    rssi: i16,
    tx_power: Option<i16>,
) -> (String, Vec<u8>) {
    #[derive(Serialize)]
    struct Report<'a> {
        id: &'a str,
        #[serde(rename = "rssi@1m", skip_serializing_if = "Option::is_none")]
        rssi_1m: Option<i16>,
        rssi: i16,
    }
    (
        format!("espresense/devices/{id}/{room}"),
        to_vec(&Report {
            id,
            rssi_1m: tx_power,
            rssi,
        }),
    )
}

/// A Theengs Gateway advertisement report: topic `home/<gateway>/BTtoMQTT/<MAC without
/// colons>`, payload `{"id":"AA:BB:…","rssi"}`. `mac` is written as Theengs does (uppercase
/// with colons) when it is a MAC, as is otherwise.
pub fn encode_theengs(gateway: &str, mac: &str, rssi: i16) -> (String, Vec<u8>) {
    #[derive(Serialize)]
    struct Report<'a> {
        id: &'a str,
        rssi: i16,
    }
    let id = match parse_mac(mac) {
        Some(octets) => format_mac(&octets).to_ascii_uppercase(),
        None => mac.to_owned(),
    };
    let suffix: String = id.chars().filter(|c| *c != ':').collect();
    (
        format!("home/{gateway}/BTtoMQTT/{suffix}"),
        to_vec(&Report { id: &id, rssi }),
    )
}

/// A Home Assistant `mqtt_room` report: topic `<prefix>/<room>`, payload `{"id","name",
/// "distance"}`, the distance being the one that reads back as `rssi` under the parser's
/// log-distance model ([`crate::scanner::rssi_from_distance`]).
pub fn encode_mqtt_room(prefix: &str, room: &str, id: &str, rssi: i16) -> (String, Vec<u8>) {
    #[derive(Serialize)]
    struct Report<'a> {
        id: &'a str,
        name: &'a str,
        distance: f64,
    }
    let exponent =
        (MQTT_ROOM_REF_RSSI_1M - f64::from(rssi)) / (10.0 * MQTT_ROOM_PATH_LOSS_EXPONENT);
    (
        format!("{prefix}/{room}"),
        to_vec(&Report {
            id,
            name: id,
            distance: 10f64.powf(exponent),
        }),
    )
}

/// One door record in the shape of [`crate::door`] (time as epoch milliseconds).
pub fn encode_door(event: &DoorEvent) -> Vec<u8> {
    #[derive(Serialize)]
    struct Record<'a> {
        sensor: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        direction: Option<&'static str>,
        #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
        entered: Option<u32>,
        #[serde(rename = "out", skip_serializing_if = "Option::is_none")]
        exited: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        in_total: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        out_total: Option<u64>,
        time: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        record_id: Option<&'a str>,
    }
    let mut record = Record {
        sensor: &event.sensor,
        direction: None,
        entered: None,
        exited: None,
        in_total: None,
        out_total: None,
        time: event.t.millis(),
        record_id: event.record.as_deref(),
    };
    match event.count {
        DoorCount::Crossing { direction } => {
            record.direction = Some(match direction {
                DoorDirection::In => "in",
                DoorDirection::Out => "out",
            })
        }
        DoorCount::Interval { entered, exited } => {
            record.entered = Some(entered);
            record.exited = Some(exited);
        }
        DoorCount::Cumulative {
            in_total,
            out_total,
        } => {
            record.in_total = Some(in_total);
            record.out_total = Some(out_total);
        }
    }
    to_vec(&record)
}

#[derive(Serialize)]
struct TransactionRecord<'a> {
    id: &'a str,
    time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_minor: Option<i64>,
}

impl<'a> From<&'a Transaction> for TransactionRecord<'a> {
    fn from(t: &'a Transaction) -> Self {
        TransactionRecord {
            id: &t.id,
            time: t.t.millis(),
            amount_minor: t.amount_minor,
        }
    }
}

/// A POS page in the shape of [`crate::pos`]: `{"transactions":[…],"next_cursor"?}`.
pub fn encode_transactions(transactions: &[Transaction], next_cursor: Option<&str>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Page<'a> {
        transactions: Vec<TransactionRecord<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_cursor: Option<&'a str>,
    }
    to_vec(&Page {
        transactions: transactions.iter().map(TransactionRecord::from).collect(),
        next_cursor,
    })
}

/// One transaction as pushed over MQTT.
pub fn encode_pushed_transaction(transaction: &Transaction) -> Vec<u8> {
    to_vec(&TransactionRecord::from(transaction))
}
