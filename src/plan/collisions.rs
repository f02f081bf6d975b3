//! Two writes of one thing are refused: each would overwrite the other,
//! and the keys the first held would be deleted.

use std::path::PathBuf;

use super::*;

/// Two writes of one thing, for two users or twice for one, are refused:
/// each would overwrite the other, and the keys the first held would be
/// deleted. Targets are resolved for every selected user (no call is
/// made); one that cannot be resolved is left to fail where it is used.
/// Refuses two writes of one thing across the accounts of a fan-out: a
/// target in a central account named alike for users of two accounts.
pub fn collisions_across(request: &PlanRequest<'_>, users: &[UserPlan]) -> Result<(), PlanError> {
    let context = Context {
        workflow: request.workflow,
        base_dir: crate::workflow::source::workflow_dir(request.workflow_path).to_path_buf(),
        params: params::bind(request.workflow, &request.vars)?,
        account: String::new(),
        as_of: request.as_of,
        rule: decide::DueRule::of(request.workflow, request.as_of),
    };
    let named: Vec<(&str, &str)> = users
        .iter()
        .map(|u| (u.account.as_str(), u.user.as_str()))
        .collect();
    collisions(&context, &named)
}

/// Refuses two writes of one thing: `users` are `(account, name)`; a
/// target names its account's resource (its own `account:` or the user's).
pub(super) fn collisions(context: &Context<'_>, users: &[(&str, &str)]) -> Result<(), PlanError> {
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut files: std::collections::HashMap<PathBuf, (&'static str, String)> =
        std::collections::HashMap::new();
    let fleet = users.iter().any(|(account, _)| *account != context.account);
    for &(account, name) in users {
        let values = Values {
            params: &context.params,
            user: Some(name),
            account: Some(account),
            new_key_id: Some(NEW_KEY_PLACEHOLDER),
        };
        let who = if fleet {
            format!("{account}/{name}")
        } else {
            name.to_string()
        };
        let mut writes: Vec<(String, String)> = Vec::new();
        if let Staging::SsmParameter { name, .. } = &context.workflow.staging
            && let Ok(name) = name.expand(&values)
        {
            let home = if account == context.account {
                String::new()
            } else {
                format!(" in account {account}")
            };
            writes.push((format!("SSM parameter {name}{home}"), "staging".into()));
        }
        for target in &context.workflow.targets {
            let what = format!("target `{}`", target.id);
            let resolve = Resolve {
                values: &values,
                base_dir: &context.base_dir,
                what: &what,
            };
            if let Ok(resolved) = target.kind.resolve(&resolve) {
                // A parameter or secret is its account's; a file or a
                // command is this machine's, whatever the user's account.
                let home = target.account.as_deref().unwrap_or(account);
                writes.extend(resolved.writes().into_iter().map(|w| {
                    let w = if home == context.account || !target.kind.in_account() {
                        w
                    } else {
                        format!("{w} in account {home}")
                    };
                    (w, what.clone())
                }));
                if let Some((path, kind)) = resolved.file() {
                    let here = format!("user {who} ({what})");
                    match files.get(&path) {
                        Some((other, first)) if *other != kind => {
                            return Err(PlanError::Collision {
                                resource: format!(
                                    "file {} (as {other} and as {kind})",
                                    path.display()
                                ),
                                first: first.clone(),
                                second: here,
                            });
                        }
                        Some(_) => {}
                        None => {
                            files.insert(path, (kind, here));
                        }
                    }
                }
            }
        }
        for (resource, item) in writes {
            let here = format!("user {who} ({item})");
            if let Some(first) = seen.get(&resource) {
                return Err(PlanError::Collision {
                    resource,
                    first: first.clone(),
                    second: here,
                });
            }
            seen.insert(resource, here);
        }
    }
    Ok(())
}
