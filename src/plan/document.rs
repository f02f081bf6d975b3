//! The plan document: what `rekey plan --json` prints, `--out` saves and
//! `rekey apply` reads back (versioned by [`FORMAT_VERSION`]). Only its
//! shape lives here; the planning that fills it is the parent module's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;

/// The version of the plan document; bumped when its shape changes.
pub const FORMAT_VERSION: u32 = 2;

/// What `${new_key.id}` reads as before the key exists.
pub const NEW_KEY_PLACEHOLDER: &str = "(new key id)";

/// The plan document (`rekey plan --json`, `--out PLAN.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub rekey_version: String,
    pub workflow: WorkflowRef,
    /// The `--var` values the plan was made with.
    pub vars: BTreeMap<String, String>,
    /// The instant key ages were judged at (RFC 3339).
    pub as_of: String,
    pub account: String,
    /// The region and endpoint the calls went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// SHA-256 of what was observed (keys and target states, not last use) of
    /// the users not left unchanged:
    /// a saved plan is stale when a new observation hashes differently.
    pub observed_sha256: String,
    pub summary: Summary,
    /// Exact names in `select.users` that match no IAM user (a typo, or a
    /// user that was deleted or moved to another path).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmatched: Vec<String>,
    /// Where apply keeps the state, when it is shared (`s3://…`): apply of
    /// a saved plan must use the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// How the credential report was used (absent: not asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_report: Option<ReportUse>,
    /// `--user` and `--account`, as the plan was narrowed: apply of the
    /// saved plan observes the same users again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only_users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only_accounts: Vec<String>,
    /// With `accounts.ids` or `accounts.organization`: every account, as
    /// reached or not, with its own summary and credential report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountPlan>,
    /// Every selected user, sorted by account and name.
    pub users: Vec<UserPlan>,
    /// `policy.deadline`: the age no active key may reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// When the workflow's `schedule:` runs next after `as_of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// With a window too: the first scheduled run inside it, when the
    /// next run is not (a run outside the window cannot act).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_in_window: Option<String>,
    /// With `policy.window`: whether it is open, and when it opens next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowView>,
    /// What the run leaves due: blocked users, names no user has, keys
    /// that reach the deadline before the window opens. Any that counts
    /// (no exemption holds) makes apply, and plan with
    /// `--detailed-exitcode`, exit 5.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<Left>,
}

/// The change window at the plan's instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowView {
    pub open: bool,
    /// The next instant it opens (RFC 3339).
    pub next_open: String,
}

/// A due key or user the run will leave as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    pub user: String,
    pub why: String,
    /// The exemption that bears on it (`null`: none); it counts unless
    /// one holds.
    #[serde(default)]
    pub exemption: Option<String>,
    pub counts: bool,
}

impl Plan {
    /// Counts the users again, overall and per account, after decisions
    /// changed.
    pub fn recount(&mut self) {
        self.summary = Summary::of(&self.users);
        self.summarize_accounts();
    }

    /// Counts each account's users again (after marks changed decisions).
    pub fn summarize_accounts(&mut self) {
        for view in &mut self.accounts {
            view.summary = Summary::default();
        }
        for user in &self.users {
            if let Some(view) = self.accounts.iter_mut().find(|a| a.account == user.account) {
                view.summary.count(user.decision);
            }
        }
    }
}

/// One account of a fanned-out plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPlan {
    pub account: String,
    /// The role assumed there (absent: rekey's own credentials' account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub summary: Summary,
    /// Why the account could not be planned (it is then not rotated in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_report: Option<ReportUse>,
    /// The workflow no longer selects it: only its rotations in progress
    /// go on, nothing new begins there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed_only: bool,
}

impl AccountPlan {
    /// An account's part, before anything is counted or known of it.
    pub fn new(account: &str, role: Option<String>) -> Self {
        AccountPlan {
            account: account.to_string(),
            role,
            summary: Summary::default(),
            error: None,
            fix: None,
            credential_report: None,
            resumed_only: false,
        }
    }
}

/// What the account's credential report did for the plan: which users it
/// spared a read, and how many users outside the workflow hold old keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportUse {
    /// When IAM generated it (RFC 3339); absent when it could not be had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    /// Whether it decided which users were read.
    pub used: bool,
    /// Why it was not used, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Selected users read live (candidates, or every one without it).
    pub read: usize,
    /// Selected users it showed have no key older than `max_key_age`.
    pub skipped: usize,
    /// Users the workflow does not select (under its `path_prefix`, if
    /// any) that hold an active key older than `max_key_age`, by the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside: Option<usize>,
    /// The `max_key_age` and `path_prefix` `outside` was counted with.
    pub max_key_age: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRef {
    pub name: String,
    pub path: String,
    /// SHA-256 of the workflow file and every library it uses.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub rotate: usize,
    /// Rotations an earlier apply began and did not finish.
    #[serde(default)]
    pub in_progress: usize,
    pub unchanged: usize,
    pub blocked: usize,
}

impl Summary {
    fn count(&mut self, decision: Decision) {
        match decision {
            Decision::Rotate => self.rotate += 1,
            Decision::InProgress => self.in_progress += 1,
            Decision::Unchanged => self.unchanged += 1,
            Decision::Blocked => self.blocked += 1,
        }
    }

    /// The users counted by decision.
    pub fn of(users: &[UserPlan]) -> Self {
        let count = |decision| users.iter().filter(|u| u.decision == decision).count();
        Summary {
            rotate: count(Decision::Rotate),
            in_progress: count(Decision::InProgress),
            unchanged: count(Decision::Unchanged),
            blocked: count(Decision::Blocked),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Rotate,
    /// A rotation an earlier apply began: apply goes on with it.
    InProgress,
    Unchanged,
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPlan {
    /// The account the user is in.
    #[serde(default)]
    pub account: String,
    pub user: String,
    pub arn: String,
    pub decision: Decision,
    pub reason: String,
    /// For a blocked user: what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    pub keys: Vec<KeyView>,
    /// The active key a rotation replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_key: Option<String>,
    /// The inactive key deleted first to free a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make_room: Option<String>,
    /// The steps of a rotation, in the order they run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepView>,
    /// Every target, what it holds now, and what it will hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetView>,
    /// When its oldest active key reaches `policy.deadline` (RFC 3339),
    /// for a user whose keys were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

impl UserPlan {
    /// A user of `account` with `decision` for `reason`, and nothing more
    /// known yet: no keys read, no steps.
    pub fn new(account: &str, user: &str, arn: &str, decision: Decision, reason: String) -> Self {
        UserPlan {
            account: account.to_string(),
            user: user.to_string(),
            arn: arn.to_string(),
            decision,
            reason,
            fix: None,
            keys: Vec::new(),
            old_key: None,
            make_room: None,
            steps: Vec::new(),
            targets: Vec::new(),
            deadline: None,
        }
    }

    /// Nothing is done for this user, for `reason`; `fix` says what to do.
    pub fn block(&mut self, reason: String, fix: String) {
        self.decision = Decision::Blocked;
        self.reason = reason;
        self.fix = Some(fix);
        self.steps.clear();
        self.targets.clear();
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: String,
    pub status: KeyStatus,
    pub created: String,
    pub age_days: i64,
    /// Looked up only for users that are due; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<LastUseView>,
}

/// GetAccessKeyLastUsed's answer; `date: null` means never used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUseView {
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    pub id: String,
    pub phase: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetView {
    pub id: String,
    pub kind: String,
    /// The parameter name, secret id, `path [profile]` or command.
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SecretFormat>,
    /// What it holds now; absent for kinds that cannot be read (exec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<TargetState>,
    /// The account it lives in, when not the user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}
