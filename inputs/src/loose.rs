//! A JSON scalar read loosely, then converted field by field: the one place type drift (numbers
//! as strings, integers as `4.0`) is absorbed, so every parser treats it the same way.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use storefront_protocol::Timestamp;

use crate::InputError;

/// Any JSON value, with scalars kept and containers skipped (their content is never needed
/// where a scalar is expected, and skipping keeps parsing allocation-free).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Loose<'a> {
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    /// `null` is read as an absent field by `Option<Loose>`; this covers nested uses.
    Null,
    /// An object or array.
    Container,
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor(std::marker::PhantomData))
    }
}

struct LooseVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for LooseVisitor<'a> {
    type Value = Loose<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Loose::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Loose::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Loose::deserialize(d)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Container)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Container)
    }
}

/// Longest accepted identifier (sensor, record, transaction, device id), in bytes: twice the
/// longest a store config may name (64), well beyond what a device or till writes.
pub const MAX_ID_BYTES: usize = 128;
/// [`MAX_ID_BYTES`] as an error's allowed range.
pub(crate) const ID_RANGE: &str = "at most 128 bytes";

/// Earliest accepted event time, 2000-01-01T00:00:00Z: earlier times are unset clocks or epoch
/// seconds sent where milliseconds belong (1.7e9 ms is January 1970).
pub const MIN_TIME_MS: i64 = 946_684_800_000;
/// Latest accepted event time, 9999-12-31T23:59:59.999Z.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;
const TIME_RANGE: &str = "2000-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z";

/// The field's value, treating `""` (and whitespace) like an absent field.
pub(crate) fn present<'v, 'a>(
    value: &'v Option<Loose<'a>>,
    field: &'static str,
) -> Result<&'v Loose<'a>, InputError> {
    match value {
        None | Some(Loose::Null) => Err(InputError::missing(field)),
        Some(Loose::Str(s)) if s.trim().is_empty() => Err(InputError::missing(field)),
        Some(v) => Ok(v),
    }
}

/// Whether the field holds a value (not absent, `null` or blank).
pub(crate) fn is_present(value: &Option<Loose<'_>>) -> bool {
    present(value, "").is_ok()
}

impl Loose<'_> {
    /// A finite number, from a JSON number or a numeric string.
    pub(crate) fn number(&self, field: &'static str) -> Result<f64, InputError> {
        const EXPECTED: &str = "a finite number";
        let v = match self {
            Loose::Int(i) => *i as f64,
            Loose::UInt(u) => *u as f64,
            Loose::Float(f) => *f,
            Loose::Str(s) => {
                let s = s.trim();
                // `f64::from_str` also takes "inf" and "NaN": only plain decimals drift in.
                if !s
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                {
                    return Err(InputError::invalid(field, EXPECTED));
                }
                s.parse::<f64>()
                    .map_err(|_| InputError::invalid(field, EXPECTED))?
            }
            _ => return Err(InputError::invalid(field, EXPECTED)),
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err(InputError::invalid(field, EXPECTED))
        }
    }

    /// A non-negative whole number (a count or a minor-unit amount), from a JSON integer, an
    /// integral float or a string of digits. Negative values are [`InputError::OutOfRange`].
    pub(crate) fn count(&self, field: &'static str, max: u64) -> Result<u64, InputError> {
        const EXPECTED: &str = "a whole number";
        let allowed = "0 or more, within the field's limit";
        match self {
            Loose::Int(i) if *i < 0 => Err(InputError::out_of_range(field, allowed)),
            Loose::Int(i) => Ok(*i as u64),
            Loose::UInt(u) => Ok(*u),
            Loose::Float(f) => {
                if !f.is_finite() || f.fract() != 0.0 {
                    Err(InputError::invalid(field, EXPECTED))
                } else if *f < 0.0 {
                    Err(InputError::out_of_range(field, allowed))
                } else if *f > 9_007_199_254_740_992.0 {
                    // Past 2^53 a float no longer holds every integer exactly.
                    Err(InputError::out_of_range(field, allowed))
                } else {
                    Ok(*f as u64)
                }
            }
            Loose::Str(s) => {
                let s = s.trim();
                let (negative, digits) = match s.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, s.strip_prefix('+').unwrap_or(s)),
                };
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(InputError::invalid(field, EXPECTED));
                }
                if negative && digits.bytes().any(|b| b != b'0') {
                    return Err(InputError::out_of_range(field, allowed));
                }
                digits
                    .parse::<u64>()
                    .map_err(|_| InputError::out_of_range(field, allowed))
            }
            _ => Err(InputError::invalid(field, EXPECTED)),
        }
        .and_then(|n| {
            if n <= max {
                Ok(n)
            } else {
                Err(InputError::out_of_range(field, allowed))
            }
        })
    }

    /// An identifier: a non-blank string (kept as sent) or an integer (written in decimal).
    pub(crate) fn id(&self, field: &'static str) -> Result<String, InputError> {
        let id = match self {
            Loose::Str(s) => s.as_ref().to_owned(),
            Loose::Int(i) => i.to_string(),
            Loose::UInt(u) => u.to_string(),
            _ => return Err(InputError::invalid(field, "a string or an integer")),
        };
        if id.trim().is_empty() {
            Err(InputError::missing(field))
        } else if id.len() > MAX_ID_BYTES {
            Err(InputError::out_of_range(field, ID_RANGE))
        } else {
            Ok(id)
        }
    }

    /// A string value (numbers are not accepted: used for enumerations and names).
    pub(crate) fn str(&self, field: &'static str) -> Result<&str, InputError> {
        match self {
            Loose::Str(s) => Ok(s.as_ref()),
            _ => Err(InputError::invalid(field, "a string")),
        }
    }

    /// An event time: integer milliseconds since the Unix epoch (as a number or a string of
    /// digits) or an RFC 3339 date-time with an offset, within 2000..=9999.
    pub(crate) fn time(&self, field: &'static str) -> Result<Timestamp, InputError> {
        const EXPECTED: &str = "epoch milliseconds or an RFC 3339 date-time";
        let ms: i64 = match self {
            Loose::Int(i) => *i,
            Loose::UInt(u) => i64::try_from(*u).unwrap_or(i64::MAX),
            Loose::Float(f) if f.is_finite() && f.fract() == 0.0 => {
                if f.abs() < 1e18 {
                    *f as i64
                } else {
                    i64::MAX
                }
            }
            Loose::Str(s) => {
                let s = s.trim();
                if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse::<i64>().unwrap_or(i64::MAX)
                } else {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map_err(|_| InputError::invalid(field, EXPECTED))?
                        .timestamp_millis()
                }
            }
            _ => return Err(InputError::invalid(field, EXPECTED)),
        };
        if (MIN_TIME_MS..=MAX_TIME_MS).contains(&ms) {
            Ok(Timestamp::from_millis(ms))
        } else {
            Err(InputError::out_of_range(field, TIME_RANGE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputRejection;

    fn loose(json: &str) -> Loose<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn numbers_may_arrive_as_strings() {
        assert_eq!(loose("-70").number("x"), Ok(-70.0));
        assert_eq!(loose(r#""-70""#).number("x"), Ok(-70.0));
        assert_eq!(loose(r#"" 10.00 ""#).number("x"), Ok(10.0));
        for bad in [r#""NaN""#, r#""inf""#, r#""abc""#, "true", "[1]", "{}"] {
            assert_eq!(
                loose(bad).number("x").unwrap_err().reason(),
                InputRejection::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn counts_reject_negatives_as_out_of_range_and_fractions_as_malformed() {
        assert_eq!(loose("4").count("n", 10), Ok(4));
        assert_eq!(loose(r#""4""#).count("n", 10), Ok(4));
        assert_eq!(loose("4.0").count("n", 10), Ok(4));
        assert_eq!(loose(r#""-0""#).count("n", 10), Ok(0));
        for (json, reason) in [
            ("-1", InputRejection::OutOfRange),
            (r#""-3""#, InputRejection::OutOfRange),
            ("-2.0", InputRejection::OutOfRange),
            ("11", InputRejection::OutOfRange),
            (r#""99999999999999999999999""#, InputRejection::OutOfRange),
            ("4.5", InputRejection::Malformed),
            (r#""4.5""#, InputRejection::Malformed),
            (r#""""#, InputRejection::Malformed),
            ("null", InputRejection::Malformed),
        ] {
            assert_eq!(
                loose(json).count("n", 10).unwrap_err().reason(),
                reason,
                "{json}"
            );
        }
    }

    #[test]
    fn times_are_epoch_millis_or_rfc3339_after_2000() {
        let t = Timestamp::from_millis(1_763_888_400_123);
        assert_eq!(loose("1763888400123").time("time"), Ok(t));
        assert_eq!(loose(r#""1763888400123""#).time("time"), Ok(t));
        assert_eq!(loose(r#""2025-11-23T09:00:00.123Z""#).time("time"), Ok(t));
        assert_eq!(
            loose(r#""2025-11-23T10:00:00.123+01:00""#).time("time"),
            Ok(t)
        );
        // Epoch seconds where milliseconds belong land in January 1970.
        assert_eq!(
            loose("1763888400").time("time").unwrap_err().reason(),
            InputRejection::OutOfRange
        );
        assert_eq!(
            loose(r#""yesterday""#).time("time").unwrap_err().reason(),
            InputRejection::Malformed
        );
        assert_eq!(
            loose("1e300").time("time").unwrap_err().reason(),
            InputRejection::OutOfRange
        );
    }

    #[test]
    fn blank_strings_count_as_absent() {
        let v = Some(loose(r#""  ""#));
        assert_eq!(
            present(&v, "rssi").unwrap_err(),
            InputError::missing("rssi")
        );
        assert!(!is_present(&None));
    }
}
