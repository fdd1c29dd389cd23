//! The POS poller: `GET <sources.pos.url>` every `poll_interval`, JSON pages in the shape of
//! `storefront_inputs::pos`.
//!
//! # Protocol
//! The first poll has no cursor. When a page carries `next_cursor`, the next request is
//! `GET <url>?cursor=<next_cursor>` at once (a backlog is drained page by page, at most
//! [`MAX_PAGES_PER_POLL`] per poll); a page without one ends the poll, and the next poll asks
//! again with the last cursor the poller had, so transactions added to the last page are seen.
//! Transactions may therefore arrive more than once: the engine counts each transaction id
//! once. The cursor is kept in memory only: after a restart the poller starts from the first
//! page again, which the same de-duplication absorbs.
//!
//! # Failures
//! Every request has a timeout ([`REQUEST_TIMEOUT`]). A network error, a non-2xx status, a body
//! over 64 KiB or a page the parser rejects is a failed poll: counted (rejected pages by
//! reason), logged (the first, then once a minute), and retried after an exponential backoff
//! from 1 s up to 5 minutes (or the poll interval, if longer). The `Authorization` header is
//! read from `auth_header_file` before each poll (so a rotated secret is picked up) and marked
//! sensitive; it is never logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue};
use storefront_config::PosSource;
use storefront_inputs::{InputError, MAX_PAYLOAD_BYTES, parse_transactions};
use storefront_protocol::Event;
use tokio::sync::{mpsc, watch};

use super::health::{Input, LiveHealth};
use super::polled_transactions;
use crate::clock::SharedClock;
use crate::daemon::source::SourceMessage;

/// Timeout of one request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Pages fetched one after the other in one poll, at most.
pub const MAX_PAGES_PER_POLL: usize = 1000;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("cannot read the POS auth header file: {0}")]
    AuthFile(String),
    #[error("sources.pos.url is not a valid URL: {0}")]
    Url(String),
    #[error("POS request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("POS endpoint answered HTTP {0}")]
    Status(u16),
    #[error("POS page rejected: {0}")]
    Rejected(InputError),
    /// The core has stopped: nothing to poll for.
    #[error("the core has stopped")]
    Stopped,
}

/// Polls the POS endpoint until `shutdown` or until the core is gone; never returns early on
/// a failure.
pub async fn run_pos(
    source: PosSource,
    clock: SharedClock,
    out: mpsc::Sender<SourceMessage>,
    health: Arc<LiveHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    storefront_mqtt::install_crypto_provider();
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            // Only a broken TLS setup makes this fail; nothing to retry.
            tracing::error!(%error, "Cannot build the POS HTTP client: POS polling is off");
            return;
        }
    };
    let max_backoff = BACKOFF_MAX.max(source.poll_interval);
    let mut cursor: Option<String> = None;
    let mut backoff = BACKOFF_MIN;
    let mut failing_since: Option<Instant> = None;
    let mut last_log = Instant::now();
    loop {
        let result = tokio::select! {
            result = poll(&client, &source, &mut cursor, &out, &health, &clock) => result,
            _ = shutdown.changed() => return,
        };
        let wait = match result {
            Ok(transactions) => {
                if let Some(since) = failing_since.take() {
                    tracing::info!(
                        down_seconds = since.elapsed().as_secs(),
                        "POS endpoint reachable again"
                    );
                }
                tracing::debug!(transactions, "POS polled");
                backoff = BACKOFF_MIN;
                source.poll_interval
            }
            Err(PollError::Stopped) => {
                tracing::info!("The core has stopped: POS polling stops");
                return;
            }
            Err(error) => {
                health.pos_failure(clock.now_ms(), error.to_string());
                let now = Instant::now();
                match failing_since {
                    None => {
                        failing_since = Some(now);
                        last_log = now;
                        tracing::warn!(%error, retry_in = ?backoff, "POS poll failed; retrying with backoff");
                    }
                    Some(since) if now.duration_since(last_log) >= FAILURE_LOG_EVERY => {
                        last_log = now;
                        tracing::warn!(%error, failing_seconds = now.duration_since(since).as_secs(), "POS polls still failing");
                    }
                    Some(_) => tracing::debug!(%error, "POS poll failed"),
                }
                let wait = backoff;
                backoff = (backoff * 2).min(max_backoff);
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One poll: pages until one without a new cursor. Returns the transactions sent.
async fn poll(
    client: &reqwest::Client,
    source: &PosSource,
    cursor: &mut Option<String>,
    out: &mpsc::Sender<SourceMessage>,
    health: &LiveHealth,
    clock: &SharedClock,
) -> Result<usize, PollError> {
    let auth = match &source.auth_header_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| PollError::AuthFile(format!("{}: {e}", path.display())))?;
            let mut value = HeaderValue::from_str(text.trim()).map_err(|_| {
                PollError::AuthFile(format!("{}: not a valid header value", path.display()))
            })?;
            value.set_sensitive(true);
            Some(value)
        }
        None => None,
    };
    let mut sent = 0;
    for _ in 0..MAX_PAGES_PER_POLL {
        let mut url =
            reqwest::Url::parse(&source.url).map_err(|e| PollError::Url(e.to_string()))?;
        if let Some(c) = cursor.as_deref() {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let mut request = client.get(url);
        if let Some(auth) = &auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let mut response = request.send().await?;
        if !response.status().is_success() {
            return Err(PollError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_PAYLOAD_BYTES {
                let error = InputError::Oversized {
                    len: body.len() + chunk.len(),
                };
                health.rejected(Input::PosPoll, &error);
                return Err(PollError::Rejected(error));
            }
            body.extend_from_slice(&chunk);
        }
        let page = match parse_transactions(&body) {
            Ok(page) => page,
            Err(error) => {
                health.rejected(Input::PosPoll, &error);
                return Err(PollError::Rejected(error));
            }
        };
        let now = clock.now_ms();
        let transactions = polled_transactions(page.transactions, now, health);
        health.accepted(Input::PosPoll, transactions.len());
        health.pos_success(now);
        sent += transactions.len();
        for transaction in transactions {
            if out
                .send(SourceMessage::Event(Event::Transaction(transaction), None))
                .await
                .is_err()
            {
                health.undelivered(1);
                return Err(PollError::Stopped);
            }
        }
        match page.next_cursor {
            Some(next) if cursor.as_deref() != Some(next.as_str()) => *cursor = Some(next),
            _ => return Ok(sent),
        }
    }
    tracing::warn!(
        pages = MAX_PAGES_PER_POLL,
        "POS backlog longer than one poll; continuing at the next poll"
    );
    Ok(sent)
}
