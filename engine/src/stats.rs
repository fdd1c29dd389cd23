//! Counts of what the engine did with its input: accepted, ignored by definition, rejected.

use std::collections::BTreeMap;
use std::fmt;

/// Why an event was not used. Bad input is counted here, never a panic.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum RejectReason {
    /// Sighting from a scanner not in the config.
    UnknownScanner,
    /// Door event from a sensor not in the config.
    UnknownDoorSensor,
    /// Sign of life from a POS system not in the config.
    UnknownPosSystem,
    /// RSSI outside -127..=20 dBm: not a real reading.
    RssiOutOfRange,
    /// Older than the watermark: its window may already be final (door records and sales: their
    /// window is final).
    Late,
    /// Further ahead of the receiving clock than a clock could plausibly drift.
    Future,
    /// Time before 2020: a gateway whose clock is not set yet.
    ClockNotSet,
    /// A POS transaction id seen before.
    DuplicateTransaction,
    /// A door record id seen before.
    DuplicateDoorRecord,
    /// A cumulative door register read older than one already counted (its crossings are in
    /// the later read's difference).
    StaleRegister,
    /// A door record counting more crossings than `max_door_crossings_per_minute` allows for
    /// the time since the sensor's previous record (a corrupt or forged register or interval).
    ImplausibleDoorCount,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnknownScanner => "unknown_scanner",
            RejectReason::UnknownDoorSensor => "unknown_door_sensor",
            RejectReason::UnknownPosSystem => "unknown_pos_system",
            RejectReason::RssiOutOfRange => "rssi_out_of_range",
            RejectReason::Late => "late",
            RejectReason::Future => "future",
            RejectReason::ClockNotSet => "clock_not_set",
            RejectReason::DuplicateTransaction => "duplicate_transaction",
            RejectReason::DuplicateDoorRecord => "duplicate_door_record",
            RejectReason::StaleRegister => "stale_register",
            RejectReason::ImplausibleDoorCount => "implausible_door_count",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the engine let go of to stay within its [`Limits`](crate::Limits).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Shed {
    /// A tracked device never confirmed present (no visit), least recently heard first; its
    /// undecided pass is dropped uncounted.
    Device,
    /// A sighting of a new device while every tracked device has a visit open.
    NewDevice,
    /// A device's visit days (repeat detection), least recently visiting first.
    VisitHistory,
    /// A door record id kept for de-duplication, oldest first.
    DoorRecordId,
    /// A transaction id kept for de-duplication, oldest first.
    TransactionId,
}

impl Shed {
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::Device => "device",
            Shed::NewDevice => "new_device",
            Shed::VisitHistory => "visit_history",
            Shed::DoorRecordId => "door_record_id",
            Shed::TransactionId => "transaction_id",
        }
    }
}

impl fmt::Display for Shed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IngestStats {
    /// Events taken into the engine.
    pub accepted: u64,
    /// Sightings below `detect_rssi_dbm` (ignored by definition).
    pub below_detect: u64,
    /// Sightings of staff badges (never counted, by definition).
    pub staff: u64,
    /// Door records and sales taken after the watermark, while their window was open.
    #[serde(default)]
    pub late_counts: u64,
    pub rejected: BTreeMap<RejectReason, u64>,
    /// State let go of at a limit, by kind.
    #[serde(default)]
    pub shed: BTreeMap<Shed, u64>,
    /// Times the receiving clock stepped back and the engine re-based its time
    /// ([`Engine::handle_timeout`](crate::Engine::handle_timeout)).
    #[serde(default)]
    pub clock_steps_back: u64,
}

impl IngestStats {
    pub(crate) fn reject(&mut self, reason: RejectReason) {
        let count = self.rejected.entry(reason).or_default();
        *count = count.saturating_add(1);
    }

    pub(crate) fn shed(&mut self, kind: Shed, n: u64) {
        if n > 0 {
            let count = self.shed.entry(kind).or_default();
            *count = count.saturating_add(n);
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn shed_total(&self) -> u64 {
        self.shed.values().sum()
    }
}
