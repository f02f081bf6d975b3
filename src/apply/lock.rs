//! One apply per state directory: an OS file lock (flock) on `lock`, which
//! the kernel releases when the process ends however it ends, so a crash
//! never leaves a stale lock. The file also says who holds it, for the
//! refusal message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const FILE_NAME: &str = "lock";

/// Held for as long as it lives.
pub struct StateLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another apply is running on this state directory ({0}); wait for it, or stop it: the lock is released when it ends"
    )]
    Held(String),
    #[error("cannot lock the state directory: {0}")]
    Io(#[from] std::io::Error),
}

impl StateLock {
    pub fn acquire(state_dir: &Path, started: &str) -> Result<StateLock, LockError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // Never through a link: a planted one would aim the write elsewhere.
            .custom_flags(libc::O_NOFOLLOW)
            .open(state_dir.join(FILE_NAME))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                return Err(LockError::Held(if owner.is_empty() {
                    "owner unknown".into()
                } else {
                    owner.to_string()
                }));
            }
            Err(TryLockError::Error(error)) => return Err(error.into()),
        }
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let owner = format!(
            "pid {} on {host}, started {started} by {user}",
            std::process::id()
        );
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(owner.as_bytes())?;
        file.sync_data()?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path(), "2026-11-29T10:00:00Z").unwrap();
        let Err(LockError::Held(owner)) = StateLock::acquire(dir.path(), "later") else {
            panic!("a second lock was granted")
        };
        assert!(
            owner.contains(&format!("pid {}", std::process::id()))
                && owner.contains("2026-11-29T10:00:00Z"),
            "{owner}"
        );
        drop(first);
        assert!(
            StateLock::acquire(dir.path(), "later").is_ok(),
            "released when dropped"
        );
    }
}
