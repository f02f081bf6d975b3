//! What the three file kinds (`credentials_file`, `env_file`, `template`)
//! share: a file on this machine, read for the key id it holds, backed up
//! (0600, in the state directory) before it is first changed, replaced
//! atomically, and restored from the backup. Each kind brings only its
//! [`FileFormat`]: how to find the key id in the text and how to rewrite it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ActionError, Resolved, Restore, Write, Written, v1_flag};
use crate::providers::files;
use crate::providers::{Provider, TargetReader, TargetState};
use crate::secret::{ExposeSecret, SecretString};
use crate::workflow::diagnostic::{Part, Problem, Problems};
use crate::workflow::document::SecretFormat;
use crate::workflow::source::Origin;

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
    /// The plan's resource column, from the path as written.
    fn resource(&self, path: &str) -> String {
        path.to_string()
    }
    /// The plan's step line, from the path as written.
    fn describe(&self, path: &str) -> String;
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

/// Whether the file existed, and where its copy is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Before {
    pub existed: bool,
    pub backup: PathBuf,
}

impl<F: FileFormat> LocalFile<F> {
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
                }
            }
            None => TargetState::absent(),
        }))
    }

    async fn write<P: Provider>(
        &self,
        cx: &Write<'_, P>,
        recorded: Option<&Before>,
        intent: &dyn Fn(&Before) -> Result<(), ActionError>,
    ) -> Result<Written, ActionError> {
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
            if let Some(text) = text {
                files::write_atomically(&cx.backup, text.as_bytes(), 0o600).map_err(|source| {
                    ActionError::File {
                        verb: "back up",
                        path: self.path.clone(),
                        source,
                    }
                })?;
            }
            intent(&Before {
                existed: text.is_some(),
                backup: cx.backup.clone(),
            })?;
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
        if before.existed {
            let original = std::fs::read(&before.backup).map_err(|source| ActionError::File {
                verb: "read the backup",
                path: before.backup.clone(),
                source,
            })?;
            let mode = files::mode_of(path).unwrap_or(0o600);
            files::write_atomically(path, &original, mode).map_err(|source| ActionError::File {
                verb: "write",
                path: path.clone(),
                source,
            })?;
        } else if let Err(source) = std::fs::remove_file(path)
            && source.kind() != std::io::ErrorKind::NotFound
        {
            return Err(ActionError::File {
                verb: "remove",
                path: path.clone(),
                source,
            });
        }
        Ok(())
    }

    fn before_from_v1(data: &BTreeMap<String, String>) -> Option<Before> {
        Some(Before {
            existed: v1_flag(data, "previous_exists"),
            backup: PathBuf::from(data.get("backup")?),
        })
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
