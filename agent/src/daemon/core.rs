//! The core task: feeds the engine, and commits its final summaries together with a checkpoint
//! of its state (and the source's cursor) in one storage transaction, flushed before the sync
//! task may publish any of it.
//!
//! A commit that fails because the process is out of file descriptors (idle connections, a
//! leak, a low limit: it passes) does not stop the core: the engine keeps counting, what the
//! commit held stays in memory and a later commit stores it, tried again after [`COMMIT_RETRY`]
//! and longer up to [`COMMIT_RETRY_MAX`]; after [`COMMIT_GIVE_UP`] of failures the core stops.
//! Any other storage error stops the core at once, as before: sled keeps a failed write as a
//! lasting error, and a failed fsync may have lost pages the kernel reported written, so the
//! recovery is a restart (systemd), which reopens the database and resumes from the last
//! checkpoint. The last commit before the core stops is tried [`FINAL_COMMIT_ATTEMPTS`] times.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use storefront_engine::{Engine, IngestStats, Snapshot};
use storefront_protocol::{SummaryPayload, Timestamp};
use storefront_storage::{Checkpoint, Store};
use tokio::sync::{mpsc, watch};

use super::source::SourceMessage;
use super::view::EngineView;
use crate::clock::SharedClock;

/// How soon a commit that failed for want of file descriptors is tried again; each failure in
/// a row doubles it, up to [`COMMIT_RETRY_MAX`].
pub const COMMIT_RETRY: Duration = Duration::from_secs(5);
pub const COMMIT_RETRY_MAX: Duration = Duration::from_secs(60);
/// Failing this long in a row, the core stops (and a supervisor restarts the agent).
pub const COMMIT_GIVE_UP: Duration = Duration::from_secs(600);
/// Tries of the commit the core makes before it stops, [`COMMIT_RETRY`] apart.
pub const FINAL_COMMIT_ATTEMPTS: u32 = 6;

/// Whether a commit error is the process being out of file descriptors (EMFILE, ENFILE): it
/// passes once descriptors are closed, and the database is untouched by it.
fn out_of_descriptors(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| matches!(io.raw_os_error(), Some(23 | 24)))
}

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
    /// Commits that failed and were tried again later.
    pub commit_failures: u64,
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
    last_seen: BTreeMap<String, Timestamp>,
    windows_final_total: u64,
    /// Latest event time taken in.
    latest: Timestamp,
    /// Summaries the engine has made final that the next commit stores. Readers see them
    /// through the view meanwhile: a window that left the engine's open set but is not in the
    /// store yet would otherwise vanish from the dashboard's totals until the commit.
    uncommitted: Vec<SummaryPayload>,
    report: CoreReport,
    /// Events taken since the last commit was tried.
    since_commit: u64,
    /// When the next commit is due (every `commit_interval`, sooner after a failure).
    next_commit: tokio::time::Instant,
    /// The failures in a row, since the first of them; `None` while commits succeed.
    failing: Option<Failing>,
    /// When state the engine shed was last logged.
    shed_logged: Option<Instant>,
    /// The engine's figures at the last log of them: what changed since is logged.
    logged_stats: IngestStats,
}

/// A run of failed commits.
struct Failing {
    since: Instant,
    failures: u32,
    logged: Instant,
}

impl Core {
    pub fn new(
        engine: Engine,
        store: Arc<Store>,
        cursor: Option<u64>,
        options: CoreOptions,
        view: watch::Sender<Arc<EngineView>>,
    ) -> Core {
        let logged_stats = engine.stats().clone();
        let options_commit_interval = options.commit_interval;
        Core {
            engine,
            store,
            cursor,
            options,
            view,
            last_seen: BTreeMap::new(),
            windows_final_total: 0,
            latest: Timestamp(0),
            uncommitted: Vec::new(),
            report: CoreReport::default(),
            since_commit: 0,
            next_commit: tokio::time::Instant::now() + options_commit_interval,
            failing: None,
            shed_logged: None,
            logged_stats,
        }
    }

    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<SourceMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<CoreReport> {
        // Timeouts run every second; commits (SD-card writes) only every `commit_interval`.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut clock_was_sane = true;
        loop {
            tokio::select! {
                message = input.recv() => match message {
                    Some(SourceMessage::Event(event, cursor)) => self.take(event, cursor)?,
                    Some(SourceMessage::End) | None => return self.end_of_stream().await,
                },
                _ = tick.tick() => {
                    self.publish_view();
                    if let TimeMode::Wall(clock) = &self.options.time {
                        // What was received comes before time passes: events queued behind a
                        // commit must not turn late when the watermark moves.
                        let clock = clock.clone();
                        while let Ok(message) = input.try_recv() {
                            match message {
                                SourceMessage::Event(event, cursor) => self.take(event, cursor)?,
                                SourceMessage::End => return self.end_of_stream().await,
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
                    self.log_engine_changes();
                    if tokio::time::Instant::now() >= self.next_commit {
                        self.try_commit()?;
                    }
                }
                _ = shutdown.changed() => {
                    self.final_commit().await?;
                    tracing::info!(events = self.report.events, "Core stopped; state committed");
                    return Ok(self.report);
                }
            }
        }
    }

    /// Feeds one event to the engine; commits every `commit_every_events` (while commits fail,
    /// only when the retry is due).
    fn take(&mut self, event: storefront_protocol::Event, cursor: Option<u64>) -> Result<()> {
        let now = match &self.options.time {
            TimeMode::Event => event.time(),
            // An unset clock makes the engine reject the event as clock_not_set, counted:
            // windows are only assigned once time is sane.
            TimeMode::Wall(clock) => match clock.sane_now() {
                Some(now) => {
                    // A clock that stepped back re-bases the engine before this event, which
                    // would otherwise be taken as late (as would every one until the next tick).
                    self.engine.observe_clock(now);
                    now
                }
                None => Timestamp(0),
            },
        };
        self.engine.handle_event(&event, now);
        self.note_seen(&event);
        self.cursor = cursor.or(self.cursor);
        self.report.events += 1;
        self.since_commit += 1;
        if self.since_commit >= self.options.commit_every_events
            && (self.failing.is_none() || tokio::time::Instant::now() >= self.next_commit)
        {
            self.try_commit()?;
        }
        Ok(())
    }

    /// A finite source ended: every open visit ends on its own and the last commit is made.
    async fn end_of_stream(mut self) -> Result<CoreReport> {
        // From the engine's own latest event: after a restart at the end of the file this run
        // may have read none.
        self.engine.end_of_stream();
        self.final_commit().await?;
        self.report.finished = true;
        tracing::info!(
            events = self.report.events,
            summaries = self.report.summaries_stored,
            "Source ended; engine finished"
        );
        Ok(self.report)
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

    /// Logs what the engine counted that an operator must hear of: a clock step back (each
    /// one), and state shed at a limit (a total a minute at most, as a flood sheds often).
    fn log_engine_changes(&mut self) {
        let stats = self.engine.stats();
        let steps = stats.clock_steps_back - self.logged_stats.clock_steps_back;
        if steps > 0 {
            tracing::warn!(
                steps,
                "The clock stepped back: the engine closed what was open and restarted its time \
                 (windows of the re-lived period are sent again; HQ holds differing copies aside)"
            );
            self.logged_stats.clock_steps_back = stats.clock_steps_back;
        }
        if stats.shed != self.logged_stats.shed
            && self
                .shed_logged
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            let since: BTreeMap<&str, u64> = stats
                .shed
                .iter()
                .map(|(kind, n)| {
                    let before = self.logged_stats.shed.get(kind).copied().unwrap_or(0);
                    (kind.as_str(), n - before)
                })
                .filter(|(_, n)| *n > 0)
                .collect();
            tracing::warn!(
                shed = ?since,
                "The engine is at a limit and let state go (see [limits] in the config and \
                 storefront_engine_shed_total)"
            );
            self.logged_stats.shed = stats.shed.clone();
            self.shed_logged = Some(Instant::now());
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
        let mut view = EngineView::of(
            &self.engine,
            &self.uncommitted,
            now,
            self.windows_final_total,
            &self.last_seen,
        );
        view.commit_failures_total = self.report.commit_failures;
        self.view.send_replace(Arc::new(view));
    }

    /// Commits, and sets when the next one is due. A commit that fails for want of file
    /// descriptors is logged (the first of a run, then once a minute), counted, and tried again
    /// later; any other failure, or one lasting [`COMMIT_GIVE_UP`], is the core's error.
    fn try_commit(&mut self) -> Result<()> {
        self.since_commit = 0;
        let error = match self.commit() {
            Ok(()) => {
                if let Some(failing) = self.failing.take() {
                    tracing::info!(
                        failures = failing.failures,
                        "Commit succeeded again: everything held in memory is stored"
                    );
                }
                self.next_commit = tokio::time::Instant::now() + self.options.commit_interval;
                return Ok(());
            }
            Err(error) if out_of_descriptors(&error) => error,
            Err(error) => return Err(error),
        };
        self.report.commit_failures += 1;
        let now = Instant::now();
        let failing = self.failing.get_or_insert(Failing {
            since: now,
            failures: 0,
            logged: now,
        });
        failing.failures += 1;
        if failing.since.elapsed() >= COMMIT_GIVE_UP {
            return Err(error.context(format!(
                "commits failed for {} minutes in a row",
                COMMIT_GIVE_UP.as_secs() / 60
            )));
        }
        let retry = COMMIT_RETRY
            .saturating_mul(1 << (failing.failures - 1).min(8))
            .min(COMMIT_RETRY_MAX);
        if failing.failures == 1 || failing.logged.elapsed() >= Duration::from_secs(60) {
            tracing::error!(
                error = %format!("{error:#}"),
                failures = failing.failures,
                retry_in_seconds = retry.as_secs(),
                summaries_held_in_memory = self.uncommitted.len(),
                "Commit failed: out of file descriptors; the engine keeps counting and the \
                 commit is tried again"
            );
            failing.logged = now;
        }
        self.next_commit = tokio::time::Instant::now() + retry;
        Ok(())
    }

    /// The commit before the core stops: tried [`FINAL_COMMIT_ATTEMPTS`] times.
    async fn final_commit(&mut self) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.commit() {
                Ok(()) => return Ok(()),
                Err(error) if attempt < FINAL_COMMIT_ATTEMPTS && out_of_descriptors(&error) => {
                    self.report.commit_failures += 1;
                    tracing::error!(
                        error = %format!("{error:#}"),
                        attempt,
                        of = FINAL_COMMIT_ATTEMPTS,
                        "The last commit before stopping failed: trying again"
                    );
                    tokio::time::sleep(COMMIT_RETRY).await;
                    attempt += 1;
                }
                Err(error) => {
                    self.report.commit_failures += 1;
                    return Err(error);
                }
            }
        }
    }

    /// Stores the final summaries and the checkpoint atomically and durably (the store shows
    /// sync a commit's entries only once it is on disk). On failure nothing is lost: the
    /// summaries stay in `uncommitted` for the next commit, which skips those the failed one
    /// stored.
    fn commit(&mut self) -> Result<()> {
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
        self.report.commits += 1;
        self.report.summaries_stored += stored.len() as u64;
        self.publish_view();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_out_of_file_descriptors_is_a_commit_failure_to_wait_out() {
        let io = |code| anyhow::Error::new(std::io::Error::from_raw_os_error(code));
        assert!(out_of_descriptors(&io(24).context("cannot commit")));
        assert!(out_of_descriptors(&io(23)));
        // A full disk or an I/O error: sled keeps it, a restart reopens the database.
        assert!(!out_of_descriptors(&io(28).context("cannot commit")));
        assert!(!out_of_descriptors(&io(5)));
        assert!(!out_of_descriptors(&anyhow::anyhow!("no io cause")));
    }
}
