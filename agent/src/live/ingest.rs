//! HTTP ingest routes for pushed inputs, to be merged into the agent's HTTP server:
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /ingest/v1/door` | door-counter JSON: one record or an array (`storefront_inputs::door`) | `202 {"accepted":n}` |
//! | `POST /ingest/v1/transactions` | one transaction object, a page `{"transactions":[…]}` or an array (`storefront_inputs::pos`) | `202 {"accepted":n}` |
//!
//! A rejected body answers `400` (`413` when over 64 KiB) with `{"error":"<reason>",
//! "message":"…"}` — the reason is the metrics label, the message names fields only — and is
//! counted in [`LiveHealth`]. `503` means the agent's core has stopped. A sender should re-send
//! a batch after any non-2xx answer; duplicates are counted once by the engine (door record
//! ids, transaction ids).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use storefront_inputs::{InputError, MAX_PAYLOAD_BYTES, parse_door};
use storefront_protocol::{Event, Timestamp};
use tokio::sync::mpsc;

use super::health::{Input, LiveHealth};
use super::parse_pushed_transactions;
use crate::clock::SharedClock;
use crate::daemon::source::SourceMessage;

#[derive(Clone)]
struct Ingest {
    out: mpsc::Sender<SourceMessage>,
    health: Arc<LiveHealth>,
    clock: SharedClock,
}

/// The ingest routes, with their state; records without a time are stamped with `clock`.
pub fn router(
    out: mpsc::Sender<SourceMessage>,
    health: Arc<LiveHealth>,
    clock: SharedClock,
) -> Router {
    Router::new()
        .route("/ingest/v1/door", post(door))
        .route("/ingest/v1/transactions", post(transactions))
        .with_state(Ingest { out, health, clock })
}

async fn door(State(ingest): State<Ingest>, body: Body) -> Response {
    let now = ingest.clock.now_ms();
    let body = match read(body).await {
        Ok(body) => body,
        Err(error) => return reject(&ingest, Input::DoorHttp, error),
    };
    match parse_door(&body, Timestamp(now)) {
        Ok(records) => {
            for record in &records {
                ingest.health.door_seen(&record.sensor, now);
            }
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
    match parse_pushed_transactions(&body) {
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
