//! Apply: carry out a plan, crash-safe and resumable.
//!
//! The state (`state`: a state directory, default `.rekey/<name>` next to
//! the workflow, or S3) holds the lock or lease, the journal and the
//! claims; the state directory also holds staged secrets (0600 files, when
//! staging is local) and 0600 backups of file targets. One apply runs per
//! workflow's state.
//! Rotations left in progress by an earlier apply (crashed, paused, halted)
//! are resumed first; then the plan's new rotations begin. Each rotation is
//! run by [`rotation::Runner`], `policy.concurrency` users at once.
//!
//! The use case, in the order the command line calls it: [`prepare`] reads
//! the workflow (or a saved plan and its workflow) and binds the params;
//! [`Session::open`] takes the state directory's lock and reads its
//! journal through the state backend; [`Session::plan`] plans against live state (refusing a stale
//! saved plan) and marks the rotations it will resume; [`Session::execute`]
//! runs them and returns the [`Report`]. Rendering is `render::apply`'s.

pub mod claims;
pub mod journal;
pub mod lock;
pub mod rotation;
pub mod snapshot;
pub mod staging;
pub mod state;
pub mod stop;
pub mod window;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use futures_util::{StreamExt, stream};
use time::OffsetDateTime;

use crate::exit::Exit;
use crate::plan::Elsewhere;
use crate::plan::accounts::Reached;
use crate::plan::{Decision, Plan, PlanError, PlanRequest, UserPlan};
use crate::providers::{Provider, ProviderError, Reach};
use crate::targets::ActionError;
use crate::text::{parse_rfc3339, rfc3339, to_seconds};
use crate::workflow::Workflow;
use crate::workflow::graph::{CycleError, MakeRoomStep, Phase, StepGraph, StepId};
use crate::workflow::model::Fleet;
use crate::workflow::params::ParamError;
use crate::workflow::{self, Checked, LoadError};
use journal::{Journal, JournalError, RotationRecord, Undo};
use lock::LockError;
use rotation::{Outcome, Rotation, Runner};
use staging::StagingError;
use stop::Stop;

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
    FencedCreate {
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

/// What apply works from: a workflow, or a plan saved from one.
pub struct Prepared {
    pub workflow_path: PathBuf,
    pub checked: Checked,
    pub saved: Option<Plan>,
    pub vars: Vec<(String, String)>,
    pub params: BTreeMap<String, String>,
    /// Values of sensitive params: never written anywhere.
    pub sensitive: crate::secret::Sensitive,
}

impl Prepared {
    /// The folder the workflow's relative paths start from.
    pub fn base_dir(&self) -> &Path {
        workflow_dir(&self.workflow_path)
    }
}

pub use crate::workflow::source::workflow_dir;

/// The state directory: `--state-dir`, or `.rekey/<workflow name>` next
/// to the workflow, so that two workflows in one folder never share one.
pub fn state_dir(chosen: Option<&Path>, workflow: &Path, name: &str) -> PathBuf {
    chosen.map_or_else(
        || {
            workflow_dir(workflow)
                .join(".rekey")
                .join(crate::text::file_name_for(name))
        },
        Path::to_path_buf,
    )
}

/// Rotations in progress in the state directory of the previous layout
/// (`.rekey` itself, shared by every workflow of the folder), which has
/// no record of which workflow began them: (the directory, their users).
pub fn previous_layout(workflow: &Path) -> Option<(PathBuf, Vec<String>)> {
    let dir = workflow_dir(workflow).join(".rekey");
    let entries = journal::read(&dir).ok()?;
    let users: Vec<String> = journal::rotations(&entries)
        .into_iter()
        .filter(RotationRecord::in_progress)
        .map(|r| r.user)
        .collect();
    (!users.is_empty()).then_some((dir, users))
}

/// Reads `target` (a workflow, or a plan saved by `rekey plan --out`) and
/// binds its params; a saved plan keeps its own vars.
pub fn prepare(target: &Path, vars: Vec<(String, String)>) -> Result<Prepared, ApplyError> {
    let saved = saved_plan(target)?;
    let workflow_path = saved
        .as_ref()
        .map_or_else(|| target.to_path_buf(), |p| PathBuf::from(&p.workflow.path));
    let checked = workflow::check(&workflow_path).map_err(ApplyError::Invalid)?;
    if let Some(saved) = &saved
        && checked.sources.sha256() != saved.workflow.sha256
    {
        return Err(ApplyError::WorkflowChanged(workflow_path));
    }
    let vars: Vec<(String, String)> = match &saved {
        // A saved plan keeps its vars, but never a sensitive one's value:
        // that one comes from --var again; no other --var is taken.
        Some(plan) => {
            if let Some((name, _)) = vars.iter().find(|(name, _)| {
                !checked
                    .workflow
                    .params
                    .get(name)
                    .is_some_and(|p| p.sensitive)
            }) {
                return Err(ApplyError::SavedPlanFixes(format!("--var {name}")));
            }
            let sensitive = |name: &str| {
                checked
                    .workflow
                    .params
                    .get(name)
                    .is_some_and(|p| p.sensitive)
            };
            let mut kept: Vec<(String, String)> = plan
                .vars
                .iter()
                .filter(|(name, _)| !sensitive(name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (name, _) in plan.vars.iter().filter(|(name, _)| sensitive(name)) {
                match vars.iter().find(|(given, _)| given == name) {
                    Some(given) => kept.push(given.clone()),
                    None => return Err(ApplyError::SensitiveOfSavedPlan(name.clone())),
                }
            }
            kept
        }
        None => vars,
    };
    let params = workflow::params::bind(&checked.workflow, &vars)?;
    let sensitive = crate::secret::Sensitive::of(&checked.workflow, &params);
    Ok(Prepared {
        workflow_path,
        checked,
        saved,
        vars,
        params,
        sensitive,
    })
}

/// Reads a plan saved by `rekey plan --out`, if `target` is one.
fn saved_plan(target: &Path) -> Result<Option<Plan>, ApplyError> {
    if target.extension().is_none_or(|e| e != "json") {
        return Ok(None);
    }
    let text = std::fs::read_to_string(target)
        .map_err(|e| ApplyError::SavedPlan(format!("cannot read {}: {e}", target.display())))?;
    match serde_json::from_str::<Plan>(&text) {
        Ok(plan) if plan.format_version == crate::plan::FORMAT_VERSION => Ok(Some(plan)),
        Ok(plan) => Err(ApplyError::SavedPlan(format!(
            "{} is a version {} plan; this rekey reads version {}",
            target.display(),
            plan.format_version,
            crate::plan::FORMAT_VERSION
        ))),
        Err(error) => Err(ApplyError::SavedPlan(format!(
            "{} is not a plan saved by `rekey plan --out`: {error}",
            target.display()
        ))),
    }
}

/// An open state: its lock (or lease) held, its journal read.
pub struct Session {
    /// This machine's state directory: the journal and lock with local
    /// state; with any state, file backups (and staged files, when chosen).
    pub state_dir: PathBuf,
    /// Where the journal, lock and claims live.
    pub state: state::State,
    /// When this apply started (whole seconds).
    pub started: OffsetDateTime,
    journal: Journal,
    /// This workflow's rotations an earlier apply left unfinished.
    pub in_progress: Vec<RotationRecord>,
    /// Rotations of other workflows in progress in this state: never
    /// resumed, rolled back or reported here; their users are held.
    pub others: Vec<RotationRecord>,
    /// `--user`: the users this run is narrowed to; empty: every one.
    users: Vec<String>,
    /// `--account`: the accounts a fanned-out run is narrowed to.
    pub accounts: Vec<String>,
    /// `--force`: take users whose claim another rotation holds.
    pub force: bool,
    /// Plan with the credential report (`--no-credential-report`: false).
    pub credential_report: bool,
}

impl Session {
    /// Creates the state directory (0700) if needed, takes the state's lock
    /// (or lease) and reads the journal. A saved plan is refused while a
    /// rotation is in progress: it describes the state before it.
    pub async fn open(
        prepared: &Prepared,
        state_dir: PathBuf,
        state: state::State,
    ) -> Result<Session, ApplyError> {
        state::local::create_private_dir(&state_dir).map_err(|source| ApplyError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        let started = crate::text::now_in_seconds();
        state
            .acquire(&state::Owner::this_process(&rfc3339(started)))
            .await?;
        let opened = Self::read(prepared, state_dir, state.clone(), started).await;
        if opened.is_err() {
            state.release().await;
        }
        opened
    }

    async fn read(
        prepared: &Prepared,
        state_dir: PathBuf,
        state: state::State,
        started: OffsetDateTime,
    ) -> Result<Session, ApplyError> {
        let (mut journal, entries) = Journal::open(state.clone()).await?;
        journal.redact(prepared.sensitive.clone());
        let name = &prepared.checked.workflow.name;
        let (in_progress, others): (Vec<RotationRecord>, Vec<RotationRecord>) =
            journal::rotations(&entries)
                .into_iter()
                .filter(RotationRecord::in_progress)
                .partition(|r| r.belongs_to(name));
        if prepared.saved.is_some() && !in_progress.is_empty() {
            return Err(ApplyError::InProgress {
                users: in_progress
                    .iter()
                    .map(|r| r.who(prepared.checked.workflow.fleet.is_some()))
                    .collect(),
                workflow: prepared.workflow_path.clone(),
            });
        }
        Ok(Session {
            state_dir,
            state,
            started,
            journal,
            in_progress,
            others,
            users: Vec::new(),
            accounts: Vec::new(),
            force: false,
            credential_report: true,
        })
    }

    /// Lets the state's lock (or lease) go.
    pub async fn close(&self) {
        self.journal.close().await;
    }

    /// `--user`: keeps only these users' rotations in progress (the
    /// others are left for another run). A saved plan fixes its users.
    pub fn only(&mut self, prepared: &Prepared, users: &[String]) -> Result<(), ApplyError> {
        if users.is_empty() {
            return Ok(());
        }
        if prepared.saved.is_some() {
            return Err(ApplyError::UsersOfSavedPlan);
        }
        self.in_progress.retain(|r| {
            users.iter().any(|u| {
                *u == r.user || r.account().is_some_and(|a| *u == format!("{a}/{}", r.user))
            })
        });
        self.users = users.to_vec();
        Ok(())
    }

    /// `--account`: keeps only these accounts' rotations in progress; for
    /// a fanned-out workflow only. A saved plan fixes its accounts.
    pub fn only_accounts(
        &mut self,
        prepared: &Prepared,
        accounts: &[String],
    ) -> Result<(), ApplyError> {
        let Some(first) = accounts.first() else {
            return Ok(());
        };
        if prepared.checked.workflow.fleet.is_none() {
            return Err(
                PlanError::from(crate::plan::accounts::AccountsError::NoFleet(first.clone()))
                    .into(),
            );
        }
        if let Some(bad) = accounts
            .iter()
            .find(|a| !crate::workflow::validate::is_account_id(a))
        {
            return Err(
                PlanError::from(crate::plan::accounts::AccountsError::NotAnAccount(
                    bad.clone(),
                ))
                .into(),
            );
        }
        if prepared.saved.is_some() {
            return Err(ApplyError::AccountsOfSavedPlan);
        }
        self.in_progress
            .retain(|r| r.account().is_some_and(|a| accounts.iter().any(|x| x == a)));
        self.accounts = accounts.to_vec();
        Ok(())
    }

    /// Plans against live state: a saved plan must still describe it.
    /// Users whose rotation is in progress are marked to be resumed.
    pub async fn plan<P: Provider>(
        &self,
        prepared: &Prepared,
        provider: &P,
        as_of: Option<OffsetDateTime>,
        parallelism: usize,
    ) -> Result<Plan, ApplyError> {
        let request = self.request(prepared, as_of, parallelism)?;
        let plan = crate::plan::plan(&request, provider).await?;
        self.mark(prepared, plan).await
    }

    /// The same for a fanned-out workflow: every account reached (or
    /// not) with its role, and one plan over them.
    pub async fn plan_fleet<'a, P: Reach>(
        &self,
        prepared: &Prepared,
        fleet: &Fleet,
        base: &'a P,
        as_of: Option<OffsetDateTime>,
        parallelism: usize,
    ) -> Result<(Plan, Vec<Reached<'a, P>>), ApplyError> {
        let request = self.request(prepared, as_of, parallelism)?;
        let also = self.target_accounts_in_progress();
        // Kept for apply: the accounts with a rotation to begin or resume.
        let resumed: Vec<String> = self
            .in_progress
            .iter()
            .filter_map(|r| r.account().map(str::to_string))
            .collect();
        let keep = |account: &str, plan: &Plan| {
            resumed.iter().any(|a| a == account)
                || plan.users.iter().any(|u| u.decision == Decision::Rotate)
        };
        let (plan, reached) =
            crate::plan::accounts::plan_fleet(&request, fleet, base, &also, &resumed, &keep)
                .await?;
        Ok((self.mark(prepared, plan).await?, reached))
    }

    fn request<'p>(
        &self,
        prepared: &'p Prepared,
        as_of: Option<OffsetDateTime>,
        parallelism: usize,
    ) -> Result<PlanRequest<'p>, ApplyError> {
        let as_of = match &prepared.saved {
            Some(plan) => parse_rfc3339(&plan.as_of)
                .ok_or_else(|| ApplyError::AsOf(format!("`{}`", plan.as_of)))?,
            None => as_of.unwrap_or(self.started),
        };
        let request = PlanRequest {
            workflow: &prepared.checked.workflow,
            workflow_path: &prepared.workflow_path,
            workflow_sha256: prepared.checked.sources.sha256(),
            vars: prepared.vars.clone(),
            as_of,
            parallelism,
            // A saved plan is observed again as it was narrowed.
            users: prepared
                .saved
                .as_ref()
                .map_or_else(|| self.users.clone(), |p| p.only_users.clone()),
            accounts: prepared
                .saved
                .as_ref()
                .map_or_else(|| self.accounts.clone(), |p| p.only_accounts.clone()),
            // A saved plan is observed again the way it was made.
            credential_report: prepared.saved.as_ref().map_or(self.credential_report, |p| {
                p.credential_report.as_ref().is_some_and(|r| r.used)
                    || p.accounts
                        .iter()
                        .any(|a| a.credential_report.as_ref().is_some_and(|r| r.used))
            }),
        };
        Ok(request)
    }

    /// Checks a saved plan against the fresh one, and marks the users
    /// whose rotation is in progress, claimed or held.
    async fn mark(&self, prepared: &Prepared, mut plan: Plan) -> Result<Plan, ApplyError> {
        // An account out of reach now cannot be compared: say so, rather
        // than call the plan stale.
        if prepared.saved.is_some()
            && let Some(account) = plan.accounts.iter().find(|a| a.error.is_some())
        {
            return Err(ApplyError::SavedPlanUnreachable(format!(
                "account {} cannot be reached ({})",
                account.account,
                account.error.as_deref().unwrap_or_default()
            )));
        }
        if let Some(saved) = &prepared.saved
            && saved.observed_sha256 != plan.observed_sha256
        {
            return Err(ApplyError::Stale {
                saved: Box::new(saved.clone()),
                fresh: Box::new(plan),
            });
        }
        mark_in_progress(
            &mut plan,
            &self.in_progress,
            &prepared.checked.workflow,
            &prepared.params,
        );
        if !self.force {
            mark_claimed(&mut plan, self.state.claims(), &self.state.location()).await;
        }
        mark_held(&mut plan, &self.others);
        Ok(plan)
    }

    /// Whether there is anything to do.
    pub fn has_work(&self, plan: &Plan) -> bool {
        plan.summary.rotate > 0 || !self.in_progress.is_empty()
    }

    /// A runner for `account`, through `provider`.
    #[allow(clippy::too_many_arguments)]
    fn runner<'r, P: Provider>(
        &'r self,
        prepared: &'r Prepared,
        account: &'r str,
        provider: &'r P,
        shared: &'r Shared<'r>,
        elsewhere: &'r Elsewhere<'r, P>,
        progress: &'r (dyn Fn(&str) + Sync),
        until: Option<Phase>,
    ) -> Runner<'r, P> {
        Runner {
            workflow: &prepared.checked.workflow,
            params: &prepared.params,
            account,
            base_dir: prepared.base_dir(),
            state_dir: &self.state_dir,
            location: &shared.location,
            shared: self.state.shared(),
            provider,
            elsewhere,
            journal: &self.journal,
            until,
            crash_at: std::env::var("REKEY_CRASH_AT").ok(),
            progress,
            stop: shared.stop,
            claims: self.state.claims(),
            force: self.force,
            timings: &shared.timings,
            slots: &shared.slots,
        }
    }

    /// Runs every rotation: those in progress, then the plan's new ones.
    pub async fn execute<P: Provider>(
        &self,
        prepared: &Prepared,
        plan: &Plan,
        provider: &P,
        until: Option<Phase>,
        stop: &Stop,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Report {
        let shared = Shared::new(self, prepared, stop, progress);
        let elsewhere = Elsewhere::new();
        let runner = self.runner(
            prepared,
            &plan.account,
            provider,
            &shared,
            &elsewhere,
            progress,
            until,
        );
        let users: Vec<&UserPlan> = plan.users.iter().collect();
        let outcomes = run(&runner, &users, self.in_progress.clone()).await;
        shared.report(outcomes, Vec::new())
    }

    /// The same across accounts: `policy.account_concurrency` accounts at
    /// once, `policy.concurrency` users at once overall. An account not
    /// reached is an error in the report; the others go on.
    pub async fn execute_fleet<P: Reach>(
        &self,
        prepared: &Prepared,
        plan: &Plan,
        reached: &[Reached<'_, P>],
        until: Option<Phase>,
        stop: &Stop,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Report {
        let shared = Shared::new(self, prepared, stop, progress);
        let accounts = prepared.checked.workflow.policy.account_concurrency.max(1) as usize;
        let elsewhere = crate::plan::accounts::elsewhere(reached);
        let reports: Vec<AccountReport> = stream::iter(reached.iter().filter(|r| r.rotates))
            .map(|reach| {
                let shared = &shared;
                let elsewhere = &elsewhere;
                async move {
                    let users: Vec<&UserPlan> = plan
                        .users
                        .iter()
                        .filter(|u| u.account == reach.account)
                        .collect();
                    let work = async |runner: &Runner<'_, _>, in_progress| {
                        run(runner, &users, in_progress).await
                    };
                    self.in_account(
                        prepared,
                        reach,
                        &plan.account,
                        shared,
                        elsewhere,
                        until,
                        work,
                    )
                    .await
                }
            })
            .buffer_unordered(accounts)
            .collect()
            .await;
        shared.report_accounts(reports)
    }

    /// The accounts the targets of this workflow's rotations in progress
    /// live in (`account:`), as their snapshots say.
    fn target_accounts_in_progress(&self) -> Vec<String> {
        self.in_progress
            .iter()
            .filter_map(|r| r.begin.snapshot.as_ref())
            .flat_map(|s| crate::plan::accounts::target_accounts(&s.targets))
            .collect()
    }

    /// This workflow's rotations in progress in `account` (`caller`: the
    /// account of those that do not say).
    fn in_progress_in(&self, account: &str, caller: &str) -> Vec<RotationRecord> {
        self.in_progress
            .iter()
            .filter(|r| r.account().unwrap_or(caller) == account)
            .cloned()
            .collect()
    }

    /// What `abort` would roll back: this workflow's rotations in progress
    /// (or halted), each with its undo steps. Refused for a rotation whose
    /// `delete-old` has begun: its old key may be gone.
    pub fn abortable(
        &self,
        workflow: &Workflow,
    ) -> Result<Vec<(&RotationRecord, Vec<Undo>)>, ApplyError> {
        let past: Vec<String> = self
            .in_progress
            .iter()
            .filter(|r| r.intents.contains_key(&StepId::of(Phase::DeleteOld)))
            .map(|r| r.user.clone())
            .collect();
        if !past.is_empty() {
            return Err(ApplyError::PastDeleteOld(past));
        }
        Ok(self
            .in_progress
            .iter()
            .map(|record| {
                let own = record.begin.snapshot.as_ref().map(|s| s.workflow());
                let steps = rotation::undo_steps(record, own.as_ref().unwrap_or(workflow));
                (record, steps)
            })
            .collect())
    }

    /// Rolls back every rotation in progress (after `only`, those of the
    /// named users), as a verification failure would.
    pub async fn abort<P: Provider>(
        &self,
        prepared: &Prepared,
        provider: &P,
        stop: &Stop,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Report, ApplyError> {
        let account = provider.account_id().await?;
        crate::plan::check_account(&prepared.checked.workflow, &account)?;
        let shared = Shared::new(self, prepared, stop, progress);
        let elsewhere = Elsewhere::new();
        let runner = self.runner(
            prepared, &account, provider, &shared, &elsewhere, progress, None,
        );
        let outcomes = abort_all(&runner, self.in_progress.clone()).await;
        Ok(shared.report(outcomes, Vec::new()))
    }

    /// The same across accounts, each through its role.
    pub async fn abort_fleet<P: Reach>(
        &self,
        prepared: &Prepared,
        fleet: &Fleet,
        base: &P,
        stop: &Stop,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Report, ApplyError> {
        let caller = base.account_id().await?;
        let mut accounts: Vec<String> = self
            .in_progress
            .iter()
            .map(|r| r.account().unwrap_or(&caller).to_string())
            .collect();
        accounts.extend(self.target_accounts_in_progress());
        accounts.sort();
        accounts.dedup();
        let request = self.request(prepared, None, 1)?;
        let reached =
            crate::plan::accounts::reach(&request, fleet, base, &caller, accounts).await?;
        let elsewhere = crate::plan::accounts::elsewhere(&reached);
        let shared = Shared::new(self, prepared, stop, progress);
        let mut reports = Vec::new();
        for reach in &reached {
            let work =
                async |runner: &Runner<'_, _>, in_progress| abort_all(runner, in_progress).await;
            reports.push(
                self.in_account(prepared, reach, &caller, &shared, &elsewhere, None, work)
                    .await,
            );
        }
        Ok(shared.report_accounts(reports))
    }

    /// One account's part of a fanned-out run: `work` on its rotations in
    /// progress (`caller`: the account of those that do not say), with a
    /// runner whose progress lines name the account (a user's name recurs);
    /// or, when the account was not reached, why.
    #[allow(clippy::too_many_arguments)]
    async fn in_account<P: Reach>(
        &self,
        prepared: &Prepared,
        reach: &Reached<'_, P>,
        caller: &str,
        shared: &Shared<'_>,
        elsewhere: &Elsewhere<'_, P>,
        until: Option<Phase>,
        work: impl AsyncFnOnce(&Runner<'_, P>, Vec<RotationRecord>) -> Vec<(String, Outcome)>,
    ) -> AccountReport {
        let in_progress = self.in_progress_in(&reach.account, caller);
        let provider = match &reach.provider {
            Ok(provider) => provider,
            Err(unreachable) => {
                return AccountReport::unreachable(reach, unreachable, &in_progress);
            }
        };
        let progress = |line: &str| (shared.progress)(&format!("{}/{line}", reach.account));
        let runner = self.runner(
            prepared,
            &reach.account,
            &**provider,
            shared,
            elsewhere,
            &progress,
            until,
        );
        AccountReport {
            account: reach.account.clone(),
            error: None,
            outcomes: work(&runner, in_progress).await,
        }
    }
}

/// What every runner of one apply shares.
struct Shared<'a> {
    location: String,
    timings: Mutex<BTreeMap<Phase, StdDuration>>,
    /// `policy.concurrency`: users at once, over every account.
    slots: tokio::sync::Semaphore,
    stop: &'a Stop,
    progress: &'a (dyn Fn(&str) + Sync),
}

impl<'a> Shared<'a> {
    fn new(
        session: &Session,
        prepared: &Prepared,
        stop: &'a Stop,
        progress: &'a (dyn Fn(&str) + Sync),
    ) -> Self {
        Shared {
            location: session.state.location(),
            timings: Mutex::new(BTreeMap::new()),
            slots: tokio::sync::Semaphore::new(
                prepared.checked.workflow.policy.concurrency.max(1) as usize
            ),
            stop,
            progress,
        }
    }

    /// Across accounts: every account's outcomes, `ACCOUNT/NAME` each.
    fn report_accounts(self, mut accounts: Vec<AccountReport>) -> Report {
        accounts.sort_by(|a, b| a.account.cmp(&b.account));
        let outcomes = accounts
            .iter()
            .flat_map(|r| {
                r.outcomes
                    .iter()
                    .map(|(user, o)| (format!("{}/{user}", r.account), o.clone()))
            })
            .collect();
        self.report(outcomes, accounts)
    }

    fn report(self, outcomes: Vec<(String, Outcome)>, accounts: Vec<AccountReport>) -> Report {
        Report {
            outcomes,
            phase_times: self.timings.into_inner().expect("timings"),
            accounts,
            signal: self.stop.requested(),
        }
    }
}

/// Rolls back each rotation, one after the other.
async fn abort_all<P: Provider>(
    runner: &Runner<'_, P>,
    in_progress: Vec<RotationRecord>,
) -> Vec<(String, Outcome)> {
    let mut outcomes = Vec::new();
    for record in in_progress {
        let user = record.user.clone();
        let outcome = match runner.resume(record).await {
            Ok(rotation) => {
                let reason = rotation
                    .rolling_back
                    .clone()
                    .unwrap_or_else(|| "aborted with `rekey abort`".to_string());
                runner.roll_back(&rotation, reason).await
            }
            Err(error) => Outcome::Failed {
                step: "abort".into(),
                error: error.to_string(),
            },
        };
        outcomes.push((user, outcome));
    }
    outcomes
}

/// One account's part of a fanned-out run.
#[derive(Debug)]
pub struct AccountReport {
    pub account: String,
    /// Why nothing was done there: it could not be reached.
    pub error: Option<String>,
    pub outcomes: Vec<(String, Outcome)>,
}

impl AccountReport {
    fn unreachable<P>(
        reach: &Reached<'_, P>,
        why: &crate::plan::accounts::Unreachable,
        in_progress: &[RotationRecord],
    ) -> Self {
        AccountReport {
            account: reach.account.clone(),
            error: Some(format!("{}; {}", why.reason, why.fix)),
            outcomes: in_progress
                .iter()
                .map(|r| {
                    (
                        r.user.clone(),
                        Outcome::Failed {
                            step: "reach the account".into(),
                            error: why.reason.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// What happened to each user, for the report and the exit code.
#[derive(Debug, Default)]
pub struct Report {
    /// Per user (`ACCOUNT/NAME` across accounts).
    pub outcomes: Vec<(String, Outcome)>,
    pub phase_times: BTreeMap<Phase, StdDuration>,
    /// Across accounts: each account's outcomes, or why it was not reached.
    pub accounts: Vec<AccountReport>,
    /// The signal that asked the run to stop, if one did (rotations not
    /// yet begun then were left for the next apply).
    pub signal: Option<i32>,
}

impl Report {
    /// Done; an error; a verification failed; paused: the worst wins.
    pub fn exit(&self) -> Exit {
        let any = |f: fn(&Outcome) -> bool| self.outcomes.iter().any(|(_, o)| f(o));
        let signal = self
            .outcomes
            .iter()
            .find_map(|(_, o)| match o {
                Outcome::Interrupted { signal, .. } => Some(*signal),
                _ => None,
            })
            .or(self.signal);
        if let Some(signal) = signal {
            if signal == libc::SIGTERM {
                Exit::Terminated
            } else {
                Exit::Interrupted
            }
        } else if any(|o| matches!(o, Outcome::Failed { .. }))
            || self.accounts.iter().any(|a| a.error.is_some())
        {
            Exit::Error
        } else if any(|o| matches!(o, Outcome::RolledBack { .. } | Outcome::Halted { .. })) {
            Exit::VerifyFailed
        } else if any(|o| matches!(o, Outcome::Paused { .. })) {
            Exit::Paused
        } else {
            Exit::Success
        }
    }
}

impl Report {
    /// For `abort`: done when every rotation is rolled back.
    pub fn abort_exit(&self) -> Exit {
        match self.exit() {
            Exit::VerifyFailed
                if self
                    .outcomes
                    .iter()
                    .all(|(_, o)| matches!(o, Outcome::RolledBack { .. })) =>
            {
                Exit::Success
            }
            exit => exit,
        }
    }
}

/// Marks the plan's users whose rotation is already in progress, saying
/// where each stands and what comes next: apply goes on with those instead
/// of judging them afresh (mid-rotation a user has two keys, which a fresh
/// plan would call blocked). A rotation whose user the plan does not have
/// (no longer selected, say) is listed too: it is still in progress.
pub fn mark_in_progress(
    plan: &mut Plan,
    in_progress: &[RotationRecord],
    workflow: &Workflow,
    params: &BTreeMap<String, String>,
) {
    let account = plan.account.clone();
    for record in in_progress {
        let mut reason = describe_progress(record, workflow);
        let began_in = record.account().unwrap_or(&account);
        if let Some(changed) = changes_since(record, workflow, params, began_in) {
            reason.push_str(&format!(
                ". The workflow changed since it began ({changed}): this rotation goes on as it began; the change applies to the next one"
            ));
        }
        match plan
            .users
            .iter_mut()
            .find(|u| record.rotates(&u.account, &u.user, &account))
        {
            Some(user) => {
                user.decision = Decision::InProgress;
                user.reason = reason;
                user.fix = None;
                user.steps.clear();
                user.targets.clear();
                user.make_room = None;
                user.old_key = Some(record.begin.old_key.clone());
            }
            None => plan.users.push(UserPlan {
                account: began_in.to_string(),
                user: record.user.clone(),
                arn: record.begin.arn.clone(),
                decision: Decision::InProgress,
                reason,
                fix: None,
                keys: Vec::new(),
                old_key: Some(record.begin.old_key.clone()),
                make_room: None,
                steps: Vec::new(),
                targets: Vec::new(),
            }),
        }
    }
    plan.users
        .sort_by(|a, b| (&a.account, &a.user).cmp(&(&b.account, &b.user)));
    // Across accounts, a rotation in an account no longer selected is
    // still listed under its account.
    if !plan.accounts.is_empty() {
        for user in &plan.users {
            if !plan.accounts.iter().any(|a| a.account == user.account) {
                plan.accounts.push(crate::plan::AccountPlan {
                    account: user.account.clone(),
                    role: None,
                    summary: crate::plan::Summary::default(),
                    error: None,
                    fix: None,
                    credential_report: None,
                    resumed_only: true,
                });
            }
        }
        plan.accounts.sort_by(|a, b| a.account.cmp(&b.account));
    }
    plan.summary = crate::plan::Summary::of(&plan.users);
    plan.summarize_accounts();
}

/// What differs between a rotation's snapshot and the workflow as it is
/// now, bound for the same user: targets and hooks added, removed or
/// changed, and the policy.
fn changes_since(
    record: &RotationRecord,
    workflow: &Workflow,
    params: &BTreeMap<String, String>,
    account: &str,
) -> Option<String> {
    let then = record.begin.snapshot.as_ref()?;
    let now = snapshot::Snapshot::take(workflow, params, &record.user, account).ok()?;
    fn json<T: serde::Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }
    let mut changes = Vec::new();
    let items = |s: &snapshot::Snapshot| -> BTreeMap<String, String> {
        s.targets
            .iter()
            .map(|t| (format!("target `{}`", t.id), json(t)))
            .chain(
                s.hooks
                    .iter()
                    .map(|h| (format!("hook `{}`", h.id), json(h))),
            )
            .collect()
    };
    let (before, after) = (items(then), items(&now));
    for (item, text) in &before {
        match after.get(item) {
            None => changes.push(format!("{item} removed")),
            Some(other) if other != text => changes.push(format!("{item} changed")),
            Some(_) => {}
        }
    }
    changes.extend(
        after
            .keys()
            .filter(|item| !before.contains_key(*item))
            .map(|item| format!("{item} added")),
    );
    if json(&then.policy) != json(&now.policy) {
        changes.push("policy changed".into());
    }
    if json(&then.staging) != json(&now.staging) {
        changes.push("staging changed".into());
    }
    (!changes.is_empty()).then(|| changes.join(", "))
}

/// Where a rotation in progress stands, and what apply does next.
pub fn describe_progress(record: &RotationRecord, workflow: &Workflow) -> String {
    let last = record.last.as_ref().map(|e| &e.record);
    if let Some(reason) = &record.rolling_back {
        return match last {
            Some(journal::Record::Halted { reason }) => {
                format!("halted while rolling back ({reason}); apply finishes the rollback")
            }
            _ => format!("in progress, rolling back ({reason}); apply finishes the rollback"),
        };
    }
    let remaining = remaining_steps(record, workflow);
    let then = if remaining.is_empty() {
        String::new()
    } else {
        format!("; continues with {}", remaining.join(", "))
    };
    match last {
        Some(journal::Record::Halted { reason }) => {
            format!("halted ({reason}); apply retries it, abort rolls it back")
        }
        Some(journal::Record::RollbackAbandoned { reason }) => format!("halted ({reason}){then}"),
        Some(journal::Record::Paused { step, until, .. }) => {
            format!("in progress, paused in {step} until {until}{then}")
        }
        Some(journal::Record::Failed { step, error }) => {
            format!("in progress, failed at {step} ({error}); apply retries it{then}")
        }
        Some(journal::Record::Intent { step, .. }) => {
            format!("in progress, interrupted during {step}; apply reconciles it{then}")
        }
        _ => format!("in progress, begun {}{then}", to_seconds(&record.started)),
    }
}

/// The steps of a rotation not done yet, from its own snapshot.
fn remaining_steps(record: &RotationRecord, workflow: &Workflow) -> Vec<String> {
    let own = record.begin.snapshot.as_ref().map(|s| s.workflow());
    let workflow = own.as_ref().unwrap_or(workflow);
    let room = if record.begin.make_room.is_some() {
        MakeRoomStep::Yes
    } else {
        MakeRoomStep::No
    };
    let Ok(graph) = StepGraph::compile(workflow, &record.user, room) else {
        return Vec::new();
    };
    graph
        .steps()
        .into_iter()
        .map(|step| step.id())
        .filter(|id| !record.done.contains_key(id))
        .map(|id| id.to_string())
        .collect()
}

/// Blocks the plan's users that another workflow's rotation in progress
/// holds: two rotations of one user would destroy each other's keys.
pub fn mark_held(plan: &mut Plan, others: &[RotationRecord]) {
    for record in others {
        let owner = record.owner().unwrap_or("another workflow");
        let account = plan.account.clone();
        if let Some(user) = plan
            .users
            .iter_mut()
            .find(|u| record.rotates(&u.account, &u.user, &account))
        {
            user.decision = Decision::Blocked;
            user.reason = format!(
                "a rotation of workflow `{owner}` is in progress on this user (begun {})",
                to_seconds(&record.started)
            );
            user.fix = Some(format!(
                "finish it first: `rekey apply` (or `rekey abort`) with workflow `{owner}`"
            ));
            user.steps.clear();
            user.targets.clear();
        }
    }
    plan.summary = crate::plan::Summary::of(&plan.users);
    plan.summarize_accounts();
}

/// A rotation ready to run, or the step (`begin`, `compile`) that failed.
type Started = Result<Rotation, (&'static str, StepError)>;

/// How a rotation of this run starts: resumed, or begun from the plan.
enum Start<'p> {
    Resume(Box<RotationRecord>),
    Begin(&'p UserPlan),
}

/// Blocks the plan's users that another rotation (of any workflow or state
/// sharing the claims) has claimed: that, not the two keys its rotation
/// leaves for a while, is why nothing can be done for them now. A claim
/// from the state at `location` itself is its own: its rotation is in
/// progress there, or a crash left the claim behind.
pub async fn mark_claimed(plan: &mut Plan, claims: &dyn claims::ClaimStore, location: &str) {
    let mut accounts: Vec<String> = plan.users.iter().map(|u| u.account.clone()).collect();
    accounts.sort();
    accounts.dedup();
    // One listing per account says which users have a claim; only those
    // are read.
    let mut claimed: BTreeMap<String, Option<std::collections::BTreeSet<String>>> = BTreeMap::new();
    for account in accounts {
        let users = claims.claimed(&account).await;
        claimed.insert(account, users);
    }
    let asked = |u: &UserPlan| {
        u.decision != Decision::InProgress
            && claimed
                .get(&u.account)
                .and_then(Option::as_ref)
                .is_none_or(|c| c.contains(&u.user))
    };
    let holders: Vec<Option<claims::Claim>> = stream::iter(
        plan.users
            .iter()
            .filter(|u| asked(u))
            .map(|u| (u.account.clone(), u.user.clone())),
    )
    .map(|(account, user)| async move { claims.holder(&account, &user).await })
    .buffered(16)
    .collect()
    .await;
    let mut holders = holders.into_iter();
    for user in plan.users.iter_mut().filter(|u| asked(u)) {
        if let Some(holder) = holders.next().flatten().filter(|h| !h.is_from(location)) {
            user.decision = Decision::Blocked;
            user.reason = format!("held by {holder}");
            user.fix = Some(
                "wait for that rotation to end, or finish it with `rekey apply` of that workflow and state directory; `--force` clears the claim if it is truly abandoned".into(),
            );
            user.steps.clear();
            user.targets.clear();
        }
    }
    plan.summary = crate::plan::Summary::of(&plan.users);
    plan.summarize_accounts();
}

/// Runs every rotation: those in progress, then the plan's new ones.
pub async fn run<P: Provider>(
    runner: &Runner<'_, P>,
    users: &[&UserPlan],
    in_progress: Vec<RotationRecord>,
) -> Vec<(String, Outcome)> {
    let resumed: Vec<String> = in_progress.iter().map(|r| r.user.clone()).collect();
    let mut rotations: Vec<Start<'_>> = in_progress
        .into_iter()
        .map(|record| Start::Resume(Box::new(record)))
        .collect();
    for user in users
        .iter()
        .copied()
        .filter(|u| u.decision == Decision::Rotate && !resumed.contains(&u.user))
    {
        rotations.push(Start::Begin(user));
    }
    let concurrency = runner.workflow.policy.concurrency.max(1) as usize;
    let mut outcomes: Vec<(String, Outcome)> = stream::iter(rotations)
        .map(|start| async move {
            // `policy.concurrency` holds over every account of the run.
            let _slot = runner.slots.acquire().await.expect("slots");
            // Asked to stop while waiting for a slot: a rotation not begun
            // is not begun now (it would be bound to the workflow as it is).
            if runner.stop.requested().is_some() && matches!(start, Start::Begin(_)) {
                return None;
            }
            let (user, rotation): (String, Started) = match start {
                Start::Resume(record) => {
                    let user = record.user.clone();
                    (
                        user,
                        runner.resume(*record).await.map_err(|e| ("compile", e)),
                    )
                }
                Start::Begin(user) => {
                    let old_key = user.old_key.clone().unwrap_or_default();
                    (
                        user.user.clone(),
                        runner
                            .begin(
                                &user.user,
                                &user.arn,
                                &old_key,
                                user.make_room.as_deref(),
                                &user
                                    .keys
                                    .iter()
                                    .map(|k| (k.id.clone(), k.status))
                                    .collect::<Vec<_>>(),
                            )
                            .await
                            .map_err(|e| ("begin", e)),
                    )
                }
            };
            Some(match rotation {
                Ok(rotation) => (user, runner.run(rotation).await),
                Err((step, error)) => (
                    user,
                    Outcome::Failed {
                        step: step.into(),
                        error: error.to_string(),
                    },
                ),
            })
        })
        .buffer_unordered(concurrency)
        .filter_map(|outcome| async move { outcome })
        .collect()
        .await;
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    outcomes
}
