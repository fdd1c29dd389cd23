//! Scanning the local Bluetooth adapters through btleplug (BlueZ over D-Bus on Linux).
//!
//! [`run_scanner`] never fails and never returns an error: no D-Bus, no bluetoothd, no
//! adapter, or an adapter unplugged mid-run is logged (`warn!`, at most once a minute per
//! condition, with a count of the repeats it held back) and retried with exponential backoff.
//! It returns only on shutdown or when the receiver of its sightings is gone.
//!
//! # Which identity is hashed
//! Each advertisement becomes one [`Sighting`] whose `device` is a pseudonym made here, under
//! the current key of the `watch::Receiver<Pseudonymizer>`:
//! 1. if the device's advertisement data carries a stable beacon id ([`Advert::identity`]:
//!    iBeacon uuid+major+minor, AltBeacon ids, Eddystone-UID namespace+instance — ids a beacon
//!    owner configured, e.g. a staff badge or a loyalty app), that id is hashed and the
//!    sighting is [`AddressKind::Stable`]; when one device carries several (an iBeacon and an
//!    Eddystone-UID), the smallest identity bytes win, so the choice does not flicker;
//! 2. otherwise the 6-byte MAC address (most significant byte first, as printed) is hashed.
//!    It is [`AddressKind::Stable`] only when BlueZ reports a public address, or a random one
//!    whose two top bits are `11` (static random: fixed until power-cycle). Resolvable and
//!    non-resolvable private addresses — what phones send, changing every ~15 min — and
//!    addresses of unknown type are [`AddressKind::Rotating`]: counting a rotating address as
//!    stable would fake repeat visits, the opposite error only loses them.
//!
//! The raw address, the beacon id and btleplug's `PeripheralId` (a D-Bus path that contains
//! the address) stay inside this module: they are in no `Sighting` and in no log line. Errors
//! about one peripheral are logged without their text for the same reason.
//!
//! # What a sighting is
//! One per `DeviceDiscovered`, `RssiUpdate`, `ManufacturerDataAdvertisement` and
//! `ServiceDataAdvertisement` event, with the RSSI of the event or else the device's latest,
//! stamped with the wall-clock time when it is handled. BlueZ may raise two of these for one
//! packet (new data and new RSSI); the engine treats sightings as RSSI samples, so an extra
//! sample of the same reading is harmless. `tx_power` is the calibrated 1 m power of the
//! beacon frame when it has one; the AD "TX Power Level" (a 0 m transmit level, +12 dBm on
//! iPhones) is not converted into one.
//!
//! # Backpressure
//! Sightings go out with `try_send`: when the channel is full the sighting is dropped,
//! counted, and logged (rate-limited) — a radio does not wait.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What [`sighting_from`] reads: btleplug's view of a device.
pub use btleplug::api::{AddressType, BDAddr, PeripheralProperties};
use btleplug::api::{Central, CentralEvent, Manager as _, Peripheral as _, ScanFilter};
use btleplug::platform::{Adapter, Manager, PeripheralId};
use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use storefront_protocol::privacy::Pseudonymizer;
use storefront_protocol::{AddressKind, Sighting, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::advert::{self, Advert, BeaconIdentity, ServiceUuid};

/// How often a running session checks that its adapters are still there.
const HEALTH_CHECK: Duration = Duration::from_secs(15);
/// The least time between two warnings about the same condition.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// A session that ran this long was healthy: the next failure starts the backoff afresh.
const HEALTHY_SESSION: Duration = Duration::from_secs(60);
/// The backoff grows to at most this many times [`ScanOptions::retry`].
const MAX_BACKOFF_FACTOR: u32 = 16;

/// What to scan with and how to name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// Adapter names (`hci0`, `hci1`…) to scan with; empty = every adapter present. A named
    /// adapter that is missing is warned about and waited for.
    pub adapters: Vec<String>,
    /// Scanner id (as named in the store config, which maps it to a zone) of each adapter's
    /// sightings; an adapter not in the map uses its own name.
    pub scanner_id_for_adapter: HashMap<String, String>,
    /// First delay before retrying after a failure; doubles up to 16 times this.
    pub retry: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            adapters: Vec::new(),
            scanner_id_for_adapter: HashMap::new(),
            retry: Duration::from_secs(5),
        }
    }
}

impl ScanOptions {
    /// The scanner id of an adapter's sightings.
    pub fn scanner_id(&self, adapter: &str) -> String {
        self.scanner_id_for_adapter
            .get(adapter)
            .cloned()
            .unwrap_or_else(|| adapter.to_owned())
    }
}

/// Why a scanning session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot reach the Bluetooth stack (D-Bus / bluetoothd): {0}")]
    Stack(#[source] btleplug::Error),
    #[error("no Bluetooth adapter to scan with (wanted: {wanted})")]
    NoAdapter { wanted: String },
    #[error("adapter {adapter} failed: {source}")]
    Adapter {
        adapter: String,
        #[source]
        source: btleplug::Error,
    },
    #[error("the adapters' event streams ended")]
    StreamsEnded,
    /// Not a failure: the receiver of sightings is gone.
    #[error("sighting receiver closed")]
    OutputClosed,
}

impl SessionError {
    /// One key per kind of condition, so that each is rate-limited on its own.
    fn kind(&self) -> &'static str {
        match self {
            SessionError::Stack(_) => "stack",
            SessionError::NoAdapter { .. } => "no_adapter",
            SessionError::Adapter { .. } => "adapter",
            SessionError::StreamsEnded => "streams_ended",
            SessionError::OutputClosed => "output_closed",
        }
    }
}

/// Scans until `shutdown` turns true (or its sender is dropped) or `out` is closed.
///
/// Never panics on radio conditions and has no error to return: every failure is logged and
/// retried (see the module docs).
pub async fn run_scanner(
    options: ScanOptions,
    pseudonymizer: watch::Receiver<Pseudonymizer>,
    out: mpsc::Sender<Sighting>,
    mut shutdown: watch::Receiver<bool>,
) {
    let retry = options.retry.max(Duration::from_millis(1));
    let max_backoff = retry.saturating_mul(MAX_BACKOFF_FACTOR);
    let mut backoff = retry;
    let mut warnings = WarnLimiter::default();
    let mut shed = Shed::default();
    loop {
        if out.is_closed() {
            return;
        }
        let started = Instant::now();
        let ended = tokio::select! {
            biased;
            () = shutdown_requested(&mut shutdown) => return,
            ended = session(&options, &pseudonymizer, &out, &mut shed) => ended,
        };
        if matches!(ended, SessionError::OutputClosed) {
            return;
        }
        if started.elapsed() >= HEALTHY_SESSION {
            backoff = retry;
        }
        if let Some(held_back) = warnings.should_log(ended.kind(), Instant::now()) {
            warn!(
                error = %ended,
                retry_in_ms = backoff.as_millis() as u64,
                repeats_not_logged = held_back,
                "BLE scanning stopped; retrying"
            );
        }
        tokio::select! {
            biased;
            () = shutdown_requested(&mut shutdown) => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = backoff.saturating_mul(2).min(max_backoff);
    }
}

/// Resolves when shutdown is requested or its sender is gone.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// One session: connect, pick adapters, scan until something breaks.
async fn session(
    options: &ScanOptions,
    pseudonymizer: &watch::Receiver<Pseudonymizer>,
    out: &mpsc::Sender<Sighting>,
    shed: &mut Shed,
) -> SessionError {
    match scan(options, pseudonymizer, out, shed).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

async fn scan(
    options: &ScanOptions,
    pseudonymizer: &watch::Receiver<Pseudonymizer>,
    out: &mpsc::Sender<Sighting>,
    shed: &mut Shed,
) -> Result<Never, SessionError> {
    let manager = Manager::new().await.map_err(SessionError::Stack)?;
    let mut chosen: Vec<(String, Adapter)> = Vec::new();
    for adapter in manager.adapters().await.map_err(SessionError::Stack)? {
        let info = adapter.adapter_info().await.map_err(SessionError::Stack)?;
        let name = adapter_name(&info);
        if options.adapters.is_empty() || options.adapters.contains(&name) {
            chosen.push((name, adapter));
        }
    }
    if chosen.is_empty() {
        return Err(SessionError::NoAdapter {
            wanted: if options.adapters.is_empty() {
                "any".to_owned()
            } else {
                options.adapters.join(", ")
            },
        });
    }
    let missing: Vec<&String> = options
        .adapters
        .iter()
        .filter(|want| !chosen.iter().any(|(name, _)| name == *want))
        .collect();
    if !missing.is_empty() {
        warn!(missing = ?missing, "Configured Bluetooth adapters not found; scanning with the others");
    }

    let mut events = SelectAll::new();
    let mut scanners = Vec::with_capacity(chosen.len());
    for (index, (name, adapter)) in chosen.iter().enumerate() {
        let adapter_err = |source| SessionError::Adapter {
            adapter: name.clone(),
            source,
        };
        let stream = adapter.events().await.map_err(adapter_err)?;
        adapter
            .start_scan(ScanFilter::default())
            .await
            .map_err(adapter_err)?;
        events.push(stream.map(move |event| (index, event)));
        scanners.push(options.scanner_id(name));
    }
    info!(adapters = ?chosen.iter().map(|(n, _)| n).collect::<Vec<_>>(), "BLE scanning");

    let mut health = tokio::time::interval(HEALTH_CHECK);
    health.tick().await;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some((index, event)) = event else {
                    return Err(SessionError::StreamsEnded);
                };
                let (name, adapter) = &chosen[index];
                handle_event(adapter, name, &scanners[index], event, pseudonymizer, out, shed)
                    .await?;
            }
            _ = health.tick() => {
                for (name, adapter) in &chosen {
                    adapter.adapter_info().await.map_err(|source| SessionError::Adapter {
                        adapter: name.clone(),
                        source,
                    })?;
                }
            }
        }
    }
}

/// `hci0` from BlueZ's `hci0 (usb:v1D6Bp0246d0537)`.
fn adapter_name(info: &str) -> String {
    info.split_whitespace().next().unwrap_or(info).to_owned()
}

async fn handle_event(
    adapter: &Adapter,
    adapter_name: &str,
    scanner: &str,
    event: CentralEvent,
    pseudonymizer: &watch::Receiver<Pseudonymizer>,
    out: &mpsc::Sender<Sighting>,
    shed: &mut Shed,
) -> Result<(), SessionError> {
    let (id, rssi): (PeripheralId, Option<i16>) = match event {
        CentralEvent::RssiUpdate { id, rssi } => (id, Some(rssi)),
        CentralEvent::DeviceDiscovered(id)
        | CentralEvent::ManufacturerDataAdvertisement { id, .. }
        | CentralEvent::ServiceDataAdvertisement { id, .. } => (id, None),
        CentralEvent::StateUpdate(state) => {
            info!(adapter = adapter_name, state = ?state, "Bluetooth adapter state");
            return Ok(());
        }
        _ => return Ok(()),
    };
    // The device may be gone again (BlueZ drops stale ones); the error text names it.
    let properties = match adapter.peripheral(&id).await {
        Ok(peripheral) => peripheral.properties().await,
        Err(e) => Err(e),
    };
    let Ok(Some(properties)) = properties else {
        debug!(
            adapter = adapter_name,
            "Peripheral vanished before its properties were read"
        );
        return Ok(());
    };
    let Some(rssi) = rssi.or(properties.rssi) else {
        return Ok(());
    };
    let sighting = {
        let key = pseudonymizer.borrow();
        sighting_from(&properties, rssi, scanner, &key, now())
    };
    match out.try_send(sighting) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => {
            shed.dropped(adapter_name, Instant::now());
            Ok(())
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Err(SessionError::OutputClosed),
    }
}

fn now() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_millis(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}

/// The sighting of one advertisement (a device's properties as BlueZ reports them, heard at
/// `rssi` by the adapter of `scanner` at `t`), pseudonymised (see the module docs for the
/// identity). Pure: the scanner's event loop calls it, and so do tests with simulated radios.
pub fn sighting_from(
    properties: &PeripheralProperties,
    rssi: i16,
    scanner: &str,
    pseudonymizer: &Pseudonymizer,
    t: Timestamp,
) -> Sighting {
    let adverts = properties
        .manufacturer_data
        .iter()
        .map(|(company, data)| advert::decode_manufacturer(*company, data))
        .chain(properties.service_data.iter().map(|(uuid, data)| {
            advert::decode_service_data(ServiceUuid::from_u128(uuid.as_u128()), data)
        }))
        .filter_map(Result::ok);
    let (device, tx_power, addr) = match best_identity(adverts) {
        Some((identity, advert)) => (
            pseudonymizer.pseudonym(identity.as_bytes()),
            advert.tx_power_1m(),
            AddressKind::Stable,
        ),
        None => {
            let address = properties.address.into_inner();
            (
                pseudonymizer.pseudonym(&address),
                None,
                mac_address_kind(address, properties.address_type),
            )
        }
    };
    Sighting {
        t,
        scanner: scanner.to_owned(),
        device,
        rssi,
        tx_power,
        addr,
    }
}

/// Of all the beacon identities a device advertises, the smallest (a stable choice).
fn best_identity(adverts: impl Iterator<Item = Advert>) -> Option<(BeaconIdentity, Advert)> {
    adverts
        .filter_map(|advert| advert.identity().map(|id| (id, advert)))
        .min_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()))
}

/// Stable for public and static random addresses; rotating for private and unknown ones.
fn mac_address_kind(address: [u8; 6], address_type: Option<AddressType>) -> AddressKind {
    match address_type {
        Some(AddressType::Public) => AddressKind::Stable,
        // Static random addresses have the two most significant bits set. (btleplug's
        // `BDAddr::is_random_static` tests the least significant byte instead.)
        Some(AddressType::Random) if address[0] >> 6 == 0b11 => AddressKind::Stable,
        Some(AddressType::Random) | None => AddressKind::Rotating,
    }
}

/// Rate limit of warnings: the first of each kind, then at most one per [`WARN_EVERY`].
#[derive(Default)]
struct WarnLimiter {
    /// Per kind: when it was last logged and how many were held back since.
    last: HashMap<&'static str, (Instant, u64)>,
}

impl WarnLimiter {
    /// `Some(held back since the last one)` when this occurrence should be logged.
    fn should_log(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(kind) {
            Some((at, held_back)) if now.duration_since(*at) < WARN_EVERY => {
                *held_back += 1;
                None
            }
            Some((at, held_back)) => {
                *at = now;
                Some(std::mem::take(held_back))
            }
            None => {
                self.last.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

/// Sightings dropped because the channel was full.
#[derive(Default)]
struct Shed {
    total: u64,
    limiter: WarnLimiter,
}

impl Shed {
    fn dropped(&mut self, adapter: &str, now: Instant) {
        self.total += 1;
        if self.limiter.should_log("channel_full", now).is_some() {
            warn!(
                adapter,
                events_dropped_total = self.total,
                reason = "channel_full",
                "Dropping BLE sightings: the consumer is behind"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storefront_protocol::privacy::KEY_LEN;

    fn key() -> Pseudonymizer {
        Pseudonymizer::new(&[9; KEY_LEN])
    }

    fn properties(address: [u8; 6], address_type: Option<AddressType>) -> PeripheralProperties {
        PeripheralProperties {
            address: address.into(),
            address_type,
            ..Default::default()
        }
    }

    const PHONE: [u8; 6] = [0x5a, 0x11, 0x22, 0x33, 0x44, 0x55];
    const IBEACON_DATA: &str = "0215426c7565436861726d426561636f6e730efe1355c5";

    #[test]
    fn a_beacon_is_hashed_by_its_id_and_is_stable() {
        let mut p = properties(PHONE, Some(AddressType::Random));
        p.manufacturer_data
            .insert(0x004c, hex::decode(IBEACON_DATA).unwrap());
        p.manufacturer_data.insert(0x0006, vec![1, 2, 3]);
        let s = sighting_from(&p, -70, "entrance-1", &key(), Timestamp(5));
        let id = advert::decode_manufacturer(0x004c, &hex::decode(IBEACON_DATA).unwrap())
            .unwrap()
            .stable_identity()
            .unwrap();
        assert_eq!(s.device, key().pseudonym(&id));
        assert_eq!(s.addr, AddressKind::Stable);
        assert_eq!(s.tx_power, Some(-59));
        assert_eq!(
            (s.t, s.rssi, s.scanner.as_str()),
            (Timestamp(5), -70, "entrance-1")
        );
    }

    #[test]
    fn the_same_beacon_from_another_address_is_the_same_device() {
        let mut a = properties(PHONE, Some(AddressType::Random));
        a.manufacturer_data
            .insert(0x004c, hex::decode(IBEACON_DATA).unwrap());
        let mut b = a.clone();
        b.address = [0x41, 0, 0, 0, 0, 1].into();
        assert_eq!(
            sighting_from(&a, -60, "s", &key(), Timestamp(0)).device,
            sighting_from(&b, -60, "s", &key(), Timestamp(0)).device
        );
    }

    #[test]
    fn a_phone_is_hashed_by_its_mac_and_rotates() {
        let mut p = properties(PHONE, Some(AddressType::Random));
        p.manufacturer_data.insert(0x004c, vec![0x10, 0x05, 0x0b]);
        let s = sighting_from(&p, -80, "s", &key(), Timestamp(0));
        assert_eq!(s.device, key().pseudonym(&PHONE));
        assert_eq!(s.addr, AddressKind::Rotating);
        assert_eq!(s.tx_power, None);
    }

    #[test]
    fn eddystone_service_data_under_its_full_uuid_gives_an_identity() {
        let mut p = properties(PHONE, None);
        let uuid = btleplug::api::bleuuid::uuid_from_u16(0xfeaa);
        p.service_data.insert(
            uuid,
            hex::decode("00ec00010203040506070809aabbccddeeff0000").unwrap(),
        );
        let s = sighting_from(&p, -80, "s", &key(), Timestamp(0));
        assert_eq!(s.addr, AddressKind::Stable);
        assert_eq!(s.tx_power, Some(-61));
        assert_ne!(s.device, key().pseudonym(&PHONE));
    }

    #[test]
    fn address_kinds_follow_the_address_type() {
        let static_random = [0xc1, 0, 0, 0, 0, 0];
        let resolvable = [0x41, 0, 0, 0, 0, 0x03];
        assert_eq!(
            mac_address_kind(PHONE, Some(AddressType::Public)),
            AddressKind::Stable
        );
        assert_eq!(
            mac_address_kind(static_random, Some(AddressType::Random)),
            AddressKind::Stable
        );
        assert_eq!(
            mac_address_kind(resolvable, Some(AddressType::Random)),
            AddressKind::Rotating
        );
        assert_eq!(mac_address_kind(PHONE, None), AddressKind::Rotating);
    }

    #[test]
    fn adapter_names_are_the_first_word_of_the_adapter_info() {
        assert_eq!(adapter_name("hci0 (usb:v1D6Bp0246d0537)"), "hci0");
        assert_eq!(adapter_name(""), "");
        let mut options = ScanOptions::default();
        options
            .scanner_id_for_adapter
            .insert("hci1".into(), "till-2".into());
        assert_eq!(options.scanner_id("hci1"), "till-2");
        assert_eq!(options.scanner_id("hci0"), "hci0");
    }

    #[test]
    fn warnings_are_rate_limited_per_kind() {
        let mut limiter = WarnLimiter::default();
        let t0 = Instant::now();
        assert_eq!(limiter.should_log("stack", t0), Some(0));
        assert_eq!(
            limiter.should_log("stack", t0 + Duration::from_secs(1)),
            None
        );
        assert_eq!(limiter.should_log("adapter", t0), Some(0));
        assert_eq!(
            limiter.should_log("stack", t0 + Duration::from_secs(2)),
            None
        );
        assert_eq!(limiter.should_log("stack", t0 + WARN_EVERY), Some(2));
    }

    fn channels() -> (
        watch::Sender<Pseudonymizer>,
        watch::Receiver<Pseudonymizer>,
        watch::Sender<bool>,
        watch::Receiver<bool>,
    ) {
        let (key_tx, key_rx) = watch::channel(key());
        let (stop_tx, stop_rx) = watch::channel(false);
        (key_tx, key_rx, stop_tx, stop_rx)
    }

    /// On this machine there is no D-Bus: `Manager::new()` fails every time. The scanner must
    /// keep retrying, not crash or return, and stop promptly on shutdown.
    #[tokio::test(start_paused = true)]
    async fn without_a_bluetooth_stack_the_scanner_retries_until_shutdown() {
        let (_key_tx, key_rx, stop_tx, stop_rx) = channels();
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let options = ScanOptions {
            retry: Duration::from_millis(10),
            ..ScanOptions::default()
        };
        let scanner = tokio::spawn(run_scanner(options, key_rx, out_tx, stop_rx));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!scanner.is_finished(), "the scanner gave up");
        assert!(out_rx.try_recv().is_err(), "no radio, no sightings");
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), scanner)
            .await
            .expect("the scanner stops on shutdown")
            .expect("the scanner did not panic");
    }

    #[tokio::test(start_paused = true)]
    async fn the_scanner_stops_when_its_consumer_is_gone() {
        let (_key_tx, key_rx, _stop_tx, stop_rx) = channels();
        let (out_tx, out_rx) = mpsc::channel(16);
        let options = ScanOptions {
            retry: Duration::from_millis(10),
            ..ScanOptions::default()
        };
        let scanner = tokio::spawn(run_scanner(options, key_rx, out_tx, stop_rx));
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(out_rx);
        tokio::time::timeout(Duration::from_secs(10), scanner)
            .await
            .expect("the scanner stops without a consumer")
            .expect("the scanner did not panic");
    }
}
