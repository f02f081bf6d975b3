//! The default state: a state directory on this machine (owner-only,
//! 0700), holding `lock` (a flock), `journal.jsonl` (appended and synced
//! line by line, 0600), `staging/` and `backups/`. Claims live in the OS
//! user's claims folder (`apply::claims`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures_util::future::BoxFuture;

use super::{Holder, Owner, StateBackend};
use crate::apply::claims::{ClaimStore, Claims};
use crate::apply::journal::{self, Entry, JournalError};
use crate::apply::lock::{self, LockError, StateLock};

pub struct LocalState {
    dir: PathBuf,
    claims: Claims,
    lock: Mutex<Option<StateLock>>,
    file: Mutex<Option<File>>,
    /// Why no record may be written any more this run: a write failed and
    /// could not even be cut back off, so a torn record may end the file.
    poisoned: Mutex<Option<String>>,
}

impl LocalState {
    pub fn new(dir: PathBuf, claims: Claims) -> Self {
        Self {
            dir,
            claims,
            lock: Mutex::new(None),
            file: Mutex::new(None),
            poisoned: Mutex::new(None),
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(journal::FILE_NAME)
    }

    /// Locks the directory and opens the journal for appending, cutting
    /// off a record a crash tore.
    fn open(&self, owner: &Owner) -> Result<(), LockError> {
        create_private_dir(&self.dir).map_err(|e| {
            LockError::Refused(format!(
                "cannot create the state directory {}: {e}",
                self.dir.display()
            ))
        })?;
        let held = StateLock::acquire(&self.dir, owner)?;
        let path = self.journal_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error.into()),
        };
        let text = match journal::without_torn_records(&text) {
            // Records torn by writes that failed (an older rekey left them
            // in the middle, each followed by a later record on its line):
            // none was written as far as its writer knew. Written whole
            // again before the journal is opened for appending.
            Some(repaired) => {
                crate::providers::files::write_atomically(&path, repaired.as_bytes(), 0o600)?;
                repaired
            }
            None => text,
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            // Never through a link: a planted one would aim the write elsewhere.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        if !text.is_empty() && !text.ends_with('\n') {
            // A torn last record (a crash while writing it): cut it off, so
            // the journal is whole again. Its action had not begun (an
            // intent is synced before acting) or is reconciled from its
            // intent (an outcome), so nothing is lost. Ending its line
            // instead would leave a damaged line in the middle for ever.
            let whole = text.rfind('\n').map_or(0, |end| end + 1);
            file.set_len(whole as u64)?;
            file.sync_data()?;
        }
        *self.file.lock().expect("journal file") = Some(file);
        *self.lock.lock().expect("state lock") = Some(held);
        Ok(())
    }
}

impl LocalState {
    /// Appends `bytes` and syncs them. A write that fails (a full disk) is
    /// cut back off, so no torn record is left for a later one to follow;
    /// if even that fails, no record is written after it this run.
    fn append_whole(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(reason) = self.poisoned.lock().expect("journal poison").as_ref() {
            return Err(std::io::Error::other(format!(
                "an earlier write failed and could not be cut back off ({reason}); no record is written after it"
            )));
        }
        let before = file.metadata()?.len();
        let written = file.write_all(bytes).and_then(|()| file.sync_data());
        if let Err(error) = &written
            && let Err(cut) = file.set_len(before).and_then(|()| file.sync_data())
        {
            *self.poisoned.lock().expect("journal poison") = Some(format!("{error}; then {cut}"));
        }
        written
    }
}

impl StateBackend for LocalState {
    fn location(&self) -> String {
        std::path::absolute(&self.dir)
            .unwrap_or_else(|_| self.dir.clone())
            .display()
            .to_string()
    }

    fn shared(&self) -> bool {
        false
    }

    fn acquire<'a>(&'a self, owner: &'a Owner) -> BoxFuture<'a, Result<(), LockError>> {
        let opened = self.open(owner);
        Box::pin(async move { opened })
    }

    fn release(&self) -> BoxFuture<'_, ()> {
        self.file.lock().expect("journal file").take();
        self.lock.lock().expect("state lock").take();
        Box::pin(async {})
    }

    fn read(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        let entries = journal::read(&self.dir);
        Box::pin(async move { entries })
    }

    fn append(&self, lines: Vec<String>) -> BoxFuture<'_, Result<(), JournalError>> {
        let mut text = String::new();
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
        let written = match self.file.lock().expect("journal file").as_mut() {
            Some(file) => self.append_whole(file, text.as_bytes()),
            None => Err(std::io::Error::other("the state directory is not locked")),
        };
        let path = self.journal_path();
        Box::pin(async move { written.map_err(|source| JournalError::Io { path, source }) })
    }

    fn verify_held(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        // A flock cannot be lost while the process lives.
        Box::pin(async { Ok(()) })
    }

    fn claims(&self) -> &dyn ClaimStore {
        &self.claims
    }

    fn holder(&self) -> BoxFuture<'_, Result<Option<Holder>, LockError>> {
        let holder = lock::holder(&self.dir).map(|owner| {
            owner.map(|owner| Holder {
                owner: Some(owner),
                expires_in: None,
            })
        });
        Box::pin(async move { holder })
    }

    fn neighbours(&self) -> BoxFuture<'_, Result<Vec<String>, LockError>> {
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        let names = std::fs::read_dir(parent).map(|entries| {
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join(journal::FILE_NAME).is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        });
        Box::pin(async move { Ok(names.unwrap_or_default()) })
    }

    fn force_unlock(&self) -> BoxFuture<'_, Result<bool, LockError>> {
        let answer = match lock::holder(&self.dir) {
            Ok(Some(owner)) => Err(LockError::Refused(format!(
                "the local lock is held by a running process ({owner}); it is released when that process ends: stop it (kill {}) rather than unlock",
                owner.pid
            ))),
            Ok(None) => Ok(false),
            Err(error) => Err(error),
        };
        Box::pin(async move { answer })
    }
}

/// The state directory and its `staging` and `backups`, owner-only (0700).
/// One that is a symlink, belongs to someone else or that others may write
/// is refused (a symlinked state directory's target was chmodded, and
/// another user could swap staged secrets).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    for dir in [dir.to_path_buf(), dir.join("staging"), dir.join("backups")] {
        if std::fs::symlink_metadata(&dir).is_err() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        let meta = std::fs::symlink_metadata(&dir)?;
        let refuse = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(refuse(format!(
                "{} is not a folder (a symlink?); rekey keeps secrets only in a real folder of its own",
                dir.display()
            )));
        }
        // SAFETY: geteuid has no preconditions.
        if meta.uid() != unsafe { libc::geteuid() } {
            return Err(refuse(format!(
                "{} belongs to another user (uid {}); use a state directory of your own",
                dir.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "others may write in {} (mode {:o}); make it 0700, or use another",
                dir.display(),
                meta.mode() & 0o777
            )));
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails and cannot be cut back off (here `/dev/full`,
    /// which refuses both) stops every later record of the run: one after
    /// a torn record would damage the journal.
    #[test]
    fn after_a_write_that_could_not_be_cut_back_no_record_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::new(dir.path().to_path_buf(), Claims::at(dir.path()));
        let mut full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let first = state.append_whole(&mut full, b"{}\n").unwrap_err();
        assert_eq!(first.raw_os_error(), Some(libc::ENOSPC));
        let mut fine = File::create(dir.path().join("other")).unwrap();
        let refused = state.append_whole(&mut fine, b"{}\n").unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("no record is written after it"),
            "{refused}"
        );
    }
}
