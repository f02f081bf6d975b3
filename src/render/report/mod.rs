//! `rekey report`'s formats: a text table for the terminal, JSON (the
//! document as is), CSV (one row per key and control), Markdown, and a
//! self-contained HTML page ([`html`]). Key ids appear whole, as evidence
//! must; nothing here ever held a secret.

pub mod html;

use std::fmt::Write as _;

use crate::audit::controls::CONTROLS;
use crate::audit::history::HistoryEntry;
use crate::audit::{AccountAudit, AuditReport, KeyEntry};

pub fn json(report: &AuditReport) -> String {
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

/// The headline: when, how many accounts, keys and failures.
fn headline(report: &AuditReport) -> String {
    let keys: usize = report.accounts.iter().map(|a| a.summary.keys).sum();
    let failing: usize = report.accounts.iter().map(|a| a.summary.failing).sum();
    let unread = report.accounts.iter().filter(|a| a.error.is_some()).count();
    let unread = match unread {
        0 => String::new(),
        n => format!(", {n} not read"),
    };
    format!(
        "Access keys as of {}: {} account(s){unread}, {keys} keys, {failing} failing (deadline {}; workflows: {})",
        report.as_of,
        report.accounts.len(),
        report.deadline,
        report.workflows.join(", ")
    )
}

/// What the report could not judge or found wrong beyond the keys:
/// journals it could not read, exemptions past their last day.
fn problems(report: &AuditReport) -> Vec<String> {
    let journals = report.unread_journals.iter().map(|u| {
        format!(
            "the journal of workflow `{}` could not be read, so its history is missing: {}",
            u.workflow, u.error
        )
    });
    let expired = report
        .expired_exemptions
        .iter()
        .map(|e| format!("expired exemption {e}: renew it, or remove it and rotate"));
    journals.chain(expired).collect()
}

/// Notes on one account: the credential report, keys too new to judge.
fn notes(account: &AccountAudit) -> Vec<String> {
    let mut notes: Vec<String> = account.credential_report.iter().cloned().collect();
    if account.summary.created_later > 0 {
        notes.push(format!(
            "{} key(s) created after as_of are left out: they did not exist then",
            account.summary.created_later
        ));
    }
    notes
}

/// What a key's three results are, in the controls' order.
fn results(key: &KeyEntry) -> Vec<&str> {
    key.results.iter().map(|v| v.result.as_str()).collect()
}

fn last_used(key: &KeyEntry) -> String {
    match &key.last_used {
        None => "never".into(),
        Some(used) => {
            let date = used.date.get(..10).unwrap_or(&used.date);
            let mut text = date.to_string();
            for part in [&used.service, &used.region].into_iter().flatten() {
                text.push(' ');
                text.push_str(part);
            }
            text
        }
    }
}

/// Why a key fails (its failed controls' reasons, or its exemption).
fn why(key: &KeyEntry) -> String {
    let failed: Vec<String> = key
        .results
        .iter()
        .filter(|v| v.result == "FAILED")
        .map(|v| format!("{}: {}", v.control, v.reason))
        .collect();
    let mut parts = failed;
    if let Some(exemption) = &key.exemption {
        parts.push(exemption.clone());
    }
    parts.join("; ")
}

fn history_line(entry: &HistoryEntry) -> String {
    let mut steps = Vec::new();
    if let Some(at) = &entry.created {
        steps.push(format!(
            "created {} at {at}",
            entry.new_key.as_deref().unwrap_or("?")
        ));
    }
    if !entry.distributed.is_empty() {
        let to: Vec<&str> = entry.distributed.iter().map(|e| e.what.as_str()).collect();
        steps.push(format!("sent to {}", to.join(", ")));
    }
    if !entry.verified.is_empty() {
        let by: Vec<&str> = entry.verified.iter().map(|e| e.what.as_str()).collect();
        steps.push(format!("verified by {}", by.join(", ")));
    }
    if let Some(at) = &entry.disabled {
        steps.push(format!("{} disabled at {at}", entry.old_key));
    }
    if let Some(at) = &entry.deleted {
        steps.push(format!("deleted at {at}"));
    }
    let runners: Vec<String> = entry.runners.iter().map(runner).collect();
    format!(
        "{} {} ({}): {}; {}{}",
        entry.began,
        entry.user,
        entry.workflow,
        entry.outcome,
        steps.join("; "),
        if runners.is_empty() {
            String::new()
        } else {
            format!("; run by {}", runners.join(", "))
        }
    )
}

fn runner(runner: &crate::apply::journal::Runner) -> String {
    match &runner.job {
        Some(job) => format!("{} pid {} ({job})", runner.host, runner.pid),
        None => format!("{} pid {}", runner.host, runner.pid),
    }
}

fn account_line(account: &AccountAudit) -> String {
    match &account.error {
        Some(error) => format!("Account {}: not read: {error}", account.account),
        None => format!(
            "Account {}: {} users, {} keys, {} failing",
            account.account, account.summary.users, account.summary.keys, account.summary.failing
        ),
    }
}

/// The terminal's table.
pub fn text(report: &AuditReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", headline(report));
    for problem in problems(report) {
        let _ = writeln!(out, "✗ {problem}");
    }
    if !problems(report).is_empty() {
        out.push('\n');
    }
    for account in &report.accounts {
        let _ = writeln!(out, "{}", account_line(account));
        for note in notes(account) {
            let _ = writeln!(out, "  ({note})");
        }
        let mut rows = vec![vec![
            String::new(),
            "USER".to_string(),
            "ACCESS KEY ID".into(),
            "STATUS".into(),
            "AGE".into(),
            "LAST USED".into(),
            "WORKFLOW".into(),
        ]];
        rows[0].extend(CONTROLS.iter().map(|c| c.id.to_string()));
        rows[0].push("WHY".into());
        for key in &account.keys {
            let mut row = vec![
                if key.failing { "✗" } else { "✓" }.to_string(),
                key.user.clone(),
                key.access_key_id.clone(),
                key.status.to_string(),
                format!("{}d", key.age_days),
                last_used(key),
                key.workflow.clone().unwrap_or_else(|| "(none)".into()),
            ];
            row.extend(results(key).iter().map(|r| r.to_string()));
            row.push(why(key));
            rows.push(row);
        }
        if account.keys.is_empty() && account.error.is_none() {
            let _ = writeln!(out, "  no access keys");
        } else if !account.keys.is_empty() {
            out.push_str(&aligned(&rows));
        }
        if !account.history.is_empty() {
            let _ = writeln!(out, "  History:");
            for entry in &account.history {
                let _ = writeln!(out, "    {}", history_line(entry));
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", legend());
    out
}

/// Which CIS number each control is, per benchmark version.
fn legend() -> String {
    let lines: Vec<String> = CONTROLS
        .iter()
        .map(|c| format!("{} ({}): CIS {}", c.id, c.title, c.cis_numbers().join(", ")))
        .collect();
    format!("Controls:\n  {}", lines.join("\n  "))
}

fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            line.push(' ');
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(pad + 1));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One row per key and control.
pub fn csv(report: &AuditReport) -> String {
    let mut out = String::from(
        "account,user,access_key_id,status,created,age_days,last_used_date,last_used_service,last_used_region,workflow,exemption,failing,control,cis,result,reason\n",
    );
    for account in &report.accounts {
        for key in &account.keys {
            for verdict in &key.results {
                let used = key.last_used.as_ref();
                let fields = [
                    account.account.clone(),
                    key.user.clone(),
                    key.access_key_id.clone(),
                    key.status.to_string(),
                    key.created.clone(),
                    key.age_days.to_string(),
                    used.map(|u| u.date.clone()).unwrap_or_default(),
                    used.and_then(|u| u.service.clone()).unwrap_or_default(),
                    used.and_then(|u| u.region.clone()).unwrap_or_default(),
                    key.workflow.clone().unwrap_or_default(),
                    key.exemption.clone().unwrap_or_default(),
                    key.failing.to_string(),
                    verdict.control.clone(),
                    verdict.cis.join("; "),
                    verdict.result.clone(),
                    verdict.reason.clone(),
                ];
                let cells: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            }
        }
    }
    out
}

fn csv_field(field: &str) -> String {
    // A leading =, +, - or @ would be a formula to a spreadsheet.
    let field = if field.starts_with(['=', '+', '-', '@']) {
        format!("'{field}")
    } else {
        field.to_string()
    };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

/// For a pull request or a ticket.
pub fn markdown(report: &AuditReport) -> String {
    // Markdown renders inline HTML: escape it, and the table's pipes.
    let cell = |text: &str| html::escape(text).replace('|', "\\|").replace('\n', " ");
    let mut out = format!("# Access key report\n\n{}\n\n", cell(&headline(report)));
    for problem in problems(report) {
        let _ = writeln!(out, "- **✗** {}", cell(&problem));
    }
    for account in &report.accounts {
        let _ = writeln!(out, "## {}\n", cell(&account_line(account)));
        for note in notes(account) {
            let _ = writeln!(out, "_{}_\n", cell(&note));
        }
        if !account.keys.is_empty() {
            let ids: Vec<&str> = CONTROLS.iter().map(|c| c.id).collect();
            let _ = writeln!(
                out,
                "| | user | access key id | status | age | last used | workflow | {} | why |",
                ids.join(" | ")
            );
            let _ = writeln!(out, "|{}", "---|".repeat(8 + ids.len()));
            for key in &account.keys {
                let _ = writeln!(
                    out,
                    "| {} | {} | `{}` | {} | {}d | {} | {} | {} | {} |",
                    if key.failing { "✗" } else { "✓" },
                    cell(&key.user),
                    key.access_key_id,
                    key.status,
                    key.age_days,
                    cell(&last_used(key)),
                    cell(key.workflow.as_deref().unwrap_or("(none)")),
                    results(key).join(" | "),
                    cell(&why(key))
                );
            }
            out.push('\n');
        }
        if !account.history.is_empty() {
            let _ = writeln!(out, "### History\n");
            for entry in &account.history {
                let _ = writeln!(out, "- {}", cell(&history_line(entry)));
            }
            out.push('\n');
        }
    }
    let _ = writeln!(out, "```\n{}\n```", legend());
    out
}
