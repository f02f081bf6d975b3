//! Why apply could not start ([`ApplyError`]) and why a step failed
//! ([`StepError`]).

use std::path::PathBuf;

use super::journal::JournalError;
use super::lock::LockError;
use super::staging::StagingError;
use super::*;
use crate::plan::{Plan, PlanError};
use crate::providers::ProviderError;
use crate::targets::ActionError;
use crate::workflow::LoadError;
use crate::workflow::graph::{CycleError, StepId};
use crate::workflow::params::ParamError;

/// Why a step failed. Provider errors keep their advice.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(transparent)]
    TargetAccount(crate::plan::TargetAccountError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error(transparent)]
    Compile(#[from] CycleError),
    #[error("the workflow has no step `{0}`")]
    Unknown(StepId),
    #[error("the new key is not created yet")]
    NotCreated,
    #[error(
        "the user's keys changed since the plan (another rotation of the user ended meanwhile, or someone changed them): nothing was done; run apply again, which plans afresh"
    )]
    ChangedSincePlan,
    #[error(
        "{cause}. The key {} this runner created meanwhile {}",
        crate::text::short_id(key),
        if *deleted { "was deleted again: nothing records it and its secret was never staged" } else { "could not be deleted: delete it yourself (its secret was never staged, so nothing uses it)" }
    )]
    UnrecordedCreate {
        key: String,
        cause: String,
        deleted: bool,
    },
    #[error(
        "staging holds {}, not the new key {}: someone changed it; inspect it before going on",
        crate::text::short_id(found),
        crate::text::short_id(expected)
    )]
    StagingChanged { found: String, expected: String },
    #[error(
        "the new key {} is no longer staged ({stage}): its secret is lost; delete the key and run apply again",
        crate::text::short_id(key)
    )]
    SecretLost { key: String, stage: String },
    #[error("the soak's deadline `{0}` in the journal is not a time")]
    BadDeadline(String),
    #[error("the rotation is not in the journal")]
    NotInJournal,
    #[error("stopped by signal {0}")]
    Interrupted(i32),
    #[error(transparent)]
    Claim(#[from] claims::ClaimError),
    #[error("the old key {} was deleted outside rekey", crate::text::short_id(.0))]
    OldKeyGone(String),
    #[error(
        "the new key {} is not active (deactivated or deleted outside rekey): the old key is left as it is, or the user would have no working key. Make the new key active again and run apply, or abort the rotation",
        crate::text::short_id(.0)
    )]
    NewKeyNotActive(String),
    #[error(
        "key(s) {} appeared on the user since the create began, and this rotation did not make them: they may be someone else's, so rekey will not delete them. Delete any that is an orphan yourself, then run apply again",
        .0.join(", ")
    )]
    NotOurs(Vec<String>),
    #[error(
        "the rotation began in account {began}, and this apply runs in {now}: it never continues in another account; run it with credentials for {began}, or with `accounts:` that reaches {began} (as when it began)"
    )]
    OtherAccount { began: String, now: String },
    #[error("cannot take the rotation's snapshot: {0}")]
    Snapshot(String),
    #[error(
        "the rotation in progress needs the sensitive param `{0}`, which is never written down: give it with --var {0}=VALUE"
    )]
    SensitiveParam(String),
    #[error(
        "the journal has no record of what target `{0}` held; restore it by hand, then run apply again"
    )]
    NoRecord(String),
}

/// Why apply could not start, or planned something it will not do.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A saved plan that cannot be read (the message says why).
    #[error("{0}")]
    SavedPlan(String),
    /// The workflow is invalid: the diagnostics say where.
    #[error("the workflow is invalid")]
    Invalid(LoadError),
    #[error(
        "{} (or a library it uses) changed since the plan was made; make a new plan",
        .0.display()
    )]
    WorkflowChanged(PathBuf),
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error("cannot create the state directory {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(
        "a rotation is in progress ({}); a saved plan describes the state before it. Run `rekey apply {}` to resume it",
        users.join(", "),
        workflow.display()
    )]
    InProgress {
        users: Vec<String>,
        workflow: PathBuf,
    },
    #[error(
        "rotations begun by an earlier rekey are in progress in {} ({}), the state directory every workflow of this folder shared then. Finish them with the workflow that began them: `rekey apply WORKFLOW --state-dir {}`",
        dir.display(),
        users.join(", "),
        dir.display()
    )]
    PreviousLayout { dir: PathBuf, users: Vec<String> },
    #[error("--user with a saved plan: the plan fixes its users; make a plan with --user instead")]
    UsersOfSavedPlan,
    #[error(
        "--account with a saved plan: the plan fixes its accounts; make a plan with --account instead"
    )]
    AccountsOfSavedPlan,
    #[error(
        "the saved plan cannot be checked: {0}; apply it once the account can be reached, or make a new plan"
    )]
    SavedPlanUnreachable(String),
    #[error(
        "the saved plan does not keep the sensitive param `{0}`: give it again with --var {0}=VALUE"
    )]
    SensitiveOfSavedPlan(String),
    #[error(
        "{0} with a saved plan: the plan fixes its vars (only a sensitive param is given again); make a new plan instead"
    )]
    SavedPlanFixes(String),
    #[error(
        "cannot abort the rotation of {}: delete-old has run, so the old key may be gone and a rollback cannot bring it back; run apply to finish it",
        .0.join(", ")
    )]
    PastDeleteOld(Vec<String>),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the plan's as_of is not a time: {0}")]
    AsOf(String),
    #[error("cannot plan: {0}")]
    Plan(#[from] PlanError),
    /// The saved plan observed another state than there is now.
    #[error("the plan is stale: what it observed has changed since it was made")]
    Stale { saved: Box<Plan>, fresh: Box<Plan> },
}
