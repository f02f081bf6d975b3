//! An open state ([`Session`]): its lock or lease held, its journal read,
//! narrowed by `--user` and `--account`; planning against it.

use std::path::PathBuf;

use time::OffsetDateTime;

use super::journal::{self, Journal, RotationRecord, Undo};
use super::rotation;
use super::*;
use crate::plan::accounts::Reached;
use crate::plan::{Decision, Plan, PlanError, PlanRequest};
use crate::providers::{Provider, Reach};
use crate::text::{parse_rfc3339, rfc3339};
use crate::workflow::Workflow;
use crate::workflow::graph::{Phase, StepId};
use crate::workflow::model::Fleet;

/// An open state: its lock (or lease) held, its journal read.
pub struct Session {
    /// This machine's state directory: the journal and lock with local
    /// state; with any state, file backups (and staged files, when chosen).
    pub state_dir: PathBuf,
    /// Where the journal, lock and claims live.
    pub state: state::State,
    /// When this apply started (whole seconds).
    pub started: OffsetDateTime,
    pub(super) journal: Journal,
    /// This workflow's rotations an earlier apply left unfinished.
    pub in_progress: Vec<RotationRecord>,
    /// Rotations of other workflows in progress in this state: never
    /// resumed, rolled back or reported here; their users are held.
    pub others: Vec<RotationRecord>,
    /// `--user`: the users this run is narrowed to; empty: every one.
    pub(super) users: Vec<String>,
    /// `--account`: the accounts a fanned-out run is narrowed to.
    pub accounts: Vec<String>,
    /// `--force`: take users whose claim another rotation holds.
    pub force: bool,
    /// Plan with the credential report (`--no-credential-report`: false).
    pub credential_report: bool,
    /// Commands a killed rekey had left running, ended when this opened.
    pub ended_commands: Vec<String>,
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
        // Commands a rekey killed here left running end before anything
        // is reconciled; this run's are written down the same way.
        let commands = state_dir.join("commands");
        let ended_commands = crate::providers::exec::end_left_behind(&commands);
        crate::providers::exec::record_commands_in(&commands);
        let opened = Self::read(prepared, state_dir, state.clone(), started)
            .await
            .map(|session| Session {
                ended_commands,
                ..session
            });
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
            ended_commands: Vec::new(),
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
        self.in_progress
            .retain(|r| users.iter().any(|u| r.named_by(u, None)));
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

    pub(super) fn request<'p>(
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
        let location = self.state.location();
        let claims = (!self.force).then(|| (self.state.claims(), location.as_str()));
        super::marks::annotate(
            &mut plan,
            &prepared.checked.workflow,
            &prepared.params,
            &self.in_progress,
            &self.others,
            claims,
        )
        .await;
        Ok(plan)
    }

    /// Whether there is anything to do.
    pub fn has_work(&self, plan: &Plan) -> bool {
        plan.summary.rotate > 0 || !self.in_progress.is_empty()
    }

    /// The accounts the targets of this workflow's rotations in progress
    /// live in (`account:`), as their snapshots say.
    pub(super) fn target_accounts_in_progress(&self) -> Vec<String> {
        self.in_progress
            .iter()
            .filter_map(|r| r.begin.snapshot.as_ref())
            .flat_map(|s| crate::plan::accounts::target_accounts(&s.targets))
            .collect()
    }

    /// This workflow's rotations in progress in `account` (`caller`: the
    /// account of those that do not say).
    pub(super) fn in_progress_in(&self, account: &str, caller: &str) -> Vec<RotationRecord> {
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
}
