//! The agent's HTTP server: the dashboard, its JSON API and `/metrics`, and (running live) the
//! ingest routes, served within limits a client on the shop's network cannot wear down:
//!
//! * at most `dashboard.max_connections` connections at once: one more is closed as soon as it
//!   is accepted, so connections never hold more than that many file descriptors, and the
//!   listen queue never fills with connections waiting for a slot;
//! * a connection that has not sent a request's headers within `dashboard.header_timeout_seconds`,
//!   or sits idle that long between requests, is closed (hyper's header read timeout);
//! * a request not done within `dashboard.request_timeout_seconds`, body included, is answered
//!   `408` (a body trickled byte by byte);
//! * an `accept` error (a full file table: `EMFILE`, `ENFILE`) pauses accepting, with backoff,
//!   instead of spinning or ending the server; the core is another task and keeps running.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use storefront_config::Dashboard;
use storefront_dashboard::DashboardSource;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_http::timeout::TimeoutLayer;

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Refused connections and accept errors are logged at most this often (with totals).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What one client may take of the server.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
}

impl HttpLimits {
    pub fn for_config(dashboard: &Dashboard) -> HttpLimits {
        HttpLimits {
            max_connections: dashboard.max_connections,
            header_timeout: dashboard.header_timeout,
            request_timeout: dashboard.request_timeout,
        }
    }
}

/// The dashboard (guarded by `token` when one is set) with the ingest routes merged in (they
/// check their own token).
pub fn router(
    source: Arc<dyn DashboardSource>,
    token: Option<String>,
    ingest: Option<Router>,
) -> Router {
    let router = storefront_dashboard::router(
        source,
        storefront_dashboard::DashboardOptions { auth_token: token },
    );
    match ingest {
        Some(ingest) => router.merge(ingest),
        None => router,
    }
}

/// Binds `addr` and serves `router` there in the background until `stop` changes.
pub async fn start(
    addr: SocketAddr,
    router: Router,
    limits: HttpLimits,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve the dashboard on {addr} (is the port taken?); fix: set dashboard.bind in the config, or --http for the demo"))?;
    tracing::info!(url = %format!("http://{}", listener.local_addr()?), "Dashboard listening");
    Ok(tokio::spawn(serve(listener, router, limits, stop)))
}

/// A count logged once, then as a total at most every [`LOG_EVERY`].
struct Throttled {
    total: u64,
    last_log: Option<Instant>,
}

impl Throttled {
    fn new() -> Throttled {
        Throttled {
            total: 0,
            last_log: None,
        }
    }

    /// Counts one; true when it is time to log.
    fn count(&mut self) -> bool {
        self.total += 1;
        let due = self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            self.last_log = Some(Instant::now());
        }
        due
    }
}

/// Serves `router` on `listener` within `limits` until `stop` changes; open connections are
/// then shut down gracefully, and this returns once they are closed (nothing the router holds,
/// such as the store, outlives it).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut accept_errors = Throttled::new();
    let mut refused = Throttled::new();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(error) => {
                if accept_errors.count() {
                    tracing::warn!(%error, total = accept_errors.total, "Cannot accept HTTP connections (file table full?): pausing");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if refused.count() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    total = refused.total,
                    "HTTP connections over the limit closed"
                );
            }
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended");
            }
        });
    }
    drop(router);
    while connections.join_next().await.is_some() {}
}
