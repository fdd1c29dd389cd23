//! POS transactions: a page polled over HTTP, or one transaction pushed over MQTT.
//!
//! A page ([`parse_transactions`]) is
//!
//! ```text
//! {"transactions":[{"id":"till2-000812","time":"2025-11-23T09:01:40Z","amount":25.99},
//!                  {"id":813,"time":1763888500000,"amount_minor":1250}],
//!  "next_cursor":"c-2"}
//! ```
//!
//! or a bare array of transactions (a page with no cursor). `next_cursor` is a string, or
//! absent / `null` / `""` on the last page. A pushed transaction ([`parse_pushed_transaction`])
//! is one transaction object.
//!
//! | field | type | notes |
//! |---|---|---|
//! | `id` | string or integer, required | the POS transaction id; re-sent transactions repeat it (the engine counts them once). At most 128 bytes |
//! | `time` | RFC 3339 with offset, or epoch milliseconds (number or digit string), required | in 2000..=9999 |
//! | `amount` | decimal number or decimal string in major units, optional | converted exactly to minor units assuming two decimal places (cents): `12.34` → 1234, `"12.3"` → 1230, `12.340` → 1234; a third non-zero decimal (`12.345`) is rejected, never rounded. For currencies without two decimals use `amount_minor` |
//! | `amount_minor` | whole number or digit string, optional | minor units (cents) |
//!
//! `amount` and `amount_minor` may both be given only if they agree. Negative amounts (refunds
//! are not sales), NaN/infinite values and amounts over [`MAX_AMOUNT_MINOR`] are rejected. A page
//! is accepted or rejected as a whole; unknown fields are ignored.

use serde::Deserialize;
use storefront_protocol::Transaction;

use crate::loose::{Loose, present};
use crate::{InputError, from_json, payload_text};

/// Largest accepted amount in minor units: 10 million in major units, beyond any till sale.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000;

/// One page of a POS poll.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransactionPage {
    pub transactions: Vec<Transaction>,
    /// Where the next poll continues; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Parses a polled page: `{"transactions":[…],"next_cursor":…}` or a bare array.
pub fn parse_transactions(payload: &[u8]) -> Result<TransactionPage, InputError> {
    let text = payload_text(payload)?;
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let raws: Vec<Raw<'_>> = from_json(text)?;
            Ok(TransactionPage {
                transactions: raws
                    .iter()
                    .map(Raw::to_transaction)
                    .collect::<Result<_, _>>()?,
                next_cursor: None,
            })
        }
        Some(b'{') => {
            #[derive(Deserialize)]
            struct Page<'a> {
                #[serde(borrow, default)]
                transactions: Option<Vec<Raw<'a>>>,
                #[serde(borrow, default)]
                next_cursor: Option<Loose<'a>>,
            }
            let page: Page<'_> = from_json(text)?;
            let raws = page
                .transactions
                .ok_or(InputError::missing("transactions"))?;
            let next_cursor = match &page.next_cursor {
                None | Some(Loose::Null) => None,
                Some(Loose::Str(s)) if s.is_empty() => None,
                Some(Loose::Str(s)) => Some(s.as_ref().to_owned()),
                Some(_) => return Err(InputError::invalid("next_cursor", "a string or null")),
            };
            Ok(TransactionPage {
                transactions: raws
                    .iter()
                    .map(Raw::to_transaction)
                    .collect::<Result<_, _>>()?,
                next_cursor,
            })
        }
        _ => Err(InputError::Malformed {
            detail: "a transaction page is a JSON object or array",
        }),
    }
}

/// Parses one transaction pushed over MQTT (one transaction object).
pub fn parse_pushed_transaction(payload: &[u8]) -> Result<Transaction, InputError> {
    let text = payload_text(payload)?;
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(InputError::Malformed {
            detail: "a pushed transaction is a JSON object",
        });
    }
    from_json::<Raw<'_>>(text)?.to_transaction()
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    id: Option<Loose<'a>>,
    #[serde(borrow, default)]
    time: Option<Loose<'a>>,
    #[serde(borrow, default)]
    amount: Option<Loose<'a>>,
    #[serde(borrow, default)]
    amount_minor: Option<Loose<'a>>,
}

impl Raw<'_> {
    fn to_transaction(&self) -> Result<Transaction, InputError> {
        let id = present(&self.id, "id")?.id("id")?;
        let t = present(&self.time, "time")?.time("time")?;
        let major = match present(&self.amount, "amount") {
            Ok(v) => Some(major_to_minor(v)?),
            Err(_) => None,
        };
        let minor = match present(&self.amount_minor, "amount_minor") {
            Ok(v) => Some(v.count("amount_minor", MAX_AMOUNT_MINOR as u64)? as i64),
            Err(_) => None,
        };
        let amount_minor = match (major, minor) {
            (Some(a), Some(b)) if a != b => {
                return Err(InputError::Malformed {
                    detail: "`amount` and `amount_minor` disagree",
                });
            }
            (a, b) => a.or(b),
        };
        Ok(Transaction {
            t,
            id,
            amount_minor,
        })
    }
}

const AMOUNT_EXPECTED: &str = "a decimal amount with at most two decimal places";
const AMOUNT_RANGE: &str = "0 to 10000000.00";

/// A major-unit amount in minor units (×100), exactly.
fn major_to_minor(value: &Loose<'_>) -> Result<i64, InputError> {
    match value {
        Loose::Int(i) if *i < 0 => Err(InputError::out_of_range("amount", AMOUNT_RANGE)),
        Loose::Int(i) => scale(*i as u64, 0),
        Loose::UInt(u) => scale(*u, 0),
        Loose::Float(f) if !f.is_finite() => Err(InputError::invalid("amount", AMOUNT_EXPECTED)),
        Loose::Float(f) if *f < 0.0 => Err(InputError::out_of_range("amount", AMOUNT_RANGE)),
        Loose::Float(f) if *f == 0.0 => Ok(0),
        // Display writes the shortest decimal that reads back as the same double, which for
        // amounts in range (≤ 12 significant digits) is the decimal that was sent.
        Loose::Float(f) => decimal_to_minor(&f.to_string()),
        Loose::Str(s) => decimal_to_minor(s.trim()),
        _ => Err(InputError::invalid("amount", AMOUNT_EXPECTED)),
    }
}

/// `digits[.digits]` → minor units; extra decimals must be zeros.
fn decimal_to_minor(s: &str) -> Result<i64, InputError> {
    let invalid = InputError::invalid("amount", AMOUNT_EXPECTED);
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (s.contains('.') && frac.is_empty())
    {
        return Err(invalid);
    }
    let (cents, rest) = frac.split_at(frac.len().min(2));
    if rest.bytes().any(|b| b != b'0') {
        return Err(invalid);
    }
    let zero = int.bytes().chain(cents.bytes()).all(|b| b == b'0');
    if negative && !zero {
        return Err(InputError::out_of_range("amount", AMOUNT_RANGE));
    }
    let int = int.trim_start_matches('0');
    if int.len() > 12 {
        return Err(InputError::out_of_range("amount", AMOUNT_RANGE));
    }
    let whole: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| invalid.clone())?
    };
    let mut fraction = 0u64;
    for (i, b) in cents.bytes().enumerate() {
        fraction += u64::from(b - b'0') * if i == 0 { 10 } else { 1 };
    }
    scale(whole, fraction)
}

fn scale(whole: u64, cents: u64) -> Result<i64, InputError> {
    match whole.checked_mul(100).and_then(|w| w.checked_add(cents)) {
        Some(minor) if minor <= MAX_AMOUNT_MINOR as u64 => Ok(minor as i64),
        _ => Err(InputError::out_of_range("amount", AMOUNT_RANGE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputRejection;
    use storefront_protocol::Timestamp;

    fn amount(json: &str) -> Result<Option<i64>, InputRejection> {
        let payload = format!(r#"{{"id":"x","time":1763888500000,"amount":{json}}}"#);
        parse_pushed_transaction(payload.as_bytes())
            .map(|t| t.amount_minor)
            .map_err(|e| e.reason())
    }

    #[test]
    fn transaction_ids_over_the_id_limit_are_rejected() {
        let with_id = |id: &str| format!(r#"{{"id":"{id}","time":1763888500000}}"#);
        assert!(
            parse_pushed_transaction(with_id(&"t".repeat(crate::loose::MAX_ID_BYTES)).as_bytes())
                .is_ok()
        );
        assert_eq!(
            parse_pushed_transaction(with_id(&"t".repeat(129)).as_bytes())
                .unwrap_err()
                .reason(),
            InputRejection::OutOfRange
        );
    }

    #[test]
    fn amounts_convert_to_minor_units_exactly() {
        for (json, minor) in [
            ("12.34", 1234),
            ("0.1", 10),
            ("0.29", 29),
            ("1.005e2", 10050),
            ("19.99", 1999),
            ("1234567.89", 123456789),
            ("10000000", MAX_AMOUNT_MINOR),
            ("7", 700),
            ("0", 0),
            ("-0.0", 0),
            (r#""12.34""#, 1234),
            (r#""12.3""#, 1230),
            (r#"" 12.340 ""#, 1234),
            (r#""0012.34""#, 1234),
            (r#""-0.00""#, 0),
        ] {
            assert_eq!(amount(json), Ok(Some(minor)), "{json}");
        }
    }

    #[test]
    fn bad_amounts_are_rejected_not_rounded() {
        use InputRejection::*;
        for (json, reason) in [
            ("12.345", Malformed),
            (r#""12.345""#, Malformed),
            (r#""NaN""#, Malformed),
            (r#""1,234.50""#, Malformed),
            (r#""12.""#, Malformed),
            (r#"".5""#, Malformed),
            ("true", Malformed),
            ("-0.01", OutOfRange),
            (r#""-5""#, OutOfRange),
            ("-3", OutOfRange),
            ("10000000.01", OutOfRange),
            ("42949672.95", OutOfRange),
            ("1e300", OutOfRange),
            (r#""99999999999999999999""#, OutOfRange),
        ] {
            assert_eq!(amount(json), Err(reason), "{json}");
        }
    }

    #[test]
    fn a_blank_amount_is_an_absent_amount() {
        assert_eq!(amount(r#"" ""#), Ok(None));
        assert_eq!(amount("null"), Ok(None));
    }

    #[test]
    fn documented_page_parses() {
        let page = parse_transactions(
            br#"{"transactions":[{"id":"till2-000812","time":"2025-11-23T09:01:40Z","amount":25.99},
                                {"id":813,"time":1763888500000,"amount_minor":1250}],
                 "next_cursor":"c-2"}"#,
        )
        .unwrap();
        assert_eq!(
            page,
            TransactionPage {
                transactions: vec![
                    Transaction {
                        t: Timestamp::from_millis(1_763_888_500_000),
                        id: "till2-000812".into(),
                        amount_minor: Some(2599),
                    },
                    Transaction {
                        t: Timestamp::from_millis(1_763_888_500_000),
                        id: "813".into(),
                        amount_minor: Some(1250),
                    },
                ],
                next_cursor: Some("c-2".into()),
            }
        );
    }

    #[test]
    fn bare_arrays_and_last_pages_have_no_cursor() {
        let page = parse_transactions(br#"[{"id":"a","time":"1763888500000"}]"#).unwrap();
        assert_eq!(page.next_cursor, None);
        assert_eq!(page.transactions[0].amount_minor, None);
        for last in [
            r#"{"transactions":[]}"#,
            r#"{"transactions":[],"next_cursor":null}"#,
            r#"{"transactions":[],"next_cursor":""}"#,
        ] {
            assert_eq!(
                parse_transactions(last.as_bytes()),
                Ok(TransactionPage::default())
            );
        }
    }

    #[test]
    fn bad_pages_are_rejected_with_their_reason() {
        use InputRejection::*;
        for (json, reason) in [
            (r#"{"next_cursor":"x"}"#, MissingField),
            (r#"{"transactions":[{"time":1763888500000}]}"#, MissingField),
            (r#"{"transactions":[{"id":"a"}]}"#, MissingField),
            (r#"{"transactions":[{"id":"a","time":5}]}"#, OutOfRange),
            (r#"{"transactions":{}}"#, Malformed),
            (r#"{"transactions":[],"next_cursor":7}"#, Malformed),
            (
                r#"[{"id":"a","time":1763888500000,"amount":1,"amount_minor":99}]"#,
                Malformed,
            ),
            ("42", Malformed),
        ] {
            assert_eq!(
                parse_transactions(json.as_bytes()).unwrap_err().reason(),
                reason,
                "{json}"
            );
        }
        assert_eq!(
            parse_pushed_transaction(br#"[{"id":"a","time":1763888500000}]"#)
                .unwrap_err()
                .reason(),
            Malformed
        );
    }
}
