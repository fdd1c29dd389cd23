//! The core task: feeds the engine, and commits its final summaries together with a checkpoint
//! of its state (and the source's cursor) in one storage transaction, flushed before the sync
//! task may publish any of it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use storefront_engine::{Engine, Snapshot};
use storefront_protocol::{SummaryPayload, Timestamp};
use storefront_storage::{Checkpoint, Store};
use tokio::sync::{mpsc, watch};

use super::source::SourceMessage;
use super::view::EngineView;
use crate::clock::SharedClock;

/// Whose clock drives the engine.
#[derive(Clone)]
pub enum TimeMode {
    /// Event time: replayed or simulated streams; time advances with the events, and the end
    /// of the stream lets every open visit end on its own.
    Event,
    /// The gateway's clock (the wall clock, or a test's): live sources, which stamp what they
    /// receive with the same clock. Timeouts run on it, and only once it is sane (a gateway
    /// without an RTC boots in 1970 until NTP answers).
    Wall(SharedClock),
}

pub struct CoreOptions {
    pub time: TimeMode,
    /// Commit at least this often (wall time)...
    pub commit_interval: Duration,
    /// ...and after this many events.
    pub commit_every_events: u64,
}

/// What the core did, for logs and tests.
#[derive(Clone, Debug, Default)]
pub struct CoreReport {
    pub events: u64,
    pub commits: u64,
    pub summaries_stored: u64,
    /// True when a finite source was played to its end and the engine finished.
    pub finished: bool,
}

pub struct Core {
    pub engine: Engine,
    pub store: Arc<Store>,
    pub cursor: Option<u64>,
    pub options: CoreOptions,
    /// What readers (the dashboard) see, refreshed every second and at every commit.
    pub view: watch::Sender<Arc<EngineView>>,
    /// Last event per scanner, door sensor and "pos", for sensor health.
    pub last_seen: BTreeMap<String, Timestamp>,
    pub windows_final_total: u64,
    /// Latest event time taken in.
    pub latest: Timestamp,
    /// Summaries the engine has made final that the next commit stores. Readers see them
    /// through the view meanwhile: a window that left the engine's open set but is not in the
    /// store yet would otherwise vanish from the dashboard's totals until the commit.
    pub uncommitted: Vec<SummaryPayload>,
}

impl Core {
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<SourceMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<CoreReport> {
        let mut report = CoreReport::default();
        // Timeouts run every second; commits (SD-card writes) only every `commit_interval`.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_commit = tokio::time::Instant::now();
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since_commit = 0u64;
        let mut clock_was_sane = true;
        loop {
            tokio::select! {
                message = input.recv() => match message {
                    Some(SourceMessage::Event(event, cursor)) => {
                        self.take(event, cursor, &mut report, &mut since_commit)?;
                    }
                    Some(SourceMessage::End) | None => return self.end_of_stream(report),
                },
                _ = tick.tick() => {
                    self.publish_view();
                    if let TimeMode::Wall(clock) = &self.options.time {
                        // What was received comes before time passes: events queued behind a
                        // commit must not turn late when the watermark moves.
                        let clock = clock.clone();
                        while let Ok(message) = input.try_recv() {
                            match message {
                                SourceMessage::Event(event, cursor) => {
                                    self.take(event, cursor, &mut report, &mut since_commit)?;
                                }
                                SourceMessage::End => return self.end_of_stream(report),
                            }
                        }
                        match clock.sane_now() {
                            Some(now) => {
                                if !clock_was_sane {
                                    tracing::info!(now = now.millis(), "Wall clock is set: windows can be assigned");
                                }
                                clock_was_sane = true;
                                self.engine.handle_timeout(now);
                            }
                            None => {
                                if clock_was_sane {
                                    tracing::warn!("Wall clock is not set (before 2020): holding windows until it is");
                                }
                                clock_was_sane = false;
                            }
                        }
                    }
                    if last_commit.elapsed() >= self.options.commit_interval {
                        self.commit(&mut report)?;
                        since_commit = 0;
                        last_commit = tokio::time::Instant::now();
                    }
                }
                _ = shutdown.changed() => {
                    self.commit(&mut report)?;
                    tracing::info!(events = report.events, "Core stopped; state committed");
                    return Ok(report);
                }
            }
        }
    }

    /// Feeds one event to the engine; commits every `commit_every_events`.
    fn take(
        &mut self,
        event: storefront_protocol::Event,
        cursor: Option<u64>,
        report: &mut CoreReport,
        since_commit: &mut u64,
    ) -> Result<()> {
        let now = match &self.options.time {
            TimeMode::Event => event.time(),
            // An unset clock makes the engine reject the event as clock_not_set, counted:
            // windows are only assigned once time is sane.
            TimeMode::Wall(clock) => clock.sane_now().unwrap_or(Timestamp(0)),
        };
        self.engine.handle_event(&event, now);
        self.note_seen(&event);
        self.cursor = cursor.or(self.cursor);
        report.events += 1;
        *since_commit += 1;
        if *since_commit >= self.options.commit_every_events {
            self.commit(report)?;
            *since_commit = 0;
        }
        Ok(())
    }

    /// A finite source ended: every open visit ends on its own and the last commit is made.
    fn end_of_stream(&mut self, mut report: CoreReport) -> Result<CoreReport> {
        // From the engine's own latest event: after a restart at the end of the file this run
        // may have read none.
        self.engine.end_of_stream();
        self.commit(&mut report)?;
        report.finished = true;
        tracing::info!(
            events = report.events,
            summaries = report.summaries_stored,
            "Source ended; engine finished"
        );
        Ok(report)
    }

    fn note_seen(&mut self, event: &storefront_protocol::Event) {
        use storefront_protocol::Event;
        let t = event.time();
        self.latest = self.latest.max(t);
        let key = match event {
            Event::Sighting(s) => &s.scanner,
            Event::Door(d) => &d.sensor,
            Event::Transaction(_) => "pos",
            Event::Alive(a) if a.input == storefront_protocol::InputKind::Pos => "pos",
            Event::Alive(a) => &a.source,
        };
        match self.last_seen.get_mut(key) {
            Some(last) => *last = (*last).max(t),
            None => {
                self.last_seen.insert(key.to_owned(), t);
            }
        }
    }

    /// Moves what the engine made final into `uncommitted`.
    fn take_finals(&mut self) {
        while let Some(window) = self.engine.poll_window() {
            self.uncommitted.push(SummaryPayload::Window(window));
            self.windows_final_total += 1;
        }
        while let Some(day) = self.engine.poll_daily() {
            self.uncommitted.push(SummaryPayload::Daily(day));
        }
    }

    fn publish_view(&mut self) {
        self.take_finals();
        let now = match &self.options.time {
            TimeMode::Event => self.latest,
            TimeMode::Wall(clock) => clock.sane_now().unwrap_or(self.latest),
        };
        self.view.send_replace(Arc::new(EngineView::of(
            &self.engine,
            &self.uncommitted,
            now,
            self.windows_final_total,
            &self.last_seen,
        )));
    }

    /// Stores the final summaries and the checkpoint atomically and durably (the store shows
    /// sync a commit's entries only once it is on disk).
    fn commit(&mut self, report: &mut CoreReport) -> Result<()> {
        self.take_finals();
        let finals = &self.uncommitted;
        let checkpoint: Checkpoint<Snapshot> = Checkpoint {
            engine: self.engine.snapshot(),
            source_cursor: self.cursor,
        };
        let store = self.store.clone();
        let stored = tokio::task::block_in_place(|| {
            store
                .commit(finals, &checkpoint)
                .context("cannot commit summaries and checkpoint")
        })?;
        self.uncommitted.clear();
        report.commits += 1;
        self.publish_view();
        report.summaries_stored += stored.len() as u64;
        Ok(())
    }
}
