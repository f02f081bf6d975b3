//! Files on this machine that targets and staging write: atomic replacement
//! (temporary file, fsync, rename, fsync of the directory), cleanup of
//! temporary copies a killed run left, and file modes.

use std::io::Write;
use std::path::Path;

/// The prefix of the temporary files [`write_atomically`] writes beside `path`.
fn temporary_prefix(path: &Path) -> String {
    format!(
        ".{}.rekey-",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

/// Removes temporary copies of `path` that a killed rekey left behind (they
/// may hold a secret). Our own process's, if any, are left alone. Callers
/// hold the file's lock (or the state directory's), so no other writer's
/// copy is in use.
pub fn remove_stale_temporaries(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = temporary_prefix(path);
    let ours = format!("{prefix}{}-", std::process::id());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && !name.starts_with(&ours) {
            std::fs::remove_file(dir.join(&name))?;
        }
    }
    Ok(())
}

/// A name no one can guess in advance: a local user who plants symlinks
/// under predictable names in a shared folder must not catch a secret.
fn unpredictable() -> u64 {
    getrandom::u64().expect("the operating system's random numbers")
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
/// The temporary file has an unpredictable name and is created exclusively,
/// never through a link; the new file keeps the owner and group of the one
/// it replaces (a file root rewrote became unreadable to its application).
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    remove_stale_temporaries(path)?;
    let temporary = dir.join(format!(
        "{}{}-{:016x}",
        temporary_prefix(path),
        std::process::id(),
        unpredictable()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(&temporary)?;
    if let Ok(previous) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        // Only root can give a file away; anyone else keeps their own.
        let _ = std::os::unix::fs::fchown(&file, Some(previous.uid()), Some(previous.gid()));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The permission bits of the file at `path`, if it exists.
pub fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

/// A file mode written in octal (`"0600"`, `"640"`).
pub fn parse_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_writers_temporary_copy_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        let stale = dir
            .path()
            .join(".credentials.rekey-999999999-0123456789abcdef");
        std::fs::write(&stale, "aws_secret_access_key = from-a-killed-run").unwrap();
        write_atomically(&path, b"[a]\n", 0o600).unwrap();
        assert!(
            !stale.exists(),
            "a temporary copy holding a secret was left behind"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["credentials"]);
    }

    /// Regression: temporary names were predictable and opened with
    /// create+truncate, so a planted symlink caught the new secret.
    #[test]
    fn a_planted_symlink_catches_nothing_and_owners_are_kept() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        let spy = dir.path().join("spy");
        std::fs::write(&path, "[a]\n").unwrap();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            std::os::unix::fs::chown(&path, Some(4242), Some(4343)).unwrap();
        }
        for n in 0..64 {
            let guess = dir
                .path()
                .join(format!(".credentials.rekey-{}", std::process::id() + n));
            let _ = std::os::unix::fs::symlink(&spy, guess);
        }
        write_atomically(&path, b"secret", 0o600).unwrap();
        assert!(!spy.exists(), "a symlink caught the secret");
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        let meta = std::fs::metadata(&path).unwrap();
        if root {
            assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "the owner is kept");
        }
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0600"), Some(0o600));
        assert_eq!(parse_mode("640"), Some(0o640));
        assert_eq!(parse_mode("0999"), None);
    }
}
