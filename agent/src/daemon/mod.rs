//! The agent as a daemon: sources → engine (core task) → sled → outbox → MQTT (sync task).
//!
//! Tasks talk over bounded channels; a `watch` flag asks every task to stop. Drain order on
//! SIGINT/SIGTERM: sources stop reading; the core commits the engine's state, its final
//! summaries and the source cursor in one transaction and flushes; the sync task publishes
//! `offline` on the retained status topic and disconnects; the process exits. Restart and first
//! start share one path: open the store, restore the engine from the last checkpoint (or start
//! fresh), resume the source at the checkpoint's cursor.

mod core;
pub mod http;
pub mod source;
pub mod sync;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use storefront_config::StoreConfig;
use storefront_engine::{Engine, Snapshot};
use storefront_storage::{Store, StoreOptions};
use tokio::sync::{mpsc, watch};

pub use self::core::{CoreOptions, CoreReport, TimeMode};
use self::source::Source;
use self::sync::{SyncOptions, SyncStatus};

/// Where the daemon publishes (the config's broker, or one the demo started) and where the
/// live inputs read; `tls` speaks `mqtts://` with the `[sync]` CA and client certificate.
pub use storefront_mqtt::BrokerUrl as BrokerAddress;

/// The rustls settings for `mqtts://` from `[sync]`'s CA bundle (or the system's roots) and
/// client certificate.
pub(crate) fn tls_configuration(
    sync: &storefront_config::SyncConfig,
) -> Result<rumqttc::TlsConfiguration> {
    let files = storefront_mqtt::TlsFiles {
        ca_file: sync.ca_file.clone(),
        client_cert_file: sync.client_cert_file.clone(),
        client_key_file: sync.client_key_file.clone(),
    };
    let config = storefront_mqtt::tls_client_config(&files)
        .context("sync.ca_file, sync.client_cert_file, sync.client_key_file")?;
    Ok(rumqttc::TlsConfiguration::Rustls(config))
}

/// How a daemon run ended.
#[derive(Clone, Debug)]
pub struct DaemonReport {
    pub core: CoreReport,
    pub sync: SyncStatus,
    /// Summaries still waiting for HQ's ack when the daemon stopped (read from the store).
    pub outbox_left: u64,
}

/// Opens the store, moving a corrupt database aside rather than crash-looping (its pseudonym
/// key destroyed, its unsent outbox carried over). A `storage.path` that is not the agent's
/// database is an error, and left as it is.
pub fn open_store(config: &StoreConfig) -> Result<Store> {
    let mut options = StoreOptions::new(&config.storage.path);
    options.cache_capacity_bytes = config.storage.cache_capacity_bytes;
    options.outbox_max_entries = config.sync.outbox_max_entries;
    options.retention_days = config.privacy.retention_days;
    options.min_count = u64::from(config.privacy.min_count);
    options.secret_files = vec![crate::live::keys::KEY_FILE.to_owned()];
    let (store, report) = Store::open(options)
        .with_context(|| format!("cannot open the store at {}", config.storage.path.display()))?;
    if let Some(moved) = report.moved_aside {
        tracing::error!(
            moved_to = %moved.path.display(),
            reason = %moved.reason,
            outbox_carried = moved.outbox_carried,
            outbox_corrupt = moved.outbox_corrupt,
            outbox_unreadable = moved.outbox_unreadable.as_deref().unwrap_or("-"),
            "The database was damaged: moved aside, starting fresh"
        );
    }
    Ok(store)
}

/// The engine as the last checkpoint left it, and the source cursor to resume from.
fn restore_engine(config: &StoreConfig, store: &Store) -> Result<(Engine, Option<u64>)> {
    match store.load_checkpoint::<Snapshot>() {
        Ok(Some(checkpoint)) => match Engine::restore(config.engine_config(), checkpoint.engine) {
            Ok(engine) => {
                if let Some(migration) = engine.migration() {
                    tracing::warn!(%migration, "Checkpoint written under another config");
                }
                tracing::info!(cursor = ?checkpoint.source_cursor, "Resuming from checkpoint");
                Ok((engine, checkpoint.source_cursor))
            }
            Err(error) => {
                tracing::error!(%error, "Checkpoint cannot be restored: starting the engine fresh");
                Ok((Engine::new(config.engine_config()), None))
            }
        },
        Ok(None) => Ok((Engine::new(config.engine_config()), None)),
        Err(error) => {
            tracing::error!(%error, "Checkpoint unreadable: starting the engine fresh");
            Ok((Engine::new(config.engine_config()), None))
        }
    }
}

fn read_password(config: &StoreConfig) -> Result<Option<(String, String)>> {
    let Some(user) = &config.sync.username else {
        return Ok(None);
    };
    let password = match &config.sync.password_file {
        Some(path) => storefront_mqtt::read_password(path).context("sync.password_file")?,
        None => String::new(),
    };
    Ok(Some((user.clone(), password)))
}

/// Everything a daemon run needs besides the config.
pub struct Run {
    pub source: Source,
    pub time: TimeMode,
    pub broker: BrokerAddress,
    /// With a finite source: after it ends, wait until HQ has acked the whole outbox (or this
    /// long), then stop.
    pub drain_after_end: Option<Duration>,
    pub commit_every_events: u64,
    pub publish_per_second: Option<u32>,
    /// Serve the dashboard, JSON API and `/metrics` here.
    pub http: Option<std::net::SocketAddr>,
    pub http_token: Option<String>,
}

pub async fn run(
    config: StoreConfig,
    run: Run,
    shutdown: watch::Receiver<bool>,
    status: watch::Sender<SyncStatus>,
) -> Result<DaemonReport> {
    if run.broker.host.is_empty() {
        bail!("no broker address");
    }
    let store = Arc::new(open_store(&config)?);
    let (engine, cursor) = restore_engine(&config, &store)?;
    let (events_tx, events_rx) = mpsc::channel(8192);
    // Sources stop first, the sync task last (drain order in the module docs).
    let (source_stop_tx, source_stop_rx) = watch::channel(false);
    let (sync_stop_tx, sync_stop_rx) = watch::channel(false);

    let sync_options = SyncOptions {
        host: run.broker.host.clone(),
        port: run.broker.port,
        client_id: config.sync.client_id.clone(),
        org: config.store.org.clone(),
        store_id: config.store.id.clone(),
        credentials: read_password(&config)?,
        tls: if run.broker.tls {
            Some(tls_configuration(&config.sync)?)
        } else {
            None
        },
        keep_alive: config.sync.keep_alive,
        publish_per_second: run
            .publish_per_second
            .unwrap_or(config.sync.publish_per_second),
        max_inflight: 100,
        ack_timeout: Duration::from_secs(10),
    };
    let sync_status = status.subscribe();
    let sync_task = tokio::spawn(sync::run(
        sync_options,
        store.clone(),
        status,
        sync_stop_rx.clone(),
    ));
    // Pushed inputs (door counters, POS) arrive through the dashboard's HTTP server.
    let (ingest, live_health) = match &run.source {
        Source::Live { sources, health } => (
            Some(sources.ingest_router(events_tx.clone(), health.clone())),
            Some(health.clone()),
        ),
        _ => (None, None),
    };
    let source_task = tokio::spawn(run.source.run(cursor, events_tx, source_stop_rx));
    let (view_tx, view_rx) = watch::channel(Arc::new(view::EngineView::default()));
    let mut http_task = None;
    if let Some(addr) = run.http {
        let source = Arc::new(view::AgentView {
            config: config.clone(),
            store: store.clone(),
            engine: view_rx,
            sync: sync_status.clone(),
            live: live_health,
        });
        http_task = Some(
            http::start(
                addr,
                http::router(source, run.http_token.clone(), ingest),
                http::HttpLimits::for_config(&config.dashboard),
                sync_stop_rx.clone(),
            )
            .await?,
        );
    }
    let core = self::core::Core::new(
        engine,
        store.clone(),
        cursor,
        CoreOptions {
            time: run.time,
            commit_interval: Duration::from_secs(30),
            commit_every_events: run.commit_every_events,
        },
        view_tx,
    );
    let mut outer_shutdown = shutdown.clone();
    let mut core_task = tokio::spawn(core.run(events_rx, shutdown));

    // The core ends when a finite source ends, or on shutdown after the sources stopped.
    let core_report = tokio::select! {
        result = &mut core_task => result.context("core task panicked")??,
        _ = outer_shutdown.changed() => {
            let _ = source_stop_tx.send(true);
            (&mut core_task).await.context("core task panicked")??
        }
    };
    let _ = source_stop_tx.send(true);
    if let Ok(Err(error)) = source_task.await {
        tracing::error!(error = %format!("{error:#}"), "Source failed");
    }

    if core_report.finished {
        if let Some(limit) = run.drain_after_end {
            tokio::select! {
                _ = drain(&store, limit) => {}
                _ = outer_shutdown.changed() => {}
            }
        }
    }
    let _ = sync_stop_tx.send(true);
    sync_task.await.context("sync task panicked")??;
    // The server holds the store too: the database is released once it has stopped.
    if let Some(task) = http_task {
        task.await.context("HTTP server task panicked")?;
    }
    let sync = sync_status.borrow().clone();
    let outbox_left = store.outbox_len();
    if outbox_left > 0 {
        tracing::warn!(
            outbox = outbox_left,
            "Summaries not yet acknowledged by HQ stay in the outbox: the next run sends them"
        );
    }
    Ok(DaemonReport {
        core: core_report,
        sync,
        outbox_left,
    })
}

/// Waits until HQ has acked the whole outbox, or `limit` passed. The outbox is read from the
/// store, never from the sync task's last status: that status is only refreshed when the sync
/// loop wakes, and a loop waiting out a reconnect backoff reported an outbox emptier than it
/// was (the daemon exited with summaries unsent).
async fn drain(store: &Store, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while store.outbox_len() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
