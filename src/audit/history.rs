//! The change records: each rotation the workflows' journals (local or S3)
//! record in an account, with its key ids, the time of each step, and the
//! hosts and CI jobs that ran it.

use serde::Serialize;

use super::Audited;
use crate::apply::journal::{self, End, RotationRecord, Runner};
use crate::plan::select::Selector;
use crate::workflow::graph::{Phase, StepId};

/// One rotation, as its journal tells it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub workflow: String,
    /// Where its journal is (a state directory, or `s3://…`).
    pub state: String,
    pub rotation: String,
    pub user: String,
    /// The key it replaces.
    pub old_key: String,
    /// The key it made (absent until `create` is done).
    pub new_key: Option<String>,
    pub began: String,
    /// When the new key was created.
    pub created: Option<String>,
    /// Each target written, when.
    pub distributed: Vec<Event>,
    /// Each refresh and verification that passed, when.
    pub verified: Vec<Event>,
    /// When the old key was disabled, and deleted.
    pub disabled: Option<String>,
    pub deleted: Option<String>,
    /// `finished`, `rolled back`, `halted` or `in progress`.
    pub outcome: String,
    /// Every runner that wrote to it, in order (empty for journals written
    /// before runners were recorded).
    pub runners: Vec<Runner>,
}

/// A step of a rotation: what, and when it was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub what: String,
    pub at: String,
}

/// The rotations in `account` of the `covering` workflows' journals.
/// A rotation that does not say its account (the first journal format)
/// is in the account its workflow runs in (`caller`'s without a fan-out).
pub fn of(
    covering: &[(&Audited<'_>, &Selector)],
    account: &str,
    caller: &str,
) -> Vec<HistoryEntry> {
    let mut history = Vec::new();
    for (audited, _) in covering {
        let Ok((state, entries)) = &audited.journal else {
            continue;
        };
        let workflow = audited.workflow;
        let default = if workflow.fleet.is_none() { caller } else { "" };
        for record in journal::rotations(entries) {
            if !record.belongs_to(&workflow.name) || record.account().unwrap_or(default) != account
            {
                continue;
            }
            let mut runners: Vec<Runner> = Vec::new();
            for runner in entries
                .iter()
                .filter(|e| e.rotation == record.id)
                .filter_map(|e| e.by.clone())
            {
                if !runners.contains(&runner) {
                    runners.push(runner);
                }
            }
            history.push(entry(&workflow.name, state, &record, runners));
        }
    }
    history.sort_by(|a, b| (&a.began, &a.rotation).cmp(&(&b.began, &b.rotation)));
    history
}

fn entry(
    workflow: &str,
    state: &str,
    record: &RotationRecord,
    runners: Vec<Runner>,
) -> HistoryEntry {
    let at = |phase: Phase| record.done_at.get(&StepId::of(phase)).cloned();
    let events = |phases: &[Phase]| -> Vec<Event> {
        record
            .done_at
            .iter()
            .filter(|(step, _)| phases.contains(&step.phase))
            .map(|(step, time)| Event {
                what: step.to_string(),
                at: time.clone(),
            })
            .collect()
    };
    let outcome = match (&record.ended, &record.rolling_back) {
        (Some(End::Finished), _) => "finished".to_string(),
        (Some(End::RolledBack), _) => "rolled back".to_string(),
        (Some(End::Halted), _) => "halted".to_string(),
        (None, Some(reason)) => format!("rolling back ({reason})"),
        (None, None) => "in progress".to_string(),
    };
    HistoryEntry {
        workflow: workflow.to_string(),
        state: state.to_string(),
        rotation: record.id.clone(),
        user: record.user.clone(),
        old_key: record.begin.old_key.clone(),
        new_key: record.new_key().map(str::to_string),
        began: record.started.clone(),
        created: at(Phase::Create),
        distributed: events(&[Phase::Distribute]),
        verified: events(&[Phase::Refresh, Phase::Verify, Phase::VerifyAfterDisable]),
        disabled: at(Phase::DisableOld),
        deleted: at(Phase::DeleteOld),
        outcome,
        runners,
    }
}
