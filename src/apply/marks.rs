//! Annotating a plan with what the journal and the claims say: rotations in
//! progress, users another rotation holds or has claimed. Plan and apply call
//! the same function.

use std::collections::BTreeMap;

use futures_util::{StreamExt, stream};

use super::journal::{self, RotationRecord};
use super::*;
use crate::plan::{Decision, Plan, UserPlan};
use crate::text::to_seconds;
use crate::workflow::Workflow;
use crate::workflow::graph::{MakeRoomStep, StepGraph};

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
                old_key: Some(record.begin.old_key.clone()),
                ..UserPlan::new(
                    began_in,
                    &record.user,
                    &record.begin.arn,
                    Decision::InProgress,
                    reason,
                )
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
                    resumed_only: true,
                    ..crate::plan::AccountPlan::new(&user.account, None)
                });
            }
        }
        plan.accounts.sort_by(|a, b| a.account.cmp(&b.account));
    }
    plan.recount();
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
            user.block(
                format!(
                    "a rotation of workflow `{owner}` is in progress on this user (begun {})",
                    to_seconds(&record.started)
                ),
                format!(
                    "finish it first: `rekey apply` (or `rekey abort`) with workflow `{owner}`"
                ),
            );
        }
    }
    plan.recount();
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
            user.block(
                format!("held by {holder}"),
                "wait for that rotation to end, or finish it with `rekey apply` of that workflow and state directory; `--force` clears the claim if it is truly abandoned".into(),
            );
        }
    }
    plan.recount();
}

/// What the journal and the claims say of a plan's users, in one place
/// for plan and apply alike: this workflow's rotations in progress are
/// marked (they go on as they began), users another workflow's rotation
/// holds are blocked, and so are users another rotation has claimed
/// (`claims`: the store and this state's location; `None` with `--force`).
pub async fn annotate(
    plan: &mut Plan,
    workflow: &Workflow,
    params: &BTreeMap<String, String>,
    mine: &[RotationRecord],
    others: &[RotationRecord],
    claims: Option<(&dyn claims::ClaimStore, &str)>,
) {
    mark_in_progress(plan, mine, workflow, params);
    if let Some((claims, location)) = claims {
        mark_claimed(plan, claims, location).await;
    }
    mark_held(plan, others);
}

/// The same for `rekey plan`, from every rotation in progress in the
/// state: this workflow's, narrowed as the plan is (`--account`,
/// `--user`), and the others'.
pub async fn annotate_from_state(
    plan: &mut Plan,
    state: &super::state::State,
    in_progress: Vec<RotationRecord>,
    workflow: &Workflow,
    vars: &[(String, String)],
) {
    let (mut mine, others): (Vec<_>, Vec<_>) = in_progress
        .into_iter()
        .partition(|r| r.belongs_to(&workflow.name));
    let caller = plan.account.clone();
    mine.retain(|r| {
        let account = r.account().unwrap_or(&caller);
        (plan.only_accounts.is_empty() || plan.only_accounts.iter().any(|a| a == account))
            && (plan.only_users.is_empty()
                || plan.only_users.iter().any(|u| r.named_by(u, Some(&caller))))
    });
    let params = crate::workflow::params::bind(workflow, vars).unwrap_or_default();
    let location = state.location();
    let claims = Some((state.claims(), location.as_str()));
    annotate(plan, workflow, &params, &mine, &others, claims).await;
    plan.state = state.shared().then(|| state.location());
}
