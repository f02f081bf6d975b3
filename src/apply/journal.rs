//! The journal: the checkpoint that makes apply resumable.
//!
//! One JSON line per event, appended and synced before the step it records
//! goes on, in a file only its owner can read (0600). Every step writes an
//! intent before it acts and an outcome after; a step with an intent and no
//! outcome was interrupted, and the next apply reconciles it against live
//! state. Records carry ids, versions, times and messages: never a secret.
//!
//! A crash can cut the last line short: that line is ignored (its step
//! has no outcome, so it is reconciled). Damage anywhere else is refused,
//! never silently started over.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "journal.jsonl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A rotation of one user begins: `data` has `arn`, `old_key`, `make_room`.
    Begin,
    /// A step is about to act; `data` has what reconciling it needs.
    Intent,
    /// A step finished; `data` has its outputs (`new_key`, `version`, ...).
    Done,
    /// A step failed with `data.error`; it will be retried or reconciled.
    Failed,
    /// The rotation waits (soak, change window) until `data.until`.
    Paused,
    /// A verification failed and everything was put back.
    RolledBack,
    /// A verification failed and policy says stop: both keys stay.
    Halted,
    /// Every step is done.
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub time: String,
    pub rotation: String,
    pub user: String,
    pub event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the state directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the journal {} is damaged at line {line} ({reason}); rekey will not guess what happened. Restore it from a backup, or move it aside and check every rotation by hand",
        path.display()
    )]
    Damaged {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The open journal of one state directory.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (creating) the journal in `state_dir` and reads what it holds.
    pub fn open(state_dir: &Path) -> Result<(Journal, Vec<Entry>), JournalError> {
        let path = state_dir.join(FILE_NAME);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(io(error)),
        };
        let entries = parse(&text, &path)?;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        if !text.is_empty() && !text.ends_with('\n') {
            // A torn last record: end its line so the next record starts clean.
            let mut file = &file;
            file.write_all(b"\n")
                .and_then(|()| file.sync_data())
                .map_err(io)?;
        }
        Ok((Journal { file, path }, entries))
    }

    /// Appends one record and syncs it to disk before returning.
    pub fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(entry).expect("plain data");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// Reads the journal of `state_dir` without opening it for writing.
pub fn read(state_dir: &Path) -> Result<Vec<Entry>, JournalError> {
    let path = state_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(JournalError::Io { path, source }),
    }
}

fn parse(text: &str, path: &Path) -> Result<Vec<Entry>, JournalError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut entries = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(line.trim_end()) {
            Ok(entry) => entries.push(entry),
            // Only the very last line, unterminated, can be a torn write.
            Err(_) if i + 1 == lines.len() && !line.ends_with('\n') => {}
            Err(error) => {
                return Err(JournalError::Damaged {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: error.to_string(),
                });
            }
        }
    }
    Ok(entries)
}

/// One rotation as the journal tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationRecord {
    pub id: String,
    pub user: String,
    pub started: String,
    pub begin: BTreeMap<String, String>,
    /// Outputs of every finished step.
    pub done: BTreeMap<String, BTreeMap<String, String>>,
    /// When each finished step finished (RFC 3339).
    pub done_at: BTreeMap<String, String>,
    /// The last step with an intent and no outcome, with its intent data.
    pub pending: Option<(String, BTreeMap<String, String>)>,
    /// Every intent's data, by step (kept after the step is done: rollback
    /// needs what each target held before).
    pub intents: BTreeMap<String, BTreeMap<String, String>>,
    pub last: Option<Entry>,
    pub ended: Option<Event>,
}

impl RotationRecord {
    /// Whether later applies still have work to do on it.
    pub fn in_progress(&self) -> bool {
        !matches!(self.ended, Some(Event::Finished | Event::RolledBack))
    }
}

/// Every rotation in the journal, oldest first.
pub fn rotations(entries: &[Entry]) -> Vec<RotationRecord> {
    let mut order: Vec<String> = Vec::new();
    let mut records: BTreeMap<String, RotationRecord> = BTreeMap::new();
    for entry in entries {
        let record = records.entry(entry.rotation.clone()).or_insert_with(|| {
            order.push(entry.rotation.clone());
            RotationRecord {
                id: entry.rotation.clone(),
                user: entry.user.clone(),
                started: entry.time.clone(),
                ..RotationRecord::default()
            }
        });
        let step = entry.step.clone().unwrap_or_default();
        match entry.event {
            Event::Begin => record.begin = entry.data.clone(),
            Event::Intent => {
                record.pending = Some((step.clone(), entry.data.clone()));
                record.intents.insert(step, entry.data.clone());
            }
            Event::Done => {
                record.done.insert(step.clone(), entry.data.clone());
                record.done_at.insert(step.clone(), entry.time.clone());
                if record.pending.as_ref().is_some_and(|(s, _)| *s == step) {
                    record.pending = None;
                }
            }
            Event::RolledBack | Event::Finished => record.ended = Some(entry.event),
            Event::Halted => record.ended = Some(Event::Halted),
            Event::Failed | Event::Paused => {}
        }
        if matches!(entry.event, Event::Intent | Event::Done) && record.ended == Some(Event::Halted)
        {
            record.ended = None;
        }
        record.last = Some(entry.clone());
    }
    order
        .into_iter()
        .filter_map(|id| records.remove(&id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rotation: &str, event: Event, step: Option<&str>) -> Entry {
        Entry {
            time: "t".into(),
            rotation: rotation.into(),
            user: "u".into(),
            event,
            step: step.map(str::to_string),
            data: BTreeMap::new(),
        }
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_damage_elsewhere_refused() {
        let good = serde_json::to_string(&entry("r", Event::Begin, None)).unwrap();
        let path = Path::new("j");
        assert_eq!(
            parse(&format!("{good}\n{{\"time\":\"t\",\"rot"), path)
                .unwrap()
                .len(),
            1
        );
        let damaged = parse(&format!("{good}\nnot json\n{good}\n"), path);
        assert!(
            matches!(damaged, Err(JournalError::Damaged { line: 2, .. })),
            "{damaged:?}"
        );
    }

    #[test]
    fn replay_finds_done_steps_the_pending_one_and_the_end() {
        let entries = [
            entry("r", Event::Begin, None),
            entry("r", Event::Intent, Some("create")),
            entry("r", Event::Done, Some("create")),
            entry("r", Event::Intent, Some("distribute:a")),
        ];
        let records = rotations(&entries);
        assert_eq!(records.len(), 1);
        assert!(records[0].done.contains_key("create"));
        assert_eq!(
            records[0].pending.as_ref().map(|(s, _)| s.as_str()),
            Some("distribute:a")
        );
        assert!(records[0].in_progress());
        let finished =
            rotations(&[entries.to_vec(), vec![entry("r", Event::Finished, None)]].concat());
        assert!(!finished[0].in_progress());
    }

    #[test]
    fn records_are_synced_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, entries) = Journal::open(dir.path()).unwrap();
        assert!(entries.is_empty());
        journal.append(&entry("r", Event::Begin, None)).unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (_, entries) = Journal::open(dir.path()).unwrap();
        assert_eq!(entries.len(), 1);
    }
}
