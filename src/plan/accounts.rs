//! Many accounts: which accounts a fanned-out workflow rotates in, how each
//! is reached (a role assumed there), and one plan over all of them.
//!
//! The accounts are (`ids` ∪ the Organization's ACTIVE accounts under
//! `ous` that carry `tags`) − `exclude`, narrowed by `--account`. Each is
//! reached by assuming `role` (the credentials' own account is read with
//! them as they are); an account that cannot be reached, or that
//! `accounts.allowed` does not list, is planned as unreachable with the
//! reason and what to do, and the others go on. Accounts are planned
//! `policy.account_concurrency` at a time, each with the single-account plan
//! ([`super::plan_in`]).

use std::collections::BTreeMap;
use std::ops::Deref;

use futures_util::{StreamExt, stream};

use super::{AccountPlan, Plan, PlanError, PlanRequest, Summary, UserPlan};
use crate::providers::{ErrorKind, ProviderError, Reach};
use crate::workflow::model::Fleet;
use crate::workflow::params;
use crate::workflow::template::Values;

/// A provider for one account: rekey's own (the credentials' account) or
/// one made by assuming the workflow's role there.
pub enum Member<'a, P> {
    Own(&'a P),
    Assumed(P),
}

impl<P> Deref for Member<'_, P> {
    type Target = P;
    fn deref(&self) -> &P {
        match self {
            Member::Own(provider) => provider,
            Member::Assumed(provider) => provider,
        }
    }
}

/// One account of the fan-out, reached or not.
pub struct Reached<'a, P> {
    pub account: String,
    /// Whether users are rotated there (else only targets live there).
    pub rotates: bool,
    /// The role assumed (absent: the credentials' own account).
    pub role: Option<String>,
    pub provider: Result<Member<'a, P>, Unreachable>,
}

/// Why an account cannot be worked in, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub reason: String,
    pub fix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error(
        "cannot list the Organization's accounts ({0}); run rekey with credentials of the management account or a delegated administrator, or list the accounts in `accounts.ids`"
    )]
    Organization(ProviderError),
    #[error(
        "--account {0}: the workflow does not rotate in {0}; --account narrows a run to the accounts `accounts.ids` and `accounts.organization` give ({1})"
    )]
    NotSelected(String, String),
    #[error(
        "--account {0}: this workflow runs in the credentials' own account only; --account needs `accounts.ids` or `accounts.organization`"
    )]
    NoFleet(String),
    #[error("accounts: the fan-out gives no account (ids, organization, exclude)")]
    Empty,
    #[error("--account {0}: not an AWS account id (12 digits)")]
    NotAnAccount(String),
    #[error("--user {0}: its account is not one of those --account names")]
    UserOutside(String),
}

/// The accounts `fleet` gives, narrowed to `only` (`--account`), sorted.
pub async fn accounts<P: Reach>(
    fleet: &Fleet,
    base: &P,
    only: &[String],
    resume: &[String],
) -> Result<Vec<String>, AccountsError> {
    if let Some(bad) = only
        .iter()
        .find(|a| !crate::workflow::validate::is_account_id(a))
    {
        return Err(AccountsError::NotAnAccount(bad.clone()));
    }
    let mut accounts: Vec<String> = fleet.ids.clone();
    if let Some(organization) = &fleet.organization {
        accounts.extend(
            base.organization_accounts(&organization.ous, &organization.tags)
                .await
                .map_err(AccountsError::Organization)?,
        );
    }
    accounts.retain(|a| !fleet.exclude.contains(a));
    accounts.sort();
    accounts.dedup();
    if accounts.is_empty() {
        return Err(AccountsError::Empty);
    }
    // An account no longer selected but with rotations in progress may be
    // named: its rotations are finished.
    if let Some(missing) = only
        .iter()
        .find(|a| !accounts.contains(a) && !resume.contains(a))
    {
        return Err(AccountsError::NotSelected(
            missing.clone(),
            accounts.join(", "),
        ));
    }
    if !only.is_empty() {
        accounts.retain(|a| only.contains(a));
    }
    Ok(accounts)
}

/// The role ARN for `account`: the template expanded, a bare name made
/// `arn:aws:iam::ACCOUNT:role/NAME`.
pub fn role_arn(
    fleet: &Fleet,
    params: &BTreeMap<String, String>,
    account: &str,
) -> Result<String, String> {
    let values = Values {
        params,
        user: None,
        account: Some(account),
        new_key_id: None,
    };
    let role = fleet.role.expand(&values)?;
    let arn = if role.starts_with("arn:") {
        role
    } else {
        format!(
            "arn:aws:iam::{account}:role/{}",
            role.trim_start_matches('/')
        )
    };
    if !crate::workflow::validate::role_is_valid(&arn) {
        return Err(format!("`{arn}` is not a role ARN"));
    }
    Ok(arn)
}

/// `rekey-<workflow>`, as STS allows a session name: `[\w+=,.@-]`, 2–64.
pub fn session_name(workflow: &str) -> String {
    let cleaned: String = format!("rekey-{workflow}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    cleaned
}

/// How accounts are reached: the role, the external id, the session name.
pub struct Reacher<'r, 'a, P> {
    workflow: &'r crate::workflow::Workflow,
    fleet: &'r Fleet,
    base: &'a P,
    caller: String,
    params: BTreeMap<String, String>,
    external_id: Option<String>,
    session: String,
}

impl<'r, 'a, P: Reach> Reacher<'r, 'a, P> {
    pub fn new(
        request: &PlanRequest<'r>,
        fleet: &'r Fleet,
        base: &'a P,
        caller: &str,
    ) -> Result<Self, PlanError> {
        let workflow = request.workflow;
        let params = params::bind(workflow, &request.vars)?;
        let values = Values {
            params: &params,
            user: None,
            account: None,
            new_key_id: None,
        };
        let external_id = fleet
            .external_id
            .as_ref()
            .map(|t| {
                t.expand(&values).map_err(|message| PlanError::Template {
                    what: "accounts.external_id".into(),
                    message,
                })
            })
            .transpose()?;
        Ok(Reacher {
            workflow,
            fleet,
            base,
            caller: caller.to_string(),
            params,
            external_id,
            session: session_name(&workflow.name),
        })
    }

    /// One account: refused when `accounts.allowed` does not list it, the
    /// credentials' own account as it is, any other through the role.
    pub async fn reach(&self, account: String) -> Reached<'a, P> {
        let workflow = self.workflow;
        let unreachable = |account: String, role: Option<String>, why: Unreachable| Reached {
            account,
            rotates: true,
            role,
            provider: Err(why),
        };
        if !workflow.accounts_allowed.is_empty() && !workflow.accounts_allowed.contains(&account) {
            let why = Unreachable {
                reason: format!(
                    "`accounts.allowed` does not list {account} ({})",
                    workflow.accounts_allowed.join(", ")
                ),
                fix: "add it to `accounts.allowed`, or to `accounts.exclude` if it must not be rotated in".into(),
            };
            return unreachable(account, None, why);
        }
        if account == self.caller {
            return Reached {
                account,
                rotates: true,
                role: None,
                provider: Ok(Member::Own(self.base)),
            };
        }
        let role = match role_arn(self.fleet, &self.params, &account) {
            Ok(role) => role,
            Err(message) => {
                let why = Unreachable {
                    reason: format!("accounts.role: {message}"),
                    fix: "correct `accounts.role`".into(),
                };
                return unreachable(account, None, why);
            }
        };
        let assumed = self
            .base
            .assume(&role, self.external_id.as_deref(), &self.session)
            .await;
        let provider = match assumed {
            Ok(member) => match member.account_id().await {
                Ok(answered) if answered == account => Ok(Member::Assumed(member)),
                Ok(answered) => Err(Unreachable {
                    reason: format!("{role} answers as account {answered}, not {account}"),
                    fix: "make `accounts.role` name a role in each account (`arn:aws:iam::${account}:role/NAME`)".into(),
                }),
                Err(error) => Err(unreachable_by(&role, &error)),
            },
            Err(error) => Err(unreachable_by(&role, &error)),
        };
        Reached {
            account,
            rotates: true,
            role: Some(role),
            provider,
        }
    }
}

/// Reaches every account of `accounts`, `account_concurrency` at once.
pub async fn reach<'r, 'a, P: Reach>(
    request: &PlanRequest<'r>,
    fleet: &'r Fleet,
    base: &'a P,
    caller: &str,
    accounts: Vec<String>,
) -> Result<Vec<Reached<'a, P>>, PlanError> {
    let reacher = Reacher::new(request, fleet, base, caller)?;
    let concurrency = request.workflow.policy.account_concurrency.max(1) as usize;
    Ok(stream::iter(accounts)
        .map(|account| reacher.reach(account))
        .buffered(concurrency)
        .collect()
        .await)
}

fn unreachable_by(role: &str, error: &ProviderError) -> Unreachable {
    let fix = match &error.kind {
        ErrorKind::AccessDenied(_) | ErrorKind::NotFound => format!(
            "create {role} in that account, with a trust policy that lets rekey's own principal assume it (and the external id, if `accounts.external_id` is set); or add the account to `accounts.exclude`"
        ),
        _ => "run plan again; if it persists, check the account's role and network path to STS"
            .into(),
    };
    Unreachable {
        reason: format!("cannot assume {role}: {error}"),
        fix,
    }
}

/// One account planned: its line, its plan (when it could be made), and
/// what reached it.
type Planned<'a, P> = (AccountPlan, Option<Plan>, Reached<'a, P>);

/// Plans one account reached.
async fn plan_account<'a, P: Reach>(
    request: &PlanRequest<'_>,
    reach: Reached<'a, P>,
    elsewhere: &super::Elsewhere<'_, P>,
) -> Planned<'a, P> {
    let mut view = AccountPlan::new(&reach.account, reach.role.clone());
    let provider = match &reach.provider {
        Ok(provider) => provider,
        Err(unreachable) => {
            view.error = Some(unreachable.reason.clone());
            view.fix = Some(unreachable.fix.clone());
            return (view, None, reach);
        }
    };
    match super::plan_in(request, &**provider, &reach.account, elsewhere).await {
        Ok(plan) => {
            view.summary = plan.summary;
            view.credential_report = plan.credential_report.clone();
            (view, Some(plan), reach)
        }
        Err(error) => {
            view.fix = Some(match &error {
                PlanError::Provider(_) => format!(
                    "give {} the read permissions of docs/SECURITY.md in {}, or add the account to `accounts.exclude`",
                    reach.role.as_deref().unwrap_or("rekey's credentials"),
                    reach.account
                ),
                _ => "correct the workflow, then plan again".into(),
            });
            view.error = Some(error.to_string());
            (view, None, reach)
        }
    }
}

/// One plan over every account, `policy.account_concurrency` at a time,
/// each reached, planned and let go (unless `keep` says apply needs it):
/// memory does not grow with the number of accounts. Users are sorted by
/// account and name; per account its summary and credential report, or why
/// it was not planned. A failure in one account never stops another.
/// Accounts that targets live in (the workflow's, and `also`: those of
/// rotations in progress) are reached first and kept. So are the accounts
/// of `resume` (rotations in progress) that the workflow no longer selects:
/// a rotation begun is finished, but nothing new begins there.
pub async fn plan_fleet<'r, 'a, P: Reach>(
    request: &PlanRequest<'r>,
    fleet: &'r Fleet,
    base: &'a P,
    also: &[String],
    resume: &[String],
    keep: &(dyn Fn(&str, &Plan) -> bool + Sync),
) -> Result<(Plan, Vec<Reached<'a, P>>), PlanError> {
    let caller = base.account_id().await?;
    // `--user ACCOUNT/NAME` alone narrows to those accounts, as --account.
    let qualified: Vec<&str> = request
        .users
        .iter()
        .filter_map(|u| u.split_once('/').map(|(account, _)| account))
        .collect();
    if let Some(user) = request.users.iter().find(|u| {
        u.split_once('/').is_some_and(|(account, _)| {
            !request.accounts.is_empty() && !request.accounts.iter().any(|a| a == account)
        })
    }) {
        return Err(AccountsError::UserOutside(user.clone()).into());
    }
    let only: Vec<String> = if request.accounts.is_empty()
        && !request.users.is_empty()
        && qualified.len() == request.users.len()
    {
        let mut only: Vec<String> = qualified.iter().map(|a| a.to_string()).collect();
        only.sort();
        only.dedup();
        only
    } else {
        request.accounts.clone()
    };
    let accounts = accounts(fleet, base, &only, resume).await?;
    let reacher = Reacher::new(request, fleet, base, &caller)?;
    let mut homes: Vec<String> = target_accounts(&request.workflow.targets);
    homes.extend(also.iter().cloned());
    homes.sort();
    homes.dedup();
    let mut kept: Vec<Reached<'a, P>> = Vec::new();
    for account in homes {
        let mut reached = reacher.reach(account).await;
        reached.rotates = false;
        kept.push(reached);
    }
    let planned: Vec<(AccountPlan, Option<Plan>, Option<Reached<'a, P>>)> = {
        let elsewhere = elsewhere(&kept);
        let elsewhere = &elsewhere;
        let reacher = &reacher;
        let concurrency = request.workflow.policy.account_concurrency.max(1) as usize;
        stream::iter(accounts)
            .map(|account| async move {
                let reached = reacher.reach(account).await;
                let (view, plan, reached) = plan_account(request, reached, elsewhere).await;
                let needed = reached.provider.is_err()
                    || plan.as_ref().is_some_and(|p| keep(&reached.account, p));
                (view, plan, needed.then_some(reached))
            })
            .buffered(concurrency)
            .collect()
            .await
    };
    let mut users: Vec<UserPlan> = Vec::new();
    let mut views = Vec::new();
    let mut rotating = Vec::new();
    let mut left: Vec<String> = resume
        .iter()
        .filter(|a| only.is_empty() || only.contains(a))
        .filter(|a| !planned.iter().any(|(view, ..)| view.account == **a))
        .cloned()
        .collect();
    left.sort();
    left.dedup();
    for account in left {
        let reached = reacher.reach(account).await;
        views.push(AccountPlan {
            error: reached.provider.as_ref().err().map(|u| u.reason.clone()),
            fix: reached.provider.as_ref().err().map(|u| u.fix.clone()),
            resumed_only: true,
            ..AccountPlan::new(&reached.account, reached.role.clone())
        });
        rotating.push(reached);
    }
    let mut unmatched: Option<Vec<String>> = None;
    let mut template: Option<Plan> = None;
    for (view, plan, reached) in planned {
        views.push(view);
        rotating.extend(reached);
        if let Some(mut plan) = plan {
            users.append(&mut plan.users);
            unmatched = Some(match unmatched {
                None => plan.unmatched.clone(),
                Some(before) => before
                    .into_iter()
                    .filter(|n| plan.unmatched.contains(n))
                    .collect(),
            });
            template.get_or_insert(plan);
        }
    }
    // A user of an account only resumed is not planned: its rotation in
    // progress is added from the journal.
    if let Some(name) = request.missing_user(&users)
        && views.iter().all(|a| a.error.is_none())
        && !name
            .split_once('/')
            .is_some_and(|(account, _)| resume.iter().any(|r| r == account))
    {
        return Err(PlanError::NotSelected(name.clone()));
    }
    users.sort_by(|a, b| (&a.account, &a.user).cmp(&(&b.account, &b.user)));
    super::collisions_across(request, &users)?;
    let mut plan = match template {
        Some(plan) => plan,
        None => super::empty_plan(request),
    };
    plan.account = caller;
    plan.observed_sha256 = super::observed_sha256(&users);
    plan.summary = Summary::of(&users);
    plan.unmatched = unmatched.unwrap_or_default();
    plan.credential_report = None;
    views.sort_by(|a, b| a.account.cmp(&b.account));
    plan.accounts = views;
    plan.users = users;
    // A rotated account that is also a target's home is kept once: as the
    // rotated one.
    kept.retain(|k| !rotating.iter().any(|r| r.account == k.account));
    rotating.extend(kept);
    Ok((plan, rotating))
}

/// The accounts `targets` name (`account:`).
pub fn target_accounts(targets: &[crate::workflow::model::Target]) -> Vec<String> {
    targets.iter().filter_map(|t| t.account.clone()).collect()
}

/// Every account reached, for the targets that live there.
pub fn elsewhere<'a, P>(reached: &'a [Reached<'_, P>]) -> super::Elsewhere<'a, P> {
    reached
        .iter()
        .map(|r| {
            (
                r.account.clone(),
                r.provider
                    .as_ref()
                    .map(|m| &**m)
                    .map_err(|u| u.reason.clone()),
            )
        })
        .collect()
}
