use storefront_protocol::topic::TopicIdError;

/// Boxed cause of a storage failure, so no storage engine's error type leaks into the API.
pub type StorageSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything the HQ library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HqError {
    #[error("cannot open the HQ database at {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: StorageSource,
    },
    #[error("storage failed while {context}: {source}")]
    Storage {
        context: &'static str,
        #[source]
        source: StorageSource,
    },
    /// A record failed its checksum or could not be decoded: the database is damaged.
    #[error("corrupt record in table {table} at key {key}: {reason}")]
    Corrupt {
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error("invalid id: {0}")]
    InvalidId(#[from] TopicIdError),
    #[error("invalid date {0:?}: expected YYYY-MM-DD")]
    InvalidDate(String),
    #[error("date range {from}..{to} is empty: the first date is after the last")]
    EmptyDateRange { from: String, to: String },
    #[error("invalid broker address {url:?}: {reason}")]
    BrokerUrl { url: String, reason: String },
    #[error("invalid collector setting {field}: {reason}")]
    Config { field: &'static str, reason: String },
    #[error("a background task failed: {0}")]
    Task(String),
}

impl HqError {
    pub(crate) fn storage(context: &'static str, source: impl Into<StorageSource>) -> Self {
        HqError::Storage {
            context,
            source: source.into(),
        }
    }
}
