//! Types that cross a boundary: the event stream the agent ingests (and the simulator writes),
//! the window and daily summaries the engine produces and HQ stores, and the MQTT topic tree.
//!
//! Only types in this crate are serialised. Every wire or file encoding carries a version
//! ([`EVENT_FORMAT_VERSION`], [`SUMMARY_SCHEMA_VERSION`]) so readers can reject what they do not
//! understand instead of misreading it.

mod distribution;
mod event;
mod ids;
pub mod privacy;
mod summary;
mod sync;
mod time;
pub mod topic;
pub mod validate;

pub use distribution::{Distribution, DistributionError, SketchError};
pub use event::{
    AddressKind, Alive, DoorCount, DoorDirection, DoorEvent, EVENT_FORMAT_VERSION, Event,
    EventLine, EventLineError, InputKind, Sighting, Transaction,
};
pub use ids::{DeviceId, DeviceIdParseError};
pub use summary::{
    Coverage, DailySummary, Funnel, HourTraffic, RepeatCounts, SUMMARY_SCHEMA_VERSION,
    WindowSummary, ZoneSummary,
};
pub use sync::{
    Ack, IdempotencyKey, MAX_MESSAGE_BYTES, SummaryKind, SummaryPayload, SyncMessage,
    SyncMessageError,
};
pub use time::Timestamp;
