//! The event stream: what the agent's sources hand the engine, and the JSON Lines event file
//! format the simulator writes and `storefront-dev replay` and `agent run --replay` read.
//!
//! # Event file format (version 1)
//! UTF-8 text, one JSON object per line, each with `"v": 1` and a `"type"`:
//! ```text
//! {"v":1,"type":"sighting","t":1763888400123,"scanner":"entrance-1","device":"00abcdef01234567","rssi":-67}
//! {"v":1,"type":"door","t":1763888401000,"sensor":"door-main","count":"crossing","direction":"in"}
//! {"v":1,"type":"door","t":1763888460000,"sensor":"door-main","count":"interval","in":4,"out":3}
//! {"v":1,"type":"door","t":1763888460000,"sensor":"door-main","count":"cumulative","in_total":812,"out_total":790}
//! {"v":1,"type":"transaction","t":1763888500000,"id":"till2-000812","amount_minor":2599}
//! {"v":1,"type":"alive","t":1763888520000,"input":"ble","source":"entrance-1"}
//! ```
//! * `t` — event time, integer milliseconds since the Unix epoch (UTC).
//! * sighting: `scanner` (id from config), `device` (16-hex-digit pseudonym), `rssi` (dBm),
//!   optional `tx_power` (dBm at 1 m) and `addr` (`"stable"` default, or `"rotating"` for
//!   resolvable private addresses that change every ~15 min).
//! * door: `sensor` (id from config), optional `record` (the sensor's record id, for de-dup).
//! * transaction: `id` (POS transaction id, de-duplicated), optional `amount_minor` (cents).
//! * alive: `input` (`ble`, `door` or `pos`) and `source` (the scanner, door sensor or POS system
//!   id from config): that source was working at `t` even if it had nothing to report (a
//!   scanner node's status, a door counter's heartbeat, a POS poll that found no sales). Windows
//!   no input was alive in are "no data", not zero traffic.
//!
//! Lines may come slightly out of time order; blank lines are skipped. A line with another
//! version is rejected rather than guessed at.

use serde::{Deserialize, Serialize};

use crate::{DeviceId, Timestamp};

/// Version written in every event line's `"v"`.
pub const EVENT_FORMAT_VERSION: u32 = 1;

/// One input event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Sighting(Sighting),
    Door(DoorEvent),
    Transaction(Transaction),
    Alive(Alive),
}

impl Event {
    /// Event time.
    pub fn time(&self) -> Timestamp {
        match self {
            Event::Sighting(s) => s.t,
            Event::Door(d) => d.t,
            Event::Transaction(x) => x.t,
            Event::Alive(a) => a.t,
        }
    }
}

/// One BLE advertisement heard by one scanner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub t: Timestamp,
    /// Scanner id as named in the store config; the config maps it to a zone.
    pub scanner: String,
    /// Pseudonym of the advertising device.
    pub device: DeviceId,
    /// Received signal strength, dBm.
    pub rssi: i16,
    /// Advertised calibrated power at 1 m, dBm, when the frame carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_power: Option<i16>,
    /// Whether the address behind the pseudonym is stable or rotates; repeat visits are only
    /// measurable for stable ones.
    #[serde(default, skip_serializing_if = "AddressKind::is_stable")]
    pub addr: AddressKind,
}

/// Lifetime of the radio identity behind a pseudonym.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// Public or static address, or a consented beacon identity (loyalty app, staff badge).
    #[default]
    Stable,
    /// Resolvable/non-resolvable private address: changes every few minutes.
    Rotating,
}

impl AddressKind {
    pub fn is_stable(&self) -> bool {
        *self == AddressKind::Stable
    }
}

/// A footfall (line-crossing) sensor report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorEvent {
    pub t: Timestamp,
    pub sensor: String,
    /// The sensor's own record id, when it has one; re-sent records repeat it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(flatten)]
    pub count: DoorCount,
}

/// The three shapes door counters report in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "count", rename_all = "snake_case")]
pub enum DoorCount {
    /// One person crossed the line.
    Crossing { direction: DoorDirection },
    /// Crossings counted over an interval ending at `t`.
    Interval {
        #[serde(rename = "in")]
        entered: u32,
        #[serde(rename = "out")]
        exited: u32,
    },
    /// Running totals since the sensor's last reset; consecutive totals are differenced.
    Cumulative { in_total: u64, out_total: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorDirection {
    In,
    Out,
}

/// A point-of-sale transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub t: Timestamp,
    /// POS transaction id: re-sent transactions repeat it and are counted once.
    pub id: String,
    /// Amount in minor currency units (cents), when the POS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_minor: Option<i64>,
}

/// The kinds of input a store has: each says for how long it was alive in every window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// BLE scanners (local adapters and scanner nodes).
    Ble,
    /// Door (line-crossing) counters.
    Door,
    /// Point-of-sale systems.
    Pos,
}

/// "This source is working": a sign of life with nothing to count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alive {
    pub t: Timestamp,
    pub input: InputKind,
    /// Scanner id, door sensor id or POS system id, as named in the store config.
    pub source: String,
}

/// An [`Event`] as written in an event file line, with its format version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    pub v: u32,
    #[serde(flatten)]
    pub event: Event,
}

/// Why an event file line was rejected.
#[derive(Debug, thiserror::Error)]
pub enum EventLineError {
    #[error("not a valid event: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(
        "event format version {found} is not supported (this build reads version {EVENT_FORMAT_VERSION})"
    )]
    UnsupportedVersion { found: u32 },
}

impl EventLine {
    /// Encodes one event as a JSON line (without the trailing newline).
    pub fn encode(event: &Event) -> String {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            v: u32,
            #[serde(flatten)]
            event: &'a Event,
        }
        // Serialising these plain structs to a String cannot fail.
        serde_json::to_string(&Borrowed {
            v: EVENT_FORMAT_VERSION,
            event,
        })
        .expect("event types always serialise")
    }

    /// Decodes one line, checking the format version.
    ///
    /// Reads into one flat struct of borrowed fields rather than through the tagged enums
    /// (serde's internally tagged and flattened enums buffer every field first): replaying a
    /// week of a busy store is ~15 M lines, and this is most of its time.
    pub fn decode(line: &str) -> Result<Event, EventLineError> {
        let raw: RawLine<'_> = serde_json::from_str(line)?;
        if raw.v != EVENT_FORMAT_VERSION {
            return Err(EventLineError::UnsupportedVersion { found: raw.v });
        }
        raw.to_event().map_err(|field| {
            EventLineError::Malformed(serde::de::Error::custom(format_args!(
                "a {} event needs a valid `{field}`",
                raw.kind
            )))
        })
    }
}

/// Every field any event line can have, borrowed where the text allows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine<'a> {
    v: u32,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    t: Timestamp,
    #[serde(default, borrow)]
    scanner: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    device: Option<DeviceId>,
    #[serde(default)]
    rssi: Option<i16>,
    #[serde(default)]
    tx_power: Option<i16>,
    #[serde(default)]
    addr: Option<AddressKind>,
    #[serde(default, borrow)]
    sensor: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    record: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    count: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    direction: Option<DoorDirection>,
    #[serde(default, rename = "in")]
    entered: Option<u32>,
    #[serde(default, rename = "out")]
    exited: Option<u32>,
    #[serde(default)]
    in_total: Option<u64>,
    #[serde(default)]
    out_total: Option<u64>,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    amount_minor: Option<i64>,
    #[serde(default)]
    input: Option<InputKind>,
    #[serde(default, borrow)]
    source: Option<std::borrow::Cow<'a, str>>,
}

impl RawLine<'_> {
    /// The event, or the name of the field that is missing for its type.
    fn to_event(&self) -> Result<Event, &'static str> {
        match &*self.kind {
            "sighting" => Ok(Event::Sighting(Sighting {
                t: self.t,
                scanner: self.scanner.as_deref().ok_or("scanner")?.to_owned(),
                device: self.device.ok_or("device")?,
                rssi: self.rssi.ok_or("rssi")?,
                tx_power: self.tx_power,
                addr: self.addr.unwrap_or_default(),
            })),
            "door" => {
                let count = match self.count.as_deref().ok_or("count")? {
                    "crossing" => DoorCount::Crossing {
                        direction: self.direction.ok_or("direction")?,
                    },
                    "interval" => DoorCount::Interval {
                        entered: self.entered.ok_or("in")?,
                        exited: self.exited.ok_or("out")?,
                    },
                    "cumulative" => DoorCount::Cumulative {
                        in_total: self.in_total.ok_or("in_total")?,
                        out_total: self.out_total.ok_or("out_total")?,
                    },
                    _ => return Err("count"),
                };
                Ok(Event::Door(DoorEvent {
                    t: self.t,
                    sensor: self.sensor.as_deref().ok_or("sensor")?.to_owned(),
                    record: self.record.as_deref().map(str::to_owned),
                    count,
                }))
            }
            "transaction" => Ok(Event::Transaction(Transaction {
                t: self.t,
                id: self.id.as_deref().ok_or("id")?.to_owned(),
                amount_minor: self.amount_minor,
            })),
            "alive" => Ok(Event::Alive(Alive {
                t: self.t,
                input: self.input.ok_or("input")?,
                source: self.source.as_deref().ok_or("source")?.to_owned(),
            })),
            _ => Err("type"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_example_lines_decode() {
        let lines = [
            r#"{"v":1,"type":"sighting","t":1763888400123,"scanner":"entrance-1","device":"00abcdef01234567","rssi":-67}"#,
            r#"{"v":1,"type":"door","t":1763888401000,"sensor":"door-main","count":"crossing","direction":"in"}"#,
            r#"{"v":1,"type":"door","t":1763888460000,"sensor":"door-main","count":"interval","in":4,"out":3}"#,
            r#"{"v":1,"type":"door","t":1763888460000,"sensor":"door-main","count":"cumulative","in_total":812,"out_total":790}"#,
            r#"{"v":1,"type":"transaction","t":1763888500000,"id":"till2-000812","amount_minor":2599}"#,
            r#"{"v":1,"type":"alive","t":1763888520000,"input":"ble","source":"entrance-1"}"#,
        ];
        for line in lines {
            let event = EventLine::decode(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(
                EventLine::decode(&EventLine::encode(&event)).unwrap(),
                event
            );
        }
    }

    #[test]
    fn other_versions_are_rejected_not_guessed() {
        let line = r#"{"v":2,"type":"transaction","t":1,"id":"x"}"#;
        assert!(matches!(
            EventLine::decode(line),
            Err(EventLineError::UnsupportedVersion { found: 2 })
        ));
    }

    #[test]
    fn malformed_lines_are_errors() {
        for line in [
            "",
            "{",
            r#"{"v":1,"type":"sighting"}"#,
            r#"{"v":1,"type":"teleport","t":1}"#,
            r#"{"v":1,"type":"alive","t":1,"source":"entrance-1"}"#,
            r#"{"v":1,"type":"alive","t":1,"input":"radar","source":"x"}"#,
        ] {
            assert!(EventLine::decode(line).is_err(), "{line:?}");
        }
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        let sighting = (
            any::<i64>(),
            "[a-z0-9-]{1,12}",
            any::<u64>(),
            -120i16..0,
            proptest::option::of(-100i16..20),
            any::<bool>(),
        )
            .prop_map(|(t, scanner, device, rssi, tx_power, rotating)| {
                Event::Sighting(Sighting {
                    t: Timestamp(t),
                    scanner,
                    device: DeviceId(device),
                    rssi,
                    tx_power,
                    addr: if rotating {
                        AddressKind::Rotating
                    } else {
                        AddressKind::Stable
                    },
                })
            });
        let door = (any::<i64>(), "[a-z]{1,8}", any::<u32>(), any::<u32>()).prop_map(
            |(t, sensor, entered, exited)| {
                Event::Door(DoorEvent {
                    t: Timestamp(t),
                    sensor,
                    record: None,
                    count: DoorCount::Interval { entered, exited },
                })
            },
        );
        let transaction = (
            any::<i64>(),
            "\\PC{1,20}",
            proptest::option::of(any::<i64>()),
        )
            .prop_map(|(t, id, amount_minor)| {
                Event::Transaction(Transaction {
                    t: Timestamp(t),
                    id,
                    amount_minor,
                })
            });
        let alive = (
            any::<i64>(),
            prop_oneof![
                Just(InputKind::Ble),
                Just(InputKind::Door),
                Just(InputKind::Pos)
            ],
            "\\PC{1,20}",
        )
            .prop_map(|(t, input, source)| {
                Event::Alive(Alive {
                    t: Timestamp(t),
                    input,
                    source,
                })
            });
        prop_oneof![sighting, door, transaction, alive]
    }

    proptest! {
        #[test]
        fn every_event_round_trips_through_a_line(event in arb_event()) {
            prop_assert_eq!(EventLine::decode(&EventLine::encode(&event)).unwrap(), event);
        }

        #[test]
        fn arbitrary_text_never_panics_the_decoder(line in "\\PC{0,200}") {
            let _ = EventLine::decode(&line);
        }
    }
}
