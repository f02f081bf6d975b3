//! An AWS shared credentials file (`~/.aws/credentials` style): which access
//! key id a profile holds, and replacing one profile's key in place, leaving
//! every other profile, comment and the file's mode as they were.

use std::io::Write;
use std::path::Path;

use super::TargetState;
use crate::secret::{ExposeSecret, SecretString, looks_like_key_id};

/// The state of `profile` in the file at `path`: absent when the file or
/// the profile is missing; the key id when the profile has one.
pub fn read(path: &Path, profile: &str) -> std::io::Result<TargetState> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(TargetState::absent());
        }
        Err(error) => return Err(error),
    };
    Ok(profile_state(&text, profile))
}

/// The state of `profile` in credentials-file `text`.
pub fn profile_state(text: &str, profile: &str) -> TargetState {
    let mut in_profile = false;
    let mut state = TargetState::absent();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
            state.exists |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            if key.trim() == "aws_access_key_id" && looks_like_key_id(value) {
                state.key_id = Some(value.to_string());
            }
        }
    }
    state
}

/// `text` with `profile`'s key id and secret replaced (or the profile
/// appended). Other lines of the profile (region, comments) stay.
pub fn with_profile(text: &str, profile: &str, key_id: &str, secret: &SecretString) -> String {
    let id_line = format!("aws_access_key_id = {key_id}");
    let secret_line = format!("aws_secret_access_key = {}", secret.expose_secret());
    let mut out: Vec<String> = Vec::new();
    let mut in_profile = false;
    let mut found = false;
    let mut wrote = (false, false);
    let finish_profile = |out: &mut Vec<String>, wrote: &mut (bool, bool)| {
        // A profile that lacked a key gets one, before its trailing blank lines.
        let at = out
            .iter()
            .rposition(|l| !l.trim().is_empty())
            .map_or(out.len(), |i| i + 1);
        if !wrote.1 {
            out.insert(at, secret_line.clone());
        }
        if !wrote.0 {
            out.insert(at, id_line.clone());
        }
        *wrote = (true, true);
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(section) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if in_profile {
                finish_profile(&mut out, &mut wrote);
            }
            in_profile = section.trim() == profile;
            found |= in_profile;
            out.push(line.to_string());
            continue;
        }
        if in_profile {
            match trimmed.split_once('=').map(|(k, _)| k.trim()) {
                Some("aws_access_key_id") => {
                    out.push(id_line.clone());
                    wrote.0 = true;
                    continue;
                }
                Some("aws_secret_access_key") => {
                    out.push(secret_line.clone());
                    wrote.1 = true;
                    continue;
                }
                // A session token belongs to the old key.
                Some("aws_session_token") => continue,
                _ => {}
            }
        }
        out.push(line.to_string());
    }
    if in_profile {
        finish_profile(&mut out, &mut wrote);
    }
    if !found {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push(format!("[{profile}]"));
        out.push(id_line);
        out.push(secret_line);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Replaces `profile`'s key in the file at `path` atomically: the new text
/// goes to a temporary file beside it (same mode; 0600 for a new file), is
/// synced, and renamed over the original.
pub fn write_profile(
    path: &Path,
    profile: &str,
    key_id: &str,
    secret: &SecretString,
) -> std::io::Result<()> {
    let (text, mode) = match std::fs::read_to_string(path) {
        Ok(text) => {
            use std::os::unix::fs::PermissionsExt;
            (text, std::fs::metadata(path)?.permissions().mode() & 0o7777)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => (String::new(), 0o600),
        Err(error) => return Err(error),
    };
    write_atomically(
        path,
        with_profile(&text, profile, key_id, secret).as_bytes(),
        mode,
    )
}

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
/// may hold a secret). Our own process's, if any, is left alone.
pub fn remove_stale_temporaries(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = temporary_prefix(path);
    let ours = format!("{prefix}{}", std::process::id());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name != ours {
            std::fs::remove_file(dir.join(&name))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    remove_stale_temporaries(path)?;
    let temporary = dir.join(format!("{}{}", temporary_prefix(path), std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# shared by the CI runners
[default]
aws_access_key_id = AKIADEFAULT000000000
aws_secret_access_key = s3cr3t

[runner]   
; rotated by rekey
aws_access_key_id=AKIARUNNER0000000000
aws_secret_access_key=s3cr3t
";

    #[test]
    fn finds_the_profile_and_its_key_id() {
        let state = profile_state(FILE, "runner");
        assert!(state.exists);
        assert_eq!(state.key_id.as_deref(), Some("AKIARUNNER0000000000"));
    }

    #[test]
    fn replacing_a_profile_changes_only_its_key_lines() {
        let secret = SecretString::from("n3w".to_string());
        let text = with_profile(FILE, "runner", "AKIANEW0000000000000", &secret);
        assert_eq!(
            text,
            FILE.replace(
                "aws_access_key_id=AKIARUNNER0000000000",
                "aws_access_key_id = AKIANEW0000000000000"
            )
            .replace(
                "aws_secret_access_key=s3cr3t\n",
                "aws_secret_access_key = n3w\n"
            )
        );
        let added = with_profile(FILE, "new", "AKIANEW0000000000000", &secret);
        assert!(added.starts_with(FILE) && added.ends_with("\n[new]\naws_access_key_id = AKIANEW0000000000000\naws_secret_access_key = n3w\n"), "{added}");
    }

    #[test]
    fn a_killed_writers_temporary_copy_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        let stale = dir.path().join(".credentials.rekey-999999999");
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

    #[test]
    fn a_missing_profile_is_absent() {
        assert_eq!(profile_state(FILE, "nobody"), TargetState::absent());
    }
}
