//! Door (footfall) counters: the product's door-counter API, JSON over MQTT or HTTP POST.
//!
//! A payload is one record (a JSON object) or a batch (a JSON array of records, possibly
//! empty). Every record names its `sensor` and has exactly one of three shapes:
//!
//! ```text
//! per crossing:          {"sensor":"door-main","direction":"in","time":"2025-11-23T09:00:01Z","record_id":"r-812"}
//! per interval:          {"sensor":"door-main","in":4,"out":3,"time":1763888460000}
//! cumulative registers:  {"sensor":"door-main","in_total":812,"out_total":790}
//! ```
//!
//! | field | type | notes |
//! |---|---|---|
//! | `sensor` | string, required | the sensor id from the store config, at most 128 bytes |
//! | `direction` | `"in"` or `"out"` (any case) | per-crossing records |
//! | `in`, `out` | whole numbers ≥ 0, ≤ 10 000 ([`MAX_INTERVAL_CROSSINGS`]), both required | crossings during the interval that ends at `time` |
//! | `in_total`, `out_total` | whole numbers ≥ 0, both required | running totals since the sensor's last reset |
//! | `time` | epoch milliseconds (number or digit string) or RFC 3339 with offset, optional | when the crossing happened / the interval ended / the registers were read; defaults to when the payload was received. Must lie in 2000..=9999 (catches epoch *seconds*) |
//! | `record_id` | string or integer, optional | the sensor's own record id; re-sent records repeat it. At most 128 bytes |
//!
//! Counts may be strings (`"in":"4"`) or integral floats (`4.0`); negative counts are
//! [`OutOfRange`](crate::InputRejection::OutOfRange). A record with none of the three shapes, or
//! fields of more than one, is [`UnknownFormat`](crate::InputRejection::UnknownFormat). Unknown
//! fields are ignored. A batch is accepted or rejected as a whole: the sender re-sends it after a
//! rejection, and the engine de-duplicates by `record_id`.
//!
//! Not done here, on purpose: de-duplication by `record_id` and differencing consecutive
//! cumulative registers (a register that goes down is a sensor reset) are the engine's, which
//! holds the state they need.

use serde::Deserialize;
use storefront_protocol::{DoorCount, DoorDirection, DoorEvent, Timestamp};

use crate::loose::{Loose, is_present, present};
use crate::{InputError, from_json, payload_text};

/// Most crossings one interval record may carry: more than a door passes in any interval a
/// counter reports (a wider one is a misconfigured or hostile sender).
pub const MAX_INTERVAL_CROSSINGS: u64 = 10_000;

/// Parses one door-counter record or a batch of them; `received_at` is the time of records
/// without their own `time`.
pub fn parse_door(payload: &[u8], received_at: Timestamp) -> Result<Vec<DoorEvent>, InputError> {
    let text = payload_text(payload)?;
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let raws: Vec<Raw<'_>> = from_json(text)?;
            raws.iter().map(|raw| raw.to_event(received_at)).collect()
        }
        Some(b'{') => Ok(vec![from_json::<Raw<'_>>(text)?.to_event(received_at)?]),
        _ => Err(InputError::Malformed {
            detail: "a door payload is a JSON object or an array of them",
        }),
    }
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    sensor: Option<Loose<'a>>,
    #[serde(borrow, default)]
    direction: Option<Loose<'a>>,
    #[serde(borrow, default, rename = "in")]
    entered: Option<Loose<'a>>,
    #[serde(borrow, default, rename = "out")]
    exited: Option<Loose<'a>>,
    #[serde(borrow, default)]
    in_total: Option<Loose<'a>>,
    #[serde(borrow, default)]
    out_total: Option<Loose<'a>>,
    #[serde(borrow, default)]
    time: Option<Loose<'a>>,
    #[serde(borrow, default)]
    record_id: Option<Loose<'a>>,
}

impl Raw<'_> {
    fn to_event(&self, received_at: Timestamp) -> Result<DoorEvent, InputError> {
        let sensor = present(&self.sensor, "sensor")?;
        let sensor = match sensor {
            Loose::Str(_) => sensor.id("sensor")?,
            _ => return Err(InputError::invalid("sensor", "a string")),
        };
        let crossing = is_present(&self.direction);
        let interval = is_present(&self.entered) || is_present(&self.exited);
        let cumulative = is_present(&self.in_total) || is_present(&self.out_total);
        let count = match (crossing, interval, cumulative) {
            (true, false, false) => {
                let direction = present(&self.direction, "direction")?.str("direction")?;
                let direction = match direction.trim() {
                    d if d.eq_ignore_ascii_case("in") => DoorDirection::In,
                    d if d.eq_ignore_ascii_case("out") => DoorDirection::Out,
                    _ => return Err(InputError::invalid("direction", "`in` or `out`")),
                };
                DoorCount::Crossing { direction }
            }
            (false, true, false) => {
                // MAX_INTERVAL_CROSSINGS fits a u32.
                let max = MAX_INTERVAL_CROSSINGS;
                DoorCount::Interval {
                    entered: present(&self.entered, "in")?.count("in", max)? as u32,
                    exited: present(&self.exited, "out")?.count("out", max)? as u32,
                }
            }
            (false, false, true) => DoorCount::Cumulative {
                in_total: present(&self.in_total, "in_total")?.count("in_total", u64::MAX)?,
                out_total: present(&self.out_total, "out_total")?.count("out_total", u64::MAX)?,
            },
            (false, false, false) => {
                return Err(InputError::UnknownFormat {
                    detail: "a door record needs `direction`, `in`/`out` or `in_total`/`out_total`",
                });
            }
            _ => {
                return Err(InputError::UnknownFormat {
                    detail: "a door record has fields of more than one shape \
                             (`direction`, `in`/`out`, `in_total`/`out_total`)",
                });
            }
        };
        let t = match present(&self.time, "time") {
            Ok(time) => time.time("time")?,
            Err(_) => received_at,
        };
        let record = match present(&self.record_id, "record_id") {
            Ok(id) => Some(id.id("record_id")?),
            Err(_) => None,
        };
        Ok(DoorEvent {
            t,
            sensor,
            record,
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputRejection;

    const NOW: Timestamp = Timestamp::from_millis(1_763_888_400_000);

    fn one(json: &str) -> DoorEvent {
        let mut events = parse_door(json.as_bytes(), NOW).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    fn rejection(json: &str) -> InputRejection {
        parse_door(json.as_bytes(), NOW).unwrap_err().reason()
    }

    #[test]
    fn documented_shapes_parse() {
        assert_eq!(
            one(
                r#"{"sensor":"door-main","direction":"in","time":"2025-11-23T09:00:01Z","record_id":"r-812"}"#
            ),
            DoorEvent {
                t: Timestamp::from_millis(1_763_888_401_000),
                sensor: "door-main".into(),
                record: Some("r-812".into()),
                count: DoorCount::Crossing {
                    direction: DoorDirection::In
                },
            }
        );
        assert_eq!(
            one(r#"{"sensor":"door-main","in":4,"out":3,"time":1763888460000}"#),
            DoorEvent {
                t: Timestamp::from_millis(1_763_888_460_000),
                sensor: "door-main".into(),
                record: None,
                count: DoorCount::Interval {
                    entered: 4,
                    exited: 3
                },
            }
        );
        assert_eq!(
            one(r#"{"sensor":"door-main","in_total":812,"out_total":790}"#),
            DoorEvent {
                t: NOW,
                sensor: "door-main".into(),
                record: None,
                count: DoorCount::Cumulative {
                    in_total: 812,
                    out_total: 790
                },
            }
        );
    }

    #[test]
    fn batches_and_drifted_types_are_accepted() {
        let events = parse_door(
            br#" [ {"sensor":"a","direction":"OUT","record_id":17},
                  {"sensor":"a","in":"4","out":"0","time":"1763888460000"},
                  {"sensor":"a","in_total":"18446744073709551615","out_total":2.0} ] "#,
            NOW,
        )
        .unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].record.as_deref(), Some("17"));
        assert_eq!(
            events[0].count,
            DoorCount::Crossing {
                direction: DoorDirection::Out
            }
        );
        assert_eq!(
            events[2].count,
            DoorCount::Cumulative {
                in_total: u64::MAX,
                out_total: 2
            }
        );
        assert_eq!(parse_door(b"[]", NOW), Ok(vec![]));
    }

    #[test]
    fn bad_records_are_rejected_with_their_reason() {
        use InputRejection::*;
        for (json, reason) in [
            (r#"{"sensor":"a","in":-1,"out":0}"#, OutOfRange),
            (r#"{"sensor":"a","in":"-1","out":0}"#, OutOfRange),
            (r#"{"sensor":"a","in":4294967296,"out":0}"#, OutOfRange),
            (r#"{"sensor":"a","in_total":-5,"out_total":0}"#, OutOfRange),
            (
                r#"{"sensor":"a","direction":"in","time":1763888400}"#,
                OutOfRange,
            ),
            (r#"{"sensor":"a","in":1.5,"out":0}"#, Malformed),
            (r#"{"sensor":"a","direction":"sideways"}"#, Malformed),
            (
                r#"{"sensor":"a","direction":"in","time":"noon"}"#,
                Malformed,
            ),
            (r#"{"sensor":7,"direction":"in"}"#, Malformed),
            (r#"{"sensor":"a","in":1}"#, MissingField),
            (r#"{"sensor":"a","out_total":1}"#, MissingField),
            (r#"{"direction":"in"}"#, MissingField),
            (r#"{"sensor":"","direction":"in"}"#, MissingField),
            (r#"{"sensor":"a"}"#, UnknownFormat),
            (
                r#"{"sensor":"a","direction":"in","in":1,"out":0}"#,
                UnknownFormat,
            ),
            (
                r#"{"sensor":"a","in":1,"out":0,"in_total":1}"#,
                UnknownFormat,
            ),
            (
                r#"[{"sensor":"a","direction":"in"},{"sensor":"a"}]"#,
                UnknownFormat,
            ),
            (r#""door""#, Malformed),
            (r#"{"sensor":"a","direction":"in"} x"#, Malformed),
            ("", Malformed),
        ] {
            assert_eq!(rejection(json), reason, "{json}");
        }
    }

    #[test]
    fn counts_and_ids_beyond_what_a_door_counter_produces_are_rejected() {
        let interval = |n: u64| format!(r#"{{"sensor":"a","in":{n},"out":0}}"#);
        let record = |id: &str| format!(r#"{{"sensor":"a","direction":"in","record_id":"{id}"}}"#);
        let sensor = |id: &str| format!(r#"{{"sensor":"{id}","direction":"in"}}"#);
        one(&interval(MAX_INTERVAL_CROSSINGS));
        one(&record(&"r".repeat(crate::loose::MAX_ID_BYTES)));
        one(&sensor(&"s".repeat(crate::loose::MAX_ID_BYTES)));
        for json in [
            interval(MAX_INTERVAL_CROSSINGS + 1),
            interval(u64::from(u32::MAX)),
            record(&"r".repeat(129)),
            sensor(&"s".repeat(129)),
        ] {
            assert_eq!(rejection(&json), InputRejection::OutOfRange, "{json}");
        }
    }
}
