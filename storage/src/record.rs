//! Keys and value envelopes: the on-disk format of every record this crate writes.
//!
//! A value is `[format version u8][crc32 of payload, u32 LE][payload]`. The payload is JSON
//! (see the crate docs for why not postcard). Keys are big-endian so that sled's byte order
//! is numeric order.

use serde::Serialize;
use serde::de::DeserializeOwned;
use storefront_protocol::{SummaryKind, Timestamp};

use crate::{Corruption, StoreError};

/// Version of the envelope and payload encoding. A record of another version is refused
/// (reported as [`Corruption::UnknownVersion`]) rather than misread.
pub const FORMAT_VERSION: u8 = 1;

const HEADER_LEN: usize = 5;

/// Wraps `value` in an envelope. `tree` and `key` only name the record in errors.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    tree: &'static str,
    key: &dyn Fn() -> String,
) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_VERSION, 0, 0, 0, 0];
    serde_json::to_writer(&mut out, value).map_err(|source| StoreError::Encode {
        tree,
        key: key(),
        source,
    })?;
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[1..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Checks an envelope's version and checksum and decodes its payload.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    tree: &'static str,
    key: &dyn Fn() -> String,
) -> Result<T, StoreError> {
    let corrupt = |problem| StoreError::Corrupt {
        tree,
        key: key(),
        problem,
    };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(Corruption::TooShort { len: bytes.len() }));
    }
    if bytes[0] != FORMAT_VERSION {
        return Err(corrupt(Corruption::UnknownVersion { found: bytes[0] }));
    }
    let stored = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let payload = &bytes[HEADER_LEN..];
    let actual = crc32fast::hash(payload);
    if stored != actual {
        return Err(corrupt(Corruption::Checksum { stored, actual }));
    }
    serde_json::from_slice(payload).map_err(|e| corrupt(Corruption::Decode(e)))
}

/// `window_start` as a key: the sign bit flipped, big-endian, so negative times sort first.
pub(crate) fn time_key(t: Timestamp) -> [u8; 8] {
    ((t.millis() as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn time_from_key(bytes: &[u8]) -> Option<Timestamp> {
    let raw = u64::from_be_bytes(bytes.try_into().ok()?);
    Some(Timestamp((raw ^ (1 << 63)) as i64))
}

/// An outbox key: `[seq u64 BE][kind u8][window_start as in time_key]`. Ordered by `seq`
/// (unique); the kind and start ride along so the outbox can be indexed and shed from its
/// keys alone, without decoding a value.
pub(crate) fn outbox_key(seq: u64, kind: SummaryKind, window_start: Timestamp) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[..8].copy_from_slice(&seq.to_be_bytes());
    key[8] = match kind {
        SummaryKind::Window => 0,
        SummaryKind::Daily => 1,
    };
    key[9..].copy_from_slice(&time_key(window_start));
    key
}

pub(crate) fn parse_outbox_key(key: &[u8]) -> Option<(u64, SummaryKind, Timestamp)> {
    if key.len() != 17 {
        return None;
    }
    let seq = u64::from_be_bytes(key[..8].try_into().ok()?);
    let kind = match key[8] {
        0 => SummaryKind::Window,
        1 => SummaryKind::Daily,
        _ => return None,
    };
    Some((seq, kind, time_from_key(&key[9..])?))
}

/// The UTC calendar date (`YYYY-MM-DD`) of a time: used to prune days by their key.
pub(crate) fn utc_date(t: Timestamp) -> String {
    // Howard Hinnant's civil_from_days.
    let days = t.millis().div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_in_numeric_order() {
        let times = [i64::MIN, -86_400_000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let keys: Vec<_> = times.iter().map(|&t| time_key(Timestamp(t))).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        for &t in &times {
            assert_eq!(time_from_key(&time_key(Timestamp(t))), Some(Timestamp(t)));
        }
    }

    #[test]
    fn outbox_keys_round_trip_and_sort_by_seq() {
        let a = outbox_key(255, SummaryKind::Daily, Timestamp(5));
        let b = outbox_key(256, SummaryKind::Window, Timestamp(-5));
        assert!(a < b);
        assert_eq!(
            parse_outbox_key(&b),
            Some((256, SummaryKind::Window, Timestamp(-5)))
        );
    }

    #[test]
    fn an_envelope_round_trips_and_a_flipped_bit_is_caught() {
        let key = || "k".to_owned();
        let mut bytes = encode(&vec![1u32, 2, 3], "t", &key).unwrap();
        assert_eq!(
            decode::<Vec<u32>>(&bytes, "t", &key).unwrap(),
            vec![1, 2, 3]
        );
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        let err = decode::<Vec<u32>>(&bytes, "t", &key).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Corrupt {
                    problem: Corruption::Checksum { .. },
                    ..
                }
            ),
            "{err}"
        );
        bytes[0] = 9;
        assert!(err_is_version(decode::<Vec<u32>>(&bytes, "t", &key)));
    }

    fn err_is_version(r: Result<Vec<u32>, StoreError>) -> bool {
        matches!(
            r,
            Err(StoreError::Corrupt {
                problem: Corruption::UnknownVersion { found: 9 },
                ..
            })
        )
    }

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc_date(Timestamp(0)), "1970-01-01");
        assert_eq!(utc_date(Timestamp(-1)), "1969-12-31");
        assert_eq!(utc_date(Timestamp::from_secs(1_709_164_800)), "2024-02-29");
        assert_eq!(utc_date(Timestamp::from_secs(1_795_392_000)), "2026-11-23");
    }
}
