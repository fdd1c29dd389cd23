//! What makes a sled database durable on disk, shared by the agent's [`crate::Store`] and HQ's
//! database: sled's own `flush()` only `sync_file_range`s its log (neither the file size nor
//! the device cache) and never syncs the blob files it writes for large values. After sled's
//! flush, [`SledFiles::sync`] `fdatasync`s the log, `fsync`s each blob file not synced before
//! and, when there were new ones, the blob directory, then the database directory.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A file or directory that could not be synced.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path} to disk: {source}")]
pub struct SyncError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The files of one sled database directory, remembering which blob files are synced.
#[derive(Debug)]
pub struct SledFiles {
    dir: PathBuf,
    synced_blobs: HashSet<OsString>,
}

impl SledFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SledFiles {
            dir: dir.into(),
            synced_blobs: HashSet::new(),
        }
    }

    /// Syncs what sled's flush leaves unsynced. Call it right after `sled::Db::flush`.
    pub fn sync(&mut self) -> Result<(), SyncError> {
        sync(&self.dir.join("db"), true)?;
        let blobs = self.dir.join("blobs");
        if let Ok(entries) = std::fs::read_dir(&blobs) {
            let mut present = HashSet::new();
            let mut new_blobs = false;
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !self.synced_blobs.contains(&name) {
                    // A blob removed meanwhile is not an error.
                    match sync(&entry.path(), false) {
                        Ok(()) => new_blobs = true,
                        Err(_) if !entry.path().exists() => continue,
                        Err(e) => return Err(e),
                    }
                }
                present.insert(name);
            }
            self.synced_blobs = present;
            if new_blobs {
                sync(&blobs, false)?;
            }
        }
        sync(&self.dir, false)
    }
}

fn sync(path: &Path, data_only: bool) -> Result<(), SyncError> {
    let error = |source| SyncError {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(error)?;
    let synced = if data_only {
        file.sync_data()
    } else {
        file.sync_all()
    };
    synced.map_err(error)
}
