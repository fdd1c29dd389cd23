//! Reading and writing event files (JSON Lines, format in `storefront_protocol::event`).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use storefront_protocol::{Event, EventLine};

/// Streams events from `path` to `each`, with a progress bar on a terminal. Lines that do not
/// parse are counted and logged (the first few in full), never fatal: one bad line must not
/// cost a day of good ones. Returns (events read, lines rejected).
pub fn read_events(path: &Path, mut each: impl FnMut(Event)) -> Result<(u64, u64)> {
    let file =
        File::open(path).with_context(|| format!("cannot open events file {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.set_message("replaying");
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    let (mut read, mut rejected, mut line_no, mut bytes_since_tick) = (0u64, 0u64, 0u64, 0u64);
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("cannot read {} after line {line_no}", path.display()))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        bytes_since_tick += n as u64;
        if bytes_since_tick > 1 << 22 {
            progress.inc(bytes_since_tick);
            bytes_since_tick = 0;
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        match EventLine::decode(text) {
            Ok(event) => {
                read += 1;
                each(event);
            }
            Err(e) => {
                rejected += 1;
                if rejected <= 5 {
                    tracing::warn!(file = %path.display(), line = line_no, error = %e, "Skipping malformed event line");
                }
            }
        }
    }
    progress.finish_and_clear();
    if rejected > 5 {
        tracing::warn!(file = %path.display(), rejected, "Skipped malformed event lines (first 5 logged)");
    }
    Ok((read, rejected))
}

/// Writes events as JSON Lines.
pub struct EventWriter {
    out: BufWriter<File>,
}

impl EventWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(EventWriter {
            out: BufWriter::with_capacity(1 << 20, file),
        })
    }

    pub fn write(&mut self, event: &Event) -> Result<()> {
        self.out.write_all(EventLine::encode(event).as_bytes())?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
