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
    #[error(
        "another runner holds the lease on this workflow's state ({owner}); it expires in {expires_in}s unless renewed. Wait for that run to end; if it was killed, the next apply after the lease expires takes over (`rekey state unlock --force` removes it at once)"
    )]
    Leased { owner: String, expires_in: i64 },
    #[error("cannot use the lease on {location}: {source}")]
    Store {
        location: String,
        source: crate::providers::ProviderError,
    },
    #[error("{0}")]
    Refused(String),
    #[error("cannot lock the state directory: {0}")]
    Io(#[from] std::io::Error),
}

impl StateLock {
    pub fn acquire(state_dir: &Path, owner: &super::state::Owner) -> Result<StateLock, LockError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // Never through a link: a planted one would aim the write elsewhere.
            .custom_flags(libc::O_NOFOLLOW)
            .open(state_dir.join(FILE_NAME))?;
        // A lock this process let go of may linger for an instant in a
        // child forked meanwhile (until its exec closes the descriptor):
        // this process's own lock is waited for, briefly.
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    file.rewind()?;
                    let _ = file.read_to_string(&mut text);
                    let ours = serde_json::from_str::<super::state::Owner>(&text)
                        .is_ok_and(|o| o.pid == std::process::id() && o.host == owner.host);
                    if !ours || tries == 100 {
                        return Err(LockError::Held(describe(&text)));
                    }
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(TryLockError::Error(error)) => return Err(error.into()),
            }
        }
        let owner = serde_json::to_string(owner).expect("plain data");
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(owner.as_bytes())?;
        file.sync_data()?;
        Ok(StateLock { _file: file })
    }
}

/// Who holds the lock of `state_dir`, if anyone does.
pub fn holder(state_dir: &Path) -> Result<Option<super::state::Owner>, LockError> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(state_dir.join(FILE_NAME))
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Ok(Some(serde_json::from_str(&text).unwrap_or_else(|_| {
                super::state::Owner {
                    host: "unknown".into(),
                    pid: 0,
                    user: "unknown".into(),
                    ci_job: None,
                    started: text.trim().to_string(),
                }
            })))
        }
        Err(TryLockError::Error(error)) => Err(error.into()),
    }
}

/// The owner a lock file names, for people.
fn describe(text: &str) -> String {
    match serde_json::from_str::<super::state::Owner>(text) {
        Ok(owner) => owner.to_string(),
        Err(_) if text.trim().is_empty() => "owner unknown".into(),
        Err(_) => text.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let owner = |started: &str| crate::apply::state::Owner::this_process(started);
        let first = StateLock::acquire(dir.path(), &owner("2026-11-29T10:00:00Z")).unwrap();
        let Err(LockError::Held(owner_text)) = StateLock::acquire(dir.path(), &owner("later"))
        else {
            panic!("a second lock was granted")
        };
        assert!(
            owner_text.contains(&format!("pid {}", std::process::id()))
                && owner_text.contains("2026-11-29T10:00:00Z"),
            "{owner_text}"
        );
        assert_eq!(holder(dir.path()).unwrap().unwrap().pid, std::process::id());
        drop(first);
        assert!(holder(dir.path()).unwrap().is_none());
        assert!(
            StateLock::acquire(dir.path(), &owner("later")).is_ok(),
            "released when dropped"
        );
    }
}
