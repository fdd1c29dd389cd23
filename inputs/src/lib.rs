//! Parsers for the in-store agent's outside inputs, and encoders for the simulator.
//!
//! Everything here is pure: bytes in, typed values (or an [`InputError`]) out. No I/O, no clock,
//! no global state; the caller owns the MQTT client, the HTTP server and poller, and the time a
//! payload was received.
//!
//! | input | parser | shapes documented in |
//! |---|---|---|
//! | BLE scanner nodes over MQTT (ESPresense, Theengs Gateway / OpenMQTTGateway, Home Assistant `mqtt_room`) | [`parse_scanner`] | [`scanner`] |
//! | door (footfall) counters, JSON over MQTT or HTTP POST | [`parse_door`] | [`door`] |
//! | POS transactions, a polled JSON page or one pushed over MQTT | [`parse_transactions`], [`parse_pushed_transaction`] | [`pos`] |
//!
//! The [`encode`] module writes each of these shapes, so the simulator can drive every input path
//! end to end, and round-trip property tests pin parser and encoder together.
//!
//! # Rules shared by every parser
//! * A payload over [`MAX_PAYLOAD_BYTES`] (64 KiB) is rejected as
//!   [`InputRejection::Oversized`] before any parsing.
//! * The payload must be UTF-8 ([`InputRejection::NotUtf8`]) and, for JSON inputs, one JSON
//!   value with nothing but whitespace after it.
//! * Unknown JSON fields are ignored (vendors add telemetry fields freely); missing required
//!   fields, values of the wrong kind and values out of range are rejected, never guessed at.
//! * Types drift in the field: numbers may arrive as strings (`"-70"`, `"4"`) and are accepted
//!   wherever a number is; an empty string counts as an absent value.
//! * No input makes a parser panic (property tests and `fuzz/` targets check this).
//!
//! Architecture invariant: an [`InputError`]'s message never contains payload or topic content.
//! Scanner topics and payloads carry raw MAC addresses, and errors are logged and counted, so
//! errors name only fields, positions and expectations. Label metrics with
//! [`InputError::reason`]`().`[`as_str`](InputRejection::as_str)`()`.

pub mod door;
pub mod encode;
mod loose;
pub mod pos;
pub mod scanner;

pub use door::parse_door;
pub use pos::{TransactionPage, parse_pushed_transaction, parse_transactions};
pub use scanner::{ScannerMessage, ScannerReading, parse_scanner};
pub use storefront_config::ScannerFormat;

/// Largest payload any parser reads; bigger ones are rejected unread.
///
/// Scanner messages are ~150 bytes and a POS page of a few hundred transactions fits easily;
/// anything bigger is a misconfigured or hostile sender.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Why an input was rejected: a small closed set, for the `reason` label of rejection counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputRejection {
    /// Over [`MAX_PAYLOAD_BYTES`].
    Oversized,
    /// Not UTF-8 text.
    NotUtf8,
    /// Not JSON, or a value of the wrong kind (text where a number belongs, an object where a
    /// string belongs, an unparseable time).
    Malformed,
    /// A required field is absent, `null` or an empty string.
    MissingField,
    /// A value of the right kind but outside its range: RSSI outside −127..=20 dBm, a negative
    /// count or amount, a time before 2000 or after 9999.
    OutOfRange,
    /// An MQTT topic this format does not publish readings or status on (settings, telemetry).
    UnknownTopic,
    /// Valid JSON that matches none of the documented record shapes, or more than one.
    UnknownFormat,
    /// A scanner or door sensor the store's config does not name (set by the agent, which
    /// knows the config; the parsers never return it).
    UnknownSource,
}

impl InputRejection {
    pub const ALL: [InputRejection; 8] = [
        InputRejection::Oversized,
        InputRejection::NotUtf8,
        InputRejection::Malformed,
        InputRejection::MissingField,
        InputRejection::OutOfRange,
        InputRejection::UnknownTopic,
        InputRejection::UnknownFormat,
        InputRejection::UnknownSource,
    ];

    /// The metrics label value (`snake_case`).
    pub const fn as_str(self) -> &'static str {
        match self {
            InputRejection::Oversized => "oversized",
            InputRejection::NotUtf8 => "not_utf8",
            InputRejection::Malformed => "malformed",
            InputRejection::MissingField => "missing_field",
            InputRejection::OutOfRange => "out_of_range",
            InputRejection::UnknownTopic => "unknown_topic",
            InputRejection::UnknownFormat => "unknown_format",
            InputRejection::UnknownSource => "unknown_source",
        }
    }
}

impl std::fmt::Display for InputRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input. The message names fields and positions only, never payload or topic
/// content (which may hold raw MAC addresses), so it is safe to log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("payload of {len} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit")]
    Oversized { len: usize },
    #[error("payload is not UTF-8 (invalid byte at offset {valid_up_to})")]
    NotUtf8 { valid_up_to: usize },
    #[error("payload is not valid JSON of the expected kind (line {line}, column {column})")]
    InvalidJson { line: usize, column: usize },
    #[error("malformed payload: {detail}")]
    Malformed { detail: &'static str },
    #[error("field `{field}` is not {expected}")]
    InvalidField {
        field: &'static str,
        expected: &'static str,
    },
    #[error("missing field `{field}`")]
    MissingField { field: &'static str },
    #[error("field `{field}` is out of range ({allowed})")]
    OutOfRange {
        field: &'static str,
        allowed: &'static str,
    },
    #[error("topic does not match {expected}")]
    UnknownTopic { expected: &'static str },
    #[error("record matches no known shape: {detail}")]
    UnknownFormat { detail: &'static str },
    /// The name itself is not quoted: names from outside are unbounded and may be anything.
    #[error("the {what} is not in the store's config")]
    UnknownSource { what: &'static str },
}

impl InputError {
    /// The rejection class, for metrics labels.
    pub const fn reason(&self) -> InputRejection {
        match self {
            InputError::Oversized { .. } => InputRejection::Oversized,
            InputError::NotUtf8 { .. } => InputRejection::NotUtf8,
            InputError::InvalidJson { .. }
            | InputError::Malformed { .. }
            | InputError::InvalidField { .. } => InputRejection::Malformed,
            InputError::MissingField { .. } => InputRejection::MissingField,
            InputError::OutOfRange { .. } => InputRejection::OutOfRange,
            InputError::UnknownTopic { .. } => InputRejection::UnknownTopic,
            InputError::UnknownFormat { .. } => InputRejection::UnknownFormat,
            InputError::UnknownSource { .. } => InputRejection::UnknownSource,
        }
    }

    pub(crate) const fn invalid(field: &'static str, expected: &'static str) -> Self {
        InputError::InvalidField { field, expected }
    }

    pub(crate) const fn missing(field: &'static str) -> Self {
        InputError::MissingField { field }
    }

    pub(crate) const fn out_of_range(field: &'static str, allowed: &'static str) -> Self {
        InputError::OutOfRange { field, allowed }
    }

    /// A serde_json error reduced to its position: its message can quote payload content.
    pub(crate) fn json(e: &serde_json::Error) -> Self {
        InputError::InvalidJson {
            line: e.line(),
            column: e.column(),
        }
    }
}

/// The size and UTF-8 checks every parser starts with.
pub(crate) fn payload_text(payload: &[u8]) -> Result<&str, InputError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(InputError::Oversized { len: payload.len() });
    }
    std::str::from_utf8(payload).map_err(|e| InputError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })
}

/// Parses one JSON value of type `T` from the whole text.
pub(crate) fn from_json<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, InputError> {
    serde_json::from_str(text).map_err(|e| InputError::json(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_has_a_distinct_snake_case_label() {
        let labels: std::collections::BTreeSet<_> =
            InputRejection::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), InputRejection::ALL.len());
        for label in labels {
            assert!(
                label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            );
        }
    }

    #[test]
    fn oversized_payloads_are_rejected_before_parsing() {
        let big = vec![b'x'; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            payload_text(&big).unwrap_err().reason(),
            InputRejection::Oversized
        );
        let bad = [b'{', 0xff, b'}'];
        assert_eq!(
            payload_text(&bad).unwrap_err(),
            InputError::NotUtf8 { valid_up_to: 1 }
        );
    }

    #[test]
    fn json_errors_never_quote_the_payload() {
        let err = from_json::<u32>(r#""11:22:33:44:55:66""#).unwrap_err();
        assert!(!err.to_string().contains("11:22"), "{err}");
    }
}
