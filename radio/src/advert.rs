//! Decoding BLE advertisement payloads: iBeacon, AltBeacon, Eddystone (UID, URL, TLM, encrypted
//! TLM, EID) and "some other manufacturer / service data".
//!
//! Pure and allocation-free: every decoder takes borrowed bytes and returns a small `Copy`
//! value or a [`DecodeError`] saying why the frame was rejected. No input panics (property
//! tests and a cargo-fuzz target check that).
//!
//! Three entry points, one per shape the bytes arrive in:
//! * [`decode_manufacturer`] — company id and data separately, as btleplug's
//!   `manufacturer_data: HashMap<u16, Vec<u8>>` gives them;
//! * [`decode_manufacturer_raw`] — the AD type 0xFF payload as sent on air, starting with the
//!   2-byte little-endian company id (`4c00…` for Apple), as in `manufacturer_data_hex`;
//! * [`decode_service_data`] — a service UUID and its data (btleplug's `service_data`);
//! * and [`decode_ad`] for a whole advertising payload (a sequence of AD structures).
//!
//! # Choices where real devices disagree with the specs
//! * **iBeacon length.** The Apple header must be `02 15`; 21 bytes must follow. Extra bytes
//!   after them (Jaalee F525 sends a battery byte: 26 bytes in all) are ignored and counted in
//!   [`IBeacon::extra_bytes`]. A different length byte is [`DecodeError::BadLength`].
//! * **Positive "measured power".** iBeacon and AltBeacon carry a signed dBm at 1 m, always
//!   negative in practice; sensors using iBeacon framing put a battery level or voltage there
//!   (`0x64` = 100 %). The raw value is kept, but [`Advert::tx_power_1m`] reports only
//!   negative values (TheengsDecoder applies the same sign-bit rule).
//! * **AltBeacon length** is strict: exactly 24 bytes after the company id (AD length 0x1B).
//!   Only the standard beacon code `BE AC` is recognised; other codes are plain manufacturer
//!   data of their company.
//! * **Eddystone-UID** is accepted with or without its two RFU bytes (18..=20 bytes): legacy
//!   RadBeacons omit them.
//! * **Eddystone-URL** may be longer than the spec's 17 encoded bytes (up to 32 are kept);
//!   reserved scheme prefixes and the reserved bytes 0x0E–0x20 and 0x7F–0xFF are rejected.
//! * **Eddystone TX power** is at 0 m; [`Advert::tx_power_1m`] subtracts 41 dB.
//! * **TLM `sec_count`** is exposed as sent (units of 0.1 s, as the spec says);
//!   [`EddystoneTlm::uptime`] converts. beacontools calls the raw count "seconds".
//! * **Encrypted TLM** salt and MIC are kept as bytes: the spec gives no byte order for them.
//! * **Multiple manufacturer blocks** are never searched for an embedded `4c000215`: only a
//!   block's own company id decides its format.

use std::fmt;
use std::time::Duration;

/// Bluetooth SIG company id of Apple, the iBeacon owner.
pub const COMPANY_APPLE: u16 = 0x004C;
/// 16-bit service UUID of Eddystone.
pub const EDDYSTONE_UUID16: u16 = 0xFEAA;
/// AltBeacon beacon code, as the two bytes appear on air after the company id.
pub const ALTBEACON_CODE: [u8; 2] = [0xBE, 0xAC];
/// Eddystone TX power is calibrated at 0 m; a 1 m figure is this much lower.
pub const EDDYSTONE_0M_TO_1M_DB: i16 = 41;

const IBEACON_TYPE: u8 = 0x02;
const IBEACON_LEN: u8 = 0x15;
/// Bytes of an iBeacon after the company id: type, length and the 21 announced bytes.
const IBEACON_BYTES: usize = 2 + IBEACON_LEN as usize;
/// Bytes of an AltBeacon after the company id.
const ALTBEACON_BYTES: usize = 24;
/// Encoded URL bytes kept (after the scheme byte). The spec's 17 is what fits in a legacy
/// advertisement beside the Flags and UUID-list structures; the Android Beacon Library writes
/// longer ones (its tests expect `http://www.forums.google.com/123/456`, 21 bytes), and
/// extended advertising has room for them.
const EDDYSTONE_URL_MAX_ENCODED: usize = 32;

/// One decoded advertisement payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advert {
    IBeacon(IBeacon),
    AltBeacon(AltBeacon),
    Eddystone(Eddystone),
    /// Manufacturer data of no beacon format this crate knows (Apple Continuity, sensors…):
    /// only the company id is kept.
    Manufacturer {
        company_id: u16,
    },
    /// Service data under a UUID other than Eddystone's.
    Service {
        uuid: ServiceUuid,
    },
}

/// Apple iBeacon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IBeacon {
    /// Proximity UUID, bytes in the order sent (the order they are printed in).
    pub uuid: [u8; 16],
    pub major: u16,
    pub minor: u16,
    /// The measured-power byte read as signed dBm at 1 m; may be a battery level in disguise
    /// (see [`Advert::tx_power_1m`]).
    pub measured_power: i8,
    /// Bytes after the 21 the header announces (Jaalee sends one); ignored.
    pub extra_bytes: u8,
}

impl IBeacon {
    /// The manufacturer data (after Apple's company id) this beacon advertises: what
    /// [`decode_manufacturer`] reads back. For simulated radios.
    pub fn encode(&self) -> [u8; IBEACON_BYTES] {
        let mut out = [0u8; IBEACON_BYTES];
        out[0] = IBEACON_TYPE;
        out[1] = IBEACON_LEN;
        out[2..18].copy_from_slice(&self.uuid);
        out[18..20].copy_from_slice(&self.major.to_be_bytes());
        out[20..22].copy_from_slice(&self.minor.to_be_bytes());
        out[22] = self.measured_power as u8;
        out
    }
}

/// AltBeacon (Radius Networks' open format; any company id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltBeacon {
    pub company_id: u16,
    /// First 16 bytes of the 20-byte beacon id (by convention an organisational UUID).
    pub id1: [u8; 16],
    pub id2: u16,
    pub id3: u16,
    /// Average RSSI at 1 m, dBm.
    pub reference_rssi: i8,
    pub mfg_reserved: u8,
}

/// The Eddystone frame types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eddystone {
    Uid(EddystoneUid),
    Url(EddystoneUrl),
    Tlm(EddystoneTlm),
    EncryptedTlm(EddystoneEtlm),
    /// Ephemeral id: recognised but opaque; it rotates by design, so it is no identity.
    Eid(EddystoneEid),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EddystoneUid {
    /// Calibrated TX power at 0 m, dBm.
    pub tx_power_0m: i8,
    pub namespace: [u8; 10],
    pub instance: [u8; 6],
}

/// Eddystone-URL, kept encoded (no allocation); [`EddystoneUrl::url`] expands it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EddystoneUrl {
    /// Calibrated TX power at 0 m, dBm.
    pub tx_power_0m: i8,
    scheme: u8,
    encoded: [u8; EDDYSTONE_URL_MAX_ENCODED],
    len: u8,
}

/// Plain (version 0) Eddystone-TLM telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EddystoneTlm {
    /// Battery voltage, mV; 0 means the beacon does not report it.
    pub battery_mv: u16,
    /// Temperature, signed 8.8 fixed point °C; `0x8000` (-128.0) means not supported.
    pub temperature_raw: i16,
    /// Advertising PDUs sent since power-up or reboot.
    pub adv_count: u32,
    /// Time since power-up or reboot, in units of 0.1 s.
    pub sec_count: u32,
}

/// Encrypted (version 1) Eddystone-TLM: opaque without the beacon's identity key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EddystoneEtlm {
    pub encrypted: [u8; 12],
    pub salt: [u8; 2],
    pub mic: [u8; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EddystoneEid {
    /// Calibrated TX power at 0 m, dBm.
    pub tx_power_0m: i8,
    pub eid: [u8; 8],
}

/// A service UUID: 16-bit when it is an alias in the Bluetooth base UUID, else the full 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceUuid {
    Short(u16),
    Long(u128),
}

/// Bluetooth base UUID `00000000-0000-1000-8000-00805F9B34FB`.
const BASE_UUID: u128 = 0x0000_0000_0000_1000_8000_0080_5F9B_34FB;
const BASE_UUID_LOW_MASK: u128 = (1u128 << 96) - 1;

impl ServiceUuid {
    /// From a 128-bit UUID (e.g. `uuid::Uuid::as_u128`), shortening base-UUID aliases.
    pub fn from_u128(uuid: u128) -> Self {
        if uuid & BASE_UUID_LOW_MASK == BASE_UUID && uuid >> 112 == 0 {
            ServiceUuid::Short((uuid >> 96) as u16)
        } else {
            ServiceUuid::Long(uuid)
        }
    }
}

/// Which frame format a [`DecodeError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Manufacturer,
    IBeacon,
    AltBeacon,
    Eddystone,
    EddystoneUid,
    EddystoneUrl,
    EddystoneTlm,
    EddystoneEtlm,
    EddystoneEid,
    AdStructure,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Manufacturer => "manufacturer data",
            Format::IBeacon => "iBeacon",
            Format::AltBeacon => "AltBeacon",
            Format::Eddystone => "Eddystone",
            Format::EddystoneUid => "Eddystone-UID",
            Format::EddystoneUrl => "Eddystone-URL",
            Format::EddystoneTlm => "Eddystone-TLM",
            Format::EddystoneEtlm => "Eddystone encrypted TLM",
            Format::EddystoneEid => "Eddystone-EID",
            Format::AdStructure => "AD structure",
        })
    }
}

/// Why a payload was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{format} truncated: {got} bytes, needs {needed}")]
    Truncated {
        format: Format,
        needed: usize,
        got: usize,
    },
    #[error("{format} has a bad length: {got}, expected {expected}")]
    BadLength {
        format: Format,
        expected: usize,
        got: usize,
    },
    #[error("unknown Eddystone frame type {0:#04x}")]
    UnknownFrameType(u8),
    #[error("unknown Eddystone-TLM version {0:#04x}")]
    UnknownTlmVersion(u8),
    #[error("Eddystone-URL with reserved scheme prefix {0:#04x}")]
    BadUrlScheme(u8),
    #[error("Eddystone-URL with reserved byte {0:#04x}")]
    BadUrlByte(u8),
    #[error("empty advertisement")]
    Empty,
    #[error("AD structure at offset {offset} claims {claimed} bytes, {available} left")]
    AdOverrun {
        offset: usize,
        claimed: usize,
        available: usize,
    },
    #[error("Eddystone service data, but 0xFEAA is not in the advertised service UUIDs")]
    EddystoneNotListed,
    #[error("advertisement without manufacturer or service data")]
    NoPayload,
}

/// Decodes manufacturer data given as btleplug gives it: company id, then the bytes after it.
pub fn decode_manufacturer(company_id: u16, data: &[u8]) -> Result<Advert, DecodeError> {
    if company_id == COMPANY_APPLE && data.first() == Some(&IBEACON_TYPE) {
        return decode_ibeacon(data).map(Advert::IBeacon);
    }
    if data.len() >= 2 && data[..2] == ALTBEACON_CODE {
        return decode_altbeacon(company_id, data).map(Advert::AltBeacon);
    }
    Ok(Advert::Manufacturer { company_id })
}

/// Decodes manufacturer data as sent on air: 2-byte little-endian company id, then the data.
pub fn decode_manufacturer_raw(raw: &[u8]) -> Result<Advert, DecodeError> {
    match raw {
        [lo, hi, data @ ..] => decode_manufacturer(u16::from_le_bytes([*lo, *hi]), data),
        _ => Err(DecodeError::Truncated {
            format: Format::Manufacturer,
            needed: 2,
            got: raw.len(),
        }),
    }
}

/// Decodes the service data of one service UUID.
pub fn decode_service_data(uuid: ServiceUuid, data: &[u8]) -> Result<Advert, DecodeError> {
    if uuid == ServiceUuid::Short(EDDYSTONE_UUID16) {
        decode_eddystone(data).map(Advert::Eddystone)
    } else {
        Ok(Advert::Service { uuid })
    }
}

/// `data` starts with the iBeacon type byte 0x02.
fn decode_ibeacon(data: &[u8]) -> Result<IBeacon, DecodeError> {
    if let Some(&len) = data.get(1)
        && len != IBEACON_LEN
    {
        return Err(DecodeError::BadLength {
            format: Format::IBeacon,
            expected: usize::from(IBEACON_LEN),
            got: usize::from(len),
        });
    }
    let Some((body, extra)) = data.split_first_chunk::<IBEACON_BYTES>() else {
        return Err(DecodeError::Truncated {
            format: Format::IBeacon,
            needed: IBEACON_BYTES,
            got: data.len(),
        });
    };
    Ok(IBeacon {
        uuid: array(&body[2..18]),
        major: u16::from_be_bytes([body[18], body[19]]),
        minor: u16::from_be_bytes([body[20], body[21]]),
        measured_power: body[22] as i8,
        extra_bytes: u8::try_from(extra.len()).unwrap_or(u8::MAX),
    })
}

/// `data` starts with the AltBeacon code.
fn decode_altbeacon(company_id: u16, data: &[u8]) -> Result<AltBeacon, DecodeError> {
    let Ok(body) = <&[u8; ALTBEACON_BYTES]>::try_from(data) else {
        return Err(length_error(Format::AltBeacon, ALTBEACON_BYTES, data.len()));
    };
    Ok(AltBeacon {
        company_id,
        id1: array(&body[2..18]),
        id2: u16::from_be_bytes([body[18], body[19]]),
        id3: u16::from_be_bytes([body[20], body[21]]),
        reference_rssi: body[22] as i8,
        mfg_reserved: body[23],
    })
}

/// Decodes Eddystone service data (the bytes after the 0xFEAA UUID).
pub fn decode_eddystone(data: &[u8]) -> Result<Eddystone, DecodeError> {
    let Some(&frame_type) = data.first() else {
        return Err(DecodeError::Truncated {
            format: Format::Eddystone,
            needed: 1,
            got: 0,
        });
    };
    match frame_type {
        0x00 => {
            // 20 bytes per spec; legacy beacons omit the 2 RFU bytes.
            if !(18..=20).contains(&data.len()) {
                return Err(length_error(Format::EddystoneUid, 20, data.len()));
            }
            Ok(Eddystone::Uid(EddystoneUid {
                tx_power_0m: data[1] as i8,
                namespace: array(&data[2..12]),
                instance: array(&data[12..18]),
            }))
        }
        0x10 => {
            if !(3..=3 + EDDYSTONE_URL_MAX_ENCODED).contains(&data.len()) {
                return Err(length_error(
                    Format::EddystoneUrl,
                    if data.len() < 3 {
                        3
                    } else {
                        3 + EDDYSTONE_URL_MAX_ENCODED
                    },
                    data.len(),
                ));
            }
            let scheme = data[2];
            if usize::from(scheme) >= URL_SCHEMES.len() {
                return Err(DecodeError::BadUrlScheme(scheme));
            }
            let body = &data[3..];
            if let Some(&bad) = body
                .iter()
                .find(|&&b| (0x0e..=0x20).contains(&b) || b >= 0x7f)
            {
                return Err(DecodeError::BadUrlByte(bad));
            }
            let mut encoded = [0; EDDYSTONE_URL_MAX_ENCODED];
            encoded[..body.len()].copy_from_slice(body);
            Ok(Eddystone::Url(EddystoneUrl {
                tx_power_0m: data[1] as i8,
                scheme,
                encoded,
                len: body.len() as u8,
            }))
        }
        0x20 => match data.get(1) {
            None => Err(DecodeError::Truncated {
                format: Format::EddystoneTlm,
                needed: 2,
                got: data.len(),
            }),
            Some(0x00) => {
                let Ok(d) = <&[u8; 14]>::try_from(data) else {
                    return Err(length_error(Format::EddystoneTlm, 14, data.len()));
                };
                Ok(Eddystone::Tlm(EddystoneTlm {
                    battery_mv: u16::from_be_bytes([d[2], d[3]]),
                    temperature_raw: i16::from_be_bytes([d[4], d[5]]),
                    adv_count: u32::from_be_bytes([d[6], d[7], d[8], d[9]]),
                    sec_count: u32::from_be_bytes([d[10], d[11], d[12], d[13]]),
                }))
            }
            Some(0x01) => {
                let Ok(d) = <&[u8; 18]>::try_from(data) else {
                    return Err(length_error(Format::EddystoneEtlm, 18, data.len()));
                };
                Ok(Eddystone::EncryptedTlm(EddystoneEtlm {
                    encrypted: array(&d[2..14]),
                    salt: [d[14], d[15]],
                    mic: [d[16], d[17]],
                }))
            }
            Some(&version) => Err(DecodeError::UnknownTlmVersion(version)),
        },
        0x30 => {
            let Ok(d) = <&[u8; 10]>::try_from(data) else {
                return Err(length_error(Format::EddystoneEid, 10, data.len()));
            };
            Ok(Eddystone::Eid(EddystoneEid {
                tx_power_0m: d[1] as i8,
                eid: array(&d[2..10]),
            }))
        }
        other => Err(DecodeError::UnknownFrameType(other)),
    }
}

/// Shorter than a fixed length is truncation; longer is a bad length.
fn length_error(format: Format, expected: usize, got: usize) -> DecodeError {
    if got < expected {
        DecodeError::Truncated {
            format,
            needed: expected,
            got,
        }
    } else {
        DecodeError::BadLength {
            format,
            expected,
            got,
        }
    }
}

/// Copies a slice whose length the caller has checked.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

const URL_SCHEMES: [&str; 4] = ["http://www.", "https://www.", "http://", "https://"];
const URL_EXPANSIONS: [&str; 14] = [
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/", ".com", ".org", ".edu", ".net",
    ".info", ".biz", ".gov",
];

impl EddystoneUrl {
    /// The scheme prefix byte's expansion (`"https://"`…).
    pub fn scheme(&self) -> &'static str {
        URL_SCHEMES[usize::from(self.scheme) % URL_SCHEMES.len()]
    }

    /// The URL bytes after the scheme, still compressed.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded[..usize::from(self.len)]
    }

    /// The expanded URL.
    pub fn url(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for EddystoneUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())?;
        for &b in self.encoded() {
            match URL_EXPANSIONS.get(usize::from(b)) {
                Some(expansion) => f.write_str(expansion)?,
                // The decoder admitted only printable ASCII besides the expansion codes.
                None => fmt::Write::write_char(f, char::from(b))?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for EddystoneUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EddystoneUrl")
            .field("tx_power_0m", &self.tx_power_0m)
            .field("url", &format_args!("{self}"))
            .finish()
    }
}

impl EddystoneTlm {
    /// Battery voltage in mV, when the beacon reports it.
    pub fn battery(&self) -> Option<u16> {
        (self.battery_mv != 0).then_some(self.battery_mv)
    }

    /// Temperature in °C, when the beacon reports it.
    pub fn temperature_celsius(&self) -> Option<f32> {
        (self.temperature_raw != i16::MIN).then(|| f32::from(self.temperature_raw) / 256.0)
    }

    /// Time since power-up or reboot.
    pub fn uptime(&self) -> Duration {
        Duration::from_millis(u64::from(self.sec_count) * 100)
    }
}

/// The stable identity bytes of a beacon, inline (at most 1 tag byte + 20 id bytes).
///
/// Layout, so other inputs can produce the same pseudonym for the same beacon:
/// * `0x01` ‖ uuid (16) ‖ major (2, BE) ‖ minor (2, BE) — iBeacon; AltBeacon id1 ‖ id2 ‖ id3 is
///   the same layout, so a badge sending both formats with the same ids is one device;
/// * `0x02` ‖ namespace (10) ‖ instance (6) — Eddystone-UID.
///
/// MAC addresses are hashed as their 6 bytes; the tag keeps the id spaces apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BeaconIdentity {
    bytes: [u8; 21],
    len: u8,
}

/// Tag of a 20-byte proximity id (iBeacon, AltBeacon) in [`BeaconIdentity`].
pub const IDENTITY_TAG_PROXIMITY: u8 = 0x01;
/// Tag of an Eddystone-UID in [`BeaconIdentity`].
pub const IDENTITY_TAG_EDDYSTONE_UID: u8 = 0x02;

impl BeaconIdentity {
    fn proximity(uuid: &[u8; 16], major: u16, minor: u16) -> Self {
        let mut bytes = [0; 21];
        bytes[0] = IDENTITY_TAG_PROXIMITY;
        bytes[1..17].copy_from_slice(uuid);
        bytes[17..19].copy_from_slice(&major.to_be_bytes());
        bytes[19..21].copy_from_slice(&minor.to_be_bytes());
        BeaconIdentity { bytes, len: 21 }
    }

    fn eddystone(namespace: &[u8; 10], instance: &[u8; 6]) -> Self {
        let mut bytes = [0; 21];
        bytes[0] = IDENTITY_TAG_EDDYSTONE_UID;
        bytes[1..11].copy_from_slice(namespace);
        bytes[11..17].copy_from_slice(instance);
        BeaconIdentity { bytes, len: 17 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Advert {
    /// The beacon's configured id, if this frame carries one that does not rotate: iBeacon
    /// uuid+major+minor, AltBeacon id1+id2+id3, Eddystone namespace+instance. Those are ids a
    /// beacon owner sets (staff badge, loyalty app): the agent hashes them instead of the MAC
    /// and marks the sighting [`AddressKind::Stable`](storefront_protocol::AddressKind).
    /// Eddystone-EID (rotating by design), URL (shared by many beacons), TLM and other data
    /// give `None`: the sighting then falls back to the MAC address.
    ///
    /// Caveat: sensors in iBeacon framing that put readings in major/minor (Tilt hydrometers,
    /// Cypress sensor beacons) produce a new identity whenever a reading changes.
    pub fn identity(&self) -> Option<BeaconIdentity> {
        match self {
            Advert::IBeacon(b) => Some(BeaconIdentity::proximity(&b.uuid, b.major, b.minor)),
            Advert::AltBeacon(b) => Some(BeaconIdentity::proximity(&b.id1, b.id2, b.id3)),
            Advert::Eddystone(Eddystone::Uid(u)) => {
                Some(BeaconIdentity::eddystone(&u.namespace, &u.instance))
            }
            _ => None,
        }
    }

    /// [`Advert::identity`] as owned bytes, the input of
    /// [`Pseudonymizer::pseudonym`](storefront_protocol::privacy::Pseudonymizer::pseudonym).
    pub fn stable_identity(&self) -> Option<Vec<u8>> {
        self.identity().map(|id| id.as_bytes().to_vec())
    }

    /// Calibrated transmit power at 1 m in dBm, when the frame carries a plausible one:
    /// iBeacon measured power and AltBeacon reference RSSI only when negative (sensors put
    /// battery levels there), Eddystone UID/URL/EID TX power at 0 m minus 41 dB.
    pub fn tx_power_1m(&self) -> Option<i16> {
        let negative = |p: i8| (p < 0).then_some(i16::from(p));
        match self {
            Advert::IBeacon(b) => negative(b.measured_power),
            Advert::AltBeacon(b) => negative(b.reference_rssi),
            Advert::Eddystone(Eddystone::Uid(EddystoneUid { tx_power_0m, .. }))
            | Advert::Eddystone(Eddystone::Url(EddystoneUrl { tx_power_0m, .. }))
            | Advert::Eddystone(Eddystone::Eid(EddystoneEid { tx_power_0m, .. })) => {
                Some(i16::from(*tx_power_0m) - EDDYSTONE_0M_TO_1M_DB)
            }
            _ => None,
        }
    }

    /// Whether this is one of the beacon formats (not just "some manufacturer/service data").
    pub fn is_beacon(&self) -> bool {
        !matches!(self, Advert::Manufacturer { .. } | Advert::Service { .. })
    }
}

/// One AD structure of an advertising payload: its type and data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdStructure<'a> {
    pub ad_type: u8,
    pub data: &'a [u8],
}

/// AD types this decoder reads.
pub mod ad_type {
    pub const INCOMPLETE_UUID16_LIST: u8 = 0x02;
    pub const COMPLETE_UUID16_LIST: u8 = 0x03;
    pub const SERVICE_DATA_UUID16: u8 = 0x16;
    pub const SERVICE_DATA_UUID128: u8 = 0x21;
    pub const MANUFACTURER_DATA: u8 = 0xFF;
}

/// Iterates the AD structures of an advertising payload. Stops at a zero length (the
/// zero-padded rest of a legacy PDU); yields an error for a structure that runs past the end.
#[derive(Clone, Debug)]
pub struct AdStructures<'a> {
    rest: &'a [u8],
    offset: usize,
}

/// The AD structures of `payload`.
pub fn ad_structures(payload: &[u8]) -> AdStructures<'_> {
    AdStructures {
        rest: payload,
        offset: 0,
    }
}

impl<'a> Iterator for AdStructures<'a> {
    type Item = Result<AdStructure<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&len, after) = self.rest.split_first()?;
        if len == 0 {
            self.rest = &[];
            return None;
        }
        let len = usize::from(len);
        if after.len() < len {
            let err = DecodeError::AdOverrun {
                offset: self.offset,
                claimed: len,
                available: after.len(),
            };
            self.rest = &[];
            return Some(Err(err));
        }
        let (structure, rest) = after.split_at(len);
        self.rest = rest;
        self.offset += 1 + len;
        Some(Ok(AdStructure {
            ad_type: structure[0],
            data: &structure[1..],
        }))
    }
}

/// Decodes a whole advertising payload (AD structures, as in a raw HCI report).
///
/// The result is the first beacon among its manufacturer and service data blocks; failing
/// that the first block's rejection; failing that the first other manufacturer/service data.
/// A malformed structure after complete ones (a stray trailing byte) is ignored; Eddystone
/// service data counts only when 0xFEAA is in the advertised 16-bit UUID list, as the spec
/// requires.
pub fn decode_ad(payload: &[u8]) -> Result<Advert, DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut eddystone_listed = false;
    let mut any_structure = false;
    for structure in ad_structures(payload) {
        match structure {
            Ok(s) => {
                any_structure = true;
                if matches!(
                    s.ad_type,
                    ad_type::INCOMPLETE_UUID16_LIST | ad_type::COMPLETE_UUID16_LIST
                ) && s
                    .data
                    .chunks_exact(2)
                    .any(|c| u16::from_le_bytes([c[0], c[1]]) == EDDYSTONE_UUID16)
                {
                    eddystone_listed = true;
                }
            }
            Err(e) if !any_structure => return Err(e),
            Err(_) => break,
        }
    }
    let mut first_error = None;
    let mut first_other = None;
    for s in ad_structures(payload).map_while(Result::ok) {
        let decoded = match s.ad_type {
            ad_type::MANUFACTURER_DATA => decode_manufacturer_raw(s.data),
            ad_type::SERVICE_DATA_UUID16 if s.data.len() >= 2 => {
                let uuid = ServiceUuid::Short(u16::from_le_bytes([s.data[0], s.data[1]]));
                if uuid == ServiceUuid::Short(EDDYSTONE_UUID16) && !eddystone_listed {
                    Err(DecodeError::EddystoneNotListed)
                } else {
                    decode_service_data(uuid, &s.data[2..])
                }
            }
            ad_type::SERVICE_DATA_UUID128 if s.data.len() >= 16 => {
                let uuid = u128::from_le_bytes(array(&s.data[..16]));
                decode_service_data(ServiceUuid::from_u128(uuid), &s.data[16..])
            }
            _ => continue,
        };
        match decoded {
            Ok(advert) if advert.is_beacon() => return Ok(advert),
            Ok(advert) => {
                first_other.get_or_insert(advert);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (first_error, first_other) {
        (Some(e), _) => Err(e),
        (None, Some(advert)) => Ok(advert),
        (None, None) => Err(DecodeError::NoPayload),
    }
}

#[cfg(test)]
mod tests;
