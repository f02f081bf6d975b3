//! Plan: read the live state, decide per user, and describe every step.
//!
//! For each selected user: list its keys and decide (rotate, unchanged,
//! blocked). Only users that are due cost more calls: the last use of each
//! key (which tells a reviewer which key is in use), and, for a rotation,
//! what every target holds now. The result is a [`Plan`], the
//! versioned document that `--json` prints and `--out` saves, with hashes of
//! the workflow and of the observed state so a saved plan can be checked for
//! staleness. It never contains a secret: targets are observed only for the
//! access key id they hold.
//!
//! The document, the credential report and the collision check are their
//! own modules.

pub mod accounts;
mod collisions;
mod credential_report;
pub mod decide;
pub mod document;
pub mod exemptions;
pub mod left;
pub mod select;

use collisions::collisions;
pub use collisions::collisions_across;
use credential_report::judge_report;
pub use document::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::providers::{
    AccessKey, Iam, IamUser, KeyStatus, LastUse, ProviderError, TargetReader, TargetState,
};
use crate::targets::{ActionError, Resolve};
use crate::text::{rfc3339, short_id};
use crate::workflow::graph::{MakeRoomStep, Phase, StepGraph};
use crate::workflow::model::{Staging, Target, Workflow};
use crate::workflow::params::{self, ParamError};
use crate::workflow::template::{Template, Values};
use crate::workflow::vocabulary::SecretFormat;
use decide::Judgement;
use select::Selector;

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(
        "--user {0}: the workflow does not select {0}; --user narrows a run to users its `select` picks"
    )]
    NotSelected(String),
    #[error(
        "{first} and {second} would both write {resource}: each write would undo the other, and the keys it held would be deleted; give each its own (e.g. with ${{user}} in the name, and ${{account}} when users of several accounts write it)"
    )]
    Collision {
        resource: String,
        first: String,
        second: String,
    },
    #[error(
        "the credentials are for account {account}, which `accounts.allowed` does not list ({}); use credentials for one of those accounts",
        allowed.join(", ")
    )]
    AccountNotAllowed {
        account: String,
        allowed: Vec<String>,
    },
    #[error("{what}: {message}")]
    Template { what: String, message: String },
    #[error(transparent)]
    Accounts(#[from] accounts::AccountsError),
    #[error(transparent)]
    TargetAccount(#[from] TargetAccountError),
}

/// Everything a plan is made from, besides the live state.
pub struct PlanRequest<'a> {
    pub workflow: &'a Workflow,
    /// The workflow file, as the user named it.
    pub workflow_path: &'a Path,
    pub workflow_sha256: String,
    pub vars: Vec<(String, String)>,
    pub as_of: OffsetDateTime,
    /// How many users are observed at once.
    pub parallelism: usize,
    /// `--user`: only these (each must be selected); empty: every one.
    /// `NAME`, or `ACCOUNT/NAME` for the user of one account.
    pub users: Vec<String>,
    /// `--account`: the accounts a fanned-out run is narrowed to.
    pub accounts: Vec<String>,
    /// Read the account's credential report first and read live only the
    /// users it cannot show are not due (`--no-credential-report`: false).
    pub credential_report: bool,
}

impl PlanRequest<'_> {
    /// The `--user` names that apply in `account`.
    pub fn users_in(&self, account: &str) -> Vec<String> {
        self.users
            .iter()
            .filter_map(|u| match u.split_once('/') {
                Some((a, name)) if a == account => Some(name.to_string()),
                Some(_) => None,
                None => Some(u.clone()),
            })
            .collect()
    }

    /// The first `--user` that names no user of the plan.
    pub fn missing_user(&self, users: &[UserPlan]) -> Option<&String> {
        self.users.iter().find(|u| {
            !users
                .iter()
                .any(|p| select::names_user(u, Some(&p.account), &p.user))
        })
    }
}

/// What one user's planning works with.
struct Context<'a> {
    workflow: &'a Workflow,
    base_dir: PathBuf,
    params: BTreeMap<String, String>,
    account: String,
    as_of: OffsetDateTime,
    rule: decide::DueRule,
}

/// Reads the live state through `provider` and makes the plan. Read-only:
/// no call here changes anything.
pub async fn plan<P: Iam + TargetReader>(
    request: &PlanRequest<'_>,
    provider: &P,
) -> Result<Plan, PlanError> {
    let account = provider.account_id().await?;
    check_account(request.workflow, &account)?;
    let mut plan = plan_in(request, provider, &account, &Elsewhere::new()).await?;
    if let Some(name) = request.missing_user(&plan.users) {
        return Err(PlanError::NotSelected(name.clone()));
    }
    plan.accounts.clear();
    Ok(plan)
}

/// The plan of one account, `account`, read through `provider`. `--user`
/// names that are not selected here are left out, not refused.
pub async fn plan_in<P: Iam + TargetReader>(
    request: &PlanRequest<'_>,
    provider: &P,
    account: &str,
    elsewhere: &Elsewhere<'_, P>,
) -> Result<Plan, PlanError> {
    let workflow = request.workflow;
    let params = params::bind(workflow, &request.vars)?;
    let selector = selector(workflow, &params)?;
    let account = account.to_string();
    let users = request.users_in(&account);
    let parallelism = request.parallelism.max(1);
    let report = match request.credential_report {
        true => Some(provider.credential_report().await),
        false => None,
    };
    let listed = provider.list_users(selector.path_prefix.as_deref()).await?;
    let unmatched = selector.unmatched_names(&listed);
    let mut admitted: Vec<IamUser> = listed.into_iter().filter(|u| selector.admits(u)).collect();
    if !request.users.is_empty() {
        // Before reading tags: only the named users cost a call.
        admitted.retain(|u| users.contains(&u.name));
    }
    let selected: Vec<IamUser> = if selector.needs_tags() {
        stream::iter(admitted)
            .map(|user| async {
                let tags = provider.user_tags(&user.name).await?;
                Ok::<_, ProviderError>(selector.admits_tags(&tags).then_some(user))
            })
            .buffered(parallelism)
            .try_filter_map(|user| async move { Ok(user) })
            .try_collect()
            .await?
    } else {
        admitted
    };
    let context = Context {
        workflow,
        base_dir: crate::workflow::source::workflow_dir(request.workflow_path).to_path_buf(),
        params,
        account,
        as_of: request.as_of,
        rule: decide::DueRule::of(workflow, request.as_of),
    };
    let named: Vec<(&str, &str)> = selected
        .iter()
        .map(|u| (context.account.as_str(), u.name.as_str()))
        .collect();
    collisions(&context, &named)?;
    let (mut report_use, usable) = judge_report(
        report,
        context.rule.due_age(request.as_of),
        request.as_of,
        &selected,
        selector.path_prefix.as_deref(),
    );
    if !request.users.is_empty()
        && let Some(used) = &mut report_use
    {
        // Narrowed by --user: the rest of the selection is not known.
        used.outside = None;
    }
    let (candidates, spared): (Vec<IamUser>, Vec<IamUser>) = selected
        .into_iter()
        .partition(|user| usable.as_ref().is_none_or(|r| r.may_be_due(&user.name)));
    let report_use = report_use.map(|mut used| {
        used.read = candidates.len();
        used.skipped = spared.len();
        used
    });
    let mut users: Vec<UserPlan> = stream::iter(candidates)
        .map(|user| plan_user(&context, provider, elsewhere, user))
        .buffer_unordered(parallelism)
        .try_collect()
        .await?;
    if let Some(report) = &usable {
        users.extend(
            spared
                .into_iter()
                .map(|user| report.unchanged(user, &context.account)),
        );
    }
    users.sort_by(|a, b| a.user.cmp(&b.user));
    let mut plan = empty_plan(request);
    plan.account = context.account.clone();
    (plan.region, plan.endpoint) = provider.location();
    plan.observed_sha256 = observed_sha256(&users);
    plan.summary = Summary::of(&users);
    plan.unmatched = unmatched;
    plan.accounts = vec![AccountPlan {
        summary: plan.summary,
        credential_report: report_use.clone(),
        ..AccountPlan::new(&context.account, None)
    }];
    plan.credential_report = report_use;
    plan.users = users;
    Ok(plan)
}

/// A credential report recent enough to decide by: every key it does not
/// list was created after it, so is younger than `max_key_age` at `as_of`.
/// A plan with no user: what a fan-out gives when no account was planned.
pub fn empty_plan(request: &PlanRequest<'_>) -> Plan {
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        rekey_version: env!("CARGO_PKG_VERSION").to_string(),
        workflow: WorkflowRef {
            name: request.workflow.name.clone(),
            path: request.workflow_path.display().to_string(),
            sha256: request.workflow_sha256.clone(),
        },
        vars: request.vars.iter().cloned().collect(),
        as_of: rfc3339(request.as_of),
        account: String::new(),
        region: None,
        endpoint: None,
        observed_sha256: observed_sha256(&[]),
        summary: Summary::default(),
        unmatched: Vec::new(),
        state: None,
        credential_report: None,
        only_users: request.users.clone(),
        only_accounts: request.accounts.clone(),
        accounts: Vec::new(),
        users: Vec::new(),
        deadline: Some(request.workflow.policy.deadline.to_string()),
        next_run: None,
        next_run_in_window: None,
        window: None,
        left: Vec::new(),
    };
    plan.time_views(request.workflow, request.as_of);
    plan
}

impl Plan {
    /// The schedule and the window as they stand at `at`: the next run,
    /// the first inside the window when the next is not, the window.
    pub fn time_views(&mut self, workflow: &Workflow, at: OffsetDateTime) {
        self.next_run = workflow
            .schedule
            .as_ref()
            .and_then(|s| s.next_after(at))
            .map(rfc3339);
        self.next_run_in_window = next_run_in_window(workflow, at);
        self.window = workflow
            .policy
            .window
            .as_ref()
            .map(|w| WindowView::at(w, at));
    }
}

/// The first scheduled run inside the window after `after`, when the next
/// run is not inside it.
fn next_run_in_window(workflow: &Workflow, after: OffsetDateTime) -> Option<String> {
    let (schedule, window) = workflow
        .schedule
        .as_ref()
        .zip(workflow.policy.window.as_ref())?;
    let next = schedule.next_after(after)?;
    if crate::workflow::window::is_open(window, next) {
        return None;
    }
    Some(
        schedule
            .first_run_in(window, after)
            .map_or_else(|| "none".to_string(), rfc3339),
    )
}

/// before anything is read or changed.
/// `accounts.allowed`: credentials for another account stop everything
pub fn check_account(workflow: &Workflow, account: &str) -> Result<(), PlanError> {
    if workflow.accounts_allowed.is_empty()
        || workflow.accounts_allowed.iter().any(|a| a == account)
    {
        return Ok(());
    }
    Err(PlanError::AccountNotAllowed {
        account: account.to_string(),
        allowed: workflow.accounts_allowed.clone(),
    })
}

/// The workflow's `select:`, its templates expanded with `params`.
pub fn selector(
    workflow: &Workflow,
    params: &BTreeMap<String, String>,
) -> Result<Selector, PlanError> {
    let values = Values {
        params,
        user: None,
        account: None,
        new_key_id: None,
    };
    let expand = |t: &Template| expand(t, &values, "select");
    let select = &workflow.select;
    Ok(Selector {
        users: select.users.iter().map(expand).collect::<Result<_, _>>()?,
        path_prefix: select.path_prefix.as_ref().map(expand).transpose()?,
        tags: select
            .tags
            .iter()
            .map(|(k, v)| Ok((k.clone(), expand(v)?)))
            .collect::<Result<_, PlanError>>()?,
        exclude: select
            .exclude
            .iter()
            .map(expand)
            .collect::<Result<_, _>>()?,
    })
}

fn expand(template: &Template, values: &Values, what: &str) -> Result<String, PlanError> {
    template
        .expand(values)
        .map_err(|message| PlanError::Template {
            what: what.to_string(),
            message,
        })
}

async fn plan_user<P: Iam + TargetReader>(
    context: &Context<'_>,
    provider: &P,
    elsewhere: &Elsewhere<'_, P>,
    user: IamUser,
) -> Result<UserPlan, PlanError> {
    let workflow = context.workflow;
    let keys = provider.access_keys(&user.name).await?;
    let verdict = decide::by_keys(
        &keys,
        context.as_of,
        &context.rule,
        workflow.policy.make_room,
    );
    let mut plan = UserPlan::new(
        &context.account,
        &user.name,
        &user.arn,
        Decision::Unchanged,
        String::new(),
    );
    if let Judgement::Unchanged { reason } = verdict {
        plan.reason = reason;
        plan.keys = keys
            .iter()
            .map(|k| key_view(k, None, context.as_of))
            .collect();
        return Ok(plan);
    }
    plan.deadline = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
        .map(|k| k.created)
        .min()
        .map(|created| rfc3339(context.rule.reaches_deadline(created)));
    let mut last_uses = Vec::with_capacity(keys.len());
    for key in &keys {
        last_uses.push(provider.key_last_used(&key.id).await?);
    }
    plan.keys = keys
        .iter()
        .zip(&last_uses)
        .map(|(k, used)| key_view(k, Some(used), context.as_of))
        .collect();
    let values = Values {
        params: &context.params,
        user: Some(&user.name),
        account: Some(&context.account),
        new_key_id: Some(NEW_KEY_PLACEHOLDER),
    };
    // Targets matter only to a rotation: its diff, and whether one still
    // holds the inactive key it would delete.
    if matches!(verdict, Judgement::Rotate { .. }) {
        for target in &workflow.targets {
            plan.targets
                .push(observe_target(context, provider, elsewhere, target, &values).await?);
        }
    }
    let holders: Vec<(String, Option<String>)> = plan
        .targets
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                t.before.as_ref().and_then(|b| b.key_id.clone()),
            )
        })
        .collect();
    let verdict = decide::held_inactive_key(verdict, &holders);
    // A target shared across accounts (one in another account, or a file on
    // this machine in a fanned-out workflow) that holds a key which is none
    // of this user's may be another user's, of another account: the write
    // would take it from its application. A run narrowed (`--account`,
    // `--user`) or missing an account cannot see that other user to refuse
    // the collision, so the key itself is the evidence.
    let shared = |t: &TargetView| {
        t.account.is_some()
            || (workflow.fleet.is_some()
                && workflow
                    .targets
                    .iter()
                    .find(|w| w.id == t.id)
                    .is_some_and(|w| !w.kind.in_account()))
    };
    let verdict = match plan.targets.iter().find(|t| {
        shared(t)
            && t.before
                .as_ref()
                .and_then(|b| b.key_id.as_ref())
                .is_some_and(|held| !keys.iter().any(|k| &k.id == held))
    }) {
        Some(foreign) if matches!(verdict, Judgement::Rotate { .. }) => Judgement::Blocked {
            reason: format!(
                "target `{}` ({}{}) holds {}, which is not a key of this user: it may be another account's user's",
                foreign.id,
                foreign.resource,
                foreign
                    .account
                    .as_deref()
                    .map(|a| format!(" in account {a}"))
                    .unwrap_or_default(),
                short_id(
                    foreign
                        .before
                        .as_ref()
                        .and_then(|b| b.key_id.as_deref())
                        .unwrap_or_default()
                )
            ),
            fix: "give each account's user its own place (with ${account} in the name or path); if the key is truly this user's old one, remove it from the target first".into(),
        },
        _ => verdict,
    };
    match verdict {
        Judgement::Rotate {
            old_key,
            make_room,
            reason,
        } => {
            plan.decision = Decision::Rotate;
            plan.reason = reason;
            plan.steps = steps(context, &values, &old_key, make_room.as_deref())?;
            plan.old_key = Some(old_key);
            plan.make_room = make_room;
        }
        Judgement::Blocked { reason, fix } => plan.block(reason, fix),
        Judgement::Unchanged { reason } => plan.reason = reason,
    }
    Ok(plan)
}

fn key_view(key: &AccessKey, last_use: Option<&LastUse>, as_of: OffsetDateTime) -> KeyView {
    KeyView {
        id: key.id.clone(),
        status: key.status,
        created: rfc3339(key.created),
        age_days: decide::age_days(key.created, as_of),
        last_used: last_use.map(|used| LastUseView {
            date: used.date.map(rfc3339),
            service: used.service.clone(),
            region: used.region.clone(),
        }),
    }
}

async fn observe_target<P: TargetReader>(
    context: &Context<'_>,
    provider: &P,
    elsewhere: &Elsewhere<'_, P>,
    target: &Target,
    values: &Values<'_>,
) -> Result<TargetView, PlanError> {
    let provider = target_provider(target, &context.account, provider, elsewhere)?;
    let what = format!("target `{}`", target.id);
    let resolved = target.kind.resolve(&Resolve {
        values,
        base_dir: &context.base_dir,
        what: &what,
    })?;
    Ok(TargetView {
        id: target.id.clone(),
        kind: target.kind.key().to_string(),
        resource: resolved.resource(),
        format: resolved.format(),
        before: resolved.observe(provider, &what).await?,
        account: target.account.clone().filter(|a| *a != context.account),
    })
}

/// Providers for the accounts targets live in besides the user's own (a
/// central secrets account), or why one cannot be reached.
pub type Elsewhere<'a, P> = BTreeMap<String, Result<&'a P, String>>;

/// The provider `target` is written through: the user's account's, or
/// that of the account it names.
pub fn target_provider<'p, P>(
    target: &Target,
    account: &str,
    provider: &'p P,
    elsewhere: &Elsewhere<'p, P>,
) -> Result<&'p P, TargetAccountError> {
    match target.account.as_deref().filter(|a| *a != account) {
        None => Ok(provider),
        Some(other) => match elsewhere.get(other) {
            Some(Ok(provider)) => Ok(*provider),
            Some(Err(reason)) => Err(TargetAccountError {
                target: target.id.clone(),
                account: other.to_string(),
                reason: reason.clone(),
            }),
            None => Err(TargetAccountError {
                target: target.id.clone(),
                account: other.to_string(),
                reason: "it was not reached in this run".into(),
            }),
        },
    }
}

/// A target's account could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
#[error("target `{target}` lives in account {account}, which cannot be reached: {reason}")]
pub struct TargetAccountError {
    pub target: String,
    pub account: String,
    pub reason: String,
}

/// The rotation's steps in order, each with what it does for this user.
fn steps(
    context: &Context<'_>,
    values: &Values<'_>,
    old_key: &str,
    make_room: Option<&str>,
) -> Result<Vec<StepView>, PlanError> {
    let workflow = context.workflow;
    let room = if make_room.is_some() {
        MakeRoomStep::Yes
    } else {
        MakeRoomStep::No
    };
    let graph =
        StepGraph::compile(workflow, values.user.unwrap_or_default(), room).map_err(|e| {
            PlanError::Template {
                what: "steps".into(),
                message: e.to_string(),
            }
        })?;
    let old = short_id(old_key);
    graph
        .steps()
        .into_iter()
        .map(|step| {
            let item = step.item.as_deref().unwrap_or_default();
            let detail = match step.phase {
                Phase::MakeRoom => format!(
                    "delete the inactive key {}",
                    short_id(make_room.unwrap_or_default())
                ),
                Phase::Create => match &workflow.staging {
                    Staging::StateFile | Staging::AccountStateFile => {
                        "create a new key; stage it in a 0600 file in the state directory"
                            .to_string()
                    }
                    Staging::SsmParameter { name, .. } => format!(
                        "create a new key; stage it in SSM parameter {}",
                        expand(name, values, "staging")?
                    ),
                },
                Phase::Distribute => {
                    let target = workflow
                        .targets
                        .iter()
                        .find(|t| t.id == item)
                        .expect("a step per target");
                    let what = format!("target `{item}`");
                    let resolve = Resolve {
                        values,
                        base_dir: &context.base_dir,
                        what: &what,
                    };
                    target.kind.resolve(&resolve)?.describe()
                }
                Phase::Refresh | Phase::Verify | Phase::VerifyAfterDisable => {
                    let hook = workflow
                        .hooks
                        .iter()
                        .find(|h| h.id == item)
                        .expect("a step per hook");
                    let what = format!("hook `{item}`");
                    let resolve = Resolve {
                        values,
                        base_dir: &context.base_dir,
                        what: &what,
                    };
                    hook.kind.resolve(&resolve)?.describe(old_key)
                }
                Phase::DisableOld => format!("deactivate {old}"),
                Phase::Soak => format!("wait {} with {old} inactive", workflow.policy.soak),
                Phase::DeleteOld => format!("delete {old}"),
                Phase::Unstage => "delete the staged copy of the new secret".to_string(),
            };
            Ok(StepView {
                id: step.to_string(),
                phase: step.phase.name().to_string(),
                detail,
            })
        })
        .collect()
}

/// SHA-256 over what was observed: each user's keys (id, status, created)
/// and each target's state. Last use is left out: it changes whenever an
/// application uses a key, which does not make a plan stale.
pub fn observed_sha256(users: &[UserPlan]) -> String {
    #[derive(Serialize)]
    struct Observed<'a> {
        #[serde(skip_serializing_if = "str::is_empty")]
        account: &'a str,
        user: &'a str,
        keys: Vec<(&'a str, KeyStatus, &'a str)>,
        targets: Vec<(&'a str, &'a str, &'a Option<TargetState>)>,
    }
    // What apply acts on: users it would leave unchanged do not count, so
    // a plan made with the credential report (which spares reading them)
    // is not stale for an apply that had to read them, or the reverse; a
    // user whose decision changed is, as its keys then count on one side.
    let observed: Vec<Observed> = users
        .iter()
        .filter(|u| u.decision != Decision::Unchanged)
        .map(|u| Observed {
            account: &u.account,
            user: &u.user,
            keys: u
                .keys
                .iter()
                .map(|k| (k.id.as_str(), k.status, k.created.as_str()))
                .collect(),
            targets: u
                .targets
                .iter()
                .map(|t| (t.id.as_str(), t.resource.as_str(), &t.before))
                .collect(),
        })
        .collect();
    let bytes = serde_json::to_vec(&observed).expect("plain data");
    format!("sha256:{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    //! The engine with an in-memory provider: no AWS, no processes.

    use time::macros::datetime;

    use super::*;
    use crate::providers::memory::Memory;

    const CANARY: &str = "fake-provider-canary-secret";

    fn workflow(text: &str) -> crate::workflow::Workflow {
        crate::workflow::check_str(Path::new("w.yaml"), text.to_string())
            .expect("valid")
            .workflow
    }

    fn plan_of(fake: &Memory, workflow: &crate::workflow::Workflow) -> Plan {
        let request = PlanRequest {
            workflow,
            workflow_path: Path::new("w.yaml"),
            workflow_sha256: "sha256:test".into(),
            vars: Vec::new(),
            as_of: datetime!(2026-11-29 00:00 UTC),
            parallelism: 4,
            users: Vec::new(),
            accounts: Vec::new(),
            credential_report: true,
        };
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(plan(&request, fake))
            .unwrap()
    }

    #[test]
    fn decides_per_user_and_reads_targets_only_for_rotations() {
        let fake = Memory::default();
        fake.user(
            "ci-old",
            "/ci/",
            &[("AKIAOLD0000000000001", KeyStatus::Active, 120)],
        );
        fake.user(
            "ci-young",
            "/ci/",
            &[("AKIAYOUNG00000000001", KeyStatus::Active, 10)],
        );
        fake.user(
            "ci-full",
            "/ci/",
            &[
                ("AKIAFULLA00000000001", KeyStatus::Active, 200),
                ("AKIAFULLB00000000002", KeyStatus::Active, 100),
            ],
        );
        fake.user(
            "web",
            "/web/",
            &[("AKIAWEB0000000000001", KeyStatus::Active, 400)],
        );
        fake.parameter(
            "/apps/ci-old",
            &format!(r#"{{"AccessKeyId": "AKIAOLD0000000000001", "SecretAccessKey": "{CANARY}"}}"#),
        );
        let workflow = workflow(
            "version: 1\nselect:\n  path_prefix: /ci/\ntargets:\n  - id: app\n    ssm_parameter: { name: \"/apps/${user}\" }\n",
        );
        let plan = plan_of(&fake, &workflow);
        let decisions: Vec<(&str, Decision)> = plan
            .users
            .iter()
            .map(|u| (u.user.as_str(), u.decision))
            .collect();
        assert_eq!(
            decisions,
            [
                ("ci-full", Decision::Blocked),
                ("ci-old", Decision::Rotate),
                ("ci-young", Decision::Unchanged)
            ]
        );
        assert_eq!(
            plan.summary,
            Summary {
                rotate: 1,
                in_progress: 0,
                unchanged: 1,
                blocked: 1
            }
        );
        let rotation = &plan.users[1];
        assert_eq!(
            rotation.targets[0]
                .before
                .as_ref()
                .and_then(|b| b.key_id.as_deref()),
            Some("AKIAOLD0000000000001")
        );
        assert!(
            plan.users[0].targets.is_empty() && plan.users[2].targets.is_empty(),
            "only a rotation reads its targets"
        );
        assert_eq!(plan.account, "111122223333");
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains(CANARY), "the plan document holds no secret");
    }

    #[test]
    fn the_same_state_gives_the_same_plan_and_a_changed_one_another_hash() {
        let fake = Memory::default();
        fake.user(
            "ci-old",
            "/ci/",
            &[("AKIAOLD0000000000001", KeyStatus::Active, 120)],
        );
        let workflow = workflow(
            "version: 1\nselect:\n  users: [\"ci-*\"]\ntargets:\n  - id: app\n    ssm_parameter: { name: \"/apps/${user}\" }\n",
        );
        let first = plan_of(&fake, &workflow);
        assert_eq!(first, plan_of(&fake, &workflow));
        let fake = Memory::default();
        fake.user(
            "ci-old",
            "/ci/",
            &[
                ("AKIAOLD0000000000001", KeyStatus::Active, 120),
                ("AKIANEW0000000000002", KeyStatus::Inactive, 1),
            ],
        );
        assert_ne!(
            first.observed_sha256,
            plan_of(&fake, &workflow).observed_sha256,
            "a new key makes a saved plan stale"
        );
    }
}
