//! `rekey report`: the workflows checked, their journals read, every key
//! of every account they reach judged, and the report printed or saved.

use std::process::ExitCode;

use super::args::{Global, ReportArgs, ReportFormat};
use super::*;
use crate::audit::{AuditRequest, Audited};
use crate::providers::aws::Aws;
use crate::workflow;

pub(super) fn report(global: &Global, args: ReportArgs) -> ExitCode {
    if let Err(error) = check_profile(global) {
        return fail(error);
    }
    let exemptions = match exemptions(args.exemptions.as_deref()) {
        Ok(exemptions) => exemptions,
        Err(error) => return refused(&error),
    };
    let choice = state_choice(global);
    let mut checked = Vec::new();
    for path in &args.workflows {
        match workflow::check(path) {
            Ok(mut one) => {
                choice.adjust(&mut one.workflow);
                checked.push((path, one));
            }
            Err(error) => {
                eprint!("{}", error_text(&error));
                return Exit::Error.into();
            }
        }
    }
    let as_of = args
        .as_of
        .map(|t| t.replace_nanosecond(0).unwrap_or(t))
        .unwrap_or_else(crate::text::now_in_seconds);
    let result = runtime().block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let mut workflows = Vec::new();
        for (path, one) in &checked {
            let journal = match choice.to_read(path, &one.workflow, &aws) {
                Ok(state) => state
                    .read()
                    .await
                    .map(|entries| (state.location(), entries))
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            workflows.push(Audited {
                workflow: &one.workflow,
                path,
                vars: args.vars.vars.clone(),
                journal,
            });
        }
        let request = AuditRequest {
            workflows,
            as_of,
            exemptions: &exemptions,
            credential_report: !args.no_credential_report,
            parallelism: usize::from(args.parallelism),
        };
        let result = crate::audit::audit(&request, &aws).await;
        if global.verbose > 0 {
            eprintln!(
                "API calls: {}",
                render::apply::calls_line(&aws.calls.by_service())
            );
        }
        result
    });
    let report = match result {
        Ok(report) => report,
        Err(error) => return fail(format!("cannot report: {error}")),
    };
    let text = match args.format {
        ReportFormat::Text => render::report::text(&report),
        ReportFormat::Json => render::report::json(&report),
        ReportFormat::Csv => render::report::csv(&report),
        ReportFormat::Markdown => render::report::markdown(&report),
        ReportFormat::Html => render::report::html::html(&report),
    };
    match &args.out {
        Some(path) => {
            if let Err(error) = write_out(path, text.as_bytes()) {
                return fail(format!(
                    "cannot write the report to {}: {error}",
                    path.display()
                ));
            }
            let failing: usize = report.accounts.iter().map(|a| a.summary.failing).sum();
            let keys: usize = report.accounts.iter().map(|a| a.summary.keys).sum();
            let expired = match report.expired_exemptions.len() {
                0 => String::new(),
                n => format!(", {n} expired exemption(s)"),
            };
            eprintln!(
                "Wrote the report to {}: {keys} keys in {} account(s), {failing} failing{expired}.",
                path.display(),
                report.accounts.len()
            );
        }
        None => print!("{text}"),
    }
    for journal in &report.unread_journals {
        eprintln!(
            "error: the journal of workflow `{}` cannot be read, so its history is missing: {}",
            journal.workflow, journal.error
        );
    }
    let unread: Vec<&str> = report
        .accounts
        .iter()
        .filter(|a| a.error.is_some())
        .map(|a| a.account.as_str())
        .collect();
    if !unread.is_empty() {
        eprintln!(
            "error: {} account(s) could not be read ({}): their keys are not judged",
            unread.len(),
            unread.join(", ")
        );
    }
    if !unread.is_empty() || !report.unread_journals.is_empty() {
        Exit::Error.into()
    } else if report.fails() {
        Exit::LeftDue.into()
    } else {
        Exit::Success.into()
    }
}
