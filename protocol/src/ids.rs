use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A pseudonymous device id: the first 64 bits of a keyed hash (HMAC-SHA-256) of a radio
/// address or beacon identity. Never a raw MAC address.
///
/// 64 bits keep the engine's per-device map small and fast; with 10^5 devices a day the chance
/// of any collision in a day is below 10^-9. Written as 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(pub u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("device id must be 16 hex digits (a pseudonym), got {0:?}")]
pub struct DeviceIdParseError(pub String);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DeviceIdParseError(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(DeviceId)
            .map_err(|_| DeviceIdParseError(s.to_owned()))
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 16];
        hex::encode_to_slice(self.0.to_be_bytes(), &mut buf).map_err(serde::ser::Error::custom)?;
        // hex output is always ASCII
        serializer.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = DeviceId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a device pseudonym of 16 hex digits")
            }
            // Borrowed or not, no allocation: ids are parsed once per sighting.
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DeviceId, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(HexVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_round_trips_as_16_hex_digits() {
        let id = DeviceId(0x00ab_cdef_0123_4567);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"00abcdef01234567\"");
        assert_eq!(serde_json::from_str::<DeviceId>(&json).unwrap(), id);
    }

    #[test]
    fn device_id_rejects_macs_and_short_strings() {
        assert!("aa:bb:cc:dd:ee:ff".parse::<DeviceId>().is_err());
        assert!("abc".parse::<DeviceId>().is_err());
        assert!("zzzzzzzzzzzzzzzz".parse::<DeviceId>().is_err());
        assert!("+123456789abcdef".parse::<DeviceId>().is_err());
    }
}
