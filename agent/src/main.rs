//! `agent`: the storefront gateway agent's command line. Glue only: parse the CLI, set up
//! logging, call into the library modules.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use storefront_simulator::ProfileName;

mod events_file;
mod replay;
mod simulate;
mod table;

#[derive(Parser)]
#[command(
    name = "agent",
    version,
    about = "In-store telemetry edge agent: store funnel from BLE, door and POS data"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a synthetic store's events and its ground truth.
    Simulate(simulate::SimulateArgs),
    /// Run the engine over an events file: window and daily summaries, and a funnel table.
    Replay(replay::ReplayArgs),
    /// Print a commented configuration file with every setting and its default.
    GenerateConfig {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole context chain, no backtrace: these are messages for a store's operator.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Simulate(args) => simulate::run(args),
        Command::Replay(args) => replay::run(args),
        Command::GenerateConfig { out } => {
            let text = storefront_config::generate_config_template();
            match out {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display())),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Parses a profile name for clap.
pub(crate) fn parse_profile(s: &str) -> Result<ProfileName, String> {
    s.parse::<ProfileName>()
        .map_err(|_| format!("unknown profile {s:?}: use boutique, mall or street"))
}
