//! The scheduler: a runner per account, `policy.concurrency` rotations at once
//! over every account, and abort's one-by-one rollback.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use futures_util::{StreamExt, stream};

use super::journal::RotationRecord;
use super::rotation::{Rotation, RotationOutcome, Runner};
use super::stop::Stop;
use super::*;
use crate::plan::Elsewhere;
use crate::plan::accounts::Reached;
use crate::plan::{Decision, Plan, UserPlan};
use crate::providers::{Provider, Reach};
use crate::workflow::graph::Phase;
use crate::workflow::model::Fleet;

impl Session {
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
        work: impl AsyncFnOnce(&Runner<'_, P>, Vec<RotationRecord>) -> Vec<(String, RotationOutcome)>,
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

    fn report(
        self,
        outcomes: Vec<(String, RotationOutcome)>,
        accounts: Vec<AccountReport>,
    ) -> Report {
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
) -> Vec<(String, RotationOutcome)> {
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
            Err(error) => RotationOutcome::Failed {
                step: "abort".into(),
                error: error.to_string(),
            },
        };
        outcomes.push((user, outcome));
    }
    outcomes
}

/// A rotation ready to run, or the step (`begin`, `compile`) that failed.
type Started = Result<Rotation, (&'static str, StepError)>;

/// How a rotation of this run starts: resumed, or begun from the plan.
enum Start<'p> {
    Resume(Box<RotationRecord>),
    Begin(&'p UserPlan),
}

/// Runs every rotation: those in progress, then the plan's new ones.
pub async fn run<P: Provider>(
    runner: &Runner<'_, P>,
    users: &[&UserPlan],
    in_progress: Vec<RotationRecord>,
) -> Vec<(String, RotationOutcome)> {
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
    let mut outcomes: Vec<(String, RotationOutcome)> = stream::iter(rotations)
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
                    RotationOutcome::Failed {
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
