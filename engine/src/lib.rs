//! The funnel engine: sightings, door counts and sales in; final window and daily summaries
//! out. Pure and deterministic: no I/O, no clock — every call is given the time, and the same
//! inputs always give the same outputs (quinn-proto's and rumqttc's `MqttState` shape).
//!
//! ```text
//! handle_event(event, now) ─► reorder buffer ─(watermark)─► per-device state machines
//! handle_timeout(now)      ─►        │                              │ passes, visits
//!                                    ▼                              ▼
//!                        door / POS counts ───────────────►  window accumulators
//!                                                                   │ final?
//! poll_window() / poll_daily()  ◄───────────────────────────────────┘
//! ```
//!
//! Definitions follow `METRICS.md` line by line; see `device.rs` for presence, passes
//! and visits, and [`Engine::handle_timeout`] for window finality.

mod calendar;
mod config;
mod coverage;
mod device;
mod limits;
mod migrate;
mod rebase;
mod smoothing;
mod stats;

use std::collections::{BTreeMap, VecDeque};

use chrono::NaiveDate;
use rustc_hash::{FxHashMap, FxHashSet};
use storefront_protocol::{
    Coverage, DailySummary, DeviceId, DoorCount, DoorDirection, Event, Funnel, InputKind,
    RepeatCounts, SUMMARY_SCHEMA_VERSION, Timestamp, WindowSummary, ZoneSummary,
};

pub use calendar::Calendar;
pub use config::{EngineConfig, Thresholds, ZoneConfig, ZoneKind};
pub use limits::Limits;
pub use migrate::Migration;
pub use stats::{IngestStats, RejectReason, Shed};

use coverage::CoverageState;
use device::{DeviceState, Params, Sink, VisitRecord, ZoneParams};
use limits::{Novelty, RecentIds};
use migrate::Layout;

/// Zones are indexed by `u8`: a config may have at most this many (the `config` crate refuses
/// more; an engine given more ignores the rest, whose scanners are then unknown).
pub const MAX_ZONES: usize = 1 << u8::BITS;
/// Scanners and door sensors are indexed by `u16`: at most this many of each.
pub const MAX_SCANNERS: usize = 1 << u16::BITS;
pub const MAX_DOOR_SENSORS: usize = 1 << u16::BITS;

/// Events stamped before this (2020-01-01) come from a gateway whose clock is not set.
const EARLIEST_SANE_MS: i64 = 1_577_836_800_000;
/// How far ahead of the receiving clock an event time may be.
const MAX_FUTURE_MS: i64 = 120_000;
/// The buffer is released in steps of event time, so sorting is amortised over many events.
const RELEASE_STEP_MS: i64 = 1_000;
/// How often (event time) every device is checked for time-driven transitions.
const SWEEP_EVERY_MS: i64 = 5_000;
/// A buffer this large is released regardless of the watermark, to bound memory.
const MAX_BUFFERED: usize = 1 << 20;

/// An accepted event, resolved against the config, waiting for its time to pass the watermark.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Pending {
    t: i64,
    kind: PendingKind,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum PendingKind {
    Sighting {
        scanner: u16,
        zone: u8,
        device: DeviceId,
        rssi: i8,
        stable: bool,
    },
    // Rare kinds are boxed so the buffer's common entry (a sighting) stays small.
    Door(Box<PendingDoor>),
    Transaction(Box<PendingTransaction>),
    /// A sign of life from a configured source: only marks its input kind alive.
    Alive(InputKind),
}

impl PendingKind {
    fn input(&self) -> InputKind {
        match self {
            PendingKind::Sighting { .. } => InputKind::Ble,
            PendingKind::Door(_) => InputKind::Door,
            PendingKind::Transaction(_) => InputKind::Pos,
            PendingKind::Alive(input) => *input,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct PendingDoor {
    sensor: u16,
    record: Option<Box<str>>,
    count: DoorCount,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct PendingTransaction {
    id: Box<str>,
    amount_minor: Option<i64>,
}

/// What device state machines report; applied to windows by the engine.
#[derive(Clone, Debug)]
enum Outcome {
    PassOpened(i64),
    PassResolved(i64, bool),
    VisitOpened(i64),
    VisitClosed(VisitRecord),
}

/// An outcome with the device it happened to (repeat detection needs the device).
#[derive(Clone, Debug)]
struct DeviceOutcome {
    device: DeviceId,
    stable: bool,
    outcome: Outcome,
}

/// Collects one device's outcomes, tagged with the device.
struct OutcomeSink<'a> {
    device: DeviceId,
    stable: bool,
    out: &'a mut Vec<DeviceOutcome>,
}

impl OutcomeSink<'_> {
    fn push(&mut self, outcome: Outcome) {
        self.out.push(DeviceOutcome {
            device: self.device,
            stable: self.stable,
            outcome,
        });
    }
}

impl Sink for OutcomeSink<'_> {
    fn pass_opened(&mut self, start: i64) {
        self.push(Outcome::PassOpened(start));
    }
    fn pass_resolved(&mut self, start: i64, passer_by: bool) {
        self.push(Outcome::PassResolved(start, passer_by));
    }
    fn visit_opened(&mut self, start: i64) {
        self.push(Outcome::VisitOpened(start));
    }
    fn visit_closed(&mut self, visit: VisitRecord) {
        self.push(Outcome::VisitClosed(visit));
    }
}

/// A window being filled.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct WindowAcc {
    funnel: Funnel,
    /// Passes and visits started in this window that are not decided yet.
    pending: u32,
}

/// Door records are re-sent within minutes or hours of the original.
const DOOR_RECORD_RETENTION_MS: i64 = 2 * 86_400_000;
/// POS ids are kept a week: re-sends come within minutes, ids may recycle after months.
const TRANSACTION_RETENTION_MS: i64 = 7 * 86_400_000;

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct DoorSensorState {
    /// The last cumulative register read counted: `(time, in_total, out_total)`.
    last_register: Option<(i64, u64, u64)>,
    /// Record ids seen, for de-duplication.
    records: RecentIds,
    /// Time of the latest record (any kind), to judge how many crossings the next can hold.
    #[serde(default)]
    last_record: Option<i64>,
}

/// The local days on which a device had visits: the latest and the one before it.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct VisitDays {
    last_day: i32,
    previous_day: Option<i32>,
}

/// Live figures, not tied to a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStatus {
    /// Devices present in-store now.
    pub devices_in_store: usize,
    /// Devices the engine is tracking (for memory accounting).
    pub tracked_devices: usize,
    /// Events waiting for the watermark.
    pub buffered_events: usize,
    /// Devices remembered for repeat detection.
    pub visit_history: usize,
    /// Ids kept for de-duplication: transactions and every door sensor's records.
    pub dedup_ids: usize,
}

/// Version of [`Snapshot`]'s layout; a snapshot of another version is not restored.
pub const SNAPSHOT_VERSION: u32 = 2;

/// The engine's whole open state, to checkpoint and restore across restarts. Opaque outside
/// the engine: the agent's storage encodes it, checksums it and hands it back.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    version: u32,
    store_id: String,
    devices: Vec<(DeviceId, DeviceState)>,
    history: Vec<(DeviceId, VisitDays)>,
    transactions: RecentIds,
    door_state: Vec<DoorSensorState>,
    buffer: VecDeque<Pending>,
    max_seen: i64,
    watermark: i64,
    next_release: i64,
    clock: i64,
    next_sweep: i64,
    next_window: Option<i64>,
    windows: Vec<(i64, WindowAcc)>,
    days: Vec<(NaiveDate, DailySummary)>,
    ready_windows: VecDeque<WindowSummary>,
    ready_days: VecDeque<DailySummary>,
    stats: IngestStats,
    /// The names behind the indexes above; empty in snapshots written before names were kept
    /// (read positionally).
    #[serde(default)]
    layout: Layout,
    /// Absent in snapshots taken before coverage was recorded: restored as "nothing alive yet".
    #[serde(default)]
    coverage: CoverageState,
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "snapshot version {found} is not supported (this build restores version {SNAPSHOT_VERSION})"
    )]
    Version { found: u32 },
    #[error("snapshot is of store {found:?}, the config is for {expected:?}")]
    OtherStore { found: String, expected: String },
}

/// The funnel engine for one store. See the crate docs.
pub struct Engine {
    config: EngineConfig,
    calendar: Calendar,
    params: Params,
    in_store_zones: Vec<(u8, String)>,
    scanners: FxHashMap<String, (u16, u8)>,
    door_sensors: FxHashMap<String, u16>,
    pos_sources: FxHashSet<String>,
    door_state: Vec<DoorSensorState>,
    staff: FxHashSet<DeviceId>,
    devices: FxHashMap<DeviceId, DeviceState>,
    history: FxHashMap<DeviceId, VisitDays>,
    transactions: RecentIds,
    buffer: VecDeque<Pending>,
    buffer_sorted: bool,
    max_seen: i64,
    /// Every event before this time has been processed; later ones are rejected as late.
    watermark: i64,
    next_release: i64,
    /// Event time up to which the state machines have run.
    clock: i64,
    next_sweep: i64,
    /// Start of the next window to open; `None` until the first event.
    next_window: Option<i64>,
    windows: BTreeMap<i64, WindowAcc>,
    days: BTreeMap<NaiveDate, DailySummary>,
    ready_windows: VecDeque<WindowSummary>,
    ready_days: VecDeque<DailySummary>,
    outcomes: Vec<DeviceOutcome>,
    stats: IngestStats,
    layout: Layout,
    /// What restoring a checkpoint under a changed config dropped.
    migration: Option<Migration>,
    coverage: CoverageState,
}

fn rssi_x2(dbm: i16) -> i16 {
    dbm.saturating_mul(2)
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        let th = &config.thresholds;
        let mut scanners = FxHashMap::default();
        let mut zones = Vec::new();
        let mut in_store_zones = Vec::new();
        for (zi, zone) in config.zones.iter().enumerate() {
            let Ok(zi) = u8::try_from(zi) else {
                break;
            };
            zones.push(ZoneParams {
                in_store: zone.kind == ZoneKind::InStore,
                enter_x2: rssi_x2(zone.enter_rssi_dbm),
                exit_x2: rssi_x2(zone.exit_rssi_dbm),
            });
            if zone.kind == ZoneKind::InStore {
                in_store_zones.push((zi, zone.id.clone()));
            }
            for scanner in &zone.scanners {
                let Ok(index) = u16::try_from(scanners.len()) else {
                    break;
                };
                scanners.entry(scanner.clone()).or_insert((index, zi));
            }
        }
        let params = Params {
            smoothing_ms: th.smoothing_ms,
            min_samples: th.min_samples,
            confirm_ms: th.presence_confirm_ms,
            presence_timeout_ms: th.presence_timeout_ms,
            visit_gap_ms: th.visit_gap_ms,
            visit_max_ms: th.visit_max_ms,
            zones,
        };
        let door_sensors: FxHashMap<String, u16> = config
            .door_sensors
            .iter()
            .enumerate()
            .map_while(|(i, s)| Some((s.clone(), u16::try_from(i).ok()?)))
            .collect();
        let mut engine = Engine {
            calendar: Calendar::new(config.timezone, th.window_seconds),
            params,
            in_store_zones,
            scanners,
            door_state: vec![DoorSensorState::default(); door_sensors.len()],
            door_sensors,
            pos_sources: config.pos_sources.iter().cloned().collect(),
            staff: config.staff_devices.iter().copied().collect(),
            devices: FxHashMap::default(),
            history: FxHashMap::default(),
            transactions: RecentIds::default(),
            buffer: VecDeque::new(),
            buffer_sorted: true,
            max_seen: i64::MIN,
            watermark: i64::MIN,
            next_release: i64::MIN,
            clock: i64::MIN,
            next_sweep: i64::MIN,
            next_window: None,
            windows: BTreeMap::new(),
            days: BTreeMap::new(),
            ready_windows: VecDeque::new(),
            ready_days: VecDeque::new(),
            outcomes: Vec::new(),
            stats: IngestStats::default(),
            layout: Layout::default(),
            migration: None,
            coverage: CoverageState::default(),
            config,
        };
        engine.layout = Layout::of(&engine);
        engine
    }

    /// The open state, for a checkpoint. Restoring it with [`Engine::restore`] and feeding the
    /// same later events gives exactly the outputs the engine would have given.
    pub fn snapshot(&self) -> Snapshot {
        let mut devices: Vec<_> = self
            .devices
            .iter()
            .map(|(id, d)| (*id, d.clone()))
            .collect();
        devices.sort_by_key(|(id, _)| *id);
        let mut history: Vec<_> = self.history.iter().map(|(id, h)| (*id, *h)).collect();
        history.sort_by_key(|(id, _)| *id);
        Snapshot {
            version: SNAPSHOT_VERSION,
            store_id: self.config.store_id.clone(),
            devices,
            history,
            transactions: self.transactions.clone(),
            door_state: self.door_state.clone(),
            buffer: self.buffer.clone(),
            max_seen: self.max_seen,
            watermark: self.watermark,
            next_release: self.next_release,
            clock: self.clock,
            next_sweep: self.next_sweep,
            next_window: self.next_window,
            windows: self.windows.iter().map(|(k, v)| (*k, v.clone())).collect(),
            days: self.days.iter().map(|(k, v)| (*k, v.clone())).collect(),
            ready_windows: self.ready_windows.clone(),
            ready_days: self.ready_days.clone(),
            stats: self.stats.clone(),
            layout: self.layout.clone(),
            coverage: self.coverage.clone(),
        }
    }

    /// An engine for `config` that carries on from `snapshot`. Zones, scanners and door sensors
    /// are matched by name: see [`Engine::migration`] for what a changed config dropped.
    pub fn restore(config: EngineConfig, mut snapshot: Snapshot) -> Result<Engine, RestoreError> {
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(RestoreError::Version {
                found: snapshot.version,
            });
        }
        if snapshot.store_id != config.store_id {
            return Err(RestoreError::OtherStore {
                found: snapshot.store_id,
                expected: config.store_id,
            });
        }
        let mut engine = Engine::new(config);
        // A snapshot without names was written under the same config, or is read positionally.
        let old = match std::mem::take(&mut snapshot.layout) {
            layout if layout == Layout::default() => engine.layout.clone(),
            layout => layout,
        };
        let migration = engine.migrate(&old, &mut snapshot);
        if old != engine.layout {
            engine.migration = Some(migration);
        }
        engine.devices = snapshot.devices.into_iter().collect();
        engine.history = snapshot.history.into_iter().collect();
        engine.transactions = snapshot.transactions;
        engine.buffer_sorted = snapshot
            .buffer
            .iter()
            .zip(snapshot.buffer.iter().skip(1))
            .all(|(a, b)| a.t <= b.t);
        engine.buffer = snapshot.buffer;
        engine.max_seen = snapshot.max_seen;
        engine.watermark = snapshot.watermark;
        engine.next_release = snapshot.next_release;
        engine.clock = snapshot.clock;
        engine.next_sweep = snapshot.next_sweep;
        engine.next_window = snapshot.next_window;
        engine.windows = snapshot.windows.into_iter().collect();
        engine.days = snapshot.days.into_iter().collect();
        engine.ready_windows = snapshot.ready_windows;
        engine.ready_days = snapshot.ready_days;
        engine.stats = snapshot.stats;
        engine.coverage = snapshot.coverage;
        Ok(engine)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// When restored from a checkpoint written under another config: what its state was
    /// mapped onto by name, and what was dropped (to log).
    pub fn migration(&self) -> Option<&Migration> {
        self.migration.as_ref()
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Takes one event received at `now` (the receiving clock, in the same time base). Bad
    /// events are counted in [`Engine::stats`] by reason and otherwise ignored.
    pub fn handle_event(&mut self, event: &Event, now: Timestamp) {
        match self.admit(event, now) {
            Ok(pending) if pending.t < self.watermark => {
                // A late count whose window is still open (see `admit`): counts add, so it
                // needs no place in the time order.
                self.stats.accepted += 1;
                self.stats.late_counts += 1;
                self.process(pending);
            }
            Ok(pending) => {
                self.stats.accepted += 1;
                if self.buffer.back().is_some_and(|last| last.t > pending.t) {
                    self.buffer_sorted = false;
                }
                self.max_seen = self.max_seen.max(pending.t);
                self.buffer.push_back(pending);
                let release_to = self
                    .max_seen
                    .saturating_sub(self.config.thresholds.max_event_delay_ms);
                if release_to >= self.next_release || self.buffer.len() >= MAX_BUFFERED {
                    self.release(release_to);
                }
            }
            Err(reason) => self.stats.reject(reason),
        }
    }

    fn admit(&self, event: &Event, now: Timestamp) -> Result<Pending, RejectReason> {
        let t = event.time().millis();
        if t < EARLIEST_SANE_MS {
            return Err(RejectReason::ClockNotSet);
        }
        if t > now.millis().saturating_add(MAX_FUTURE_MS) {
            return Err(RejectReason::Future);
        }
        // Door records and sales only add to their window's counts, so they are taken late
        // (POS polling, batched counters) for as long as that window is open; so is a sign of
        // life, which only adds coverage.
        let late_count_ok = || {
            !matches!(event, Event::Sighting(_))
                && self
                    .windows
                    .contains_key(&self.calendar.window_start(Timestamp(t)).millis())
        };
        if t < self.watermark && !late_count_ok() {
            return Err(RejectReason::Late);
        }
        let kind = match event {
            Event::Sighting(s) => {
                let &(scanner, zone) = self
                    .scanners
                    .get(s.scanner.as_str())
                    .ok_or(RejectReason::UnknownScanner)?;
                if !(-127..=20).contains(&s.rssi) {
                    return Err(RejectReason::RssiOutOfRange);
                }
                PendingKind::Sighting {
                    scanner,
                    zone,
                    device: s.device,
                    rssi: s.rssi as i8,
                    stable: s.addr.is_stable(),
                }
            }
            Event::Door(d) => {
                let &sensor = self
                    .door_sensors
                    .get(d.sensor.as_str())
                    .ok_or(RejectReason::UnknownDoorSensor)?;
                PendingKind::Door(Box::new(PendingDoor {
                    sensor,
                    record: d.record.as_deref().map(Box::from),
                    count: d.count,
                }))
            }
            Event::Transaction(x) => PendingKind::Transaction(Box::new(PendingTransaction {
                id: Box::from(x.id.as_str()),
                amount_minor: x.amount_minor,
            })),
            Event::Alive(a) => {
                let known = match a.input {
                    InputKind::Ble => self.scanners.contains_key(a.source.as_str()),
                    InputKind::Door => self.door_sensors.contains_key(a.source.as_str()),
                    InputKind::Pos => self.pos_sources.contains(a.source.as_str()),
                };
                if !known {
                    return Err(match a.input {
                        InputKind::Ble => RejectReason::UnknownScanner,
                        InputKind::Door => RejectReason::UnknownDoorSensor,
                        InputKind::Pos => RejectReason::UnknownPosSystem,
                    });
                }
                PendingKind::Alive(a.input)
            }
        };
        Ok(Pending { t, kind })
    }

    /// Lets time pass without events: moves the watermark to `now - max_event_delay`,
    /// processes what is buffered before it, ends what timed out and finalises windows.
    /// Safe to call spuriously. A receiving clock that stepped back re-bases the engine
    /// ([`Engine::observe_clock`]).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.observe_clock(now);
        let release_to = now
            .millis()
            .saturating_sub(self.config.thresholds.max_event_delay_ms);
        self.release(release_to);
    }

    /// When [`Engine::handle_timeout`] next has work to do (the next sweep), if anything is
    /// being tracked.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_window?;
        let next = self.next_sweep.max(self.next_release);
        Some(Timestamp(
            next.saturating_add(self.config.thresholds.max_event_delay_ms),
        ))
    }

    /// Ends the stream: processes everything buffered and lets time run on until every visit
    /// and pass has ended on its own and every window up to `until` is final (replay's end).
    pub fn finish(&mut self, until: Timestamp) {
        let th = &self.config.thresholds;
        let settle = th.visit_gap_ms + th.presence_timeout_ms + self.finality_slack_ms();
        let target = until
            .millis()
            .max(self.max_seen.saturating_add(settle))
            .saturating_add(self.finality_slack_ms());
        self.release(self.max_seen);
        self.release(target);
        self.sweep();
    }

    /// Ends a finite stream (a replayed file, a simulated day): [`Engine::finish`] through the
    /// end of the local day of the latest event seen, restored state included.
    pub fn end_of_stream(&mut self) {
        if self.max_seen == i64::MIN {
            return;
        }
        let date = self.calendar.local_date(Timestamp(self.max_seen));
        let day_end = self.calendar.day_start(date.succ_opt().unwrap_or(date));
        self.finish(day_end);
    }

    /// The next final window, if any. Windows are immutable once returned.
    pub fn poll_window(&mut self) -> Option<WindowSummary> {
        self.ready_windows.pop_front()
    }

    /// The next complete local day (all its windows final), if any.
    pub fn poll_daily(&mut self) -> Option<DailySummary> {
        self.ready_days.pop_front()
    }

    /// Windows not final yet that have data so far, with what is known (closed visits and
    /// passes only, and coverage up to the engine's clock).
    pub fn provisional_windows(&self) -> Vec<WindowSummary> {
        let window_ms = self.calendar.window_ms();
        self.windows
            .iter()
            .filter_map(|(&start, acc)| {
                let coverage = self.window_coverage(start, (start + window_ms).min(self.clock));
                (!coverage::no_data(&coverage, &acc.funnel))
                    .then(|| self.summary(start, acc.funnel.clone(), coverage))
            })
            .collect()
    }

    pub fn live(&self) -> LiveStatus {
        LiveStatus {
            devices_in_store: self
                .devices
                .values()
                .filter(|d| d.in_store(&self.params))
                .count(),
            tracked_devices: self.devices.len(),
            buffered_events: self.buffer.len(),
            visit_history: self.history.len(),
            dedup_ids: self.transactions.len()
                + self
                    .door_state
                    .iter()
                    .map(|d| d.records.len())
                    .sum::<usize>(),
        }
    }

    /// A window stays open this long past its end: a visit confirmed late (after
    /// `presence_confirm` and a sparse smoothing window) still starts inside it, and late door
    /// records and sales still count in it.
    fn finality_slack_ms(&self) -> i64 {
        (self.params.confirm_ms + self.params.smoothing_ms)
            .max(self.config.thresholds.max_count_delay_ms)
    }

    fn release(&mut self, to: i64) {
        if to <= self.watermark && self.buffer.len() < MAX_BUFFERED {
            return;
        }
        if !self.buffer_sorted {
            // Stable, so equal times keep arrival order; nearly sorted input sorts in ~O(n).
            self.buffer.make_contiguous().sort_by_key(|p| p.t);
            self.buffer_sorted = true;
        }
        let mut to = to;
        if self.buffer.len() >= MAX_BUFFERED {
            to = to.max(self.buffer[self.buffer.len() / 2].t);
        }
        self.watermark = self.watermark.max(to);
        while self.buffer.front().is_some_and(|p| p.t <= self.watermark) {
            let pending = self.buffer.pop_front().expect("front exists");
            self.process(pending);
        }
        // Give back what a burst took: a gateway has little memory to spare.
        if self.buffer.capacity() > 4 * self.buffer.len() + 4096 {
            self.buffer.shrink_to(2 * self.buffer.len());
        }
        self.advance_clock(self.watermark);
        self.next_release = self.watermark.saturating_add(RELEASE_STEP_MS);
    }

    fn advance_clock(&mut self, t: i64) {
        if t < self.clock {
            return;
        }
        self.clock = t;
        self.open_windows_through(t);
        if t >= self.next_sweep {
            self.sweep();
            self.next_sweep = t.saturating_add(SWEEP_EVERY_MS);
        }
    }

    fn open_windows_through(&mut self, t: i64) {
        let mut next = match self.next_window {
            Some(next) => next,
            None => {
                let date = self.calendar.local_date(Timestamp(t));
                self.calendar
                    .window_start(self.calendar.day_start(date))
                    .millis()
            }
        };
        while next <= t {
            self.windows.insert(
                next,
                WindowAcc {
                    funnel: self.empty_funnel(),
                    pending: 0,
                },
            );
            next = self.calendar.next_window(Timestamp(next)).millis();
        }
        self.next_window = Some(next);
    }

    fn empty_funnel(&self) -> Funnel {
        Funnel {
            door_in: (!self.config.door_sensors.is_empty()).then_some(0),
            door_out: (!self.config.door_sensors.is_empty()).then_some(0),
            repeat: self.config.repeat_measurable.then(RepeatCounts::default),
            zones: self
                .in_store_zones
                .iter()
                .map(|(_, id)| (id.clone(), ZoneSummary::default()))
                .collect(),
            ..Funnel::default()
        }
    }

    /// Runs every device's time-driven transitions, drops idle devices, finalises windows.
    fn sweep(&mut self) {
        let now = self.clock;
        let mut outcomes = std::mem::take(&mut self.outcomes);
        let params = &self.params;
        self.devices.retain(|&device, state| {
            let stable = state.stable_address;
            state.expire(
                now,
                params,
                &mut OutcomeSink {
                    device,
                    stable,
                    out: &mut outcomes,
                },
            );
            !state.is_idle()
        });
        // Hash-map order differs between runs and restores; sum order inside sketches must not.
        outcomes.sort_by_key(|o| o.device);
        self.apply_outcomes(&mut outcomes);
        self.outcomes = outcomes;
        self.finalise_windows();
    }

    fn apply_outcomes(&mut self, outcomes: &mut Vec<DeviceOutcome>) {
        for DeviceOutcome {
            device,
            stable,
            outcome,
        } in outcomes.drain(..)
        {
            self.apply(device, stable, outcome);
        }
    }

    fn process(&mut self, pending: Pending) {
        let t = pending.t;
        if t > self.clock {
            self.advance_clock(t);
        }
        // Whatever a source sent, it was working: below-detect readings, staff badges and
        // duplicate records included.
        self.coverage.mark(
            pending.kind.input(),
            t,
            self.config.thresholds.coverage_grace_ms,
        );
        match pending.kind {
            PendingKind::Sighting {
                scanner,
                zone,
                device,
                rssi,
                stable,
            } => {
                if i16::from(rssi) < self.config.thresholds.detect_rssi_dbm {
                    self.stats.below_detect += 1;
                    return;
                }
                if self.staff.contains(&device) {
                    self.stats.staff += 1;
                    return;
                }
                if !self.devices.contains_key(&device) && !self.make_room_for_device() {
                    self.stats.shed(Shed::NewDevice, 1);
                    return;
                }
                let mut outcomes = std::mem::take(&mut self.outcomes);
                let state = self
                    .devices
                    .entry(device)
                    .or_insert_with(|| DeviceState::new(t, stable));
                let mut sink = OutcomeSink {
                    device,
                    stable: state.stable_address,
                    out: &mut outcomes,
                };
                state.on_reading(t, scanner, zone, rssi, &self.params, &mut sink);
                self.apply_outcomes(&mut outcomes);
                self.outcomes = outcomes;
            }
            PendingKind::Door(door) => {
                let PendingDoor {
                    sensor,
                    record,
                    count,
                } = *door;
                self.count_door(t, sensor, record, count)
            }
            PendingKind::Transaction(sale) => {
                let PendingTransaction { id, amount_minor } = *sale;
                self.count_transaction(t, id, amount_minor)
            }
            PendingKind::Alive(_) => {}
        }
    }

    fn window_mut(&mut self, t: i64) -> Option<&mut WindowAcc> {
        let start = self.calendar.window_start(Timestamp(t)).millis();
        self.windows.get_mut(&start)
    }

    fn apply(&mut self, device: DeviceId, stable: bool, outcome: Outcome) {
        match outcome {
            Outcome::PassOpened(start) | Outcome::VisitOpened(start) => {
                if let Some(w) = self.window_mut(start) {
                    w.pending = w.pending.saturating_add(1);
                }
            }
            Outcome::PassResolved(start, passer_by) => {
                if let Some(w) = self.window_mut(start) {
                    w.pending = w.pending.saturating_sub(1);
                    w.funnel.passers_by = w.funnel.passers_by.saturating_add(u64::from(passer_by));
                }
            }
            Outcome::VisitClosed(visit) => self.close_visit(device, stable, visit),
        }
    }

    fn close_visit(&mut self, device: DeviceId, stable: bool, visit: VisitRecord) {
        let th = &self.config.thresholds;
        let repeat = (self.config.repeat_measurable && stable).then(|| {
            let day = self.calendar.local_day_number(Timestamp(visit.start));
            let lookback = th.repeat_lookback_days as i32;
            let entry = self.history.entry(device).or_insert(VisitDays {
                last_day: day,
                previous_day: None,
            });
            let earlier = if entry.last_day == day {
                entry.previous_day
            } else {
                Some(entry.last_day)
            };
            if entry.last_day != day {
                entry.previous_day = Some(entry.last_day);
                entry.last_day = day;
            }
            earlier.is_some_and(|e| e < day && day - e <= lookback)
        });
        let (bounce_ms, zone_min_ms) = (th.bounce_ms, th.zone_min_dwell_ms);
        self.bound_history();
        let in_store_zones = self.in_store_zones.clone();
        let Some(w) = self.window_mut(visit.start) else {
            return;
        };
        w.pending = w.pending.saturating_sub(1);
        let f = &mut w.funnel;
        f.entries = f.entries.saturating_add(1);
        f.bounces = f
            .bounces
            .saturating_add(u64::from(visit.duration_ms < bounce_ms));
        f.capped = f.capped.saturating_add(u64::from(visit.capped));
        f.visit_duration.add(visit.duration_ms as f64 / 1000.0);
        if let (Some(counts), Some(is_repeat)) = (&mut f.repeat, repeat) {
            counts.eligible_entries = counts.eligible_entries.saturating_add(1);
            counts.repeat_visits = counts.repeat_visits.saturating_add(u64::from(is_repeat));
        }
        for (zi, id) in &in_store_zones {
            let dwell = visit.dwell_ms.get(*zi as usize).copied().unwrap_or(0);
            if dwell >= zone_min_ms {
                let zone = f.zones.entry(id.clone()).or_default();
                zone.zone_visits = zone.zone_visits.saturating_add(1);
                zone.dwell.add(dwell as f64 / 1000.0);
            }
        }
    }

    fn count_door(&mut self, t: i64, sensor: u16, record: Option<Box<str>>, count: DoorCount) {
        let max_ids = self.config.limits.max_dedup_ids;
        let Some(state) = self.door_state.get_mut(usize::from(sensor)) else {
            self.stats.reject(RejectReason::UnknownDoorSensor);
            return;
        };
        if let Some(record) = record {
            match state
                .records
                .first_time(t, record, DOOR_RECORD_RETENTION_MS, max_ids)
            {
                Novelty::Duplicate => {
                    self.stats.reject(RejectReason::DuplicateDoorRecord);
                    return;
                }
                Novelty::New { shed } => self.stats.shed(Shed::DoorRecordId, shed),
            }
        }
        let (entered, exited) = match count {
            DoorCount::Crossing {
                direction: DoorDirection::In,
            } => (1, 0),
            DoorCount::Crossing {
                direction: DoorDirection::Out,
            } => (0, 1),
            DoorCount::Interval { entered, exited } => (u64::from(entered), u64::from(exited)),
            DoorCount::Cumulative {
                in_total,
                out_total,
            } => {
                if state.last_register.is_some_and(|(at, _, _)| t < at) {
                    // The later read's difference already holds what this one would add.
                    self.stats.reject(RejectReason::StaleRegister);
                    return;
                }
                let previous = state.last_register.replace((t, in_total, out_total));
                // "a register that goes down means a sensor reset, not negative traffic":
                // it counted up from zero since the reset.
                let since = |total: u64, before: u64| total.checked_sub(before).unwrap_or(total);
                match previous {
                    // The first register read is a baseline: what came before it is unknown.
                    None => (0, 0),
                    Some((_, pin, pout)) => (since(in_total, pin), since(out_total, pout)),
                }
            }
        };
        let previous = state
            .last_record
            .replace(state.last_record.map_or(t, |p| p.max(t)));
        if !self.plausible_crossings(previous, t, entered.max(exited)) {
            // A corrupt or forged record; a register's next read is a new baseline.
            if let Some(state) = self.door_state.get_mut(usize::from(sensor)) {
                if matches!(count, DoorCount::Cumulative { .. }) {
                    state.last_register = None;
                }
            }
            self.stats.reject(RejectReason::ImplausibleDoorCount);
            return;
        }
        if let Some(w) = self.window_mut(t) {
            w.funnel.door_in = Some(w.funnel.door_in.unwrap_or(0).saturating_add(entered));
            w.funnel.door_out = Some(w.funnel.door_out.unwrap_or(0).saturating_add(exited));
        }
    }

    fn count_transaction(&mut self, t: i64, id: Box<str>, amount_minor: Option<i64>) {
        let max_ids = self.config.limits.max_dedup_ids;
        match self
            .transactions
            .first_time(t, id, TRANSACTION_RETENTION_MS, max_ids)
        {
            Novelty::Duplicate => {
                self.stats.reject(RejectReason::DuplicateTransaction);
                return;
            }
            Novelty::New { shed } => self.stats.shed(Shed::TransactionId, shed),
        }
        if let Some(w) = self.window_mut(t) {
            w.funnel.transactions = w.funnel.transactions.saturating_add(1);
            w.funnel.revenue_minor = w
                .funnel
                .revenue_minor
                .saturating_add(amount_minor.unwrap_or(0));
        }
    }

    /// "A window is final once no visit or pass that started in it can still change: every
    /// one has ended or been capped, and the event-time watermark has passed."
    fn finalise_windows(&mut self) {
        let horizon = self.clock - self.finality_slack_ms();
        let window_ms = self.calendar.window_ms();
        let finals: Vec<i64> = self
            .windows
            .iter()
            .take_while(|(start, _)| **start + window_ms <= horizon)
            .filter(|(_, acc)| acc.pending == 0)
            .map(|(start, _)| *start)
            .collect();
        for start in finals {
            let Some(acc) = self.windows.remove(&start) else {
                continue;
            };
            let coverage = self.window_coverage(start, start + window_ms);
            let date = self.calendar.local_date(Timestamp(start));
            if !coverage::no_data(&coverage, &acc.funnel) {
                let summary = self.summary(start, acc.funnel, coverage);
                self.days
                    .entry(date)
                    .or_insert_with(|| {
                        DailySummary::new(
                            &self.config.store_id,
                            &date.to_string(),
                            self.calendar.day_start(date),
                        )
                    })
                    .add_window(&summary);
                self.ready_windows.push_back(summary);
            }
            if self.all_windows_final(date) {
                // A day none of whose windows had data is not emitted either.
                if let Some(day) = self.days.remove(&date) {
                    self.ready_days.push_back(day);
                }
                self.prune_history(date);
            }
        }
        let earliest_open = self.windows.keys().next().copied().or(self.next_window);
        if let Some(earliest_open) = earliest_open {
            self.coverage.forget_before(earliest_open);
        }
    }

    /// Every window of the local day `date` has been opened and is final.
    fn all_windows_final(&self, date: NaiveDate) -> bool {
        let start = self.calendar.day_start(date).millis();
        let end = self
            .calendar
            .day_start(date.succ_opt().unwrap_or(date))
            .millis();
        self.next_window.is_some_and(|next| next >= end)
            && self.windows.range(start..end).next().is_none()
    }

    fn window_coverage(&self, start: i64, end: i64) -> Coverage {
        self.coverage.seconds(
            start,
            end,
            !self.config.door_sensors.is_empty(),
            !self.config.pos_sources.is_empty(),
        )
    }

    fn prune_history(&mut self, completed: NaiveDate) {
        let today = self
            .calendar
            .local_day_number(self.calendar.day_start(completed));
        let lookback = self.config.thresholds.repeat_lookback_days as i32;
        self.history
            .retain(|_, days| today - days.last_day <= lookback);
    }

    fn summary(&self, start: i64, funnel: Funnel, coverage: Coverage) -> WindowSummary {
        let t = Timestamp(start);
        WindowSummary {
            schema: SUMMARY_SCHEMA_VERSION,
            store_id: self.config.store_id.clone(),
            window_start: t,
            window_seconds: self.config.thresholds.window_seconds,
            local_date: self.calendar.local_date(t).to_string(),
            local_hour: self.calendar.local_hour(t),
            hour_start: self.calendar.hour_start(t),
            funnel,
            coverage: Some(coverage),
        }
    }
}

#[cfg(test)]
mod tests;
