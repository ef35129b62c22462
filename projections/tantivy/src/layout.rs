//! The files under a target's root, and how each is read and written. Everything here blocks:
//! call it from the blocking pool.
//!
//! ```text
//! <root>/<projection>/
//!   .lock              flock'ed while slots are created, activated, dropped, leased
//!   ACTIVE             the active slot's number: the alias readers resolve
//!   next_slot          the number the next new slot gets (numbers are never reused)
//!   control.json       the operator's flags
//!   status.json        the last projector report
//!   slot-<n>/          one tantivy index per slot; its commit payload holds the checkpoint
//!     slot.json        version, state, key field
//!     lease.json       owner and expiry of the slot's lease
//!   .creating-<n>-*    a slot being created (renamed to slot-<n> once complete)
//!   .dropped-<n>-*     a slot being deleted (renamed from slot-<n> first)
//! ```
//!
//! Small files are replaced atomically: written to a temporary name, synced, renamed over the
//! old one, and the directory synced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldline::{DriverErrors, Error, ProjectionName, Result, SlotId, SlotState, StoreIdentity};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Tantivy, io_error};

pub(crate) const ACTIVE: &str = "ACTIVE";
const NEXT_SLOT: &str = "next_slot";
pub(crate) const CONTROL: &str = "control.json";
pub(crate) const STATUS: &str = "status.json";
const SLOT_META: &str = "slot.json";
const LEASE: &str = "lease.json";
const LOCK: &str = ".lock";
const CREATING: &str = ".creating-";
const DROPPED: &str = ".dropped-";

/// The directory of one projection under a target's root.
#[derive(Clone, Debug)]
pub(crate) struct ProjectionDir {
    path: PathBuf,
    projection: ProjectionName,
}

/// What `slot.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SlotMeta {
    /// The projection version building the slot.
    pub(crate) version: u32,
    /// `building`, or what it was last set to; `ACTIVE` decides which slot is active.
    pub(crate) state: SlotState,
    /// The key field its documents are keyed by (for readers that know nothing else).
    pub(crate) key_field: String,
    /// The store it is built from (absent in slots created before stores were recorded).
    #[serde(default)]
    pub(crate) store: Option<StoreIdentity>,
}

/// What `lease.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub(crate) owner: String,
    /// Milliseconds since the Unix epoch (wall clock: leases are compared across processes).
    pub(crate) expires_at_ms: u64,
}

impl Lease {
    pub(crate) fn new(owner: &str, ttl: Duration) -> Self {
        Lease {
            owner: owner.to_owned(),
            expires_at_ms: millis(SystemTime::now() + ttl),
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.expires_at_ms > millis(SystemTime::now())
    }
}

fn millis(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The exclusive lock on a projection's `.lock` file, released on drop. Excludes other
/// processes and, since each holder opens the file anew, other threads of this process too.
#[derive(Debug)]
pub(crate) struct ProjectionLock {
    _file: File,
}

impl ProjectionDir {
    pub(crate) fn new(root: &Path, projection: &ProjectionName) -> Self {
        ProjectionDir {
            path: root.join(projection.as_str()),
            projection: projection.clone(),
        }
    }

    pub(crate) fn projection(&self) -> &ProjectionName {
        &self.projection
    }

    pub(crate) fn slot_dir(&self, slot: SlotId) -> PathBuf {
        self.path.join(format!("slot-{slot}"))
    }

    fn ensure(&self) -> Result<()> {
        fs::create_dir_all(&self.path).map_err(|e| {
            io_error(
                format!("creating the directory of projection `{}`", self.projection),
                e,
            )
        })
    }

    /// Takes the projection's lock, waiting for other holders (creates the directory).
    pub(crate) fn lock(&self) -> Result<ProjectionLock> {
        self.ensure()?;
        let context = || format!("locking projection `{}`", self.projection);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.join(LOCK))
            .map_err(|e| io_error(context(), e))?;
        file.lock().map_err(|e| io_error(context(), e))?;
        Ok(ProjectionLock { _file: file })
    }

    /// The active slot: what `ACTIVE` says, `None` before any activation.
    pub(crate) fn active(&self) -> Result<Option<SlotId>> {
        self.read_slot_id(ACTIVE)
    }

    /// Points `ACTIVE` at `slot`, atomically. Hold the lock.
    pub(crate) fn set_active(&self, slot: SlotId, _lock: &ProjectionLock) -> Result<()> {
        self.write_atomic(&self.path, ACTIVE, format!("{slot}\n").as_bytes())
    }

    /// The number the next new slot gets (1 for a new projection). Hold the lock.
    pub(crate) fn next_slot(&self, _lock: &ProjectionLock) -> Result<SlotId> {
        Ok(self.read_slot_id(NEXT_SLOT)?.unwrap_or(SlotId::new(1)))
    }

    /// Records that numbers below `next` are taken. Hold the lock.
    pub(crate) fn set_next_slot(&self, next: SlotId, _lock: &ProjectionLock) -> Result<()> {
        self.write_atomic(&self.path, NEXT_SLOT, format!("{next}\n").as_bytes())
    }

    /// Every complete slot directory's number, ascending.
    pub(crate) fn slot_numbers(&self) -> Result<Vec<SlotId>> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(io_error(
                    format!("listing the slots of projection `{}`", self.projection),
                    e,
                ));
            }
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                io_error(
                    format!("listing the slots of projection `{}`", self.projection),
                    e,
                )
            })?;
            let name = entry.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix("slot-"))
                .and_then(|n| n.parse().ok())
            {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// `slot.json` of `slot`; `None` when the slot does not exist.
    pub(crate) fn slot_meta(&self, slot: SlotId) -> Result<Option<SlotMeta>> {
        self.read_json(&self.slot_dir(slot), SLOT_META)
    }

    /// Writes `slot.json` into `dir` (a slot's directory, or one being created).
    pub(crate) fn write_slot_meta(&self, dir: &Path, meta: &SlotMeta) -> Result<()> {
        self.write_json(dir, SLOT_META, meta)
    }

    /// `lease.json` of `slot`, if any.
    pub(crate) fn lease(&self, slot: SlotId) -> Result<Option<Lease>> {
        self.read_json(&self.slot_dir(slot), LEASE)
    }

    pub(crate) fn set_lease(
        &self,
        slot: SlotId,
        lease: &Lease,
        _lock: &ProjectionLock,
    ) -> Result<()> {
        self.write_json(&self.slot_dir(slot), LEASE, lease)
    }

    pub(crate) fn remove_lease(&self, slot: SlotId, _lock: &ProjectionLock) -> Result<()> {
        match fs::remove_file(self.slot_dir(slot).join(LEASE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(
                format!(
                    "removing the lease of slot {slot} of projection `{}`",
                    self.projection
                ),
                e,
            )),
            _ => Ok(()),
        }
    }

    /// A fresh directory to build slot `slot` in, renamed into place by [`Self::publish`].
    pub(crate) fn creating_dir(&self, slot: SlotId, _lock: &ProjectionLock) -> Result<PathBuf> {
        let dir = self
            .path
            .join(format!("{CREATING}{slot}-{:016x}", fastrand::u64(..)));
        fs::create_dir(&dir).map_err(|e| {
            io_error(
                format!("creating slot {slot} of projection `{}`", self.projection),
                e,
            )
        })?;
        Ok(dir)
    }

    /// Moves a complete slot directory to `slot-<n>`, where readers see it.
    pub(crate) fn publish(&self, built: &Path, slot: SlotId, _lock: &ProjectionLock) -> Result<()> {
        let context = || format!("creating slot {slot} of projection `{}`", self.projection);
        fs::rename(built, self.slot_dir(slot)).map_err(|e| io_error(context(), e))?;
        sync_dir(&self.path).map_err(|e| io_error(context(), e))
    }

    /// Takes `slot` away from readers and writers in one rename, then deletes its files. After
    /// the rename the slot, its checkpoint and its lease are gone; a failure to delete the
    /// files leaves a `.dropped-*` directory that the next slot creation removes.
    pub(crate) fn remove_slot(&self, slot: SlotId, _lock: &ProjectionLock) -> Result<()> {
        let context = || format!("dropping slot {slot} of projection `{}`", self.projection);
        let dropped = self
            .path
            .join(format!("{DROPPED}{slot}-{:016x}", fastrand::u64(..)));
        match fs::rename(self.slot_dir(slot), &dropped) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other.map_err(|e| io_error(context(), e))?,
        }
        sync_dir(&self.path).map_err(|e| io_error(context(), e))?;
        if let Err(error) = fs::remove_dir_all(&dropped) {
            tracing::warn!(
                %error,
                path = %dropped.display(),
                "could not delete a dropped slot's files; the next slot creation retries"
            );
        }
        Ok(())
    }

    /// Deletes what interrupted creations and drops left behind. Hold the lock. (A temporary
    /// file of an interrupted atomic write stays: another process may be writing it now.)
    pub(crate) fn remove_leftovers(&self, _lock: &ProjectionLock) {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if (name.starts_with(CREATING) || name.starts_with(DROPPED))
                && let Err(error) = fs::remove_dir_all(entry.path())
            {
                tracing::warn!(%error, path = %entry.path().display(), "could not delete leftovers");
            }
        }
    }

    /// The slot number in the projection's file `name` (`ACTIVE`, `next_slot`); `None` when the
    /// file does not exist.
    fn read_slot_id(&self, name: &str) -> Result<Option<SlotId>> {
        let context = || format!("reading {name} of projection `{}`", self.projection);
        match fs::read_to_string(self.path.join(name)) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| Tantivy::corrupt(context(), Some(Box::new(e)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(context(), e)),
        }
    }

    /// Reads a JSON file of the projection (`control.json`, `status.json`).
    pub(crate) fn read_file<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        self.read_json(&self.path, name)
    }

    /// Replaces a JSON file of the projection atomically (creates the directory).
    pub(crate) fn write_file<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        self.ensure()?;
        self.write_json(&self.path, name, value)
    }

    fn read_json<T: DeserializeOwned>(&self, dir: &Path, name: &str) -> Result<Option<T>> {
        let path = dir.join(name);
        let context = || {
            format!(
                "reading {} of projection `{}`",
                path.display(),
                self.projection
            )
        };
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Tantivy::corrupt(context(), Some(Box::new(e)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(context(), e)),
        }
    }

    fn write_json<T: Serialize>(&self, dir: &Path, name: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Encode {
            what: format!("{name} of projection `{}`", self.projection),
            source: Box::new(e),
        })?;
        self.write_atomic(dir, name, &bytes)
    }

    fn write_atomic(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(dir, name, bytes).map_err(|e| {
            io_error(
                format!(
                    "writing {} of projection `{}`",
                    dir.join(name).display(),
                    self.projection
                ),
                e,
            )
        })
    }
}

/// Replaces `dir/name` with `bytes`: temporary file, fsync, rename, fsync of the directory.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp-{:016x}", fastrand::u64(..)));
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(name))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

/// Makes a directory's entries (a rename, a new file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, ProjectionDir) {
        let root = tempfile::tempdir().unwrap();
        let projection = ProjectionName::new("books").unwrap();
        let dir = ProjectionDir::new(root.path(), &projection);
        (root, dir)
    }

    #[test]
    fn active_and_next_slot_round_trip() {
        let (_root, dir) = dir();
        assert_eq!(dir.active().unwrap(), None);
        let lock = dir.lock().unwrap();
        assert_eq!(dir.next_slot(&lock).unwrap(), SlotId::new(1));
        dir.set_next_slot(SlotId::new(4), &lock).unwrap();
        dir.set_active(SlotId::new(3), &lock).unwrap();
        assert_eq!(dir.next_slot(&lock).unwrap(), SlotId::new(4));
        assert_eq!(dir.active().unwrap(), Some(SlotId::new(3)));
    }

    #[test]
    fn a_missing_projection_has_no_slots() {
        let (_root, dir) = dir();
        assert!(dir.slot_numbers().unwrap().is_empty());
        assert!(dir.slot_meta(SlotId::new(1)).unwrap().is_none());
    }

    #[test]
    fn leases_expire() {
        assert!(Lease::new("a", Duration::from_secs(60)).is_live());
        assert!(!Lease::new("a", Duration::ZERO).is_live());
    }

    #[test]
    fn leftovers_are_removed() {
        let (_root, dir) = dir();
        let lock = dir.lock().unwrap();
        let creating = dir.creating_dir(SlotId::new(1), &lock).unwrap();
        dir.remove_leftovers(&lock);
        assert!(!creating.exists());
    }
}
