//! The pseudonym key: a random 32-byte key per rotation period, kept on disk so a restart keeps
//! the pseudonyms of the period, and overwritten (destroyed) when the period ends so pseudonyms
//! of different periods cannot be joined.
//!
//! # Periods
//! `privacy.pseudonym_rotation_days` = N days, aligned to the store's local midnight: period
//! `k` starts at local midnight of day `1970-01-01 + k·N` (local calendar days), so every store
//! with the same N and time zone rotates at the same moments, and a restart computes the same
//! period. Periods follow the live clock (`crate::clock`), the one inputs are stamped with. A local midnight that does not exist (a DST jump at 00:00) is the first local time
//! after it that does.
//!
//! # The key file
//! `<storage.path>/pseudonym-key`, mode 0600, fixed length:
//!
//! ```text
//! storefront-pseudonym-key v1
//! period_start=2026-11-23
//! key=<64 hex digits>
//! ```
//!
//! On rotation the file is overwritten in place (same length, then `fsync`), not replaced by a
//! rename, so the old key's bytes do not linger in an unlinked inode. A file that is unreadable,
//! malformed or of another period is replaced by a fresh key: the cost is only that pseudonyms
//! of the period so far no longer match (a clock set back past a rotation also starts a new
//! key, never reuses a destroyed one).
//!
//! Architecture invariant: the key never appears in a log line, a channel other than as a
//! [`Pseudonymizer`] (whose `Debug` hides it), or any file but this one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use storefront_protocol::privacy::{KEY_LEN, Pseudonymizer};
use tokio::sync::watch;

use crate::clock::SharedClock;

/// File name of the key under the storage directory.
pub const KEY_FILE: &str = "pseudonym-key";
const HEADER: &str = "storefront-pseudonym-key v1";
/// How often the rotation task looks at the wall clock (it can jump; timers cannot see that).
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// The current period's key, and where it is kept.
pub struct PseudonymKeys {
    path: PathBuf,
    timezone: Tz,
    rotation_days: u32,
    period_start: NaiveDate,
    key: [u8; KEY_LEN],
    /// The key in memory is newer than the file (writing it failed): retry.
    unsaved: bool,
}

impl std::fmt::Debug for PseudonymKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PseudonymKeys")
            .field("path", &self.path)
            .field("period_start", &self.period_start)
            .field("key", &"<secret>")
            .finish()
    }
}

impl PseudonymKeys {
    /// Opens (or creates) the key file in `dir` for the period that contains `now`.
    pub fn open(
        dir: &Path,
        timezone: Tz,
        rotation_days: u32,
        now: DateTime<Utc>,
    ) -> Result<PseudonymKeys> {
        if rotation_days == 0 {
            bail!("privacy.pseudonym_rotation_days must be at least 1");
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the storage directory {}", dir.display()))?;
        let path = dir.join(KEY_FILE);
        let period_start = period_start(timezone, rotation_days, now);
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => match decode(&text) {
                Some(stored) => Some(stored),
                None => {
                    tracing::warn!(file = %path.display(), "The pseudonym key file is malformed: starting a new key");
                    None
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot read the pseudonym key {}", path.display()));
            }
        };
        let mut keys = PseudonymKeys {
            path,
            timezone,
            rotation_days,
            period_start,
            key: [0; KEY_LEN],
            unsaved: false,
        };
        match stored {
            Some((start, key)) if start == period_start => keys.key = key,
            _ => {
                keys.key = random_key()?;
                keys.save().context("cannot write the pseudonym key")?;
                tracing::info!(period_start = %period_start, rotation_days, "New pseudonym key");
            }
        }
        Ok(keys)
    }

    pub fn pseudonymizer(&self) -> Pseudonymizer {
        Pseudonymizer::new(&self.key)
    }

    /// First local day of the current period.
    pub fn period_start(&self) -> NaiveDate {
        self.period_start
    }

    /// When the current period ends.
    pub fn next_rotation(&self) -> DateTime<Utc> {
        let end = self
            .period_start
            .checked_add_days(Days::new(u64::from(self.rotation_days)))
            .unwrap_or(NaiveDate::MAX);
        local_midnight(self.timezone, end)
    }

    /// A new key when `now` is in another period than the current key's: the old one is
    /// overwritten in the file and in memory. Writing failures are logged and retried on the
    /// next call; the new key is used at once either way.
    pub fn rotate_if_due(&mut self, now: DateTime<Utc>) -> Result<Option<Pseudonymizer>> {
        let start = period_start(self.timezone, self.rotation_days, now);
        let rotated = start != self.period_start;
        if rotated {
            let fresh = random_key()?;
            self.key.fill(0);
            self.key = fresh;
            self.period_start = start;
            self.unsaved = true;
            tracing::info!(period_start = %start, "Pseudonym key rotated; the old key is destroyed");
        }
        if self.unsaved {
            if let Err(error) = self.save() {
                tracing::error!(error = %format!("{error:#}"), file = %self.path.display(), "Cannot overwrite the pseudonym key file; retrying");
            }
        }
        Ok(rotated.then(|| self.pseudonymizer()))
    }

    /// Overwrites the key file in place and syncs it.
    fn save(&mut self) -> Result<()> {
        let text = encode(self.period_start, &self.key);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let existed = self.path.exists();
        let mut file = options
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(text.as_bytes())?;
        file.set_len(text.len() as u64)?;
        file.sync_all()?;
        if !existed {
            if let Some(dir) = self.path.parent() {
                // The new directory entry must survive a power cut too.
                std::fs::File::open(dir).and_then(|d| d.sync_all())?;
            }
        }
        self.unsaved = false;
        Ok(())
    }
}

impl Drop for PseudonymKeys {
    fn drop(&mut self) {
        self.key.fill(0);
    }
}

/// Keeps `keys` current: sends a new [`Pseudonymizer`] on `tx` at each rotation, until
/// `shutdown`. `clock` (the live clock) is read every [`CHECK_EVERY`] (it may be set or jump).
pub async fn run_rotation(
    mut keys: PseudonymKeys,
    clock: SharedClock,
    tx: watch::Sender<Pseudonymizer>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let now = utc(clock.now_ms());
        match keys.rotate_if_due(now) {
            Ok(Some(pseudonymizer)) => {
                tx.send_replace(pseudonymizer);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "Cannot draw a new pseudonym key; retrying")
            }
        }
        let until = (keys.next_rotation() - now)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let wait = until.clamp(Duration::from_millis(10), CHECK_EVERY);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// A live-clock reading as a UTC time (the epoch for one out of range).
pub fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// First local day of the period that contains `now`.
pub fn period_start(timezone: Tz, rotation_days: u32, now: DateTime<Utc>) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    let today = now.with_timezone(&timezone).date_naive();
    let days = (today - epoch).num_days();
    let n = i64::from(rotation_days.max(1));
    let start = days.div_euclid(n) * n;
    epoch
        .checked_add_signed(chrono::TimeDelta::days(start))
        .unwrap_or(today)
}

/// The first instant of `date` in `timezone`.
fn local_midnight(timezone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    // A DST gap at midnight: the day starts at the first local minute that exists.
    for minutes in (0..=180).step_by(15) {
        let local = midnight + chrono::TimeDelta::minutes(minutes);
        if let Some(t) = timezone.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    Utc.from_utc_datetime(&midnight)
}

fn random_key() -> Result<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key)
        .map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
    Ok(key)
}

fn encode(period_start: NaiveDate, key: &[u8; KEY_LEN]) -> String {
    let mut hex = String::with_capacity(KEY_LEN * 2);
    for byte in key {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    format!(
        "{HEADER}\nperiod_start={}\nkey={hex}\n",
        period_start.format("%Y-%m-%d")
    )
}

fn decode(text: &str) -> Option<(NaiveDate, [u8; KEY_LEN])> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let start = lines.next()?.strip_prefix("period_start=")?;
    let start = NaiveDate::parse_from_str(start, "%Y-%m-%d").ok()?;
    let hex = lines.next()?.strip_prefix("key=")?.as_bytes();
    if hex.len() != KEY_LEN * 2 {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (i, pair) in hex.chunks(2).enumerate() {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        key[i] = (high * 16 + low) as u8;
    }
    Some((start, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn periods_start_at_local_midnight() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 03:00 UTC on the 24th is 22:00 on the 23rd in New York.
        assert_eq!(
            period_start(tz, 1, at("2026-11-24T03:00:00Z")),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
        let start = period_start(tz, 7, at("2026-11-24T03:00:00Z"));
        assert_eq!(
            (start - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() % 7,
            0
        );
    }

    #[test]
    fn the_key_file_round_trips() {
        let key = [0xa5; KEY_LEN];
        let date = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        assert_eq!(decode(&encode(date, &key)), Some((date, key)));
        assert_eq!(
            decode("storefront-pseudonym-key v1\nperiod_start=2026-01-02\nkey=zz\n"),
            None
        );
    }
}
