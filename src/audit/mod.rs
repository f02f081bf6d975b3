//! `rekey report`: the auditor's evidence. For every account the given
//! workflows reach, every IAM user's every access key (selected or not),
//! judged by the controls ([`controls`]) at `as_of`, with the workflow that
//! covers it, the exemption that bears on it, and each rotation the
//! workflows' journals record ([`history`]).
//!
//! Reads (per account): `ListUsers`, the credential report (for key dates
//! and last use), `ListAccessKeys` per user (the report has no key ids),
//! `ListUserTags` where a workflow selects by tags, and
//! `GetAccessKeyLastUsed` only for a key the report cannot judge: one it
//! does not list, or one it shows unused for 45 days or more (a use since
//! the report could pass it). A secret is never read.

pub mod collect;
pub mod controls;
pub mod history;

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use crate::apply::journal::Entry;
use crate::plan::exemptions::Exemptions;
use crate::providers::{KeyStatus, LastUse};
use crate::text::rfc3339;
use crate::workflow::duration::Duration;
use crate::workflow::model::Workflow;

/// The report document (`rekey report --format json`).
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// The instant keys are judged at.
    pub as_of: String,
    pub generated_at: String,
    /// The age IAM.3 fails at: the strictest `policy.deadline` of the
    /// workflows, 90 days at most.
    pub deadline: String,
    /// The workflows whose coverage and journals it reports.
    pub workflows: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemptions_file: Option<String>,
    /// Exemptions past their last day, each a failure of its own (a key
    /// it names fails too).
    pub expired_exemptions: Vec<String>,
    /// Workflows whose journal could not be read: their history is
    /// missing here (the command exits 1).
    pub unread_journals: Vec<UnreadJournal>,
    pub accounts: Vec<AccountAudit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnreadJournal {
    pub workflow: String,
    pub error: String,
}

/// One account's keys and history.
#[derive(Debug, Clone, Serialize)]
pub struct AccountAudit {
    pub account: String,
    /// Why it could not be read (its keys are then not judged: a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub summary: AuditSummary,
    /// How the credential report was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_report: Option<String>,
    /// Failing keys first, then by user and key id.
    pub keys: Vec<KeyEntry>,
    /// The rotations the workflows' journals record here, oldest first.
    pub history: Vec<history::HistoryEntry>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct AuditSummary {
    pub users: usize,
    pub keys: usize,
    /// Keys created after `as_of`: they did not exist then, so are not
    /// listed or judged.
    pub created_later: usize,
    /// Keys with a failing control (and no exemption that holds), or
    /// whose exemption expired.
    pub failing: usize,
}

/// One access key, judged.
#[derive(Debug, Clone, Serialize)]
pub struct KeyEntry {
    pub user: String,
    pub access_key_id: String,
    pub status: KeyStatus,
    pub created: String,
    pub age_days: i64,
    /// Its last use (`null`: never used).
    pub last_used: Option<LastUsed>,
    /// The workflow that rotates it (`null`: none covers it).
    pub workflow: Option<String>,
    pub exemption: Option<String>,
    pub results: Vec<Verdict>,
    /// Whether it counts as failing.
    pub failing: bool,
    #[serde(skip)]
    pub created_at: OffsetDateTime,
    #[serde(skip)]
    pub last_used_at: Option<OffsetDateTime>,
}

impl KeyEntry {
    /// A key not yet judged.
    pub fn new(
        user: &str,
        id: &str,
        status: KeyStatus,
        created: OffsetDateTime,
        last_used: Option<OffsetDateTime>,
    ) -> Self {
        KeyEntry {
            user: user.to_string(),
            access_key_id: id.to_string(),
            status,
            created: rfc3339(created),
            age_days: 0,
            last_used: None,
            workflow: None,
            exemption: None,
            results: Vec::new(),
            failing: false,
            created_at: created,
            last_used_at: last_used,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastUsed {
    pub date: String,
    pub service: Option<String>,
    pub region: Option<String>,
}

impl LastUsed {
    pub fn of(used: &LastUse) -> Option<LastUsed> {
        used.date.map(|date| LastUsed {
            date: rfc3339(date),
            service: used.service.clone(),
            region: used.region.clone(),
        })
    }
}

/// One control's result for one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub control: String,
    pub cis: Vec<String>,
    /// `PASSED` or `FAILED`.
    pub result: String,
    pub reason: String,
}

impl AuditReport {
    /// Whether any key fails, or any account could not be read: exit 5
    /// (unreadable: 1, which the command line checks first).
    pub fn fails(&self) -> bool {
        self.accounts.iter().any(|a| a.summary.failing > 0) || !self.expired_exemptions.is_empty()
    }
}

/// A workflow to report on, with its journal as read (or why not).
pub struct Audited<'a> {
    pub workflow: &'a Workflow,
    pub path: &'a Path,
    pub vars: Vec<(String, String)>,
    /// Where its state is, and its entries.
    pub journal: Result<(String, Vec<Entry>), String>,
}

/// What a report is made from, besides the live state.
pub struct AuditRequest<'a> {
    pub workflows: Vec<Audited<'a>>,
    pub as_of: OffsetDateTime,
    pub exemptions: &'a Exemptions,
    /// Use the credential report (`--no-credential-report`: false).
    pub credential_report: bool,
    /// Users read at once in an account.
    pub parallelism: usize,
}

impl AuditRequest<'_> {
    /// IAM.3's limit: the strictest deadline, 90 days at most.
    pub fn deadline(&self) -> Duration {
        self.workflows
            .iter()
            .map(|w| w.workflow.policy.deadline)
            .chain([crate::workflow::model::DEFAULT_DEADLINE])
            .min()
            .unwrap_or(crate::workflow::model::DEFAULT_DEADLINE)
    }
}

pub use collect::audit;
