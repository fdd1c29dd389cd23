//! `agent`: the storefront gateway agent's command line. Glue only: parse the CLI, set up
//! logging, call into the library modules.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use storefront_agent::daemon::{self, BrokerAddress};

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
    /// Run the agent: sources → engine → sled → outbox → MQTT to HQ.
    Run(RunArgs),
    /// The store's funnel for a day or a range of days, from the agent's database.
    Report(ReportArgs),
    /// Print a commented configuration file with every setting and its default.
    GenerateConfig {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    storefront_mqtt::install_crypto_provider();
    storefront_agent::init_tracing(cli.log_json);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole context chain, no backtrace: these are messages for a store's operator.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Store configuration (TOML): says where the database is.
    #[arg(long)]
    config: PathBuf,
    /// First local date (YYYY-MM-DD); default today.
    #[arg(long)]
    date: Option<chrono::NaiveDate>,
    /// Last local date of a range (default: --date).
    #[arg(long)]
    to: Option<chrono::NaiveDate>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn report(args: ReportArgs) -> Result<()> {
    let config = storefront_config::StoreConfig::load(&args.config)?;
    let today = chrono::Utc::now()
        .with_timezone(&config.store.timezone)
        .date_naive();
    let from = args.date.unwrap_or(today);
    let to = args.to.unwrap_or(from);
    if to < from {
        anyhow::bail!("--to {to} is before --date {from}; fix: give the earlier date first");
    }
    let store = daemon::open_store(&config)?;
    let days = store.days(&from.to_string(), &to.to_string())?;
    let view = storefront_dashboard::StoreView {
        id: config.store.id.clone(),
        name: config.store.name.clone(),
        timezone: config.store.timezone,
        zones: config
            .zones
            .iter()
            .filter(|z| z.kind == storefront_engine::ZoneKind::InStore)
            .map(|z| z.id.clone())
            .collect(),
        has_door_sensor: !config.door_sensors.is_empty(),
    };
    if days.is_empty() {
        anyhow::bail!(
            "no final days from {from} to {to} in {}; today's figures are on the dashboard until the day is final",
            config.storage.path.display()
        );
    }
    if args.json {
        println!(
            "{}",
            storefront_dashboard::report_json(&days, &view, from, to)
        );
    } else {
        print!(
            "{}",
            storefront_dashboard::report_table(&days, &view, from, to)
        );
    }
    Ok(())
}

#[derive(clap::Args)]
struct RunArgs {
    /// Store configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Read events from this file (resumable after a restart) instead of the live sources, in
    /// event time; exit once HQ has acked everything.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Publish to this broker (mqtt://host:port) instead of the config's.
    #[arg(long)]
    broker: Option<String>,
    /// The store's local broker, where scanner nodes, door counters and the POS publish
    /// (default: 127.0.0.1:1883).
    #[arg(long)]
    local_broker: Option<String>,
    /// Publishes per second to HQ (default: the config's `sync.publish_per_second`).
    #[arg(long)]
    publish_per_second: Option<u32>,
    /// With --replay: commit a checkpoint every this many events (and every 30 s). Live runs
    /// commit every 30 s only: a checkpoint is the whole engine state, and SD cards wear.
    #[arg(long, default_value_t = 50_000)]
    commit_every_events: u64,
    /// With --replay: once the file is done, wait this long for HQ to ack every summary; exit
    /// with an error naming what is left if it has not (the next run sends it).
    #[arg(long, default_value_t = 600)]
    drain_seconds: u64,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Completes on SIGINT or SIGTERM. SIGHUP (whose default action would kill the agent without a
/// commit) is taken and refused with the reason: the config is read once, at start.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        tracing::warn!(
                            "SIGHUP ignored: the config is read once, at start; restart the agent \
                             to apply a changed config (it resumes from its last commit)"
                        );
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "Cannot take SIGHUP"),
        }
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn run_agent(args: RunArgs) -> Result<()> {
    let config = storefront_config::StoreConfig::load(&args.config)?;
    let broker = match &args.broker {
        Some(url) => BrokerAddress::parse(url).context("--broker")?,
        None => BrokerAddress {
            host: config.sync.broker.host.clone(),
            port: config.sync.broker.port,
            tls: config.sync.broker.tls,
        },
    };
    let http_token = config.dashboard_token()?;
    let http_bind = config.dashboard.bind;
    let replaying = args.replay.is_some();
    let (source, time, drain_after_end) = match args.replay {
        Some(path) => (
            daemon::source::Source::File { path },
            daemon::TimeMode::Event,
            Some(std::time::Duration::from_secs(args.drain_seconds)),
        ),
        None => {
            let local = match &args.local_broker {
                Some(url) => BrokerAddress::parse(url).context("--local-broker")?,
                None => BrokerAddress {
                    host: "127.0.0.1".into(),
                    port: 1883,
                    tls: false,
                },
            };
            let health =
                std::sync::Arc::new(storefront_agent::live::LiveHealth::for_config(&config));
            let clock = storefront_agent::clock::system();
            let sources = storefront_agent::live::LiveSources::from_config(
                &config,
                Some(local),
                clock.clone(),
            )?;
            (
                daemon::source::Source::Live {
                    sources: Box::new(sources),
                    health,
                },
                daemon::TimeMode::Wall(clock),
                None,
            )
        }
    };
    runtime()?.block_on(async move {
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("Shutdown requested: draining");
            let _ = shutdown_tx.send(true);
        });
        let (status_tx, _status_rx) = tokio::sync::watch::channel(Default::default());
        let report = daemon::run(
            config,
            daemon::Run {
                source,
                time,
                broker,
                drain_after_end,
                commit_every_events: if replaying {
                    args.commit_every_events
                } else {
                    u64::MAX
                },
                publish_per_second: args.publish_per_second,
                http: http_bind,
                http_token,
            },
            shutdown_rx.clone(),
            status_tx,
        )
        .await?;
        tracing::info!(
            events = report.core.events,
            commits = report.core.commits,
            stored = report.core.summaries_stored,
            published = report.sync.published,
            acked = report.sync.acked,
            outbox = report.outbox_left,
            "Agent stopped"
        );
        // A stop that was asked for is not a failure: what is left is sent on the next run.
        let stop_requested = *shutdown_rx.borrow();
        if replaying && report.core.finished && report.outbox_left > 0 && !stop_requested {
            anyhow::bail!(
                "{} summaries are not yet acknowledged by HQ (is HQ's collector running, and may \
                 this store publish on its topics?); they stay in the outbox and the next run \
                 sends them",
                report.outbox_left
            );
        }
        Ok(())
    })
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Run(args) => run_agent(args),
        Command::Report(args) => report(args),
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
