//! Apply's text: the end-of-run report (each user's outcome, time per
//! phase, API calls) and `rekey status` (where each rotation of the journal
//! stands).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::apply::Report;
use crate::apply::journal::{End, Record, RotationRecord};
use crate::apply::rotation::RotationOutcome;
use crate::text::{short_id, to_seconds};

/// The end-of-run report: each user's outcome, time per phase, API calls.
pub fn report(report: &Report, calls: &BTreeMap<&'static str, u64>) -> String {
    let mut out = String::from("\nApply report:\n");
    if report.accounts.is_empty() {
        outcomes(&mut out, &report.outcomes, "  ");
    }
    for account in &report.accounts {
        match &account.error {
            Some(error) => {
                let _ = writeln!(out, "  account {}: NOT REACHED: {error}", account.account);
            }
            None if account.outcomes.is_empty() => {
                let _ = writeln!(out, "  account {}: nothing to do", account.account);
            }
            None => {
                let _ = writeln!(out, "  account {}:", account.account);
            }
        }
        outcomes(&mut out, &account.outcomes, "    ");
    }
    if report.outcomes.is_empty() && report.accounts.is_empty() && report.signal.is_none() {
        let _ = writeln!(out, "  nothing to do");
    }
    if report.signal.is_some() {
        let _ = writeln!(
            out,
            "  stopped by a signal: rotations not yet begun were left for the next apply"
        );
    }
    let phases: Vec<String> = report
        .phase_times
        .iter()
        .map(|(phase, time)| format!("{phase} {:.1}s", time.as_secs_f64()))
        .collect();
    if !phases.is_empty() {
        let _ = writeln!(
            out,
            "Time per phase (summed over users): {}",
            phases.join(", ")
        );
    }
    let _ = writeln!(out, "API calls: {}", calls_line(calls));
    out
}

/// One line per user: what happened, and what to do next.
fn outcomes(out: &mut String, outcomes: &[(String, RotationOutcome)], indent: &str) {
    for (user, outcome) in outcomes {
        let line = match outcome {
            RotationOutcome::Finished => {
                "rotated: new key in every target, old key deleted".to_string()
            }
            RotationOutcome::Stopped { after } => {
                format!("stopped after {after} (--until); run apply again to go on")
            }
            RotationOutcome::Paused { until, reason, .. } => {
                format!("paused: {reason}; run apply again after {until}")
            }
            RotationOutcome::RolledBack { reason } => format!("ROLLED BACK: {reason}"),
            RotationOutcome::Halted { reason } => format!(
                "HALTED: {reason}; both keys are left as they are: inspect, then run apply again"
            ),
            // A runner fenced out leaves the rotation to the one that took
            // over: "run apply again" would be wrong advice there.
            RotationOutcome::Failed { step, error }
                if error.contains("another runner took over") =>
            {
                format!("FAILED at {step}: {error}")
            }
            RotationOutcome::Failed { step, error } => {
                format!("FAILED at {step}: {error}; run apply again to resume")
            }
            RotationOutcome::Interrupted { step, .. } => {
                format!("INTERRUPTED at {step}; run apply again to go on from there")
            }
        };
        let _ = writeln!(out, "{indent}{user}: {line}");
    }
}

/// `iam 12, ssm 4`, or `none`.
pub fn calls_line(calls: &BTreeMap<&'static str, u64>) -> String {
    if calls.is_empty() {
        return "none".to_string();
    }
    let calls: Vec<String> = calls
        .iter()
        .map(|(service, count)| format!("{service} {count}"))
        .collect();
    calls.join(", ")
}

/// `rekey status`: where each rotation of the journal stands.
pub fn status(records: &[RotationRecord]) -> String {
    let mut out = String::new();
    if records.is_empty() {
        return "No rotation has run from this state directory.\n".to_string();
    }
    // Across accounts, grouped by account: a user's name recurs.
    let mut accounts: Vec<&str> = records.iter().filter_map(|r| r.account()).collect();
    accounts.sort();
    accounts.dedup();
    if accounts.len() > 1 {
        for account in accounts {
            let _ = writeln!(out, "account {account}:");
            let mine: Vec<&RotationRecord> = records
                .iter()
                .filter(|r| r.account() == Some(account))
                .collect();
            status_lines(&mut out, &mine, "  ");
        }
        let others: Vec<&RotationRecord> =
            records.iter().filter(|r| r.account().is_none()).collect();
        status_lines(&mut out, &others, "");
        return out;
    }
    let all: Vec<&RotationRecord> = records.iter().collect();
    status_lines(&mut out, &all, "");
    out
}

fn status_lines(out: &mut String, records: &[&RotationRecord], indent: &str) {
    for record in records.iter().copied() {
        let last = record.last.as_ref().map(|e| &e.record);
        let step = match last {
            Some(
                Record::Intent { step, .. }
                | Record::Done { step, .. }
                | Record::Failed { step, .. }
                | Record::Interrupted { step }
                | Record::Paused { step, .. },
            ) => step.to_string(),
            _ => String::new(),
        };
        let state = match (record.ended, last) {
            (Some(End::Finished), _) => "done".to_string(),
            (Some(End::Halted), Some(Record::Halted { reason }))
                if record.rolling_back.is_some() =>
            {
                format!("halted while rolling back: {reason}; apply again finishes the rollback")
            }
            (None, _) if record.rolling_back.is_some() => format!(
                "rolling back ({}); apply again finishes the rollback",
                record.rolling_back.as_deref().unwrap_or_default()
            ),
            (Some(End::RolledBack), Some(Record::RolledBack { reason })) => {
                format!("rolled back: {reason}")
            }
            (Some(End::RolledBack), _) => "rolled back".to_string(),
            (Some(End::Halted), Some(Record::Halted { reason })) => format!("halted: {reason}"),
            (Some(End::Halted), _) => "halted".to_string(),
            (_, Some(Record::Paused { until, reason, .. })) => {
                format!("paused at {step} until {until} ({reason})")
            }
            (_, Some(Record::Failed { error, .. })) => format!("failed at {step}: {error}"),
            (_, Some(Record::RollbackAbandoned { reason })) => format!("halted: {reason}"),
            (_, Some(Record::Interrupted { .. })) => {
                format!("interrupted during {step} (apply again runs it again)")
            }
            (_, Some(Record::Intent { .. })) => {
                format!("interrupted during {step} (apply again reconciles it)")
            }
            _ => format!(
                "stopped after {} (by --until, or its runner is at work or was killed); apply again goes on",
                if step.is_empty() {
                    "its start".into()
                } else {
                    step
                }
            ),
        };
        let new_key = record
            .new_key()
            .map(|k| format!(", new key {}", short_id(k)))
            .unwrap_or_default();
        let old_key = if record.begin.old_key.is_empty() {
            String::new()
        } else {
            format!("old key {}", short_id(&record.begin.old_key))
        };
        let _ = writeln!(
            out,
            "{indent}{}: {state}  [{old_key}{new_key}; begun {}]",
            record.user,
            to_seconds(&record.started)
        );
    }
}
