//! The agent's durable storage: final window and daily summaries (for the local dashboard and
//! `agent report`), the outbox of [`SyncMessage`]s waiting for HQ's ack, and the engine's
//! checkpoint. sled stays behind this one module and its narrow interface ([`Store`]).
//!
//! # Layout
//! Five sled trees in a directory marked by a [`MARKER`] file. Every value is an envelope `[FORMAT_VERSION u8][crc32 of payload u32 LE]
//! [payload]` (`record.rs`), checked on every read: a failing record is a
//! [`StoreError::Corrupt`] naming its tree and key, never a panic.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `windows` | `window_start` (i64, sign bit flipped, BE) | [`WindowSummary`] |
//! | `days` | `local_date` (`YYYY-MM-DD`) | [`DailySummary`] |
//! | `outbox` | `[seq u64 BE][kind u8][window_start]` | [`SyncMessage`] |
//! | `meta` | `next_seq`, `shed`, `store_id` | counters |
//! | `checkpoint` | `current/<n>` (n u32 BE) | chunk `n` of one [`Checkpoint`] envelope |
//!
//! The payload is JSON, not postcard: postcard is positional and cannot read back the
//! protocol types, which skip absent fields (`skip_serializing_if` on `Funnel::door_in`,
//! `Distribution::sketch`, ...), nor the engine snapshot's internally tagged and flattened
//! events (they need `deserialize_any`). JSON costs about twice the bytes of a sketch's bins,
//! which is small beside the checkpoint (see the figures below); the version byte lets a later
//! build switch format.
//!
//! # Durability
//! [`Store::commit`] is one sled transaction over all trees: summaries, their outbox entries,
//! the sequence counter, shed counters and the checkpoint land together or not at all. It then
//! flushes (below), and only then shows the new entries to [`Store::outbox`], which reads
//! through the in-memory index of durable entries rather than sled's tree (which holds
//! committed entries before they are on disk): durable, then visible to sync, is one operation.
//! [`Store::wait_for_outbox_change`] lets a task wait for the outbox to change.
//!
//! sled's own `flush()` is not an fsync on Linux: it writes its log and calls
//! `sync_file_range`, which neither persists the file's size nor flushes the device's write
//! cache, and it writes values over ~128 KiB (the checkpoint) as separate blob files without
//! syncing them at all. A power cut could then lose a commit whose flush had returned —
//! whose messages HQ may already have acked. Its sequence numbers would then be given again to
//! other summaries after the restart, and a late ack for the old ones would delete the new
//! ones from the outbox unsent. So [`Store::flush`] also `fdatasync`s the log file and
//! `fsync`s new blob files and the directories: after it returns, the residual window of loss
//! is only what the SD card itself loses despite a cache flush (cheap cards may lie). The cost
//! is measured in the `store_day_figures` test (ignored; run it with `--release -- --ignored
//! --nocapture`): on this machine's virtual disk a flush takes 0.2 ms without the fsyncs and
//! 0.4 ms (p99 1.2 ms) with them; expect a few to tens of ms on an SD card, once a minute.
//! [`Store::flush`] is also public, for acks and prunes (a commit flushes by itself).
//!
//! # Space and wear
//! One store-day (96 windows, one daily summary, a 200 KB checkpoint committed and flushed
//! every 60 s for 12 h, outbox acked as it goes) writes 153 MB and leaves 42 MB on disk
//! (sled's log keeps dead segments until it reuses them; over two days it grew to 59 MB). The
//! summaries are ~1 MB of that (a window is 5.2 KB as JSON, stored twice: `windows` and
//! `outbox`); the checkpoint is the rest, so how often and how big the agent checkpoints is
//! what wears the card.
//!
//! The checkpoint is stored in [`CHECKPOINT_CHUNK_BYTES`] chunks (`current/0`, `current/1`,
//! ...; extra chunks of a larger previous checkpoint removed in the same transaction; the
//! envelope's checksum covers the whole), so that it stays in sled's log, whose segments sled
//! reuses. Stored whole, a checkpoint over a quarter of [`SEGMENT_SIZE`] (thousands of devices
//! present) went to a blob file at every commit, and sled reclaimed none while open: 200
//! commits of 5 MB left 1 GB on disk. In chunks the same run stays at 42-52 MB (600 commits:
//! no growth), the live checkpoint plus dead segments waiting for reuse
//! (`tests/checkpoint_space.rs`).
//!
//! Writes made between flushes (acks, prunes) are written by sled's background flusher every
//! [`FLUSH_EVERY_MS`]; losing them in a power cut is harmless: an ack lost re-sends a summary
//! that HQ upserts by its [`IdempotencyKey`], a prune lost is redone.
//!
//! # Whose directory
//! The store uses, and may move aside, only a directory it recognises as its own database: a
//! missing or empty one (it writes the [`MARKER`] first), one holding the marker, or one from
//! before the marker holding sled's files (`conf`, `db`, `blobs/`, `snap.*`) and nothing else
//! but the [`StoreOptions::secret_files`] (the agent's pseudonym key). A regular file, a
//! directory with anything else in it, or a marker of a later format is an error naming the
//! path and the fix ([`StoreError::NotOurs`]), and nothing is renamed or created.
//!
//! A database of ours that sled cannot open (corrupt files, a panic inside sled, a corrupt
//! counter record) is renamed to `<path>.corrupt-<unix-seconds>` and a fresh one started, so
//! the agent starts rather than crash-loops. The secret files in the copy are destroyed
//! (overwritten, then removed). Its outbox is read if sled can open the copy: every record
//! passing its checksum goes into the fresh outbox (new sequence numbers, the same idempotency
//! keys, so HQ stores each once); what could not be read is counted or explained in
//! [`MovedAside`] and logged as an error naming the copy. A database locked by another process
//! is an error and is left alone.
//!
//! # Privacy
//! Only summaries and the engine's opaque snapshot are stored; nothing raw reaches this crate.
//!
//! [`WindowSummary`]: storefront_protocol::WindowSummary
//! [`DailySummary`]: storefront_protocol::DailySummary
//! [`SyncMessage`]: storefront_protocol::SyncMessage
//! [`IdempotencyKey`]: storefront_protocol::IdempotencyKey

pub mod durable;
mod error;
mod path;
mod record;
mod store;

pub use error::{Corruption, StoreError};
pub use path::MARKER;
pub use record::FORMAT_VERSION;
pub use store::{
    CHECKPOINT_CHUNK_BYTES, Checkpoint, FLUSH_EVERY_MS, MovedAside, OpenReport, SEGMENT_SIZE,
    ShedCounts, StorageStats, Store, StoreOptions,
};
