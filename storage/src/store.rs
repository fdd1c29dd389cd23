use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionResult, TransactionError};
use storefront_protocol::{
    DailySummary, IdempotencyKey, SummaryKind, SummaryPayload, SyncMessage, Timestamp,
    WindowSummary,
};
use tracing::{error, warn};

use crate::durable::SledFiles;
use crate::path::{self, Ownership};
use crate::record::{
    decode, encode, outbox_key, parse_outbox_key, time_from_key, time_key, utc_date,
};
use crate::{Corruption, StoreError};

/// sled's background flush interval. Every flush that has something to write appends a
/// (partly filled) chunk to the log and fsyncs it; on an SD card each costs a read-modify-write
/// of a whole erase block, so fewer, larger flushes wear it less. Commits do not depend on it
/// ([`Store::commit`] flushes), only acks and prunes do, and losing those is harmless (see the
/// crate docs). 5 s merges the acks of a sync round into one write.
pub const FLUSH_EVERY_MS: u64 = 5_000;

/// sled's log segment size; a log message over a quarter of it (less a header) goes to a
/// separate blob file, which sled writes once and never reclaims while the database is open.
/// The checkpoint is therefore stored in [`CHECKPOINT_CHUNK_BYTES`] chunks, and sled keeps at
/// most 17 values in a leaf node (it splits above 16), so a node of chunks stays in the log.
/// Part of the on-disk format: sled refuses to open a database written with another value (an
/// error, see [`Store::open`]).
pub const SEGMENT_SIZE: usize = 2 * 1024 * 1024;

/// Size of the checkpoint's chunks: a sled leaf of 17 of them (272 KiB) stays below the blob
/// threshold ([`SEGMENT_SIZE`] / 4 = 512 KiB), with room for sled's headers and keys.
pub const CHECKPOINT_CHUNK_BYTES: usize = 16 * 1024;

const WINDOWS: &str = "windows";
const DAYS: &str = "days";
const OUTBOX: &str = "outbox";
const META: &str = "meta";
const CHECKPOINT: &str = "checkpoint";

const NEXT_SEQ: &[u8] = b"next_seq";
const SHED: &[u8] = b"shed";
const STORE_ID: &[u8] = b"store_id";
/// The whole checkpoint in one value, as databases before chunking stored it; removed by the
/// first chunked commit.
const LEGACY_CHECKPOINT: &[u8] = b"current";
/// Chunk `n` of the checkpoint is `current/` followed by `n` as a big-endian u32.
const CHUNK_PREFIX: &[u8] = b"current/";

fn chunk_key(n: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(CHUNK_PREFIX);
    key[8..].copy_from_slice(&n.to_be_bytes());
    key
}

fn chunk_index(key: &[u8]) -> Option<u32> {
    let n = key.strip_prefix(CHUNK_PREFIX)?;
    Some(u32::from_be_bytes(n.try_into().ok()?))
}

/// Where and how big.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The database directory.
    pub path: PathBuf,
    /// sled's page cache. sled's default is 1 GiB; a gateway wants a few MiB (the hot data is
    /// one checkpoint and the outbox).
    pub cache_capacity_bytes: u64,
    /// Bound on the outbox: beyond it the oldest window entries are shed (HQ gets the day's
    /// counts from the daily summary).
    pub outbox_max_entries: u64,
    /// How long stored windows and days are kept (METRICS.md: 400).
    pub retention_days: u32,
    /// Distributions over fewer values than this are sent as counts alone (METRICS.md
    /// k-anonymity, `privacy.min_count`).
    pub min_count: u64,
    /// Names of files the product keeps in the database directory besides the database (the
    /// agent's pseudonym key). They do not make the directory foreign, and they are destroyed
    /// (overwritten, then removed) in a copy moved aside, as they may be secrets.
    pub secret_files: Vec<String>,
}

impl StoreOptions {
    /// Gateway defaults: 8 MiB cache, 10,000 outbox entries (over 100 days of 15-minute
    /// windows), 400 days' retention.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreOptions {
            path: path.into(),
            cache_capacity_bytes: 8 * 1024 * 1024,
            outbox_max_entries: 10_000,
            retention_days: 400,
            min_count: 5,
            secret_files: Vec::new(),
        }
    }
}

/// What happened while opening.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Set when a damaged database was moved aside and a fresh one started.
    pub moved_aside: Option<MovedAside>,
    /// Outbox records that failed their checksum at open and were dropped.
    pub corrupt_outbox_dropped: u64,
}

/// A damaged database moved aside, and what became of its unsent outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovedAside {
    /// Where the damaged database is now (its secret files destroyed).
    pub path: PathBuf,
    /// Why it could not be used.
    pub reason: String,
    /// Outbox entries read from it and put in the fresh store's outbox (new sequence numbers,
    /// the same idempotency keys, so HQ stores each once).
    pub outbox_carried: u64,
    /// Outbox records in it that failed their checksum: lost.
    pub outbox_corrupt: u64,
    /// Why its outbox could not be read (in full, or at all): what it still held is lost.
    pub outbox_unreadable: Option<String>,
}

/// What the agent checkpoints: the engine's opaque snapshot plus the position of a replayable
/// source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint<T> {
    pub engine: T,
    pub source_cursor: Option<u64>,
}

/// Outbox entries shed because the outbox was full, by kind, since the database was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShedCounts {
    pub windows: u64,
    pub dailies: u64,
}

impl ShedCounts {
    fn add(&mut self, kind: SummaryKind) {
        match kind {
            SummaryKind::Window => self.windows += 1,
            SummaryKind::Daily => self.dailies += 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageStats {
    pub outbox_len: u64,
    pub shed_total: ShedCounts,
    /// Bytes of all files of the database (log, snapshots, blobs, config).
    pub size_on_disk_bytes: u64,
    /// The sequence number the next stored summary gets.
    pub next_seq: u64,
}

/// The outbox index, rebuilt from the outbox's keys at open.
type OutboxIndex = BTreeMap<u64, (SummaryKind, Timestamp)>;

/// State kept in memory between operations; changed only under the lock, after the sled
/// write it mirrors has succeeded.
struct State {
    outbox: OutboxIndex,
    next_seq: u64,
    /// Entries below this sequence number are on disk: the only ones [`Store::outbox`] shows
    /// and [`Store::ack`] takes. Raised by each successful flush.
    durable_below: u64,
    /// Bumped whenever the entries [`Store::outbox`] shows change.
    outbox_version: u64,
    shed: ShedCounts,
    store_id: Option<String>,
    /// Chunks of the stored checkpoint (`current/0` ..).
    checkpoint_chunks: u32,
    /// A whole-value checkpoint from before chunking is stored.
    legacy_checkpoint: bool,
    /// The database's files, with the blob files already fsynced.
    files: SledFiles,
}

/// The agent's storage. Writers are serialised by an internal lock, so the plans made before
/// a transaction (which summaries are new, what to shed) still hold inside it.
pub struct Store {
    db: sled::Db,
    windows: sled::Tree,
    days: sled::Tree,
    outbox: sled::Tree,
    meta: sled::Tree,
    checkpoint: sled::Tree,
    options: StoreOptions,
    state: Mutex<State>,
    /// Notified with the state's `outbox_version`.
    outbox_changed: Condvar,
}

/// A new outbox entry and, for a summary committed now, its record in `windows` or `days`.
struct NewEntry {
    key: IdempotencyKey,
    payload: SummaryPayload,
    record: Option<SummaryRecord>,
}

/// An encoded record of the `windows` (`is_window`) or `days` tree.
struct SummaryRecord {
    is_window: bool,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// What was read from an outbox tree.
#[derive(Default)]
struct OutboxScan {
    /// Keys of records failing their checksum or with a malformed key.
    bad: Vec<sled::IVec>,
}

fn sled_err(op: &'static str, tree: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { op, tree, source }
}

fn summary_tree_key(payload: &SummaryPayload) -> Vec<u8> {
    match payload {
        SummaryPayload::Window(w) => time_key(w.window_start).to_vec(),
        SummaryPayload::Daily(d) => d.local_date.as_bytes().to_vec(),
    }
}

fn payload_store_id(payload: &SummaryPayload) -> &str {
    match payload {
        SummaryPayload::Window(w) => &w.store_id,
        SummaryPayload::Daily(d) => &d.store_id,
    }
}

fn describe_time_key(key: &[u8]) -> String {
    time_from_key(key)
        .map(|t| format!("window_start={}", t.millis()))
        .unwrap_or_else(|| format!("{key:02x?}"))
}

fn describe_outbox_key(key: &[u8]) -> String {
    match parse_outbox_key(key) {
        Some((seq, kind, start)) => {
            format!("seq={seq} kind={kind:?} window_start={}", start.millis())
        }
        None => format!("{key:02x?}"),
    }
}

/// Reads every record of an outbox tree, calling `good` with each sound one in key order.
/// A failed read ends the scan with its error, after `good` saw everything before it.
fn scan_outbox(
    tree: &sled::Tree,
    mut good: impl FnMut(u64, SummaryKind, Timestamp, SyncMessage),
) -> Result<OutboxScan, (OutboxScan, sled::Error)> {
    let mut scan = OutboxScan::default();
    for item in tree.iter() {
        let (key, value) = match item {
            Ok(pair) => pair,
            Err(e) => return Err((scan, e)),
        };
        let describe = || describe_outbox_key(&key);
        match (
            parse_outbox_key(&key),
            decode::<SyncMessage>(&value, OUTBOX, &describe),
        ) {
            (Some((seq, kind, start)), Ok(message)) => good(seq, kind, start, message),
            (_, Err(e)) => {
                error!(error = %e, "Dropping a corrupt outbox record");
                scan.bad.push(key);
            }
            (None, Ok(_)) => {
                let e = StoreError::Corrupt {
                    tree: OUTBOX,
                    key: describe(),
                    problem: Corruption::BadKey,
                };
                error!(error = %e, "Dropping a corrupt outbox record");
                scan.bad.push(key);
            }
        }
    }
    Ok(scan)
}

/// Why an open attempt failed.
enum OpenFailure {
    /// The database is damaged: move it aside and start fresh.
    Damaged(String),
    /// Anything else: report it, touch nothing.
    Fatal(StoreError),
}

/// sled's configuration for the database at `path`.
fn sled_config(path: &Path, cache_capacity_bytes: u64) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity_bytes)
        .flush_every_ms(Some(FLUSH_EVERY_MS))
        .segment_size(SEGMENT_SIZE)
}

/// Opens a sled database; sled is beta: a panic on a damaged file is treated like a
/// corruption error.
fn open_sled(config: &sled::Config, path: &Path) -> Result<sled::Db, OpenFailure> {
    match catch_unwind(AssertUnwindSafe(|| config.open())) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(classify_open_error(path, e)),
        Err(_) => Err(OpenFailure::Damaged("sled panicked while opening".into())),
    }
}

fn classify_open_error(path: &Path, source: sled::Error) -> OpenFailure {
    use std::io::ErrorKind;
    match &source {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            OpenFailure::Fatal(StoreError::Locked {
                path: path.to_owned(),
                source,
            })
        }
        // Moving the database aside would not help with these, and would lose it.
        sled::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::PermissionDenied
                    | ErrorKind::StorageFull
                    | ErrorKind::ReadOnlyFilesystem
                    | ErrorKind::NotFound
                    | ErrorKind::OutOfMemory
                    | ErrorKind::Interrupted
            ) =>
        {
            OpenFailure::Fatal(StoreError::Open {
                path: path.to_owned(),
                source,
            })
        }
        // Written by another sled version or with other parameters (SEGMENT_SIZE): the data is
        // intact and needs an export/import, not a fresh start.
        sled::Error::Unsupported(message)
            if message.contains("cannot change") || message.contains("was created using") =>
        {
            OpenFailure::Fatal(StoreError::Open {
                path: path.to_owned(),
                source,
            })
        }
        _ => OpenFailure::Damaged(source.to_string()),
    }
}

/// The outbox of a database moved aside: its sound entries in sequence order, how many
/// records failed their checksum, and why (part of) it could not be read.
fn salvage_outbox(path: &Path) -> (Vec<SyncMessage>, u64, Option<String>) {
    // A small cache and no background flusher: the copy is read once.
    let config = sled_config(path, 1024 * 1024).flush_every_ms(None);
    let db = match open_sled(&config, path) {
        Ok(db) => db,
        Err(OpenFailure::Damaged(reason)) => return (Vec::new(), 0, Some(reason)),
        Err(OpenFailure::Fatal(e)) => return (Vec::new(), 0, Some(e.to_string())),
    };
    // Opening a tree creates it: look first.
    if !db.tree_names().iter().any(|name| name == OUTBOX.as_bytes()) {
        return (Vec::new(), 0, Some("it has no outbox tree".into()));
    }
    let tree = match catch_unwind(AssertUnwindSafe(|| db.open_tree(OUTBOX))) {
        Ok(Ok(tree)) => tree,
        Ok(Err(e)) => return (Vec::new(), 0, Some(e.to_string())),
        Err(_) => {
            return (
                Vec::new(),
                0,
                Some("sled panicked opening the outbox".into()),
            );
        }
    };
    let mut messages = Vec::new();
    let scanned = catch_unwind(AssertUnwindSafe(|| {
        scan_outbox(&tree, |_, _, _, message| messages.push(message))
    }));
    match scanned {
        Ok(Ok(scan)) => (messages, scan.bad.len() as u64, None),
        Ok(Err((scan, e))) => (messages, scan.bad.len() as u64, Some(e.to_string())),
        Err(_) => (messages, 0, Some("sled panicked reading the outbox".into())),
    }
}

impl Store {
    /// Opens (or creates) the database at `options.path`, if that path is this product's (see
    /// the crate docs): anything else is [`StoreError::NotOurs`] and is left as it is. A damaged
    /// database is moved aside, its secret files destroyed, a fresh one started and the
    /// readable part of its outbox carried into the fresh one ([`OpenReport::moved_aside`]); a
    /// locked one is [`StoreError::Locked`].
    pub fn open(options: StoreOptions) -> Result<(Store, OpenReport), StoreError> {
        if options.outbox_max_entries == 0 {
            return Err(StoreError::InvalidOptions(
                "outbox_max_entries must be at least 1".into(),
            ));
        }
        if options.cache_capacity_bytes == 0 {
            return Err(StoreError::InvalidOptions(
                "cache_capacity_bytes must be above 0".into(),
            ));
        }
        let ownership = path::inspect(&options.path, &options.secret_files)?;
        if ownership == Ownership::New {
            path::mark(&options.path)?;
        }
        let mut report = OpenReport::default();
        let reason = match Self::try_open(&options, &mut report) {
            Ok(store) => {
                if ownership == Ownership::Unmarked {
                    path::mark(&options.path)?;
                }
                return Ok((store, report));
            }
            Err(OpenFailure::Fatal(e)) => return Err(e),
            Err(OpenFailure::Damaged(reason)) => reason,
        };

        let aside = path::move_aside(&options.path, &options.secret_files)?;
        error!(
            path = %options.path.display(),
            moved_to = %aside.display(),
            reason = %reason,
            "Database damaged: moved it aside and started a fresh one"
        );
        path::mark(&options.path)?;
        let store = match Self::try_open(&options, &mut report) {
            Ok(store) => store,
            Err(OpenFailure::Fatal(e)) => return Err(e),
            Err(OpenFailure::Damaged(reason)) => {
                return Err(StoreError::Open {
                    path: options.path.clone(),
                    source: sled::Error::Unsupported(format!(
                        "a fresh database failed to open too: {reason}"
                    )),
                });
            }
        };
        let (messages, outbox_corrupt, outbox_unreadable) = salvage_outbox(&aside);
        let outbox_carried = store.carry_over(messages)?;
        if outbox_corrupt > 0 || outbox_unreadable.is_some() {
            error!(
                moved_to = %aside.display(),
                carried = outbox_carried,
                corrupt = outbox_corrupt,
                unreadable = outbox_unreadable.as_deref().unwrap_or("-"),
                "Part of the damaged database's unsent outbox is lost"
            );
        } else {
            warn!(
                moved_to = %aside.display(),
                carried = outbox_carried,
                "The damaged database's unsent outbox was carried into the fresh one"
            );
        }
        report.moved_aside = Some(MovedAside {
            path: aside,
            reason,
            outbox_carried,
            outbox_corrupt,
            outbox_unreadable,
        });
        Ok((store, report))
    }

    fn try_open(options: &StoreOptions, report: &mut OpenReport) -> Result<Store, OpenFailure> {
        let path = &options.path;
        let db = open_sled(&sled_config(path, options.cache_capacity_bytes), path)?;
        let open_tree = |name: &'static str| {
            catch_unwind(AssertUnwindSafe(|| db.open_tree(name)))
                .map_err(|_| OpenFailure::Damaged(format!("sled panicked opening tree {name}")))?
                .map_err(|e| classify_open_error(path, e))
        };
        let windows = open_tree(WINDOWS)?;
        let days = open_tree(DAYS)?;
        let outbox = open_tree(OUTBOX)?;
        let meta = open_tree(META)?;
        let checkpoint = open_tree(CHECKPOINT)?;

        let damaged = |e: StoreError| OpenFailure::Damaged(e.to_string());
        let read_meta = |key: &'static [u8]| -> Result<Option<sled::IVec>, OpenFailure> {
            meta.get(key)
                .map_err(|e| damaged(sled_err("read", META)(e)))
        };
        let key_name = |key: &'static [u8]| move || String::from_utf8_lossy(key).into_owned();
        let next_seq = match read_meta(NEXT_SEQ)? {
            Some(v) => decode::<u64>(&v, META, &key_name(NEXT_SEQ)).map_err(damaged)?,
            None => 1,
        };
        let shed = match read_meta(SHED)? {
            Some(v) => decode::<ShedCounts>(&v, META, &key_name(SHED)).map_err(damaged)?,
            None => ShedCounts::default(),
        };
        let store_id = match read_meta(STORE_ID)? {
            Some(v) => Some(decode::<String>(&v, META, &key_name(STORE_ID)).map_err(damaged)?),
            None => None,
        };
        let last_chunk = checkpoint
            .scan_prefix(CHUNK_PREFIX)
            .keys()
            .next_back()
            .transpose()
            .map_err(|e| damaged(sled_err("scan", CHECKPOINT)(e)))?;
        let checkpoint_chunks = match last_chunk {
            Some(key) => chunk_index(&key).map_or(0, |n| n.saturating_add(1)),
            None => 0,
        };
        let legacy_checkpoint = checkpoint
            .contains_key(LEGACY_CHECKPOINT)
            .map_err(|e| damaged(sled_err("read", CHECKPOINT)(e)))?;

        // Index the outbox from its keys; drop records that fail their checksum.
        let mut index = OutboxIndex::new();
        let scan = scan_outbox(&outbox, |seq, kind, start, _| {
            index.insert(seq, (kind, start));
        })
        .map_err(|(_, e)| damaged(sled_err("scan", OUTBOX)(e)))?;
        if !scan.bad.is_empty() {
            let mut batch = sled::Batch::default();
            for key in &scan.bad {
                batch.remove(key.clone());
            }
            outbox
                .apply_batch(batch)
                .map_err(|e| damaged(sled_err("remove corrupt records", OUTBOX)(e)))?;
            report.corrupt_outbox_dropped = scan.bad.len() as u64;
        }
        // Never hand out a sequence number at or below one still in the outbox.
        let next_seq = index
            .last_key_value()
            .map_or(next_seq, |(&last, _)| next_seq.max(last + 1));

        Ok(Store {
            db,
            windows,
            days,
            outbox,
            meta,
            checkpoint,
            options: options.clone(),
            state: Mutex::new(State {
                outbox: index,
                next_seq,
                // What sled recovered at open is all there is: it is as durable as it gets.
                durable_below: next_seq,
                outbox_version: 0,
                shed,
                store_id,
                checkpoint_chunks,
                legacy_checkpoint,
                files: SledFiles::new(&options.path),
            }),
            outbox_changed: Condvar::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is only changed after the write it mirrors succeeded, in steps that cannot
        // panic half-way, so a poisoned lock still guards a consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The last committed checkpoint, if any. A record failing its checksum, of another
    /// format version or not decoding as `T` (or a missing chunk) is a [`StoreError::Corrupt`]
    /// naming it.
    pub fn load_checkpoint<T: DeserializeOwned>(
        &self,
    ) -> Result<Option<Checkpoint<T>>, StoreError> {
        let name = || "current".to_owned();
        let state = self.state();
        if state.checkpoint_chunks == 0 {
            let legacy = self
                .checkpoint
                .get(LEGACY_CHECKPOINT)
                .map_err(sled_err("read", CHECKPOINT))?;
            return legacy
                .map(|bytes| decode(&bytes, CHECKPOINT, &name))
                .transpose();
        }
        let mut bytes = Vec::new();
        for (expected, item) in (0u32..).zip(self.checkpoint.scan_prefix(CHUNK_PREFIX)) {
            let (key, chunk) = item.map_err(sled_err("scan", CHECKPOINT))?;
            if chunk_index(&key) != Some(expected) {
                return Err(StoreError::Corrupt {
                    tree: CHECKPOINT,
                    key: format!("current/{expected}"),
                    problem: Corruption::Missing,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        drop(state);
        // The envelope's checksum covers the whole checkpoint, across its chunks.
        decode(&bytes, CHECKPOINT, &name).map(Some)
    }

    /// One transaction over all trees, then made durable (flushed and fsynced), and only then
    /// visible to [`Store::outbox`]: each final summary whose [`IdempotencyKey`] is not stored
    /// yet is stored, given the next sequence number and put in the outbox (summaries already
    /// stored, or repeated within `finals`, are skipped); the outbox is held to its bound by
    /// shedding; then the checkpoint is written. Returns the messages newly put in the outbox.
    pub fn commit<T: Serialize>(
        &self,
        finals: &[SummaryPayload],
        checkpoint: &Checkpoint<T>,
    ) -> Result<Vec<SyncMessage>, StoreError> {
        let checkpoint_bytes = encode(checkpoint, CHECKPOINT, &|| "current".to_owned())?;
        let mut state = self.state();

        // Which summaries are new.
        let mut seen: HashSet<IdempotencyKey> = HashSet::new();
        let mut entries = Vec::new();
        for payload in finals {
            let key = payload.idempotency_key();
            if seen.contains(&key) {
                continue;
            }
            let tree_key = summary_tree_key(payload);
            let (tree, name) = match payload {
                SummaryPayload::Window(_) => (&self.windows, WINDOWS),
                SummaryPayload::Daily(_) => (&self.days, DAYS),
            };
            if tree
                .contains_key(&tree_key)
                .map_err(sled_err("read", name))?
            {
                continue;
            }
            let value = match payload {
                SummaryPayload::Window(w) => encode(w, WINDOWS, &|| describe_time_key(&tree_key))?,
                SummaryPayload::Daily(d) => encode(d, DAYS, &|| d.local_date.clone())?,
            };
            seen.insert(key.clone());
            entries.push(NewEntry {
                key,
                // Only what may leave the store goes in the outbox (k-anonymity); the windows
                // and days trees keep the full distributions for the dashboard.
                payload: payload.redacted(self.options.min_count),
                record: Some(SummaryRecord {
                    is_window: matches!(payload, SummaryPayload::Window(_)),
                    key: tree_key,
                    value,
                }),
            });
        }
        self.append(&mut state, finals, entries, Some(&checkpoint_bytes))
    }

    /// Puts the outbox entries of a database moved aside in this one's outbox, in their order,
    /// under new sequence numbers (same keys and payloads). Returns how many it holds now.
    fn carry_over(&self, messages: Vec<SyncMessage>) -> Result<u64, StoreError> {
        if messages.is_empty() {
            return Ok(0);
        }
        let mut state = self.state();
        let mut seen = HashSet::new();
        let payloads: Vec<SummaryPayload> = messages.iter().map(|m| m.payload.clone()).collect();
        let entries = messages
            .into_iter()
            .filter(|m| seen.insert(m.key.clone()))
            .map(|m| NewEntry {
                key: m.key,
                payload: m.payload,
                record: None,
            })
            .collect();
        Ok(self.append(&mut state, &payloads, entries, None)?.len() as u64)
    }

    /// Writes `entries` to the outbox under the next sequence numbers (with their summary
    /// records) and the checkpoint, in one transaction, shedding to the bound; then flushes and
    /// makes the entries visible. `payloads` (all of them, skipped ones too) must be of the
    /// database's store.
    fn append(
        &self,
        state: &mut MutexGuard<'_, State>,
        payloads: &[SummaryPayload],
        entries: Vec<NewEntry>,
        checkpoint: Option<&[u8]>,
    ) -> Result<Vec<SyncMessage>, StoreError> {
        // One store per database.
        let mut store_id = state.store_id.clone();
        for payload in payloads {
            let given = payload_store_id(payload);
            match &store_id {
                Some(stored) if stored != given => {
                    return Err(StoreError::StoreMismatch {
                        stored: stored.clone(),
                        given: given.to_owned(),
                    });
                }
                Some(_) => {}
                None => store_id = Some(given.to_owned()),
            }
        }

        let first_seq = state.next_seq;
        let next_seq = first_seq + entries.len() as u64;
        let keys: Vec<(u64, SummaryKind, Timestamp)> = entries
            .iter()
            .zip(first_seq..)
            .map(|(e, seq)| (seq, e.key.kind, e.key.window_start))
            .collect();

        // What to shed: the oldest windows first (existing entries, then new ones), then the
        // oldest dailies if the outbox holds nothing else.
        let bound = self.options.outbox_max_entries;
        let total = state.outbox.len() as u64 + entries.len() as u64;
        let mut excess = total.saturating_sub(bound);
        let mut shed: Vec<(u64, SummaryKind, Timestamp)> = Vec::new();
        if excess > 0 {
            let all: Vec<_> = state
                .outbox
                .iter()
                .map(|(&s, &(k, t))| (s, k, t))
                .chain(keys.iter().copied())
                .collect();
            for wanted in [SummaryKind::Window, SummaryKind::Daily] {
                for &(seq, kind, start) in &all {
                    if excess == 0 {
                        break;
                    }
                    if kind == wanted {
                        shed.push((seq, kind, start));
                        excess -= 1;
                    }
                }
            }
        }
        let shed_seqs: HashSet<u64> = shed.iter().map(|&(s, _, _)| s).collect();
        let mut shed_counts = state.shed;
        for &(_, kind, _) in &shed {
            shed_counts.add(kind);
        }

        // Encode everything before the transaction (its closure may run more than once).
        let mut records = Vec::new();
        let mut outbox_writes: Vec<([u8; 17], Vec<u8>)> = Vec::new();
        let mut messages = Vec::new();
        for (entry, &(seq, kind, start)) in entries.into_iter().zip(&keys) {
            records.extend(entry.record);
            if shed_seqs.contains(&seq) {
                continue;
            }
            let message = SyncMessage::new(seq, entry.key, entry.payload);
            let okey = outbox_key(seq, kind, start);
            outbox_writes.push((
                okey,
                encode(&message, OUTBOX, &|| describe_outbox_key(&okey))?,
            ));
            messages.push(message);
        }
        let outbox_removals: Vec<[u8; 17]> = shed
            .iter()
            .filter(|(seq, _, _)| *seq < first_seq)
            .map(|&(seq, kind, start)| outbox_key(seq, kind, start))
            .collect();
        let meta_name = |k: &'static [u8]| move || String::from_utf8_lossy(k).into_owned();
        let next_seq_bytes = encode(&next_seq, META, &meta_name(NEXT_SEQ))?;
        let shed_bytes = (!shed.is_empty())
            .then(|| encode(&shed_counts, META, &meta_name(SHED)))
            .transpose()?;
        let store_id_bytes = match (&state.store_id, &store_id) {
            (None, Some(id)) => Some(encode(id, META, &meta_name(STORE_ID))?),
            _ => None,
        };
        let chunks: Vec<&[u8]> = checkpoint
            .map(|bytes| bytes.chunks(CHECKPOINT_CHUNK_BYTES).collect())
            .unwrap_or_default();
        let new_chunks = u32::try_from(chunks.len()).map_err(|_| StoreError::Encode {
            tree: CHECKPOINT,
            key: "current".into(),
            source: serde::ser::Error::custom("the checkpoint is too large to store"),
        })?;
        let old_chunks = state.checkpoint_chunks;
        let drop_legacy = checkpoint.is_some() && state.legacy_checkpoint;

        let result: Result<(), TransactionError<Infallible>> = (
            &self.windows,
            &self.days,
            &self.outbox,
            &self.meta,
            &self.checkpoint,
        )
            .transaction(|(windows, days, outbox, meta, checkpoint_tree)| -> ConflictableTransactionResult<(), Infallible> {
                for record in &records {
                    let tree = if record.is_window { windows } else { days };
                    tree.insert(record.key.as_slice(), record.value.as_slice())?;
                }
                for (key, value) in &outbox_writes {
                    outbox.insert(&key[..], value.as_slice())?;
                }
                for key in &outbox_removals {
                    outbox.remove(&key[..])?;
                }
                meta.insert(NEXT_SEQ, next_seq_bytes.as_slice())?;
                if let Some(bytes) = &shed_bytes {
                    meta.insert(SHED, bytes.as_slice())?;
                }
                if let Some(bytes) = &store_id_bytes {
                    meta.insert(STORE_ID, bytes.as_slice())?;
                }
                if checkpoint.is_some() {
                    for (n, chunk) in (0u32..).zip(&chunks) {
                        checkpoint_tree.insert(&chunk_key(n)[..], *chunk)?;
                    }
                    for n in new_chunks..old_chunks {
                        checkpoint_tree.remove(&chunk_key(n)[..])?;
                    }
                }
                if drop_legacy {
                    checkpoint_tree.remove(LEGACY_CHECKPOINT)?;
                }
                Ok(())
            });
        match result {
            Ok(()) => {}
            Err(TransactionError::Storage(source)) => {
                return Err(StoreError::Sled {
                    op: "commit",
                    tree: "windows+days+outbox+meta+checkpoint",
                    source,
                });
            }
            Err(TransactionError::Abort(never)) => match never {},
        }

        // Mirror in memory.
        for &(seq, kind, start) in &shed {
            warn!(
                kind = ?kind,
                window_start = start.millis(),
                seq,
                bound,
                "Outbox full: shed the oldest entry (the summary stays stored locally)"
            );
            state.outbox.remove(&seq);
        }
        state.next_seq = next_seq;
        state.shed = shed_counts;
        state.store_id = store_id;
        if checkpoint.is_some() {
            state.checkpoint_chunks = new_chunks;
            state.legacy_checkpoint &= !drop_legacy;
        }
        for m in &messages {
            state.outbox.insert(m.seq, (m.key.kind, m.key.window_start));
        }
        if !shed.is_empty() {
            self.outbox_did_change(state);
        }
        // Durable, then visible: sync reads the outbox only below `durable_below`.
        self.flush_locked(state)?;
        Ok(messages)
    }

    fn outbox_did_change(&self, state: &mut State) {
        state.outbox_version += 1;
        self.outbox_changed.notify_all();
    }

    /// Makes everything written so far durable (acks and prunes too: [`Store::commit`] is
    /// durable by itself): sled's flush, then an `fdatasync` of the log and an `fsync` of new
    /// blob files and of the directories (see the crate docs for why).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush_locked(&mut self.state())
    }

    fn flush_locked(&self, state: &mut State) -> Result<(), StoreError> {
        self.db.flush().map_err(sled_err("flush", "*"))?;
        state.files.sync().map_err(|e| StoreError::Sync {
            path: e.path,
            source: e.source,
        })?;
        if state.durable_below != state.next_seq {
            state.durable_below = state.next_seq;
            self.outbox_did_change(state);
        }
        Ok(())
    }

    /// Outbox entries in sequence order after `after_seq` (`None`: from the start), at most
    /// `limit`. Only entries on disk are shown: nothing is published before it is durable.
    pub fn outbox(
        &self,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<SyncMessage>, StoreError> {
        let start = match after_seq {
            None => 0,
            Some(seq) => seq.saturating_add(1),
        };
        let state = self.state();
        if start >= state.durable_below {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (&seq, &(kind, window_start)) in
            state.outbox.range(start..state.durable_below).take(limit)
        {
            let key = outbox_key(seq, kind, window_start);
            let describe = || describe_outbox_key(&key);
            let value = self
                .outbox
                .get(key)
                .map_err(sled_err("read", OUTBOX))?
                .ok_or_else(|| StoreError::Corrupt {
                    tree: OUTBOX,
                    key: describe(),
                    problem: Corruption::Missing,
                })?;
            out.push(decode(&value, OUTBOX, &describe)?);
        }
        Ok(out)
    }

    /// Counts changes of what [`Store::outbox`] shows (entries made durable, acked or shed).
    pub fn outbox_version(&self) -> u64 {
        self.state().outbox_version
    }

    /// Blocks until [`Store::outbox_version`] differs from `seen`, or `timeout` passed; returns
    /// the version then. For a task that waits for the outbox to fill or drain.
    pub fn wait_for_outbox_change(&self, seen: u64, timeout: Duration) -> u64 {
        let state = self.state();
        let (state, _) = self
            .outbox_changed
            .wait_timeout_while(state, timeout, |s| s.outbox_version == seen)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.outbox_version
    }

    /// HQ acknowledged these sequence numbers: removes them from the outbox (unknown ones, and
    /// ones not yet durable, which cannot have been published, are ignored). Returns how many
    /// were removed. Durable within [`FLUSH_EVERY_MS`] or at the next commit or
    /// [`Store::flush`]; an ack lost to a crash means a harmless re-send.
    pub fn ack(&self, seqs: &[u64]) -> Result<usize, StoreError> {
        let mut state = self.state();
        let mut batch = sled::Batch::default();
        let mut removed = Vec::new();
        for &seq in seqs {
            if seq >= state.durable_below {
                continue;
            }
            if let Some(&(kind, start)) = state.outbox.get(&seq) {
                if !removed.contains(&seq) {
                    batch.remove(&outbox_key(seq, kind, start)[..]);
                    removed.push(seq);
                }
            }
        }
        if removed.is_empty() {
            return Ok(0);
        }
        self.outbox
            .apply_batch(batch)
            .map_err(sled_err("remove acked entries", OUTBOX))?;
        for seq in &removed {
            state.outbox.remove(seq);
        }
        self.outbox_did_change(&mut state);
        Ok(removed.len())
    }

    /// Entries waiting for HQ's ack (including any whose commit's flush failed: they are shown
    /// by [`Store::outbox`] after the next successful flush).
    pub fn outbox_len(&self) -> u64 {
        self.state().outbox.len() as u64
    }

    /// Stored final windows with `window_start` in `[from, to)`, in time order.
    pub fn windows(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<WindowSummary>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.windows.range(time_key(from)..time_key(to)) {
            let (key, value) = item.map_err(sled_err("scan", WINDOWS))?;
            out.push(decode(&value, WINDOWS, &|| describe_time_key(&key))?);
        }
        Ok(out)
    }

    /// Stored daily summaries with `local_date` in `[from_date, to_date]` (`YYYY-MM-DD`).
    pub fn days(&self, from_date: &str, to_date: &str) -> Result<Vec<DailySummary>, StoreError> {
        if from_date > to_date {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.days.range(from_date.as_bytes()..=to_date.as_bytes()) {
            let (key, value) = item.map_err(sled_err("scan", DAYS))?;
            out.push(decode(&value, DAYS, &|| {
                String::from_utf8_lossy(&key).into_owned()
            })?);
        }
        Ok(out)
    }

    /// Deletes stored windows that started, and days whose date is, more than `retention_days`
    /// before `now` (days by their key: dates before the UTC date of the cut-off, so a day is
    /// kept up to one day longer than a window in time zones east of UTC). The outbox is never
    /// pruned by age. Returns how many records were removed.
    pub fn prune(&self, now: Timestamp) -> Result<u64, StoreError> {
        let _state = self.state();
        let cutoff = now.plus_secs(-(i64::from(self.options.retention_days) * 86_400));
        let mut removed = 0;
        let mut batch = sled::Batch::default();
        for key in self.windows.range(..time_key(cutoff)).keys() {
            batch.remove(key.map_err(sled_err("scan", WINDOWS))?);
            removed += 1;
        }
        self.windows
            .apply_batch(batch)
            .map_err(sled_err("prune", WINDOWS))?;
        let cutoff_date = utc_date(cutoff);
        let mut batch = sled::Batch::default();
        for key in self.days.range(..cutoff_date.as_bytes()).keys() {
            batch.remove(key.map_err(sled_err("scan", DAYS))?);
            removed += 1;
        }
        self.days
            .apply_batch(batch)
            .map_err(sled_err("prune", DAYS))?;
        Ok(removed)
    }

    /// Bytes of all the database's files.
    pub fn size_on_disk(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(path) else {
                return 0;
            };
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(m) if m.is_dir() => walk(&entry.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.options.path)
    }

    pub fn stats(&self) -> StorageStats {
        let (outbox_len, shed_total, next_seq) = {
            let state = self.state();
            (state.outbox.len() as u64, state.shed, state.next_seq)
        };
        StorageStats {
            outbox_len,
            shed_total,
            size_on_disk_bytes: self.size_on_disk(),
            next_seq,
        }
    }
}

impl Drop for Store {
    /// A clean shutdown is durable: the outstanding acks and prunes are flushed too.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            warn!(error = %e, "Flush at shutdown failed");
        }
    }
}
