//! Reading the evidence: the accounts the workflows reach, and in each
//! every user's keys, their last use and the workflow that covers them.

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt, stream};

use super::controls::{self, UNUSED_DAYS};
use super::*;
use crate::plan::PlanRequest;
use crate::plan::accounts::{Member, Reacher};
use crate::plan::decide::age_days;
use crate::plan::select::Selector;
use crate::providers::{AccessKey, CredentialReport, IamUser, ProviderError, Reach};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot tell which account the credentials are for: {0}")]
    Identity(ProviderError),
    #[error("workflow `{0}`: {1}")]
    Workflow(String, String),
}

/// An account to read, and the workflows (by index) that reach it.
struct Reached<'a, P> {
    provider: Result<Member<'a, P>, String>,
    covering: Vec<usize>,
}

/// Reads every account the workflows reach and judges every key there.
pub async fn audit<P: Reach>(
    request: &AuditRequest<'_>,
    base: &P,
) -> Result<AuditReport, AuditError> {
    let caller = base.account_id().await.map_err(AuditError::Identity)?;
    let mut selectors = Vec::new();
    for audited in &request.workflows {
        let failed = |e: String| AuditError::Workflow(audited.workflow.name.clone(), e);
        let params = crate::workflow::params::bind(audited.workflow, &audited.vars)
            .map_err(|e| failed(e.to_string()))?;
        selectors.push(
            crate::plan::selector(audited.workflow, &params).map_err(|e| failed(e.to_string()))?,
        );
    }
    let mut reached: BTreeMap<String, Reached<'_, P>> = BTreeMap::new();
    for (index, audited) in request.workflows.iter().enumerate() {
        let workflow = audited.workflow;
        let Some(fleet) = &workflow.fleet else {
            reached
                .entry(caller.clone())
                .or_insert_with(|| Reached {
                    provider: Ok(Member::Own(base)),
                    covering: Vec::new(),
                })
                .covering
                .push(index);
            continue;
        };
        let failed = |e: String| AuditError::Workflow(workflow.name.clone(), e);
        let ids = crate::plan::accounts::accounts(fleet, base, &[], &[])
            .await
            .map_err(|e| failed(e.to_string()))?;
        let plan_request = PlanRequest {
            workflow,
            workflow_path: audited.path,
            workflow_sha256: String::new(),
            vars: audited.vars.clone(),
            as_of: request.as_of,
            parallelism: request.parallelism,
            users: Vec::new(),
            accounts: Vec::new(),
            credential_report: request.credential_report,
        };
        let reacher =
            Reacher::new(&plan_request, fleet, base, &caller).map_err(|e| failed(e.to_string()))?;
        for id in ids {
            if let Some(known) = reached.get_mut(&id) {
                known.covering.push(index);
                continue;
            }
            let provider = reacher
                .reach(id.clone())
                .await
                .provider
                .map_err(|why| format!("{}; {}", why.reason, why.fix));
            reached.insert(
                id,
                Reached {
                    provider,
                    covering: vec![index],
                },
            );
        }
    }
    let accounts = stream::iter(reached)
        .map(|(account, reach)| {
            let selectors = &selectors;
            let caller = &caller;
            async move {
                let covering: Vec<(&Audited<'_>, &Selector)> = reach
                    .covering
                    .iter()
                    .map(|&i| (&request.workflows[i], &selectors[i]))
                    .collect();
                let mut history = history::of(&covering, &account, caller);
                // What began after the instant judged did not exist then.
                let as_of = rfc3339(request.as_of);
                history.retain(|h| h.began.as_str() <= as_of.as_str());
                let mut audit = match &reach.provider {
                    Ok(provider) => read_account(request, &**provider, &account, &covering)
                        .await
                        .unwrap_or_else(|error| unreadable(&account, error.to_string())),
                    Err(why) => unreadable(&account, why.clone()),
                };
                audit.history = history;
                audit
            }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await;
    Ok(AuditReport {
        as_of: rfc3339(request.as_of),
        generated_at: rfc3339(crate::text::now_in_seconds()),
        deadline: request.deadline().to_string(),
        workflows: request
            .workflows
            .iter()
            .map(|w| w.workflow.name.clone())
            .collect(),
        exemptions_file: request
            .exemptions
            .file
            .as_ref()
            .map(|f| f.display().to_string()),
        expired_exemptions: request
            .exemptions
            .entries
            .iter()
            .filter(|e| request.as_of.date() > e.expires)
            .map(|e| {
                format!(
                    "`{}`{}: its last day was {} ({}): {}",
                    e.user,
                    e.account
                        .as_deref()
                        .map(|a| format!(" in {a}"))
                        .unwrap_or_default(),
                    e.expires,
                    e.at,
                    e.reason
                )
            })
            .collect(),
        unread_journals: request
            .workflows
            .iter()
            .filter_map(|w| {
                w.journal.as_ref().err().map(|error| UnreadJournal {
                    workflow: w.workflow.name.clone(),
                    error: error.clone(),
                })
            })
            .collect(),
        accounts,
    })
}

fn unreadable(account: &str, error: String) -> AccountAudit {
    AccountAudit {
        account: account.to_string(),
        error: Some(error),
        summary: AuditSummary::default(),
        credential_report: None,
        keys: Vec::new(),
        history: Vec::new(),
    }
}

/// One user's keys, tags (when a workflow selects by them) and last uses.
struct UserKeys {
    user: IamUser,
    keys: Vec<(AccessKey, LastUse)>,
    covered_by: Option<String>,
    live_reads: usize,
}

async fn read_account<P: crate::providers::Iam>(
    request: &AuditRequest<'_>,
    provider: &P,
    account: &str,
    covering: &[(&Audited<'_>, &Selector)],
) -> Result<AccountAudit, ProviderError> {
    let users = provider.list_users(None).await?;
    let report = match request.credential_report {
        true => Some(provider.credential_report().await),
        false => None,
    };
    let (report, note) = match report {
        None => (
            None,
            "not asked for (--no-credential-report): every key's last use read live".to_string(),
        ),
        Some(Err(error)) => (
            None,
            format!("could not be had ({error}): every key's last use read live"),
        ),
        Some(Ok(report)) => {
            let note = format!("of {}", rfc3339(report.generated));
            (Some(report), note)
        }
    };
    let read: Vec<UserKeys> = stream::iter(users)
        .map(|user| read_user(request, provider, user, report.as_ref(), covering))
        .buffered(request.parallelism.max(1))
        .try_collect()
        .await?;
    let live: usize = read.iter().map(|u| u.live_reads).sum();
    let note = match &report {
        Some(_) => format!(
            "{note}: key dates and last uses from it; {live} last uses read live (keys it does not list, or shows unused for {UNUSED_DAYS} days or more)"
        ),
        None => note,
    };
    let deadline_days = (request.deadline().as_secs() / 86_400) as i64;
    let mut keys = Vec::new();
    let mut created_later = 0;
    for user in &read {
        let active = user
            .keys
            .iter()
            .filter(|(k, _)| k.status == KeyStatus::Active && k.created <= request.as_of)
            .count();
        let standing = request
            .exemptions
            .find(account, &user.user.name, request.as_of);
        for (key, used) in &user.keys {
            if key.created > request.as_of {
                created_later += 1;
                continue;
            }
            let mut entry =
                KeyEntry::new(&user.user.name, &key.id, key.status, key.created, used.date);
            entry.age_days = age_days(key.created, request.as_of);
            entry.last_used = LastUsed::of(used);
            entry.workflow = user.covered_by.clone();
            entry.results = controls::judge(&entry, active, deadline_days, request.as_of);
            let fails = entry.results.iter().any(|v| v.result == "FAILED");
            entry.exemption = standing.map(|s| s.describe());
            entry.failing = match standing {
                Some(standing) if !standing.counts() => false,
                Some(_) => true,
                None => fails,
            };
            keys.push(entry);
        }
    }
    keys.sort_by(|a, b| {
        (!a.failing, &a.user, &a.access_key_id).cmp(&(!b.failing, &b.user, &b.access_key_id))
    });
    Ok(AccountAudit {
        account: account.to_string(),
        error: None,
        summary: AuditSummary {
            users: read.len(),
            keys: keys.len(),
            created_later,
            failing: keys.iter().filter(|k| k.failing).count(),
        },
        credential_report: Some(format!("credential report {note}")),
        keys,
        history: Vec::new(),
    })
}

async fn read_user<P: crate::providers::Iam>(
    request: &AuditRequest<'_>,
    provider: &P,
    user: IamUser,
    report: Option<&CredentialReport>,
    covering: &[(&Audited<'_>, &Selector)],
) -> Result<UserKeys, ProviderError> {
    let listed = provider.access_keys(&user.name).await?;
    let mut covered_by = None;
    let mut tags = None;
    for (audited, selector) in covering {
        if !selector.admits(&user) {
            continue;
        }
        if selector.needs_tags() {
            if tags.is_none() {
                tags = Some(provider.user_tags(&user.name).await?);
            }
            if !tags.as_ref().is_some_and(|t| selector.admits_tags(t)) {
                continue;
            }
        }
        covered_by = Some(audited.workflow.name.clone());
        break;
    }
    let in_report = report.and_then(|r| r.users.get(&user.name));
    let recent = request.as_of - time::Duration::days(UNUSED_DAYS);
    let mut keys = Vec::with_capacity(listed.len());
    let mut live_reads = 0;
    for key in listed {
        // The report's last use stands when it already passes the key (a
        // use since can only be later: a key used, or created, within 45
        // days) and names the service of a use, or when the key is
        // inactive (no control turns on its use); otherwise it is read
        // live.
        let from_report = in_report
            .and_then(|u| {
                u.keys
                    .iter()
                    .find(|k| k.created.unix_timestamp() == key.created.unix_timestamp())
            })
            .and_then(|k| k.last_used.clone())
            .filter(|used| {
                let passes = used.date.unwrap_or(key.created) >= recent;
                key.status == KeyStatus::Inactive
                    || (passes && (used.date.is_none() || used.service.is_some()))
            });
        let used = match from_report {
            Some(used) => used,
            None => {
                live_reads += 1;
                provider.key_last_used(&key.id).await?
            }
        };
        keys.push((key, used));
    }
    Ok(UserKeys {
        user,
        keys,
        covered_by,
        live_reads,
    })
}
