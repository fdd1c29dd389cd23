//! The agent's local BLE radio input.
//!
//! * [`advert`] — a pure decoder of advertisement payloads (iBeacon, AltBeacon, Eddystone,
//!   other manufacturer/service data), and the beacon identity a pseudonym is made from.
//! * [`scan`] — scans local adapters through btleplug, pseudonymises every sighting in place
//!   and sends protocol [`Sighting`](storefront_protocol::Sighting)s on. Behind the default
//!   `scan` feature: without it the crate is the decoder alone, free of btleplug and tokio.
//!
//! Architecture invariant: no raw MAC address or beacon id leaves this crate — not in a
//! `Sighting`, not in a log line. Only pseudonyms made under the current key do.

pub mod advert;
#[cfg(feature = "scan")]
pub mod scan;
