//! What the three file kinds (`credentials_file`, `env_file`, `template`)
//! share: a file on this machine, read for the key id it holds, backed up
//! (0600, in the state directory) before it is first changed, replaced
//! atomically, and restored from the backup. Each kind brings only its
//! [`FileFormat`]: how to find the key id in the text and how to rewrite it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ActionError, RecordBefore, Resolved, Restore, Write, Written, v1_flag};
use crate::providers::files;
use crate::providers::{Provider, TargetReader, TargetState};
use crate::secret::{ExposeSecret, SecretString};
use crate::workflow::diagnostic::{Part, Problem, Problems};
use crate::workflow::source::Origin;
use crate::workflow::vocabulary::SecretFormat;

/// How one file kind reads and rewrites its file.
pub trait FileFormat: Debug + Clone {
    /// The access key id the file's `text` holds now.
    fn held_key(&self, text: &str) -> Option<String>;
    /// Whether rekey can rewrite `text` without losing what it holds.
    fn check(&self, _text: &str) -> Result<(), String> {
        Ok(())
    }
    /// The file's new text, from its current `text` (empty for a new file).
    fn render(&self, text: &str, key_id: &str, secret: &SecretString) -> SecretString;
    /// The part of `text` this target owns (its profile, its variables),
    /// which is all a rollback puts back: a file shared by several users
    /// keeps what the others wrote. `None` when the part is absent. By
    /// default the whole file.
    fn part(&self, text: &str) -> Option<String> {
        Some(text.to_string())
    }
    /// `text` with this target's part as `part` says (`None`: removed).
    fn with_part(&self, _text: &str, part: Option<&str>) -> String {
        part.unwrap_or_default().to_string()
    }
    /// The plan's resource column, from the path as written.
    fn resource(&self, path: &str) -> String {
        path.to_string()
    }
    /// The plan's step line, from the path as written.
    fn describe(&self, path: &str) -> String;
    /// The target kind, for messages.
    fn kind(&self) -> &'static str;
    /// The secret `text` holds for this target, if rekey can find it: what
    /// a command's output must not show, even the old one.
    fn secret_in(&self, _text: &str) -> Option<String> {
        None
    }
    /// What it writes in the file at `path` (see `Resolved::writes`).
    fn writes(&self, path: &str) -> Vec<String> {
        vec![format!("file {path}")]
    }
    fn secret_format(&self) -> Option<SecretFormat>;
}

/// A file target resolved for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile<F> {
    /// The path as written (expanded), for people.
    pub written: String,
    /// The path on this machine (relative ones from the workflow's folder).
    pub path: PathBuf,
    pub format: F,
    /// The mode to write it with; `None` keeps the file's own (0600 if new).
    pub mode: Option<u32>,
}

/// Whether the file existed, and where the copy of what the target owned
/// in it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Before {
    /// The file existed.
    pub existed: bool,
    pub backup: PathBuf,
    /// The backup holds only the target's part (its profile, its
    /// variables); the first journal format's holds the whole file.
    #[serde(default)]
    pub part: bool,
    /// The part existed (with `part`).
    #[serde(default)]
    pub part_existed: bool,
    /// The machine that keeps the backup (with state shared in S3, a
    /// rollback elsewhere cannot read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl<F: FileFormat> LocalFile<F> {
    /// Every rotation that writes this file holds this lock while it reads,
    /// changes and replaces it (and cleans up temporary copies): two
    /// writers of one file, in one apply or in two, never lose each
    /// other's update. The lock file (`.NAME.rekey.lock`, empty) stays.
    fn lock(&self) -> Result<std::fs::File, ActionError> {
        use std::os::unix::fs::OpenOptionsExt;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let lock = dir.join(format!(".{name}.rekey.lock"));
        let error = |source| ActionError::File {
            verb: "lock",
            path: self.path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(error)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock)
            .map_err(error)?;
        file.lock().map_err(error)?;
        Ok(file)
    }

    /// The file's text and mode, or `None` when it does not exist.
    fn read(&self) -> Result<Option<(String, u32)>, ActionError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(Some((text, files::mode_of(&self.path).unwrap_or(0o600)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ActionError::File {
                verb: "read",
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn check(&self, text: &str, what: &str) -> Result<(), ActionError> {
        self.format.check(text).map_err(|message| {
            ActionError::invalid(&format!("{what}: {}", self.path.display()), message)
        })
    }
}

impl<F: FileFormat> Resolved for LocalFile<F> {
    type Before = Before;

    fn resource(&self) -> String {
        self.format.resource(&self.written)
    }

    fn format(&self) -> Option<SecretFormat> {
        self.format.secret_format()
    }

    fn describe(&self) -> String {
        self.format.describe(&self.written)
    }

    fn writes(&self) -> Vec<String> {
        // `path` is the real file, however the workflow spelled it.
        self.format.writes(&self.path.display().to_string())
    }

    fn file(&self) -> Option<(PathBuf, &'static str)> {
        Some((self.path.clone(), self.format.kind()))
    }

    async fn old_secrets<P: Provider>(
        &self,
        _provider: &P,
        before: &Before,
        _backup: &std::path::Path,
    ) -> Vec<SecretString> {
        let Ok(text) = std::fs::read_to_string(&before.backup) else {
            return Vec::new();
        };
        self.format
            .secret_in(&text)
            .into_iter()
            .chain(crate::secret::session_tokens(&text))
            .map(SecretString::from)
            .collect()
    }

    async fn observe<P: TargetReader>(
        &self,
        _provider: &P,
        what: &str,
    ) -> Result<Option<TargetState>, ActionError> {
        Ok(Some(match self.read()? {
            Some((text, _)) => {
                self.check(&text, what)?;
                TargetState {
                    exists: true,
                    version: None,
                    key_id: self.format.held_key(&text),
                    secure: None,
                }
            }
            None => TargetState::absent(),
        }))
    }

    async fn write<'i, P: Provider>(
        &self,
        cx: &Write<'_, P>,
        recorded: Option<&Before>,
        intent: RecordBefore<'i, Before>,
    ) -> Result<Written, ActionError> {
        let _lock = self.lock()?;
        let current = self.read()?;
        let (text, mode) = match &current {
            Some((text, mode)) => (Some(text.as_str()), *mode),
            None => (None, 0o600),
        };
        if text.and_then(|t| self.format.held_key(t)).as_deref() == Some(cx.new_key) {
            return Ok(Written::default());
        }
        if let Some(text) = text {
            self.check(text, &format!("target `{}`", cx.target))?;
        }
        if recorded.is_none() {
            let part = text.and_then(|t| self.format.part(t));
            files::write_atomically(
                &cx.backup,
                part.as_deref().unwrap_or_default().as_bytes(),
                0o600,
            )
            .map_err(|source| ActionError::File {
                verb: "back up",
                path: self.path.clone(),
                source,
            })?;
            intent(Before {
                existed: text.is_some(),
                backup: cx.backup.clone(),
                part: true,
                part_existed: part.is_some(),
                host: Some(crate::text::hostname()),
            })
            .await?;
        }
        let new_text = self
            .format
            .render(text.unwrap_or_default(), cx.new_key, cx.secret);
        files::write_atomically(
            &self.path,
            new_text.expose_secret().as_bytes(),
            self.mode.unwrap_or(mode),
        )
        .map_err(|source| ActionError::File {
            verb: "write",
            path: self.path.clone(),
            source,
        })?;
        Ok(Written::default())
    }

    async fn restore<P: Provider>(
        &self,
        _cx: &Restore<'_, P>,
        before: &Before,
    ) -> Result<(), ActionError> {
        let path = &self.path;
        let _lock = self.lock()?;
        let backup = || {
            std::fs::read_to_string(&before.backup).map_err(|source| match &before.host {
                Some(host)
                    if source.kind() == std::io::ErrorKind::NotFound
                        && *host != crate::text::hostname() =>
                {
                    ActionError::Elsewhere {
                        path: before.backup.clone(),
                        host: host.clone(),
                    }
                }
                _ => ActionError::File {
                    verb: "read the backup",
                    path: before.backup.clone(),
                    source,
                },
            })
        };
        let restored = if before.part {
            // Only this target's part goes back; the rest of the file is
            // as other rotations (of other users) left it.
            let part = if before.part_existed {
                Some(backup()?)
            } else {
                None
            };
            let current = self.read()?.map(|(text, _)| text).unwrap_or_default();
            let text = self.format.with_part(&current, part.as_deref());
            (before.existed || !text.trim().is_empty()).then_some(text)
        } else if before.existed {
            Some(backup()?)
        } else {
            None
        };
        match restored {
            Some(text) => {
                let mode = files::mode_of(path).unwrap_or(0o600);
                files::write_atomically(path, text.as_bytes(), mode).map_err(|source| {
                    ActionError::File {
                        verb: "write",
                        path: path.clone(),
                        source,
                    }
                })
            }
            None => match std::fs::remove_file(path) {
                Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                    Err(ActionError::File {
                        verb: "remove",
                        path: path.clone(),
                        source,
                    })
                }
                _ => Ok(()),
            },
        }
    }

    fn before_from_v1(data: &BTreeMap<String, String>) -> Option<Before> {
        Some(Before {
            existed: v1_flag(data, "previous_exists"),
            backup: PathBuf::from(data.get("backup")?),
            part: false,
            part_existed: false,
            host: None,
        })
    }
}

/// The file a target's `path` names: `~/` is the home folder, as for the
/// AWS CLI (it once made a folder named `~` beside the workflow, and the
/// real file kept the old key); a relative path starts at the workflow's
/// folder. A folder that does not exist is created only under the home
/// folder or the workflow's folder; elsewhere it is an error, so a typo in
/// a path never scatters secrets into new folders.
pub fn target_path(cx: &super::Resolve<'_>, written: &str) -> Result<PathBuf, ActionError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let joined = match (written.strip_prefix("~/"), &home) {
        (Some(rest), Some(home)) => home.join(rest),
        (Some(_), None) => {
            return Err(ActionError::invalid(
                cx.what,
                format!("`{written}` starts with `~/`, but HOME is not set"),
            ));
        }
        (None, _) => cx.base_dir.join(written),
    };
    let path = real_path(&joined);
    let dir = path.parent().unwrap_or(&path);
    if !dir.exists() {
        let roots = [Some(cx.base_dir.to_path_buf()), home];
        let allowed = roots
            .iter()
            .flatten()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .any(|root| dir.starts_with(&root));
        if !allowed {
            return Err(ActionError::invalid(
                cx.what,
                format!(
                    "the folder {} does not exist, and rekey creates folders only under your home folder or the workflow's: create it, or fix the path",
                    dir.display()
                ),
            ));
        }
    }
    Ok(path)
}

/// The file a path names, symlinks followed and `.`/`..` resolved: a
/// target that is a symlink is written through to the file it points at
/// (renaming over the link would leave the real file with the old key),
/// and two spellings of one file are one file to the lock, the backup and
/// the plan's collision check. A file that does not exist yet is resolved
/// through its folder.
pub fn real_path(path: &std::path::Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => match std::fs::canonicalize(dir) {
            Ok(dir) => dir.join(name),
            Err(_) => absolute.components().collect(),
        },
        _ => absolute,
    }
}

/// A `mode:` setting, in octal.
pub fn mode(text: &Option<String>, what: &str) -> Result<Option<u32>, ActionError> {
    text.as_deref()
        .map(|m| {
            files::parse_mode(m).ok_or_else(|| {
                ActionError::invalid(
                    what,
                    format!("`{m}` is not an octal file mode such as 0600"),
                )
            })
        })
        .transpose()
}

/// Validation of a `mode:` setting, at the kind's key `at`.
pub fn check_mode(at: &Origin, mode: &Option<String>, problems: &mut Problems) {
    if let Some(text) = mode.as_deref().filter(|m| files::parse_mode(m).is_none()) {
        problems.push(Problem::new(
            at.key("mode"),
            Part::Value,
            format!("`{text}` is not a file mode"),
            Some("write it in octal, quoted: \"0600\"".into()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::credentials_file::Profile;

    /// With state in S3 another runner can resume a rotation, but a file's
    /// backup stays on the machine that wrote it: the restore halts, naming
    /// that machine, instead of guessing what the profile held.
    #[tokio::test]
    async fn a_backup_left_on_another_machine_is_named_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "[app]\naws_access_key_id = AKIANEW0000000000000\n").unwrap();
        let file = LocalFile {
            written: "credentials".into(),
            path: path.clone(),
            format: Profile { name: "app".into() },
            mode: None,
        };
        let before = Before {
            existed: true,
            backup: dir.path().join("backups/app.profile"),
            part: true,
            part_existed: true,
            host: Some("runner-elsewhere".into()),
        };
        let provider = crate::providers::memory::Memory::default();
        let cx = Restore {
            provider: &provider,
            target: "profile",
            user: "app",
            old_key: "AKIAOLD0000000000000",
            new_key: Some("AKIANEW0000000000000"),
            base_dir: dir.path(),
        };
        let error = file.restore(&cx, &before).await.unwrap_err();
        assert!(
            matches!(&error, ActionError::Elsewhere { host, .. } if host == "runner-elsewhere"),
            "{error}"
        );
        assert!(
            error.to_string().contains("on machine `runner-elsewhere`"),
            "{error}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[app]\naws_access_key_id = AKIANEW0000000000000\n",
            "the file is left as it is"
        );
    }
}
