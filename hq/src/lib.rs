//! HQ's side of store sync.
//!
//! Stores publish each final window and daily summary as a [`SyncMessage`] (JSON, QoS 1) on
//! `storefront/v1/<org>/<store>/summary`. The [`Collector`] subscribes through a shared
//! subscription (`$share/<group>/...`, so several collectors split the load), checks each
//! message, upserts it into an [`HqStore`] under its [`IdempotencyKey`], flushes, and then
//! publishes an [`Ack`] on `storefront/v1/<org>/<store>/ack`. The agent deletes its outbox entry
//! only on that ack and re-sends otherwise, so HQ sees duplicates and reordering routinely;
//! the idempotent upsert makes them harmless. [`build_report`] merges stored daily summaries
//! per store and chain-wide.
//!
//! Architecture invariants:
//! * a summary is acked only after it is stored and the database is fsynced;
//! * every summary is checked semantically ([`storefront_protocol::validate`]) before it is
//!   stored; rows are keyed by org, store, kind and start;
//! * the first version stored under a key is kept (final windows are immutable); a different
//!   copy is held aside, counted, logged, and the key is flagged in reports;
//! * bad input is counted by reason and logged at a bounded rate, never a panic;
//! * storage is reached only through [`HqStore`]; sled stays inside `store/sled_store.rs`.
//!
//! [`SyncMessage`]: storefront_protocol::SyncMessage
//! [`IdempotencyKey`]: storefront_protocol::IdempotencyKey
//! [`Ack`]: storefront_protocol::Ack

mod collector;
mod error;
mod ratelog;
mod report;
mod store;

pub use collector::{Collector, CollectorConfig, HqStats, MAX_INCOMING_PACKET, RejectReason};
pub use error::{HqError, StorageSource};
pub use report::{CHAIN, Report, ReportRow, build_report};
pub use store::{
    HeldConflict, HqStore, MAX_CONFLICTS, MemoryHqStore, SledHqStore, StoreRef, Stored, Upsert,
};
