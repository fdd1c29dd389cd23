//! `storefront-dev replay`: the engine over an events file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use storefront_config::StoreConfig;
use storefront_engine::Engine;
use storefront_protocol::{DailySummary, WindowSummary};

use crate::simulate::TruthFile;
use crate::table;
use storefront_agent::events_file::read_events;

#[derive(Args)]
pub struct ReplayArgs {
    /// Store configuration (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Events file (JSON Lines), e.g. from `storefront-dev simulate`.
    #[arg(long)]
    pub events: PathBuf,
    /// Directory for windows.jsonl and days.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Ground truth from `storefront-dev simulate`: printed beside the engine's figures.
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

/// What a replay produced.
pub struct ReplayOutput {
    pub windows: Vec<WindowSummary>,
    pub days: Vec<DailySummary>,
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let config = StoreConfig::load(&args.config)?;
    let started = std::time::Instant::now();
    let mut engine = Engine::new(config.engine_config());
    let (read, malformed) = read_events(&args.events, |event| {
        engine.handle_event(&event, event.time())
    })?;
    let output = finish(&mut engine);
    let elapsed = started.elapsed();
    let stats = engine.stats();
    tracing::info!(
        events = read,
        malformed,
        rejected = stats.rejected_total(),
        windows = output.windows.len(),
        days = output.days.len(),
        seconds = format!("{:.2}", elapsed.as_secs_f64()),
        "Replay finished"
    );
    for (reason, count) in &stats.rejected {
        tracing::warn!(%reason, count, "Rejected events");
    }
    if let Some(dir) = &args.out {
        write_output(dir, &output)?;
    }
    let truth = match &args.truth {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read truth file {}", path.display()))?;
            Some(serde_json::from_str::<TruthFile>(&text).with_context(|| {
                format!(
                    "{} is not a truth file from `storefront-dev simulate`",
                    path.display()
                )
            })?)
        }
        None => None,
    };
    print!(
        "{}",
        table::days(&output.days, truth.as_ref().map(|t| t.days.as_slice()))
    );
    Ok(())
}

/// Ends the stream and collects every final window and day.
pub fn finish(engine: &mut Engine) -> ReplayOutput {
    engine.end_of_stream();
    let mut windows = Vec::new();
    while let Some(w) = engine.poll_window() {
        windows.push(w);
    }
    let mut days = Vec::new();
    while let Some(d) = engine.poll_daily() {
        days.push(d);
    }
    ReplayOutput { windows, days }
}

fn write_output(dir: &std::path::Path, output: &ReplayOutput) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut windows = String::new();
    for w in &output.windows {
        windows.push_str(&serde_json::to_string(w)?);
        windows.push('\n');
    }
    let windows_path = dir.join("windows.jsonl");
    std::fs::write(&windows_path, windows)
        .with_context(|| format!("cannot write {}", windows_path.display()))?;
    let days_path = dir.join("days.json");
    std::fs::write(&days_path, serde_json::to_string_pretty(&output.days)?)
        .with_context(|| format!("cannot write {}", days_path.display()))?;
    tracing::info!(windows = %windows_path.display(), days = %days_path.display(), "Summaries written");
    Ok(())
}
