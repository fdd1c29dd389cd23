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
        }
    }
}

impl fmt::Display for RejectReason {
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
}

impl IngestStats {
    pub(crate) fn reject(&mut self, reason: RejectReason) {
        *self.rejected.entry(reason).or_default() += 1;
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}
