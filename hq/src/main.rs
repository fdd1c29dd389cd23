//! `hq`: the HQ collector and report. Glue only: parse the command line, set up tracing, call
//! the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use storefront_hq::{Collector, CollectorConfig, SledHqStore, build_report};
use storefront_mqtt::TlsFiles;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "hq",
    version,
    about = "Storefront HQ: collect store summaries, report chain-wide funnels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Subscribe to every store's summaries, store each exactly once and ack it.
    Collect {
        /// Broker address, mqtt://host:port or mqtts://host:port (TLS).
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        /// CA bundle (PEM) to check an mqtts:// broker with (default: the system's roots).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Client certificate (PEM) for mutual TLS; needs --client-key-file.
        #[arg(long, requires = "client_key_file")]
        client_cert_file: Option<PathBuf>,
        /// Client private key (PEM) for mutual TLS; needs --client-cert-file.
        #[arg(long, requires = "client_cert_file")]
        client_key_file: Option<PathBuf>,
        /// MQTT username; needs --password-file.
        #[arg(long, requires = "password_file")]
        username: Option<String>,
        /// File holding the MQTT password (never on the command line).
        #[arg(long, requires = "username")]
        password_file: Option<PathBuf>,
        /// Database directory (created if missing).
        #[arg(long, default_value = "hq-data")]
        db: PathBuf,
        /// Shared-subscription group: collectors in one group split the messages.
        #[arg(long, default_value = "hq")]
        group: String,
        /// MQTT client id (default: hq-<pid>).
        #[arg(long)]
        client_id: Option<String>,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Merge daily summaries per store and chain-wide over a date range.
    Report {
        /// Database directory written by `hq collect` (stop the collector first: the
        /// database is locked while it runs).
        #[arg(long)]
        db: PathBuf,
        /// First local date, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// Last local date, YYYY-MM-DD (default: --date).
        #[arg(long)]
        to: Option<String>,
        /// Only this store.
        #[arg(long)]
        store: Option<String>,
        /// Print the merged figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Collect {
            broker,
            ca_file,
            client_cert_file,
            client_key_file,
            username,
            password_file,
            db,
            group,
            client_id,
            log_json,
        } => {
            init_tracing(log_json);
            let client_id = client_id.unwrap_or_else(|| format!("hq-{}", std::process::id()));
            let mut config = CollectorConfig::new(&broker, &client_id, &group)
                .context("invalid collector settings")?;
            config.tls = TlsFiles {
                ca_file,
                client_cert_file,
                client_key_file,
            };
            if let (Some(username), Some(path)) = (username, password_file) {
                let password = storefront_mqtt::read_password(&path).context("--password-file")?;
                config.credentials = Some((username, password));
            }
            let store = SledHqStore::open(&db)
                .with_context(|| format!("cannot open the database at {}", db.display()))?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            runtime.block_on(async move {
                let (stop, shutdown) = tokio::sync::watch::channel(false);
                let mut terminate = signal(SignalKind::terminate())
                    .context("cannot listen for SIGTERM")?;
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining, then exiting"),
                        _ = terminate.recv() => tracing::info!("SIGTERM: draining, then exiting"),
                    }
                    let _ = stop.send(true);
                });
                let collector = Collector::new(config, Arc::new(store))?;
                collector.run(shutdown).await.context("collector failed")
            })?;
            Ok(())
        }
        Command::Report {
            db,
            date,
            to,
            store,
            json,
        } => {
            init_tracing(false);
            let to = to.unwrap_or_else(|| date.clone());
            anyhow::ensure!(
                db.is_dir(),
                "no database at {}: run `hq collect --db {}` first",
                db.display(),
                db.display()
            );
            let hq = SledHqStore::open(&db).with_context(|| {
                format!(
                    "cannot open the database at {} (is `hq collect` running on it?)",
                    db.display()
                )
            })?;
            match build_report(&hq, &date, &to, store.as_deref())? {
                Some(report) if json => {
                    println!("{}", serde_json::to_string_pretty(&report.to_json())?)
                }
                Some(report) => print!("{}", report.to_table()),
                None => {
                    let which = store.map_or_else(String::new, |s| format!(" for store {s}"));
                    eprintln!(
                        "No daily summaries from {date} to {to}{which} in {}.",
                        db.display()
                    );
                    std::process::exit(2);
                }
            }
            Ok(())
        }
    }
}
