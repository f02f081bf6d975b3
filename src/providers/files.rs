//! Files on this machine that targets write: atomic replacement (temporary
//! file, fsync, rename, fsync of the directory), cleanup of temporary copies
//! a killed run left, and what each file kind holds and becomes.

use std::io::Write;
use std::path::Path;

use crate::secret::{ExposeSecret, SecretString, looks_like_key_id};

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

/// The permission bits of the file at `path`, if it exists.
pub fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

/// How one file target reads and writes its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileTarget {
    /// One profile of an AWS shared credentials file.
    Credentials { profile: String },
    /// Two variables of a dotenv file.
    Env { id_var: String, secret_var: String },
    /// A whole file rendered from a template (already `${}`-expanded).
    Template { content: String },
}

impl FileTarget {
    /// The access key id the file's `text` holds now.
    pub fn held_key(&self, text: &str) -> Option<String> {
        match self {
            FileTarget::Credentials { profile } => {
                super::credentials_file::profile_state(text, profile).key_id
            }
            FileTarget::Env { id_var, .. } => {
                env_value(text, id_var).filter(|v| looks_like_key_id(v))
            }
            FileTarget::Template { .. } => key_id_in_text(text),
        }
    }

    /// Whether rekey can rewrite `text` without losing what it holds.
    pub fn check(&self, text: &str) -> Result<(), String> {
        match self {
            FileTarget::Credentials { .. } => super::credentials_file::check(text),
            FileTarget::Env { .. } | FileTarget::Template { .. } => Ok(()),
        }
    }

    /// The file's new text, from its current `text` (empty for a new file).
    pub fn render(&self, text: &str, key_id: &str, secret: &SecretString) -> SecretString {
        SecretString::from(match self {
            FileTarget::Credentials { profile } => {
                super::credentials_file::with_profile(text, profile, key_id, secret)
            }
            FileTarget::Env { id_var, secret_var } => with_env_vars(
                text,
                &[(id_var, key_id), (secret_var, secret.expose_secret())],
            ),
            FileTarget::Template { content } => content
                .replace("{{access_key_id}}", key_id)
                .replace("{{secret_access_key}}", secret.expose_secret()),
        })
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 2] = ["access_key_id", "secret_access_key"];

/// `{{name}}` placeholders in `content` that are not [`PLACEHOLDERS`].
pub fn unknown_placeholders(content: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + end].trim();
        if !PLACEHOLDERS.contains(&name) {
            unknown.push(name.to_string());
        }
        rest = &rest[start + end + 2..];
    }
    unknown
}

/// The first token shaped like an AWS access key id (AKIA...) in `text`.
fn key_id_in_text(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|t| t.starts_with("AKIA") && looks_like_key_id(t))
        .map(str::to_string)
}

/// The value of `NAME=value` (or `export NAME=value`) in a dotenv text.
fn env_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches(['"', '\'']).to_string())
    })
}

/// `text` with each `NAME=value` line of `vars` replaced (keeping an
/// `export ` prefix), or appended when missing; every other line stays.
fn with_env_vars(text: &str, vars: &[(&str, &str)]) -> String {
    let mut seen = vec![false; vars.len()];
    let mut out: Vec<String> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let (export, rest) = match trimmed.strip_prefix("export ") {
                Some(rest) => ("export ", rest),
                None => ("", trimmed),
            };
            let name = rest.split_once('=').map(|(k, _)| k.trim());
            match vars.iter().position(|(var, _)| Some(*var) == name) {
                Some(i) => {
                    seen[i] = true;
                    format!("{export}{}={}", vars[i].0, vars[i].1)
                }
                None => line.to_string(),
            }
        })
        .collect();
    for (i, (var, value)) in vars.iter().enumerate() {
        if !seen[i] {
            out.push(format!("{var}={value}"));
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
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

    fn secret() -> SecretString {
        SecretString::from("n3w".to_string())
    }

    #[test]
    fn env_files_change_only_their_two_variables() {
        let target = FileTarget::Env {
            id_var: "AWS_ACCESS_KEY_ID".into(),
            secret_var: "AWS_SECRET_ACCESS_KEY".into(),
        };
        let text = "# app settings\nREGION=eu-west-1\nexport AWS_ACCESS_KEY_ID=AKIAOLD0000000000000\nAWS_SECRET_ACCESS_KEY=old\n";
        assert_eq!(
            target.held_key(text).as_deref(),
            Some("AKIAOLD0000000000000")
        );
        let new = target.render(text, "AKIANEW0000000000000", &secret());
        assert_eq!(
            new.expose_secret(),
            "# app settings\nREGION=eu-west-1\nexport AWS_ACCESS_KEY_ID=AKIANEW0000000000000\nAWS_SECRET_ACCESS_KEY=n3w\n"
        );
        let fresh = target.render("", "AKIANEW0000000000000", &secret());
        assert_eq!(
            fresh.expose_secret(),
            "AWS_ACCESS_KEY_ID=AKIANEW0000000000000\nAWS_SECRET_ACCESS_KEY=n3w\n"
        );
    }

    #[test]
    fn templates_fill_their_placeholders_and_name_unknown_ones() {
        let target = FileTarget::Template {
            content: "{\"id\": \"{{access_key_id}}\", \"secret\": \"{{secret_access_key}}\"}\n"
                .into(),
        };
        let text = target.render("", "AKIANEW0000000000000", &secret());
        assert_eq!(
            text.expose_secret(),
            "{\"id\": \"AKIANEW0000000000000\", \"secret\": \"n3w\"}\n"
        );
        assert_eq!(
            target.held_key(text.expose_secret()).as_deref(),
            Some("AKIANEW0000000000000")
        );
        assert_eq!(
            unknown_placeholders("{{access_key_id}} {{ region }} {{secret}}"),
            ["region", "secret"]
        );
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0600"), Some(0o600));
        assert_eq!(parse_mode("640"), Some(0o640));
        assert_eq!(parse_mode("0999"), None);
    }
}
