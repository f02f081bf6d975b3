//! `rekey plan`'s human output: per user the decision, the keys, the steps
//! in order and a diff of every target, then one summary line.
//!
//! Secrets cannot appear: a target's value is drawn from its key id alone,
//! with `(sensitive)` where the secret goes. Key ids are shortened
//! (`AKIA…WXYZ`); `--json` has them whole.

use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

use super::style::Style;
use crate::plan::{
    Decision, KeyView, Left, NEW_KEY_PLACEHOLDER, Plan, ReportUse, Summary, TargetView, UserPlan,
};
use crate::text::short_id;
use crate::workflow::vocabulary::SecretFormat;

/// How many unchanged users are listed one by one before they are counted.
const UNCHANGED_LISTED: usize = 20;

pub fn human(plan: &Plan, style: Style, list_all_unchanged: bool) -> String {
    let mut out = String::new();
    let region = plan
        .region
        .as_deref()
        .map(|r| format!(", region {r}"))
        .unwrap_or_default();
    let endpoint = plan
        .endpoint
        .as_deref()
        .map(|e| format!(", endpoint {e}"))
        .unwrap_or_default();
    let account = if plan.accounts.is_empty() {
        format!("account {}", plan.account)
    } else {
        format!(
            "{} {}, run from account {}",
            plan.accounts.len(),
            if plan.accounts.len() == 1 {
                "account"
            } else {
                "accounts"
            },
            plan.account
        )
    };
    let _ = writeln!(
        out,
        "{} {} ({}), {account}{region}{endpoint}, keys judged as of {}\n",
        style.bold("Workflow"),
        plan.workflow.name,
        plan.workflow.path,
        plan.as_of
    );
    if !plan.vars.is_empty() {
        let vars: Vec<String> = plan.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "Vars: {}\n", vars.join(", "));
    }
    if plan.accounts.is_empty() {
        let users: Vec<&UserPlan> = plan.users.iter().collect();
        users_section(
            &mut out,
            &users,
            plan.credential_report.as_ref(),
            style,
            list_all_unchanged,
            false,
        );
    }
    for account in &plan.accounts {
        let users: Vec<&UserPlan> = plan
            .users
            .iter()
            .filter(|u| u.account == account.account)
            .collect();
        let mut role = match account.role.as_deref() {
            Some(role) => format!(" through {role}"),
            None if account.account == plan.account => " (rekey's own credentials)".into(),
            None => String::new(),
        };
        if account.resumed_only {
            role.push_str(" (no longer selected: only its rotations in progress go on)");
        }
        match &account.error {
            Some(error) => {
                let _ = writeln!(
                    out,
                    "{} {} {}{role}: not planned: {error}
    fix: {}
",
                    style.blocked("!"),
                    style.bold("Account"),
                    account.account,
                    account.fix.as_deref().unwrap_or("")
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{} {}{role}: {}
",
                    style.bold("Account"),
                    account.account,
                    summary_text(&account.summary)
                );
                users_section(
                    &mut out,
                    &users,
                    account.credential_report.as_ref(),
                    style,
                    list_all_unchanged,
                    true,
                );
            }
        }
    }
    for name in &plan.unmatched {
        let _ = writeln!(
            out,
            "{} select.users names `{name}`, but there is no such IAM user (under `path_prefix`, if set): a typo, or a user deleted or moved?\n",
            style.blocked("!")
        );
    }
    if plan.users.is_empty() && plan.accounts.iter().all(|a| a.error.is_none()) {
        let _ = writeln!(out, "No IAM user matches `select`.\n");
    }
    let unreachable = plan.accounts.iter().filter(|a| a.error.is_some()).count();
    let accounts = match (plan.accounts.len(), unreachable) {
        (0 | 1, 0) if plan.accounts.iter().all(|a| a.role.is_none()) => String::new(),
        (n, 0) => format!(" in {n} {}", if n == 1 { "account" } else { "accounts" }),
        (n, u) => format!(" in {} of {n} accounts; {u} not planned", n - u),
    };
    let _ = writeln!(
        out,
        "{} {}{accounts}.",
        style.bold("Plan:"),
        summary_text(&plan.summary)
    );
    if let Some(window) = plan.window.as_ref().filter(|w| !w.open) {
        let _ = writeln!(
            out,
            "{} The change window is closed: it opens next at {}. Apply changes nothing before then.",
            style.blocked("!"),
            window.next_open
        );
    }
    match (&plan.next_run, &plan.next_run_in_window) {
        (Some(run), Some(inside)) => {
            let _ = writeln!(
                out,
                "Next scheduled run: {run}, outside the window (it cannot act); the first inside it: {inside}."
            );
        }
        (Some(run), None) => {
            let _ = writeln!(out, "Next scheduled run: {run}.");
        }
        _ => {}
    }
    out.push_str(&left(&plan.left, !plan.accounts.is_empty(), style));
    out
}

/// What a run leaves due: those that count (exit 5), then the exempt.
/// `many`: across accounts, each is named `ACCOUNT/NAME`.
pub fn left(left: &[Left], many: bool, style: Style) -> String {
    let mut out = String::new();
    let who = |l: &Left| match l.account.as_str() {
        account if many && !account.is_empty() => format!("{account}/{}", l.user),
        _ => l.user.clone(),
    };
    let counted: Vec<&Left> = left.iter().filter(|l| l.counts).collect();
    if !counted.is_empty() {
        let _ = writeln!(
            out,
            "{} {} due left as {}:",
            style.blocked("!"),
            counted.len(),
            if counted.len() == 1 {
                "it is"
            } else {
                "they are"
            }
        );
        for l in &counted {
            let exemption = l
                .exemption
                .as_deref()
                .map(|e| format!(" [{e}]"))
                .unwrap_or_default();
            let _ = writeln!(out, "    {}: {}{exemption}", who(l), l.why);
        }
    }
    for l in left.iter().filter(|l| !l.counts) {
        let _ = writeln!(
            out,
            "  exempt, not counted: {}: {} [{}]",
            who(l),
            l.why,
            l.exemption.as_deref().unwrap_or_default()
        );
    }
    out
}

fn summary_text(summary: &Summary) -> String {
    let in_progress = if summary.in_progress > 0 {
        format!(", {} in progress", summary.in_progress)
    } else {
        String::new()
    };
    format!(
        "{} to rotate{in_progress}, {} unchanged, {} blocked",
        summary.rotate, summary.unchanged, summary.blocked
    )
}

/// One account's users (all of a single-account plan), and what its
/// credential report said.
fn users_section(
    out: &mut String,
    users: &[&UserPlan],
    report: Option<&ReportUse>,
    style: Style,
    list_all_unchanged: bool,
    many_accounts: bool,
) {
    for user in users
        .iter()
        .copied()
        .filter(|u| u.decision == Decision::InProgress)
    {
        let _ = writeln!(
            out,
            "{} {}: {}\n",
            style.changed(">"),
            style.bold(&user.user),
            user.reason
        );
    }
    for user in users
        .iter()
        .copied()
        .filter(|u| u.decision == Decision::Rotate)
    {
        rotation(out, user, style);
    }
    for user in users
        .iter()
        .copied()
        .filter(|u| u.decision == Decision::Blocked)
    {
        blocked(out, user, style);
    }
    let unchanged: Vec<&UserPlan> = users
        .iter()
        .copied()
        .filter(|u| u.decision == Decision::Unchanged)
        .collect();
    let listed = match (list_all_unchanged, many_accounts) {
        (true, _) => unchanged.len(),
        // Across accounts, each account's line already counts them.
        (false, true) => 0,
        (false, false) => UNCHANGED_LISTED,
    };
    for user in unchanged.iter().take(listed) {
        let _ = writeln!(out, "  {}: unchanged, {}", user.user, user.reason);
    }
    if unchanged.len() > listed && listed == 0 {
        let _ = writeln!(
            out,
            "  {} unchanged (rekey plan -v lists every one)",
            unchanged.len()
        );
    } else if unchanged.len() > listed {
        let _ = writeln!(
            out,
            "  ... and {} more unchanged (rekey plan -v lists every one)",
            unchanged.len() - listed
        );
    }
    if !unchanged.is_empty() {
        out.push('\n');
    }
    if let Some(report) = report {
        if let Some(outside) = report.outside.filter(|n| *n > 0) {
            let _ = writeln!(
                out,
                "{} {outside} {} outside this workflow {} keys older than {} (IAM credential report{})\n",
                style.blocked("!"),
                if outside == 1 { "user" } else { "users" },
                if outside == 1 { "holds" } else { "hold" },
                report.max_key_age,
                report
                    .path_prefix
                    .as_deref()
                    .map(|p| format!(", under {p}"))
                    .unwrap_or_default()
            );
        }
        if list_all_unchanged {
            let _ = match (&report.note, report.used) {
                (Some(note), _) => writeln!(out, "Note: {note}.\n"),
                (None, true) => writeln!(
                    out,
                    "Credential report of {}: {} selected users read, {} shown by it to have no key due.\n",
                    report.generated.as_deref().unwrap_or("?"),
                    report.read,
                    report.skipped
                ),
                (None, false) => Ok(()),
            };
        }
    }
}

fn rotation(out: &mut String, user: &UserPlan, style: Style) {
    let _ = writeln!(
        out,
        "{} {}: rotate, {}",
        style.changed("~"),
        style.bold(&user.user),
        user.reason
    );
    keys(out, &user.keys);
    if !user.steps.is_empty() {
        let _ = writeln!(out, "    steps:");
    }
    let width = user
        .steps
        .iter()
        .map(|s| s.id.chars().count())
        .max()
        .unwrap_or(0);
    for (i, step) in user.steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "      {:>2}. {:<width$}  {}",
            i + 1,
            step.id,
            step.detail
        );
    }
    if !user.targets.is_empty() {
        let _ = writeln!(out, "    targets:");
    }
    for target in &user.targets {
        target_diff(out, target, user.old_key.as_deref(), style);
    }
    out.push('\n');
}

fn blocked(out: &mut String, user: &UserPlan, style: Style) {
    let _ = writeln!(
        out,
        "{} {}: blocked, {}",
        style.blocked("!"),
        style.bold(&user.user),
        user.reason
    );
    keys(out, &user.keys);
    if let Some(fix) = &user.fix {
        let _ = writeln!(out, "    fix: {fix}");
    }
    out.push('\n');
}

fn keys(out: &mut String, keys: &[KeyView]) {
    let _ = writeln!(out, "    keys:");
    for key in keys {
        let used = match &key.last_used {
            None => String::new(),
            Some(used) => match &used.date {
                None => ", never used".to_string(),
                Some(date) => {
                    let place = match (&used.service, &used.region) {
                        (Some(service), Some(region)) => format!(" by {service} in {region}"),
                        (Some(service), None) => format!(" by {service}"),
                        _ => String::new(),
                    };
                    format!(", last used {date}{place}")
                }
            },
        };
        let created = key.created.split('T').next().unwrap_or(&key.created);
        let _ = writeln!(
            out,
            "      {}  {:<8}  created {created}, {}d old{used}",
            short_id(&key.id),
            key.status.to_string(),
            key.age_days
        );
    }
}

fn target_diff(out: &mut String, target: &TargetView, old_key: Option<&str>, style: Style) {
    let Some(before) = &target.before else {
        let _ = writeln!(
            out,
            "      {} {} ({}): runs {}",
            style.changed("~"),
            target.id,
            target.kind,
            target.resource
        );
        return;
    };
    let (mark, note) = if !before.exists {
        (style.added("+"), "will be created".to_string())
    } else {
        let version = before
            .version
            .as_deref()
            .map(|v| format!("version {v}, "))
            .unwrap_or_default();
        let holds = match (&before.key_id, old_key) {
            (Some(held), Some(old)) if held == old => "holds the old key".to_string(),
            (Some(held), _) => format!("holds {}, not the old key", short_id(held)),
            (None, _) => "holds a value rekey cannot read".to_string(),
        };
        (style.changed("~"), format!("{version}{holds}"))
    };
    let account = target
        .account
        .as_deref()
        .map(|a| format!(" in account {a}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "      {mark} {} ({}) {}{account}: {note}",
        target.id, target.kind, target.resource
    );
    if before.secure == Some(true) && target.format == Some(SecretFormat::IdOnly) {
        let _ = writeln!(
            out,
            "        {} it is a SecureString now, and `format: id_only` writes a plain String: its type changes",
            style.blocked("!")
        );
    }
    let profile = target
        .resource
        .rsplit_once(" [")
        .map(|(_, p)| p.trim_end_matches(']').to_string());
    // A template has no fixed layout: the note line says it all.
    let Some(format) = target.format else {
        return;
    };
    let old_text = if !before.exists {
        String::new()
    } else {
        match &before.key_id {
            Some(id) => value_lines(format, &short_id(id), profile.as_deref()),
            None => "(sensitive)\n".to_string(),
        }
    };
    let new_text = value_lines(format, NEW_KEY_PLACEHOLDER, profile.as_deref());
    for change in TextDiff::from_lines(&old_text, &new_text).iter_all_changes() {
        let line = change.value().trim_end_matches('\n');
        let _ = match change.tag() {
            ChangeTag::Delete => writeln!(out, "          {}", style.removed(&format!("- {line}"))),
            ChangeTag::Insert => writeln!(out, "          {}", style.added(&format!("+ {line}"))),
            ChangeTag::Equal => writeln!(out, "            {line}"),
        };
    }
}

/// A target's value as it will be laid out, with `key_id` shown and the
/// secret as `(sensitive)`.
fn value_lines(format: SecretFormat, key_id: &str, profile: Option<&str>) -> String {
    match format {
        SecretFormat::Json => format!(
            "{{\n  \"AccessKeyId\": \"{key_id}\",\n  \"SecretAccessKey\": \"(sensitive)\"\n}}\n"
        ),
        SecretFormat::Env => {
            format!("AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY=(sensitive)\n")
        }
        SecretFormat::Credentials => format!(
            "[{}]\naws_access_key_id = {key_id}\naws_secret_access_key = (sensitive)\n",
            profile.unwrap_or("default")
        ),
        SecretFormat::IdOnly => format!("{key_id}\n"),
    }
}

/// The plan document as pretty JSON.
pub fn json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).expect("plain data");
    text.push('\n');
    text
}

/// What a plan observed, one line per key and target, for the stale-plan diff.
fn observed_lines(plan: &Plan) -> String {
    let mut out = String::new();
    for user in &plan.users {
        let who = if plan.accounts.is_empty() {
            user.user.clone()
        } else {
            format!("{}/{}", user.account, user.user)
        };
        for key in &user.keys {
            let _ = writeln!(
                out,
                "{who}: key {} {} created {}",
                key.id, key.status, key.created
            );
        }
        for target in &user.targets {
            let state = match &target.before {
                None => "not observable".to_string(),
                Some(s) if !s.exists => "absent".to_string(),
                Some(s) => format!(
                    "version {} holds {}",
                    s.version.as_deref().unwrap_or("-"),
                    s.key_id.as_deref().unwrap_or("an unreadable value")
                ),
            };
            let _ = writeln!(
                out,
                "{who}: target {} {}: {state}",
                target.id, target.resource
            );
        }
    }
    out
}

/// A unified diff of what a saved plan observed and what is there now.
pub fn stale_diff(saved: &Plan, fresh: &Plan) -> String {
    let (before, after) = (observed_lines(saved), observed_lines(fresh));
    TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(1)
        .header("when planned", "now")
        .to_string()
}
