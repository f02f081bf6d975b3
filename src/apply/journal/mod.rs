//! The journal: the checkpoint that makes apply resumable.
//!
//! One JSON line per record, appended and synced before the step it records
//! goes on, in a file only its owner can read (0600). Every step writes an
//! intent before it acts and an outcome after; a step with an intent and no
//! outcome was interrupted, and the next apply reconciles it against live
//! state. Records are typed ([`Record`], [`Intent`], [`Done`]) and carry
//! ids, versions, times and messages: never a secret.
//!
//! A crash can cut the last line short: that line is ignored (its step
//! has no outcome, so it is reconciled). Damage anywhere else is refused,
//! never silently started over.
//!
//! Journals of the first format (every record's fields as strings under
//! `data`) are read too, so a rotation an older rekey left in progress is
//! resumed: see [`v1`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::snapshot::Snapshot;
use crate::hooks::HookOutcome;
use crate::targets::TargetBefore;
use crate::workflow::graph::{Phase, StepId};

pub const FILE_NAME: &str = "journal.jsonl";

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub time: String,
    pub rotation: String,
    pub user: String,
    #[serde(flatten)]
    pub record: Record,
    /// The runner that wrote it (absent in journals before it was kept):
    /// the change record says which host and CI job did each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Runner>,
}

/// Who ran a step: the host, the process, and the CI job when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    pub host: String,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

impl Runner {
    /// This process, as the environment tells its CI job: `REKEY_JOB`, or
    /// the run's address on GitHub Actions, GitLab CI, Buildkite, CircleCI
    /// or Jenkins.
    pub fn this() -> Runner {
        static THIS: std::sync::OnceLock<Runner> = std::sync::OnceLock::new();
        THIS.get_or_init(|| Runner {
            host: crate::text::hostname(),
            pid: std::process::id(),
            job: ci_job(|name| std::env::var(name).ok().filter(|v| !v.is_empty())),
        })
        .clone()
    }
}

/// The CI job `var` describes, if any.
fn ci_job(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(job) = var("REKEY_JOB") {
        return Some(job);
    }
    if var("GITHUB_ACTIONS").is_some() {
        let server = var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
        let (repository, run) = (var("GITHUB_REPOSITORY")?, var("GITHUB_RUN_ID")?);
        let attempt = var("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into());
        return Some(format!(
            "{server}/{repository}/actions/runs/{run}/attempts/{attempt}"
        ));
    }
    [
        "CI_JOB_URL",
        "BUILDKITE_BUILD_URL",
        "CIRCLE_BUILD_URL",
        "BUILD_URL",
    ]
    .iter()
    .find_map(|name| var(name))
}

/// What happened, by event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// A rotation of one user begins.
    Begin(Begin),
    /// A step is about to act; `intent` has what reconciling or undoing it
    /// needs.
    Intent {
        step: StepId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        intent: Option<Intent>,
    },
    /// A step finished; `done` has its outputs.
    Done {
        step: StepId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        done: Option<Done>,
    },
    /// A step failed; it will be retried or reconciled.
    Failed { step: StepId, error: String },
    /// A signal cut the step short; it runs again on resume.
    Interrupted { step: StepId },
    /// The rotation waits (soak, change window) until `until`.
    Paused {
        step: StepId,
        until: String,
        reason: String,
    },
    /// The rotation is being undone (a verification failed, or `abort`):
    /// from now on only [`Undo`] steps run, never the rotation's own.
    RollingBack { reason: String },
    /// An undo step is about to act.
    UndoIntent { undo: Undo },
    /// An undo step is done.
    Undone { undo: Undo },
    /// The rollback cannot be done (the old key was deleted outside rekey
    /// before anything was put back): the rotation goes on with the new key.
    RollbackAbandoned { reason: String },
    /// Everything was put back.
    RolledBack { reason: String },
    /// A verification failed and policy says stop: both keys stay.
    Halted { reason: String },
    /// Every step is done.
    Finished,
}

/// What a rotation starts from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Begin {
    /// The user's ARN: what the new key must authenticate as.
    pub arn: String,
    /// The active key the rotation replaces.
    pub old_key: String,
    /// The inactive key deleted first to free a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make_room: Option<String>,
    /// What the rotation acts on; absent in the first journal format,
    /// whose rotations act from the workflow as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Box<Snapshot>>,
}

/// One step of a rollback, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undo {
    /// The old key made active again (when `disable-old` began).
    EnableOld,
    /// A target put back as it was (when its write began).
    Restore(String),
    /// The new key deleted.
    DeleteNew,
    /// The keys an interrupted `create` made and never finished with
    /// deleted, by create's own rule (its journaled ids, or the one key a
    /// lost answer left).
    DeleteOrphans,
    /// The staged secret deleted.
    Discard,
}

impl std::fmt::Display for Undo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undo::EnableOld => f.write_str("enable-old"),
            Undo::Restore(target) => write!(f, "restore:{target}"),
            Undo::DeleteNew => f.write_str("delete-new"),
            Undo::DeleteOrphans => f.write_str("delete-orphans"),
            Undo::Discard => f.write_str("discard"),
        }
    }
}

/// What a step's intent remembers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// The user's keys before CreateAccessKey, the ids its create calls
    /// returned (recorded before the secret is staged: the proof that a key
    /// is this rotation's), and when it began.
    Create {
        keys_before: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        created: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
    },
    /// What a target held before it was written.
    Distribute(TargetBefore),
    /// The same, as the first journal format wrote it; the target's kind
    /// reads it ([`crate::targets::TargetKind::before_from_v1`]).
    DistributeV1(BTreeMap<String, String>),
    /// When the soak ends.
    Soak { until: String },
}

/// What a finished step left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Done {
    /// The new key, and where its secret is staged.
    Created {
        new_key: String,
        staged: String,
    },
    /// The version a target now has.
    Written {
        version: String,
    },
    /// What a hook that passed found.
    Checked(HookOutcome),
    Disabled {
        key: String,
    },
    Deleted {
        key: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "another runner took over this workflow's state ({by}): this runner's lease had expired (was it stopped, or cut off from S3?). This apply stops here without another change; the runner that took over finishes the rotations"
    )]
    Fenced { by: String },
    #[error("cannot read the state in {location}: {source}")]
    Store {
        location: String,
        source: crate::providers::ProviderError,
    },
    #[error("cannot append to the journal in {location}: {reason}")]
    Unwritten { location: String, reason: String },
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

/// The open journal of one workflow's state (a state directory, or S3:
/// `apply::state`), written only while its lock is held.
pub struct Journal {
    state: super::state::State,
    /// Values never to write (sensitive params).
    sensitive: crate::secret::Sensitive,
    /// The records of each rotation that has not ended: those read when
    /// it was opened, and this run's. Dropped when a rotation ends, so
    /// memory follows the rotations under way, not the run's length.
    entries: Mutex<std::collections::HashMap<String, Vec<Entry>>>,
    /// The intents this run recorded, by rotation: what each target held
    /// before it, without reading the state back.
    intents: Mutex<std::collections::HashMap<String, BTreeMap<StepId, Intent>>>,
}

impl Journal {
    /// Reads what the state holds (its lock must be held to append).
    pub async fn open(state: super::state::State) -> Result<(Journal, Vec<Entry>), JournalError> {
        let entries = state.read().await?;
        Ok((
            Journal {
                state,
                sensitive: crate::secret::Sensitive::default(),
                entries: Mutex::new(under_way(&entries)),
                intents: Default::default(),
            },
            entries,
        ))
    }

    /// From now on, these values are written as `(sensitive)`.
    pub fn redact(&mut self, sensitive: crate::secret::Sensitive) {
        self.sensitive = sensitive;
    }

    /// Appends one record, durably, before returning.
    pub async fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let line = self
            .sensitive
            .redact(&serde_json::to_string(entry).expect("plain data"));
        self.state.append(vec![line]).await?;
        if let Record::Intent {
            step,
            intent: Some(intent),
        } = &entry.record
        {
            self.intents
                .lock()
                .expect("intents")
                .entry(entry.rotation.clone())
                .or_default()
                .insert(step.clone(), intent.clone());
        }
        let mut entries = self.entries.lock().expect("entries");
        if matches!(entry.record, Record::Finished | Record::RolledBack { .. }) {
            entries.remove(&entry.rotation);
            self.intents
                .lock()
                .expect("intents")
                .remove(&entry.rotation);
        } else {
            entries
                .entry(entry.rotation.clone())
                .or_default()
                .push(entry.clone());
        }
        Ok(())
    }

    /// The intents this run recorded for `rotation`.
    pub fn intents_of(&self, rotation: &str) -> BTreeMap<StepId, Intent> {
        self.intents
            .lock()
            .expect("intents")
            .get(rotation)
            .cloned()
            .unwrap_or_default()
    }

    /// The records of `rotation`, earlier runs' and this one's, while it
    /// has not ended.
    pub fn entries_of(&self, rotation: &str) -> Vec<Entry> {
        self.entries
            .lock()
            .expect("entries")
            .get(rotation)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether this runner still holds the state's lock (or lease).
    pub async fn verify_held(&self) -> Result<(), JournalError> {
        self.state.verify_held().await
    }

    /// Lets the state's lock go.
    pub async fn close(&self) {
        self.state.release().await;
    }
}

/// The records of the rotations that have not ended, by rotation.
fn under_way(entries: &[Entry]) -> std::collections::HashMap<String, Vec<Entry>> {
    let ended: std::collections::HashSet<String> = rotations(entries)
        .into_iter()
        .filter(|r| !r.in_progress())
        .map(|r| r.id)
        .collect();
    let mut by_rotation: std::collections::HashMap<String, Vec<Entry>> =
        std::collections::HashMap::new();
    for entry in entries.iter().filter(|e| !ended.contains(&e.rotation)) {
        by_rotation
            .entry(entry.rotation.clone())
            .or_default()
            .push(entry.clone());
    }
    by_rotation
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
        match parse_line(line.trim_end()) {
            Ok(entry) => entries.push(entry),
            // The very last line, unterminated, is a torn write.
            Err(_) if i + 1 == lines.len() && !line.ends_with('\n') => {}
            Err(reason) => match after_torn_record(line.trim_end()) {
                Some(entry) => entries.push(entry),
                None => {
                    return Err(JournalError::Damaged {
                        path: path.to_path_buf(),
                        line: i + 1,
                        reason,
                    });
                }
            },
        }
    }
    Ok(entries)
}

/// A line that is the start of a record whose write failed, followed by a
/// whole record (an append after a failed one lands right after its torn
/// bytes): that record. The torn one was never written as far as its
/// writer knew, so nothing is lost by dropping it.
fn after_torn_record(line: &str) -> Option<Entry> {
    torn_prefix(line).and_then(|at| parse_line(&line[at..]).ok())
}

/// Where the whole record after a torn one starts in `line`, if it is one.
fn torn_prefix(line: &str) -> Option<usize> {
    line.match_indices("{\"")
        .map(|(at, _)| at)
        .filter(|at| *at > 0)
        .find(|at| parse_line(&line[*at..]).is_ok())
}

/// The journal `text` without the torn records a failed write left in
/// the middle of it, if there are any (a torn last line is cut off where
/// the journal is opened for writing).
pub fn without_torn_records(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut torn = false;
    let mut whole = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len() && !line.ends_with('\n');
        let content = line.trim_end();
        let cut = (!content.is_empty() && !last && parse_line(content).is_err())
            .then(|| torn_prefix(content))
            .flatten();
        torn |= cut.is_some();
        whole.push_str(&line[cut.unwrap_or(0)..]);
    }
    torn.then_some(whole)
}

/// A line of this format, or of the first one (which has `data`).
fn parse_line(line: &str) -> Result<Entry, String> {
    parse_value(serde_json::from_str(line).map_err(|e| e.to_string())?)
}

/// A record as a JSON value, of either format.
pub fn parse_value(value: serde_json::Value) -> Result<Entry, String> {
    if value.get("data").is_some() {
        return v1::parse(value).ok_or_else(|| "a first-format record rekey does not know".into());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// How one rotation ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Finished,
    RolledBack,
    Halted,
}

/// One rotation as the journal tells it.
#[derive(Debug, Clone, Default)]
pub struct RotationRecord {
    pub id: String,
    pub user: String,
    pub started: String,
    pub begin: Begin,
    /// Outputs of every finished step.
    pub done: BTreeMap<StepId, Option<Done>>,
    /// When each finished step finished (RFC 3339).
    pub done_at: BTreeMap<StepId, String>,
    /// The last step with an intent and no outcome, with its intent.
    pub pending: Option<(StepId, Option<Intent>)>,
    /// Every intent, by step (kept after the step is done: rollback needs
    /// what each target held before).
    pub intents: BTreeMap<StepId, Option<Intent>>,
    pub last: Option<Entry>,
    pub ended: Option<End>,
    /// Why the rotation is being undone, once it is.
    pub rolling_back: Option<String>,
    /// Undo steps done.
    pub undone: std::collections::BTreeSet<Undo>,
}

impl RotationRecord {
    /// Whether later applies still have work to do on it.
    pub fn in_progress(&self) -> bool {
        !matches!(self.ended, Some(End::Finished | End::RolledBack))
    }

    /// The key `create` made, once it is done.
    pub fn new_key(&self) -> Option<&str> {
        match self.done.get(&StepId::of(Phase::Create)) {
            Some(Some(Done::Created { new_key, .. })) => Some(new_key),
            _ => None,
        }
    }

    /// The workflow that began it; `None` for the first journal format.
    pub fn owner(&self) -> Option<&str> {
        self.begin.snapshot.as_ref().map(|s| s.workflow.as_str())
    }

    /// The account it began in (absent in the first journal format, whose
    /// rotations are in the account the journal's runs use).
    pub fn account(&self) -> Option<&str> {
        self.begin.snapshot.as_ref().map(|s| s.account.as_str())
    }

    /// Whether `--user given` names its user: `NAME`, or `ACCOUNT/NAME` of
    /// the account it began in (`caller`'s when its record does not say).
    pub fn named_by(&self, given: &str, caller: Option<&str>) -> bool {
        crate::plan::select::names_user(given, self.account().or(caller), &self.user)
    }

    /// How reports name it: `ACCOUNT/NAME` across accounts (`many`), the
    /// user's name otherwise.
    pub fn who(&self, many: bool) -> String {
        match self.account() {
            Some(account) if many => format!("{account}/{}", self.user),
            _ => self.user.clone(),
        }
    }

    /// Whether it rotates `user` of `account` (`default` when it does not
    /// say its account).
    pub fn rotates(&self, account: &str, user: &str, default: &str) -> bool {
        self.user == user && self.account().unwrap_or(default) == account
    }

    /// Whether workflow `name` may resume, roll back or report it. A
    /// rotation of the first format names no workflow: it is resumed by
    /// whichever workflow uses its state directory, as it always was.
    pub fn belongs_to(&self, name: &str) -> bool {
        self.owner().is_none_or(|owner| owner == name)
    }

    /// The intent recorded for `step`, if it recorded anything.
    pub fn intent(&self, step: &StepId) -> Option<&Intent> {
        self.intents.get(step).and_then(Option::as_ref)
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
        match &entry.record {
            Record::Begin(begin) => record.begin = begin.clone(),
            Record::Intent { step, intent } => {
                record.pending = Some((step.clone(), intent.clone()));
                record.intents.insert(step.clone(), intent.clone());
            }
            Record::Done { step, done } => {
                record.done.insert(step.clone(), done.clone());
                record.done_at.insert(step.clone(), entry.time.clone());
                if record.pending.as_ref().is_some_and(|(s, _)| s == step) {
                    record.pending = None;
                }
            }
            Record::RollingBack { reason } => record.rolling_back = Some(reason.clone()),
            Record::RollbackAbandoned { .. } => record.rolling_back = None,
            Record::UndoIntent { .. } => {}
            Record::Undone { undo } => {
                record.undone.insert(undo.clone());
            }
            Record::RolledBack { .. } => record.ended = Some(End::RolledBack),
            Record::Finished => record.ended = Some(End::Finished),
            Record::Halted { .. } => record.ended = Some(End::Halted),
            Record::Failed { .. } | Record::Paused { .. } | Record::Interrupted { .. } => {}
        }
        if matches!(
            entry.record,
            Record::Intent { .. }
                | Record::Done { .. }
                | Record::UndoIntent { .. }
                | Record::Undone { .. }
        ) && record.ended == Some(End::Halted)
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

/// The first journal format: `event`, `step`, and every field as a string
/// under `data` (lists comma-joined). Read, never written.
mod v1 {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::{Begin, Done, Entry, Intent, Record};
    use crate::workflow::graph::{Phase, StepId};

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Event {
        Begin,
        Intent,
        Done,
        Failed,
        Paused,
        RolledBack,
        Halted,
        Finished,
    }

    #[derive(Deserialize)]
    struct Line {
        time: String,
        rotation: String,
        user: String,
        event: Event,
        #[serde(default)]
        step: Option<StepId>,
        #[serde(default)]
        data: BTreeMap<String, String>,
    }

    pub(super) fn parse(line: serde_json::Value) -> Option<Entry> {
        let line: Line = serde_json::from_value(line).ok()?;
        let mut data = line.data;
        let mut take = |name: &str| data.remove(name).unwrap_or_default();
        let record = match line.event {
            Event::Begin => Record::Begin(Begin {
                arn: take("arn"),
                old_key: take("old_key"),
                make_room: Some(take("make_room")).filter(|k| !k.is_empty()),
                snapshot: None,
            }),
            Event::Intent => {
                let step = line.step?;
                let intent = match step.phase {
                    Phase::Create => Some(Intent::Create {
                        keys_before: take("keys_before")
                            .split(',')
                            .filter(|k| !k.is_empty())
                            .map(str::to_string)
                            .collect(),
                        created: Vec::new(),
                        since: None,
                    }),
                    Phase::Distribute => Some(Intent::DistributeV1(std::mem::take(&mut data))),
                    Phase::Soak => Some(Intent::Soak {
                        until: take("until"),
                    }),
                    _ => None,
                };
                Record::Intent { step, intent }
            }
            Event::Done => {
                let step = line.step?;
                let done = match step.phase {
                    Phase::Create => Some(Done::Created {
                        new_key: take("new_key"),
                        staged: take("staged"),
                    }),
                    Phase::Distribute => data
                        .remove("version")
                        .map(|version| Done::Written { version }),
                    Phase::MakeRoom | Phase::DeleteOld => Some(Done::Deleted {
                        key: take("deleted"),
                    }),
                    Phase::DisableOld => Some(Done::Disabled {
                        key: take("disabled"),
                    }),
                    // A hook's findings were only shown, never read back.
                    _ => None,
                };
                Record::Done { step, done }
            }
            Event::Failed => Record::Failed {
                step: line.step.unwrap_or_else(|| StepId::of(Phase::Create)),
                error: take("error"),
            },
            Event::Paused => Record::Paused {
                step: line.step?,
                until: take("until"),
                reason: take("reason"),
            },
            Event::RolledBack => Record::RolledBack {
                reason: take("reason"),
            },
            Event::Halted => Record::Halted {
                reason: take("reason"),
            },
            Event::Finished => Record::Finished,
        };
        Some(Entry {
            time: line.time,
            rotation: line.rotation,
            user: line.user,
            record,
            by: None,
        })
    }
}

#[cfg(test)]
mod tests;
