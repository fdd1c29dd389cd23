use std::path::PathBuf;

/// Why a storage operation failed. Every variant names the path, tree or record involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store options: {0}")]
    InvalidOptions(String),
    /// Another process (normally another running agent) holds the database's lock. The
    /// database is left as it is.
    #[error(
        "the database at {path} is in use by another process (is another agent running?): {source}"
    )]
    Locked { path: PathBuf, source: sled::Error },
    /// `storage.path` names something that is not this product's database. Nothing was changed.
    #[error(
        "{path} is not the agent's database: {problem}; nothing was changed. fix: set \
         storage.path to a missing or empty directory for the agent's database (it is created), \
         or move what is there away"
    )]
    NotOurs { path: PathBuf, problem: String },
    #[error(
        "the database at {path} was written by a newer agent (directory format {found}); nothing \
         was changed. fix: run that newer agent, or set storage.path to another directory"
    )]
    NewerFormat { path: PathBuf, found: u32 },
    #[error("cannot look at the storage path {path}: {source}")]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("cannot move the damaged database at {path} aside to {to}: {source}")]
    MoveAside {
        path: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error("storage failed to {op} (tree {tree}): {source}")]
    Sled {
        op: &'static str,
        tree: &'static str,
        source: sled::Error,
    },
    #[error("cannot write {path} to disk: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("record {key} in tree {tree} is corrupt: {problem}")]
    Corrupt {
        tree: &'static str,
        key: String,
        problem: Corruption,
    },
    #[error("cannot encode record {key} for tree {tree}: {source}")]
    Encode {
        tree: &'static str,
        key: String,
        source: serde_json::Error,
    },
    /// One database holds one store's records.
    #[error("this database holds store {stored:?}; a summary for store {given:?} was committed")]
    StoreMismatch { stored: String, given: String },
}

/// What is wrong with a corrupt record.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    #[error("{len} bytes is shorter than the 5-byte header")]
    TooShort { len: usize },
    #[error(
        "format version {found} is not the {} this build reads",
        crate::FORMAT_VERSION
    )]
    UnknownVersion { found: u8 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {actual:#010x}")]
    Checksum { stored: u32, actual: u32 },
    #[error("payload does not decode: {0}")]
    Decode(serde_json::Error),
    #[error("the key is not a valid key of this tree")]
    BadKey,
    #[error("the record is missing")]
    Missing,
}
