//! `storefront-dev simulate`: a synthetic store's event stream and ground truth, written to files.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use storefront_simulator::{
    Profile, ProfileName, SimulationSpec, Simulator, TruthDay, TruthParams,
};

use storefront_agent::events_file::EventWriter;

#[derive(Args)]
pub struct SimulateArgs {
    /// Store profile: boutique, mall or street.
    #[arg(long, value_parser = crate::parse_profile, default_value = "mall")]
    pub profile: ProfileName,
    /// Random seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of local days to simulate.
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// First local date (YYYY-MM-DD).
    #[arg(long, default_value = "2026-11-16")]
    pub start: NaiveDate,
    /// Phones rotate their random addresses about every 15 minutes (as iOS and Android do).
    #[arg(long)]
    pub mac_rotation: bool,
    /// Output directory: events.jsonl and truth.json are written there.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
}

/// The ground-truth file `simulate` writes beside the events.
#[derive(Serialize, Deserialize)]
pub struct TruthFile {
    pub profile: String,
    pub seed: u64,
    pub mac_rotation: bool,
    pub days: Vec<TruthDay>,
}

pub fn run(args: SimulateArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let events_path = args.out.join("events.jsonl");
    let truth_path = args.out.join("truth.json");
    let mut simulator = Simulator::new(SimulationSpec {
        profile: Profile::named(args.profile),
        seed: args.seed,
        days: args.days,
        start_date: args.start,
        mac_rotation: args.mac_rotation,
        truth: TruthParams::default(),
    });
    let progress = ProgressBar::new(u64::from(args.days)).with_style(
        ProgressStyle::with_template("simulating {bar:30} day {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut writer = EventWriter::create(&events_path)?;
    let mut truth = TruthFile {
        profile: args.profile.to_string(),
        seed: args.seed,
        mac_rotation: args.mac_rotation,
        days: Vec::new(),
    };
    let mut total_events = 0usize;
    while let Some(day) = simulator.next_day() {
        for event in &day.events {
            writer.write(event)?;
        }
        total_events += day.events.len();
        tracing::info!(date = %day.date, events = day.events.len(), entries = day.truth.population.entries, "Simulated day");
        truth.days.push(day.truth);
        progress.inc(1);
    }
    writer.finish()?;
    progress.finish_and_clear();
    let truth_json = serde_json::to_string(&truth)?;
    std::fs::write(&truth_path, truth_json)
        .with_context(|| format!("cannot write {}", truth_path.display()))?;
    tracing::info!(events = total_events, events_file = %events_path.display(), truth_file = %truth_path.display(), "Simulation written");
    Ok(())
}
