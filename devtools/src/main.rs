//! `storefront-dev`: the developer's tools around the agent. Glue only: parse the CLI, set up
//! logging, call into the library modules.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use storefront_devtools::{demo, feed, replay, simulate};

#[derive(Parser)]
#[command(
    name = "storefront-dev",
    version,
    about = "Developer tools for the storefront agent: demo, simulator, replay, simulated store hardware"
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
    /// The whole product on this machine: embedded broker, simulated store day, agent, HQ.
    Demo(demo::DemoArgs),
    /// Generate a synthetic store's events and its ground truth.
    Simulate(simulate::SimulateArgs),
    /// Run the engine over an events file: window and daily summaries, and a funnel table.
    Replay(replay::ReplayArgs),
    /// Send today's simulated traffic, live, into a running agent's inputs (scanner nodes,
    /// door counter and POS over MQTT and HTTP), as the store's devices would.
    Feed(feed::FeedArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    storefront_mqtt::install_crypto_provider();
    storefront_agent::init_tracing(cli.log_json);
    let result = match cli.command {
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::run(args))),
        Command::Simulate(args) => simulate::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Feed(args) => runtime().and_then(|rt| rt.block_on(feed::run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
