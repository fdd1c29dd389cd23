//! HTTP ingest routes for pushed inputs, to be merged into the agent's HTTP server:
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /ingest/v1/door` | door-counter JSON: one record or an array (`storefront_inputs::door`) | `202 {"accepted":n}` |
//! | `POST /ingest/v1/transactions` | one transaction object, a page `{"transactions":[…]}` or an array (`storefront_inputs::pos`) | `202 {"accepted":n}` |
//!
//! With `sources.ingest.token_file` set, every request needs `Authorization: Bearer <token>`
//! (compared in constant time), else `401`; the dashboard's token is not accepted here. The
//! config requires one when the server listens beyond loopback.
//!
//! A rejected body answers `400` (`413` when over 64 KiB) with `{"error":"<reason>",
//! "message":"…"}` — the reason is the metrics label, the message names fields only — and is
//! counted in [`LiveHealth`]: records from a sensor the config does not name
//! (`unknown_source`), dated more than 2 minutes after their reception, or beyond what a door or
//! till produces (`out_of_range`) add nothing. `503` means the agent's core has stopped. A sender
//! should re-send a batch after any non-2xx answer; duplicates are counted once by the engine
//! (door record ids, transaction ids).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use storefront_inputs::{InputError, MAX_PAYLOAD_BYTES};
use storefront_protocol::Event;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use super::health::{Input, LiveHealth};
use super::{KnownSources, door_records, pushed_transactions};
use crate::clock::SharedClock;
use crate::daemon::source::SourceMessage;

/// What the routes hand records to and check them against.
#[derive(Clone)]
pub struct Ingest {
    pub out: mpsc::Sender<SourceMessage>,
    pub health: Arc<LiveHealth>,
    /// Records without a time are stamped with it, and sensors marked seen at it.
    pub clock: SharedClock,
    pub known: KnownSources,
}

/// The ingest routes; with a `token`, only for requests that bear it.
pub fn router(ingest: Ingest, token: Option<&str>) -> Router {
    let routes = Router::new()
        .route("/ingest/v1/door", post(door))
        .route("/ingest/v1/transactions", post(transactions))
        .with_state(ingest);
    match token {
        Some(token) => {
            let token: Arc<[u8]> = token.as_bytes().into();
            routes.layer(middleware::from_fn(move |request: Request, next: Next| {
                let token = token.clone();
                async move { require_token(&token, request, next).await }
            }))
        }
        None => routes,
    }
}

async fn require_token(token: &[u8], request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(token))) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({
            "error": "unauthorized",
            "message": "the ingest routes need their token",
            "fix": "send `Authorization: Bearer <token>` with the token of sources.ingest.token_file",
        })),
    )
        .into_response()
}

async fn door(State(ingest): State<Ingest>, body: Body) -> Response {
    let body = match read(body).await {
        Ok(body) => body,
        Err(error) => return reject(&ingest, Input::DoorHttp, error),
    };
    // Received once the body is in: a slow sender's records are not dated before it.
    let now = ingest.clock.now_ms();
    match door_records(&body, now, &ingest.known, &ingest.health) {
        Ok(records) => {
            ingest.health.accepted(Input::DoorHttp, records.len());
            deliver(&ingest, records.into_iter().map(Event::Door).collect()).await
        }
        Err(error) => reject(&ingest, Input::DoorHttp, error),
    }
}

async fn transactions(State(ingest): State<Ingest>, body: Body) -> Response {
    let body = match read(body).await {
        Ok(body) => body,
        Err(error) => return reject(&ingest, Input::PosHttp, error),
    };
    match pushed_transactions(&body, ingest.clock.now_ms()) {
        Ok(transactions) => {
            ingest.health.accepted(Input::PosHttp, transactions.len());
            deliver(
                &ingest,
                transactions.into_iter().map(Event::Transaction).collect(),
            )
            .await
        }
        Err(error) => reject(&ingest, Input::PosHttp, error),
    }
}

/// The body, up to one byte over the parsers' limit (so an oversized one is recognised).
async fn read(body: Body) -> Result<axum::body::Bytes, InputError> {
    axum::body::to_bytes(body, MAX_PAYLOAD_BYTES + 1)
        .await
        .map_err(|error| {
            let oversized = std::error::Error::source(&error)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>())
                || error.into_inner().is::<http_body_util::LengthLimitError>();
            if oversized {
                InputError::Oversized {
                    len: MAX_PAYLOAD_BYTES + 1,
                }
            } else {
                InputError::Malformed {
                    detail: "the request body could not be read",
                }
            }
        })
}

fn reject(ingest: &Ingest, input: Input, error: InputError) -> Response {
    ingest.health.rejected(input, &error);
    let status = match error {
        InputError::Oversized { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    (
        status,
        Json(serde_json::json!({
            "error": error.reason().as_str(),
            "message": error.to_string(),
        })),
    )
        .into_response()
}

async fn deliver(ingest: &Ingest, events: Vec<Event>) -> Response {
    let n = events.len();
    for (i, event) in events.into_iter().enumerate() {
        if ingest
            .out
            .send(SourceMessage::Event(event, None))
            .await
            .is_err()
        {
            ingest.health.undelivered(n - i);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"error": "stopped", "message": "the agent is stopping"})),
            )
                .into_response();
        }
    }
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "accepted": n })),
    )
        .into_response()
}
