//! Event sources the daemon can run on. Each runs as its own task and hands events to the core
//! over a bounded channel, with a cursor where the source can be resumed after a restart.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use storefront_protocol::{Event, EventLine};
use tokio::sync::{mpsc, watch};

/// What a source sends the core.
#[derive(Debug)]
pub enum SourceMessage {
    /// An event, with the cursor to resume from once it has been processed.
    Event(Event, Option<u64>),
    /// A finite source (file, simulation) is exhausted: the core may finish the stream.
    End,
}

/// The sources a daemon is built from.
pub enum Source {
    /// An events file, read from a byte offset (resumable), as fast as the core takes it.
    File { path: PathBuf },
    /// Events held in memory (a simulated day), paced so `speed` seconds of event time pass
    /// per second of wall time (`None`: as fast as possible). Cursor: index of the next event.
    Memory {
        events: Vec<Event>,
        speed: Option<f64>,
    },
    /// The store's live inputs: scanner nodes, door counters and POS over the local broker,
    /// the POS poller, local BLE, and the HTTP ingest routes. Not resumable (no cursor).
    Live {
        // Boxed: the live sources' state dwarfs the other variants.
        sources: Box<crate::live::LiveSources>,
        health: std::sync::Arc<crate::live::LiveHealth>,
    },
}

impl Source {
    /// Runs the source until it ends or `shutdown` fires, starting at `cursor`.
    pub async fn run(
        self,
        cursor: Option<u64>,
        out: mpsc::Sender<SourceMessage>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        match self {
            Source::File { path } => {
                // File reading blocks: keep it off the async workers.
                tokio::task::spawn_blocking(move || {
                    read_file(path, cursor.unwrap_or(0), out, shutdown)
                })
                .await
                .context("file source task failed")?
            }
            Source::Memory { events, speed } => {
                play(events, cursor.unwrap_or(0) as usize, speed, out, shutdown).await
            }
            Source::Live { sources, health } => (*sources).run(out, health, shutdown).await,
        }
    }
}

fn read_file(
    path: PathBuf,
    offset: u64,
    out: mpsc::Sender<SourceMessage>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut file = std::fs::File::open(&path)
        .with_context(|| format!("cannot open events file {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))
        .with_context(|| format!("cannot seek {} to {offset}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (mut position, mut line, mut malformed) = (offset, String::new(), 0u64);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        position += n as u64;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        match EventLine::decode(text) {
            Ok(event) => {
                if out
                    .blocking_send(SourceMessage::Event(event, Some(position)))
                    .is_err()
                {
                    return Ok(());
                }
            }
            Err(error) => {
                malformed += 1;
                if malformed <= 5 {
                    tracing::warn!(file = %path.display(), offset = position, %error, "Skipping malformed event line");
                }
            }
        }
    }
    if malformed > 0 {
        tracing::warn!(file = %path.display(), malformed, "Malformed event lines skipped");
    }
    let _ = out.blocking_send(SourceMessage::End);
    Ok(())
}

async fn play(
    events: Vec<Event>,
    start: usize,
    speed: Option<f64>,
    out: mpsc::Sender<SourceMessage>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let origin = events.get(start).map(|e| e.time().millis());
    let wall_start = tokio::time::Instant::now();
    for (index, event) in events.into_iter().enumerate().skip(start) {
        if let (Some(speed), Some(origin)) = (speed, origin) {
            let due = Duration::from_secs_f64(
                (event.time().millis() - origin).max(0) as f64 / 1000.0 / speed,
            );
            let deadline = wall_start + due;
            if deadline > tokio::time::Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
        if out
            .send(SourceMessage::Event(event, Some(index as u64 + 1)))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
    let _ = out.send(SourceMessage::End).await;
    Ok(())
}
