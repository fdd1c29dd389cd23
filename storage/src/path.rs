//! Whose directory `storage.path` names. The store creates, and may move aside, only a
//! directory it recognises as its own database; anything else is an error that changes nothing.
//!
//! Recognised as ours:
//! - a missing directory, an empty one, or one holding only companion files (the agent's
//!   pseudonym key, which the agent may write before the store opens): a database is created
//!   there, and the [`MARKER`] file written first;
//! - a directory holding the [`MARKER`] of this format;
//! - a database made before the marker existed: sled's `conf` and `db`, and nothing but sled's
//!   files (`blobs/`, `snap.*`) and companion files. It gets its marker once it opened.
//!
//! A regular file, a directory holding anything else, or a marker of a later format is refused.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::error;

use crate::StoreError;

/// The file that marks a directory as this product's database.
pub const MARKER: &str = "storefront-store";
/// Format of the directory (the marker's version), not of the records.
const MARKER_VERSION: u32 = 1;
const MARKER_PREFIX: &str = "storefront-store v";

/// What the directory at the storage path is, before it is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// Missing, empty, or holding companion files only: a database is to be created.
    New,
    /// Marked as this product's database.
    Marked,
    /// A database from before the marker: sled's files only.
    Unmarked,
}

fn not_ours(path: &Path, problem: String) -> StoreError {
    StoreError::NotOurs {
        path: path.to_owned(),
        problem,
    }
}

/// Looks at `path` without changing anything. `companions` are the file names the product
/// keeps in the directory besides the database.
pub(crate) fn inspect(path: &Path, companions: &[String]) -> Result<Ownership, StoreError> {
    let io = |source| StoreError::Inspect {
        path: path.to_owned(),
        source,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ownership::New),
        Err(e) => return Err(io(e)),
    };
    if !metadata.is_dir() {
        return Err(not_ours(path, "it is a file, not a directory".into()));
    }
    match std::fs::read_to_string(path.join(MARKER)) {
        Ok(text) => {
            let version = text
                .lines()
                .next()
                .and_then(|line| line.strip_prefix(MARKER_PREFIX))
                .and_then(|v| v.trim().parse::<u32>().ok());
            match version {
                Some(MARKER_VERSION) => return Ok(Ownership::Marked),
                Some(found) => {
                    return Err(StoreError::NewerFormat {
                        path: path.to_owned(),
                        found,
                    });
                }
                // A marker torn by a power cut while the database was created: recognise the
                // directory by its files, as one from before the marker.
                None => {}
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut sled_files = (false, false);
    let mut foreign = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map_err(io)?.is_dir();
        match (name.as_str(), is_dir) {
            ("conf", false) => sled_files.0 = true,
            ("db", false) => sled_files.1 = true,
            ("blobs", true) => {}
            (MARKER, false) => {}
            (snap, false) if snap.starts_with("snap.") => {}
            (companion, false) if companions.iter().any(|c| c == companion) => {}
            _ => foreign.push(name),
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        let shown = foreign.len().min(3);
        let more = match foreign.len() - shown {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        return Err(not_ours(
            path,
            format!(
                "it holds {}{more}, which the agent did not create",
                foreign[..shown].join(", ")
            ),
        ));
    }
    Ok(match sled_files {
        (true, true) => Ownership::Unmarked,
        (false, false) => Ownership::New,
        _ => {
            return Err(not_ours(
                path,
                "it holds part of a sled database (one of `conf` and `db` is missing)".into(),
            ));
        }
    })
}

/// Creates the directory if needed and writes the marker, durably.
pub(crate) fn mark(path: &Path) -> Result<(), StoreError> {
    let sync_err = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Sync { path, source }
    };
    std::fs::create_dir_all(path).map_err(sync_err(path))?;
    let marker = path.join(MARKER);
    let mut file = std::fs::File::create(&marker).map_err(sync_err(&marker))?;
    writeln!(
        file,
        "{MARKER_PREFIX}{MARKER_VERSION}\n\
         This directory is the storefront agent's database. Do not put other files here:\n\
         the agent moves the whole directory aside if the database is damaged."
    )
    .and_then(|()| file.sync_all())
    .map_err(sync_err(&marker))?;
    sync_dir(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Sync {
            path: dir.to_owned(),
            source,
        })
}

/// Renames the damaged database to `<path>.corrupt-<unix-seconds>[-n]` and destroys the
/// companion files in the copy (they may be secrets: the pseudonym key). Returns the new path.
pub(crate) fn move_aside(path: &Path, companions: &[String]) -> Result<PathBuf, StoreError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = format!("{}.corrupt-{secs}", path.display());
    let mut to = PathBuf::from(&base);
    let mut n = 1;
    while to.exists() {
        to = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &to).map_err(|source| StoreError::MoveAside {
        path: path.to_owned(),
        to: to.clone(),
        source,
    })?;
    for name in companions {
        let file = to.join(name);
        if let Err(e) = destroy(&file) {
            error!(file = %file.display(), error = %e, "Cannot destroy a secret in the database moved aside: delete it by hand");
        }
    }
    Ok(to)
}

/// Overwrites a file with zeros, syncs it, then removes it: its bytes do not linger in a
/// freed block the way a plain unlink leaves them.
fn destroy(file: &Path) -> std::io::Result<()> {
    let len = match std::fs::metadata(file) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut handle = std::fs::OpenOptions::new().write(true).open(file)?;
    handle.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)])?;
    handle.sync_all()?;
    drop(handle);
    std::fs::remove_file(file)?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
