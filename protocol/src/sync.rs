//! What travels between a store's agent and HQ over MQTT.
//!
//! The agent publishes each final window and daily summary as a [`SyncMessage`] (QoS 1) on
//! `storefront/v1/<org>/<store>/summary`. HQ stores it idempotently under its
//! [`IdempotencyKey`] and then answers with an [`Ack`] on `storefront/v1/<org>/<store>/ack`;
//! only then does the agent drop the message from its outbox. So delivery is at-least-once on
//! the wire and exactly-once in HQ's tables.

use serde::{Deserialize, Serialize};

use crate::{DailySummary, SUMMARY_SCHEMA_VERSION, Timestamp, WindowSummary};

/// Largest summary message HQ accepts, bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryKind {
    Window,
    Daily,
}

/// `(store_id, kind, window_start)`: what HQ upserts by. A daily summary's `window_start` is
/// the first instant of its local day.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub store_id: String,
    pub kind: SummaryKind,
    pub window_start: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "summary", rename_all = "snake_case")]
pub enum SummaryPayload {
    Window(WindowSummary),
    Daily(DailySummary),
}

/// One summary on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncMessage {
    pub schema: u32,
    /// Per-store sequence number, increasing in the order the agent stored the summaries.
    pub seq: u64,
    pub key: IdempotencyKey,
    pub payload: SummaryPayload,
}

/// HQ's application-level acknowledgement: these sequence numbers are stored durably.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub schema: u32,
    pub store_id: String,
    pub seqs: Vec<u64>,
}

/// Why HQ refused a message.
#[derive(Debug, thiserror::Error)]
pub enum SyncMessageError {
    #[error("message is {0} bytes, over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("not a summary message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("schema {found} is not supported (this build reads {SUMMARY_SCHEMA_VERSION})")]
    UnsupportedSchema { found: u32 },
    #[error("the key says store {key:?} but the summary is for {payload:?}")]
    StoreMismatch { key: String, payload: String },
    #[error("the key does not match the summary it carries")]
    KeyMismatch,
}

impl SyncMessage {
    pub fn new(seq: u64, key: IdempotencyKey, payload: SummaryPayload) -> Self {
        SyncMessage {
            schema: SUMMARY_SCHEMA_VERSION,
            seq,
            key,
            payload,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("summary types always serialise")
    }

    /// Decodes and checks a message: size, schema, and that key and payload agree.
    pub fn decode(bytes: &[u8]) -> Result<SyncMessage, SyncMessageError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(SyncMessageError::TooLarge(bytes.len()));
        }
        let message: SyncMessage = serde_json::from_slice(bytes)?;
        if message.schema != SUMMARY_SCHEMA_VERSION {
            return Err(SyncMessageError::UnsupportedSchema {
                found: message.schema,
            });
        }
        let (store, kind, start_matches) = match &message.payload {
            SummaryPayload::Window(w) => (
                &w.store_id,
                SummaryKind::Window,
                w.window_start == message.key.window_start,
            ),
            SummaryPayload::Daily(d) => (
                &d.store_id,
                SummaryKind::Daily,
                d.day_start == message.key.window_start,
            ),
        };
        if *store != message.key.store_id {
            return Err(SyncMessageError::StoreMismatch {
                key: message.key.store_id.clone(),
                payload: store.clone(),
            });
        }
        if kind != message.key.kind || !start_matches {
            return Err(SyncMessageError::KeyMismatch);
        }
        Ok(message)
    }
}

impl WindowSummary {
    pub fn idempotency_key(&self) -> IdempotencyKey {
        IdempotencyKey {
            store_id: self.store_id.clone(),
            kind: SummaryKind::Window,
            window_start: self.window_start,
        }
    }
}

impl DailySummary {
    pub fn idempotency_key(&self) -> IdempotencyKey {
        IdempotencyKey {
            store_id: self.store_id.clone(),
            kind: SummaryKind::Daily,
            window_start: self.day_start,
        }
    }
}

impl SummaryPayload {
    /// The copy that may leave the store (see [`crate::Funnel::redacted`]).
    pub fn redacted(&self, min_count: u64) -> SummaryPayload {
        match self {
            SummaryPayload::Window(w) => SummaryPayload::Window(w.redacted(min_count)),
            SummaryPayload::Daily(d) => SummaryPayload::Daily(d.redacted(min_count)),
        }
    }

    pub fn idempotency_key(&self) -> IdempotencyKey {
        match self {
            SummaryPayload::Window(w) => w.idempotency_key(),
            SummaryPayload::Daily(d) => d.idempotency_key(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Funnel;

    fn window() -> WindowSummary {
        WindowSummary {
            schema: SUMMARY_SCHEMA_VERSION,
            store_id: "s1".into(),
            window_start: Timestamp(1_000),
            window_seconds: 900,
            local_date: "2026-11-23".into(),
            local_hour: 9,
            hour_start: Timestamp(0),
            funnel: Funnel {
                entries: 3,
                ..Funnel::default()
            },
            coverage: None,
        }
    }

    #[test]
    fn a_message_round_trips_and_is_checked() {
        let w = window();
        let message = SyncMessage::new(7, w.idempotency_key(), SummaryPayload::Window(w));
        assert_eq!(SyncMessage::decode(&message.encode()).unwrap(), message);
    }

    #[test]
    fn a_key_for_another_store_is_refused() {
        let w = window();
        let mut key = w.idempotency_key();
        key.store_id = "s2".into();
        let message = SyncMessage::new(1, key, SummaryPayload::Window(w));
        assert!(matches!(
            SyncMessage::decode(&message.encode()),
            Err(SyncMessageError::StoreMismatch { .. })
        ));
    }

    #[test]
    fn oversized_and_malformed_messages_are_refused() {
        assert!(matches!(
            SyncMessage::decode(&vec![b' '; MAX_MESSAGE_BYTES + 1]),
            Err(SyncMessageError::TooLarge(_))
        ));
        assert!(matches!(
            SyncMessage::decode(br#"{"schema":1}"#),
            Err(SyncMessageError::Malformed(_))
        ));
    }
}
