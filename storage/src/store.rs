use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

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
use crate::record::{
    decode, encode, outbox_key, parse_outbox_key, time_from_key, time_key, utc_date,
};
use crate::{Corruption, StoreError};

/// sled's background flush interval. Every flush that has something to write appends a
/// (partly filled) chunk to the log and fsyncs it; on an SD card each costs a read-modify-write
/// of a whole erase block, so fewer, larger flushes wear it less. Commits do not depend on it
/// (the agent calls [`Store::flush`] after each), only acks and prunes do, and losing those is
/// harmless (see the crate docs). 5 s merges the acks of a sync round into one write.
pub const FLUSH_EVERY_MS: u64 = 5_000;

/// sled's log segment size; values over a quarter of it go to separate blob files. sled's
/// 512 KiB default puts the ~200 KB checkpoint in a new blob file at every commit (a file
/// created, fsynced and later deleted each minute) and kept 130-290 MB of them on disk over two
/// days; at 2 MiB the checkpoint stays in the log: 40-60 MB on disk, and a flush is one
/// fdatasync. Part of the on-disk format: sled refuses to open a database written with
/// another value (an error, see [`Store::open`]).
pub const SEGMENT_SIZE: usize = 2 * 1024 * 1024;

const WINDOWS: &str = "windows";
const DAYS: &str = "days";
const OUTBOX: &str = "outbox";
const META: &str = "meta";
const CHECKPOINT: &str = "checkpoint";

const NEXT_SEQ: &[u8] = b"next_seq";
const SHED: &[u8] = b"shed";
const STORE_ID: &[u8] = b"store_id";
const CURRENT: &[u8] = b"current";

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
        }
    }
}

/// What happened while opening.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Set when a damaged database was moved here and a fresh one started.
    pub moved_aside: Option<PathBuf>,
    /// Outbox records that failed their checksum at open and were dropped.
    pub corrupt_outbox_dropped: u64,
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
    shed: ShedCounts,
    store_id: Option<String>,
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

/// Why an open attempt failed.
enum OpenFailure {
    /// The database is damaged: move it aside and start fresh.
    Damaged(String),
    /// Anything else: report it, touch nothing.
    Fatal(StoreError),
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

impl Store {
    /// Opens (or creates) the database. A damaged database is moved aside and a fresh one
    /// started ([`OpenReport::moved_aside`]); a locked one is [`StoreError::Locked`].
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
        let mut report = OpenReport::default();
        match Self::try_open(&options, &mut report) {
            Ok(store) => return Ok((store, report)),
            Err(OpenFailure::Fatal(e)) => return Err(e),
            Err(OpenFailure::Damaged(reason)) => {
                let aside = Self::move_aside(&options.path)?;
                error!(
                    path = %options.path.display(),
                    moved_to = %aside.display(),
                    reason = %reason,
                    "Database damaged: moved it aside and started a fresh one"
                );
                report.moved_aside = Some(aside);
            }
        }
        match Self::try_open(&options, &mut report) {
            Ok(store) => Ok((store, report)),
            Err(OpenFailure::Fatal(e)) => Err(e),
            Err(OpenFailure::Damaged(reason)) => Err(StoreError::Open {
                path: options.path.clone(),
                source: sled::Error::Unsupported(format!(
                    "a fresh database failed to open too: {reason}"
                )),
            }),
        }
    }

    fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let base = format!("{}.corrupt-{secs}", path.display());
        let mut to = PathBuf::from(&base);
        let mut n = 1;
        while to.exists() {
            to = PathBuf::from(format!("{base}-{n}"));
            n += 1;
        }
        std::fs::rename(path, &to).map_err(|source| StoreError::MoveAside {
            path: path.to_owned(),
            to: to.clone(),
            source,
        })?;
        Ok(to)
    }

    fn try_open(options: &StoreOptions, report: &mut OpenReport) -> Result<Store, OpenFailure> {
        let path = &options.path;
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_capacity_bytes)
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .segment_size(SEGMENT_SIZE);
        // sled is beta: a panic on a damaged file is treated like a corruption error.
        let db = match catch_unwind(AssertUnwindSafe(|| config.open())) {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(classify_open_error(path, e)),
            Err(_) => return Err(OpenFailure::Damaged("sled panicked while opening".into())),
        };
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

        // Index the outbox from its keys; drop records that fail their checksum.
        let mut index = OutboxIndex::new();
        let mut bad_keys = Vec::new();
        for item in outbox.iter() {
            let (key, value) = item.map_err(|e| damaged(sled_err("scan", OUTBOX)(e)))?;
            let describe = || describe_outbox_key(&key);
            let parsed = parse_outbox_key(&key);
            let checked = decode::<SyncMessage>(&value, OUTBOX, &describe);
            match (parsed, checked) {
                (Some((seq, kind, start)), Ok(_)) => {
                    index.insert(seq, (kind, start));
                }
                (_, Err(e)) => {
                    error!(error = %e, "Dropping a corrupt outbox record");
                    bad_keys.push(key);
                }
                (None, Ok(_)) => {
                    let e = StoreError::Corrupt {
                        tree: OUTBOX,
                        key: describe(),
                        problem: Corruption::BadKey,
                    };
                    error!(error = %e, "Dropping a corrupt outbox record");
                    bad_keys.push(key);
                }
            }
        }
        if !bad_keys.is_empty() {
            let mut batch = sled::Batch::default();
            for key in &bad_keys {
                batch.remove(key.clone());
            }
            outbox
                .apply_batch(batch)
                .map_err(|e| damaged(sled_err("remove corrupt records", OUTBOX)(e)))?;
            report.corrupt_outbox_dropped = bad_keys.len() as u64;
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
                shed,
                store_id,
                files: SledFiles::new(&options.path),
            }),
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
    /// format version or not decoding as `T` is a [`StoreError::Corrupt`] naming it.
    pub fn load_checkpoint<T: DeserializeOwned>(
        &self,
    ) -> Result<Option<Checkpoint<T>>, StoreError> {
        let Some(bytes) = self
            .checkpoint
            .get(CURRENT)
            .map_err(sled_err("read", CHECKPOINT))?
        else {
            return Ok(None);
        };
        decode(&bytes, CHECKPOINT, &|| "current".to_owned()).map(Some)
    }

    /// One transaction over all trees: each final summary whose [`IdempotencyKey`] is not
    /// stored yet is stored, given the next sequence number and put in the outbox (summaries
    /// already stored, or repeated within `finals`, are skipped); the outbox is held to its
    /// bound by shedding; then the checkpoint is written. Returns the messages newly put in the
    /// outbox. Nothing of it may be published before [`Store::flush`] returns.
    pub fn commit<T: Serialize>(
        &self,
        finals: &[SummaryPayload],
        checkpoint: &Checkpoint<T>,
    ) -> Result<Vec<SyncMessage>, StoreError> {
        let checkpoint_bytes = encode(checkpoint, CHECKPOINT, &|| "current".to_owned())?;
        let mut state = self.state();

        // Which summaries are new; one store per database.
        let mut store_id = state.store_id.clone();
        let mut seen: HashSet<IdempotencyKey> = HashSet::new();
        let mut fresh: Vec<(&SummaryPayload, Vec<u8>)> = Vec::new();
        for payload in finals {
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
            if !seen.insert(payload.idempotency_key()) {
                continue;
            }
            let key = summary_tree_key(payload);
            let (tree, name) = match payload {
                SummaryPayload::Window(_) => (&self.windows, WINDOWS),
                SummaryPayload::Daily(_) => (&self.days, DAYS),
            };
            if tree.contains_key(&key).map_err(sled_err("read", name))? {
                continue;
            }
            fresh.push((payload, key));
        }

        // Sequence numbers and messages.
        let first_seq = state.next_seq;
        let messages: Vec<SyncMessage> = fresh
            .iter()
            .zip(first_seq..)
            .map(|((payload, _), seq)| {
                // Only what may leave the store goes in the outbox (k-anonymity); the
                // windows and days trees keep the full distributions for the dashboard.
                SyncMessage::new(
                    seq,
                    payload.idempotency_key(),
                    payload.redacted(self.options.min_count),
                )
            })
            .collect();
        let next_seq = first_seq + messages.len() as u64;

        // What to shed: the oldest windows first (existing entries, then new ones), then the
        // oldest dailies if the outbox holds nothing else.
        let bound = self.options.outbox_max_entries;
        let total = state.outbox.len() as u64 + messages.len() as u64;
        let mut excess = total.saturating_sub(bound);
        let mut shed: Vec<(u64, SummaryKind, Timestamp)> = Vec::new();
        if excess > 0 {
            let all = state.outbox.iter().map(|(&s, &(k, t))| (s, k, t)).chain(
                messages
                    .iter()
                    .map(|m| (m.seq, m.key.kind, m.key.window_start)),
            );
            let all: Vec<_> = all.collect();
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
        let mut summary_writes: Vec<(bool, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut outbox_writes: Vec<([u8; 17], Vec<u8>)> = Vec::new();
        for ((payload, key), message) in fresh.iter().zip(&messages) {
            let (is_window, value) = match payload {
                SummaryPayload::Window(w) => {
                    (true, encode(w, WINDOWS, &|| describe_time_key(key))?)
                }
                SummaryPayload::Daily(d) => (false, encode(d, DAYS, &|| d.local_date.clone())?),
            };
            summary_writes.push((is_window, key.clone(), value));
            if !shed_seqs.contains(&message.seq) {
                let okey = outbox_key(message.seq, message.key.kind, message.key.window_start);
                let value = encode(message, OUTBOX, &|| describe_outbox_key(&okey))?;
                outbox_writes.push((okey, value));
            }
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

        let result: Result<(), TransactionError<Infallible>> = (
            &self.windows,
            &self.days,
            &self.outbox,
            &self.meta,
            &self.checkpoint,
        )
            .transaction(|(windows, days, outbox, meta, checkpoint)| -> ConflictableTransactionResult<(), Infallible> {
                for (is_window, key, value) in &summary_writes {
                    let tree = if *is_window { windows } else { days };
                    tree.insert(key.as_slice(), value.as_slice())?;
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
                checkpoint.insert(CURRENT, checkpoint_bytes.as_slice())?;
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
        let published: Vec<SyncMessage> = messages
            .into_iter()
            .filter(|m| !shed_seqs.contains(&m.seq))
            .collect();
        for m in &published {
            state.outbox.insert(m.seq, (m.key.kind, m.key.window_start));
        }
        Ok(published)
    }

    /// Makes everything committed so far durable: sled's flush, then an `fdatasync` of the log
    /// and an `fsync` of new blob files and of the directories (see the crate docs for why).
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut state = self.state();
        self.db.flush().map_err(sled_err("flush", "*"))?;
        state.files.sync().map_err(|e| StoreError::Sync {
            path: e.path,
            source: e.source,
        })
    }

    /// Outbox entries in sequence order after `after_seq` (`None`: from the start), at most
    /// `limit`.
    pub fn outbox(
        &self,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<SyncMessage>, StoreError> {
        let start = match after_seq {
            None => 0,
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(seq) => seq + 1,
        };
        let mut out = Vec::new();
        for item in self.outbox.range(start.to_be_bytes()..).take(limit) {
            let (key, value) = item.map_err(sled_err("scan", OUTBOX))?;
            out.push(decode(&value, OUTBOX, &|| describe_outbox_key(&key))?);
        }
        Ok(out)
    }

    /// HQ acknowledged these sequence numbers: removes them from the outbox (unknown ones are
    /// ignored). Returns how many were removed. Durable within [`FLUSH_EVERY_MS`] or at the next
    /// [`Store::flush`]; an ack lost to a crash means a harmless re-send.
    pub fn ack(&self, seqs: &[u64]) -> Result<usize, StoreError> {
        let mut state = self.state();
        let mut batch = sled::Batch::default();
        let mut removed = Vec::new();
        for &seq in seqs {
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
        Ok(removed.len())
    }

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
