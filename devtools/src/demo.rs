//! `storefront-dev demo`: the whole product on one machine with nothing installed — an embedded MQTT
//! broker (or `--broker`), the simulator feeding the agent a store day in accelerated time, the
//! HQ collector — and at the end the store's funnel, HQ's copy and the ground truth side by
//! side. Succeeds only if HQ's copy equals the agent's final windows.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::Args;
use storefront_config::StoreConfig;
use storefront_hq::{Collector, CollectorConfig, HqStore, SledHqStore};
use storefront_protocol::Timestamp;
use storefront_simulator::{Profile, ProfileName, SimulationSpec, Simulator, TruthParams};
use tokio::sync::watch;

use crate::table;
use storefront_agent::daemon::source::Source;
use storefront_agent::daemon::{self, BrokerAddress, Run, TimeMode};

#[derive(Args)]
pub struct DemoArgs {
    /// Store profile: boutique, mall or street.
    #[arg(long, value_parser = crate::parse_profile, default_value = "mall")]
    pub profile: ProfileName,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Local date to simulate.
    #[arg(long, default_value = "2026-11-18")]
    pub date: NaiveDate,
    /// Simulated seconds per wall-clock second (2880: a day in 30 s).
    #[arg(long, default_value_t = 2880.0)]
    pub speed: f64,
    /// Use this broker (mqtt://host:port) instead of starting an embedded one.
    #[arg(long)]
    pub broker: Option<String>,
    /// Serve the store's dashboard here while the day plays (open it in a browser).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: std::net::SocketAddr,
    /// Working directory for the agent's and HQ's databases: a new or empty directory, or one
    /// an earlier demo made (its databases are removed first).
    #[arg(long, default_value = "storefront-demo")]
    pub data: PathBuf,
}

/// The shipped example config of a profile, built into the binary.
fn example_config(profile: ProfileName) -> &'static str {
    match profile {
        ProfileName::Boutique => include_str!("../../config/examples/boutique.toml"),
        ProfileName::Mall => include_str!("../../config/examples/mall.toml"),
        ProfileName::Street => include_str!("../../config/examples/street.toml"),
    }
}

/// Marks a directory as the demo's: only such a directory is emptied by a later demo.
const DEMO_MARKER: &str = "storefront-demo";
/// What the demo creates in its directory (the agent's and HQ's databases).
const DEMO_CREATED: [&str; 2] = ["agent", "hq"];

/// Makes `dir` ready for a fresh demo: creates it, or removes what an earlier demo left in it.
/// A directory holding anything the demo did not create is refused and left as it is.
fn prepare_data_dir(dir: &Path) -> Result<()> {
    let names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("--data: cannot list {}", dir.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "--data {}: not a directory the demo can use; fix: give --data a new or empty directory",
                    dir.display()
                )
            });
        }
    };
    let is_demo = names.iter().any(|n| n == DEMO_MARKER);
    let mut foreign: Vec<&String> = names
        .iter()
        .filter(|n| !is_demo || (*n != DEMO_MARKER && !DEMO_CREATED.contains(&n.as_str())))
        .collect();
    if !foreign.is_empty() {
        foreign.sort();
        let shown: Vec<&str> = foreign.iter().take(3).map(|n| n.as_str()).collect();
        bail!(
            "--data {}: the directory holds {}{}, which `storefront-dev demo` did not create; nothing was \
             deleted. fix: give --data a new or empty directory (default: storefront-demo)",
            dir.display(),
            shown.join(", "),
            match foreign.len() - shown.len() {
                0 => String::new(),
                n => format!(" and {n} more"),
            }
        );
    }
    for name in DEMO_CREATED {
        let created = dir.join(name);
        if created.exists() {
            std::fs::remove_dir_all(&created)
                .with_context(|| format!("cannot remove {}", created.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(DEMO_MARKER),
        "This directory holds the databases of `storefront-dev demo`; the next demo run empties it.\n",
    )
    .with_context(|| format!("cannot write in {}", dir.display()))
}

pub async fn run(args: DemoArgs) -> Result<()> {
    prepare_data_dir(&args.data)?;

    // HQ's collector speaks MQTT 5: the embedded broker has a listener of its own for it.
    let (broker, hq_port) = match &args.broker {
        Some(url) => {
            let broker = BrokerAddress::parse(url).context("--broker")?;
            let port = broker.port;
            (broker, port)
        }
        None => {
            let embedded = storefront_broker::EmbeddedBroker::start(0)?;
            let broker = BrokerAddress {
                host: "127.0.0.1".into(),
                port: embedded.port(),
                tls: false,
            };
            (broker, embedded.v5_port())
        }
    };

    let origin = PathBuf::from(format!("config/examples/{}.toml", args.profile));
    let mut config = StoreConfig::parse(example_config(args.profile), &origin)?;
    config.storage.path = args.data.join("agent");
    // The demo's own broker: the example's HQ credentials do not apply.
    config.sync.username = None;
    config.sync.password_file = None;

    tracing::info!(profile = %args.profile, date = %args.date, "Simulating the store day");
    let mut simulator = Simulator::new(SimulationSpec {
        profile: Profile::named(args.profile),
        seed: args.seed,
        days: 1,
        start_date: args.date,
        mac_rotation: false,
        truth: TruthParams::default(),
    });
    let day = simulator
        .next_day()
        .context("the simulator produced no day")?;
    tracing::info!(
        events = day.events.len(),
        "Simulated; starting HQ and the agent"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let hq_store: Arc<dyn HqStore> = Arc::new(SledHqStore::open(args.data.join("hq"))?);
    let collector = Collector::new(
        CollectorConfig::new(
            &format!("mqtt://{}:{hq_port}", broker.host),
            "storefront-demo-hq",
            "hq",
        )?,
        hq_store.clone(),
    )?;
    let (hq_stop_tx, hq_stop_rx) = watch::channel(false);
    let hq_task = tokio::spawn(collector.run(hq_stop_rx));
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = shutdown_tx.send(true);
        }
    });

    let (status_tx, _status_rx) = watch::channel(Default::default());
    let report = daemon::run(
        config.clone(),
        Run {
            source: Source::Memory {
                events: day.events,
                speed: Some(args.speed),
            },
            time: TimeMode::Event,
            broker,
            drain_after_end: Some(Duration::from_secs(120)),
            commit_every_events: 100_000,
            publish_per_second: Some(200),
            http: Some(args.http),
            http_token: None,
        },
        shutdown_rx,
        status_tx,
    )
    .await?;
    ctrl_c.abort();
    let _ = hq_stop_tx.send(true);
    let hq_stats = hq_task.await.context("HQ task panicked")??;
    tracing::info!(
        events = report.core.events,
        published = report.sync.published,
        acked = report.sync.acked,
        hq_inserted = hq_stats.inserted,
        hq_duplicates = hq_stats.duplicates,
        "Demo day done"
    );

    let store = daemon::open_store(&config)?;
    let (from, to) = (Timestamp(i64::MIN / 2), Timestamp(i64::MAX / 2));
    let agent_windows = store.windows(from, to)?;
    let agent_days = store.days("0000-01-01", "9999-12-31")?;
    let stored = |conflicted: bool| {
        if conflicted {
            tracing::warn!("HQ holds a conflicting copy of one of the demo's summaries");
        }
    };
    let hq_windows: Vec<_> = hq_store
        .windows(Some(&config.store.id), from, to)?
        .into_iter()
        .map(|s| {
            stored(s.conflicted);
            s.summary
        })
        .collect();
    let hq_days: Vec<_> = hq_store
        .days(Some(&config.store.id), "0000-01-01", "9999-12-31")?
        .into_iter()
        .map(|s| {
            stored(s.conflicted);
            s.summary
        })
        .collect();

    println!(
        "\nStore {} ({}), {} — agent, HQ's copy, and the simulator's ground truth:\n",
        config.store.name, args.profile, args.date
    );
    print!(
        "{}",
        table::comparison(&agent_days, &hq_days, std::slice::from_ref(&day.truth))
    );
    // HQ holds what left the store: the agent's summaries with small distributions redacted.
    let min_count = u64::from(config.privacy.min_count);
    let published_windows: Vec<_> = agent_windows
        .iter()
        .map(|w| w.redacted(min_count))
        .collect();
    let published_days: Vec<_> = agent_days.iter().map(|d| d.redacted(min_count)).collect();
    let equal = published_windows == hq_windows && published_days == hq_days;
    println!(
        "\nagent: {} windows, {} day(s); HQ: {} windows, {} day(s) — {}",
        agent_windows.len(),
        agent_days.len(),
        hq_windows.len(),
        hq_days.len(),
        if equal {
            "HQ's copy equals the agent's final windows"
        } else {
            "HQ's copy DIFFERS from the agent's"
        }
    );
    if !report.core.finished {
        bail!("the demo was interrupted before the day ended");
    }
    if !equal {
        bail!("HQ's copy differs from the agent's final windows");
    }
    Ok(())
}
