//! The MQTT topic tree. Ids are checked before they become topic levels, so no store or zone
//! name can escape its level (`/`), turn into a wildcard (`+`, `#`) or truncate a topic (NUL).
//!
//! ```text
//! storefront/v1/<org>/<store>/summary   window and daily summaries (QoS 1)
//! storefront/v1/<org>/<store>/ack       HQ's application-level acks
//! storefront/v1/<org>/<store>/status    retained online/offline (last will)
//! ```

/// Longest id accepted as one topic level.
pub const MAX_ID_LEN: usize = 64;

/// Root of every topic this product publishes, with the topic tree's version.
pub const ROOT: &str = "storefront/v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicIdError {
    #[error("id is empty")]
    Empty,
    #[error("id {id:?} is longer than {MAX_ID_LEN} bytes")]
    TooLong { id: String },
    #[error(
        "id {id:?} contains {found:?}, which MQTT gives a meaning in topics; use letters, digits, '-' or '_'"
    )]
    Reserved { id: String, found: char },
}

/// Checks that `id` can stand as one topic level.
pub fn check_id(id: &str) -> Result<(), TopicIdError> {
    if id.is_empty() {
        return Err(TopicIdError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(TopicIdError::TooLong { id: id.to_owned() });
    }
    if let Some(found) = id.chars().find(|c| matches!(c, '/' | '+' | '#' | '\0')) {
        return Err(TopicIdError::Reserved {
            id: id.to_owned(),
            found,
        });
    }
    Ok(())
}

/// The kinds of topic under a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreTopic {
    Summary,
    Ack,
    Status,
}

impl StoreTopic {
    fn suffix(self) -> &'static str {
        match self {
            StoreTopic::Summary => "summary",
            StoreTopic::Ack => "ack",
            StoreTopic::Status => "status",
        }
    }
}

/// `storefront/v1/<org>/<store>/<kind>`, with both ids checked.
pub fn store_topic(org: &str, store: &str, kind: StoreTopic) -> Result<String, TopicIdError> {
    check_id(org)?;
    check_id(store)?;
    Ok(format!("{ROOT}/{org}/{store}/{}", kind.suffix()))
}

/// Splits a summary topic into `(org, store)`; `None` for any other topic.
pub fn parse_summary_topic(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
    let mut levels = rest.split('/');
    let (org, store, kind) = (levels.next()?, levels.next()?, levels.next()?);
    if levels.next().is_some() || kind != StoreTopic::Summary.suffix() {
        return None;
    }
    (check_id(org).is_ok() && check_id(store).is_ok()).then_some((org, store))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_that_would_escape_a_level_are_rejected() {
        for bad in ["", "a/b", "+", "store#1", "nul\0", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_id(&"x".repeat(64)).is_ok());
        assert!(check_id("paris-rivoli_01").is_ok());
    }

    #[test]
    fn summary_topic_round_trips() {
        let topic = store_topic("acme", "paris-01", StoreTopic::Summary).unwrap();
        assert_eq!(topic, "storefront/v1/acme/paris-01/summary");
        assert_eq!(parse_summary_topic(&topic), Some(("acme", "paris-01")));
        assert_eq!(parse_summary_topic("storefront/v1/acme/paris-01/ack"), None);
        assert_eq!(parse_summary_topic("storefront/v1/acme/a/b/summary"), None);
    }

    proptest! {
        #[test]
        fn every_accepted_pair_parses_back(org in "[^/+#\0]{1,64}", store in "[^/+#\0]{1,64}") {
            prop_assume!(org.len() <= MAX_ID_LEN && store.len() <= MAX_ID_LEN);
            let topic = store_topic(&org, &store, StoreTopic::Summary).unwrap();
            prop_assert_eq!(parse_summary_topic(&topic), Some((org.as_str(), store.as_str())));
        }
    }
}
