//! Apply: carry out a plan, crash-safe and resumable.
//!
//! The state directory (default `.rekey` next to the workflow) holds the
//! lock, the journal, staged secrets (0600 files, when staging is local) and
//! 0600 backups of credentials files. One apply runs per state directory.
//! Rotations left in progress by an earlier apply (crashed, paused, halted)
//! are resumed first; then the plan's new rotations begin. Each rotation is
//! run by [`rotation::Runner`], `policy.concurrency` users at once.

pub mod journal;
pub mod lock;
pub mod rotation;
pub mod staging;
pub mod window;

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use futures_util::{StreamExt, stream};

use crate::graph::Phase;
use crate::plan::decide::short_id;
use crate::plan::{Decision, Plan};
use journal::RotationRecord;
use rotation::{Outcome, Provider, Runner};

/// What happened to each user, for the report and the exit code.
#[derive(Debug, Default)]
pub struct Report {
    pub outcomes: Vec<(String, Outcome)>,
    pub phase_times: BTreeMap<Phase, StdDuration>,
}

impl Report {
    /// 0 done, 1 an error, 3 a verification failed, 4 paused.
    pub fn exit_code(&self) -> u8 {
        let any = |f: fn(&Outcome) -> bool| self.outcomes.iter().any(|(_, o)| f(o));
        if any(|o| matches!(o, Outcome::Failed { .. })) {
            1
        } else if any(|o| matches!(o, Outcome::RolledBack { .. } | Outcome::Halted { .. })) {
            3
        } else if any(|o| matches!(o, Outcome::Paused { .. })) {
            4
        } else {
            0
        }
    }
}

/// Marks the plan's users whose rotation is already in progress: apply
/// resumes those instead of judging them afresh (mid-rotation, a user has
/// two keys, which a fresh plan would call blocked).
pub fn mark_resumed(plan: &mut Plan, in_progress: &[RotationRecord]) {
    for record in in_progress {
        let at = record
            .last
            .as_ref()
            .and_then(|e| e.step.clone())
            .unwrap_or_else(|| "the start".into());
        let reason = format!(
            "resuming the rotation begun {} (last step: {at})",
            to_seconds(&record.started)
        );
        match plan.users.iter_mut().find(|u| u.user == record.user) {
            Some(user) => {
                user.decision = Decision::Rotate;
                user.reason = reason;
                user.fix = None;
            }
            None => continue,
        }
    }
    plan.summary.rotate = plan
        .users
        .iter()
        .filter(|u| u.decision == Decision::Rotate)
        .count();
    plan.summary.blocked = plan
        .users
        .iter()
        .filter(|u| u.decision == Decision::Blocked)
        .count();
    plan.summary.unchanged = plan
        .users
        .iter()
        .filter(|u| u.decision == Decision::Unchanged)
        .count();
}

/// Runs every rotation: those in progress, then the plan's new ones.
pub async fn run<P: Provider>(
    runner: &Runner<'_, P>,
    plan: &Plan,
    in_progress: Vec<RotationRecord>,
) -> Report {
    let mut rotations: Vec<Result<RotationRecord, (String, String)>> =
        in_progress.into_iter().map(Ok).collect();
    let resumed: Vec<String> = rotations
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|r| r.user.clone()))
        .collect();
    for user in plan
        .users
        .iter()
        .filter(|u| u.decision == Decision::Rotate && !resumed.contains(&u.user))
    {
        let old_key = user.old_key.clone().unwrap_or_default();
        rotations.push(
            runner
                .begin(&user.user, &user.arn, &old_key, user.make_room.as_deref())
                .map_err(|e| (user.user.clone(), e)),
        );
    }
    let concurrency = runner.workflow.policy.concurrency.max(1) as usize;
    let mut outcomes: Vec<(String, Outcome)> = stream::iter(rotations)
        .map(|rotation| async move {
            match rotation {
                Ok(rotation) => {
                    let user = rotation.user.clone();
                    (user, runner.run(rotation).await)
                }
                Err((user, error)) => (
                    user,
                    Outcome::Failed {
                        step: "begin".into(),
                        error,
                    },
                ),
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    Report {
        outcomes,
        phase_times: runner.timings.lock().expect("timings").clone(),
    }
}

/// The end-of-run report: each user's outcome, time per phase, API calls.
pub fn render_report(report: &Report, calls: &BTreeMap<&'static str, u64>) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("\nApply report:\n");
    for (user, outcome) in &report.outcomes {
        let line = match outcome {
            Outcome::Finished => "rotated: new key in every target, old key deleted".to_string(),
            Outcome::Stopped { after } => {
                format!("stopped after {after} (--until); run apply again to go on")
            }
            Outcome::Paused { until, reason } => {
                format!("paused: {reason}; run apply again after {until}")
            }
            Outcome::RolledBack { reason } => format!("ROLLED BACK: {reason}"),
            Outcome::Halted { reason } => format!(
                "HALTED: {reason}; both keys are left as they are: inspect, then run apply again"
            ),
            Outcome::Failed { step, error } => {
                format!("FAILED at {step}: {error}; run apply again to resume")
            }
        };
        let _ = writeln!(out, "  {user}: {line}");
    }
    if report.outcomes.is_empty() {
        let _ = writeln!(out, "  nothing to do");
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
    let calls: Vec<String> = calls
        .iter()
        .map(|(service, count)| format!("{service} {count}"))
        .collect();
    let _ = writeln!(
        out,
        "API calls: {}",
        if calls.is_empty() {
            "none".to_string()
        } else {
            calls.join(", ")
        }
    );
    out
}

/// An RFC 3339 time without its fraction of a second, for reading.
fn to_seconds(time: &str) -> String {
    match time.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => time.to_string(),
    }
}

/// `rekey status`: where each rotation of the journal stands.
pub fn render_status(records: &[RotationRecord]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if records.is_empty() {
        return "No rotation has run from this state directory.\n".to_string();
    }
    for record in records {
        let last = record.last.as_ref();
        let step = last.and_then(|e| e.step.clone()).unwrap_or_default();
        let state = match (record.ended, last.map(|e| e.event)) {
            (Some(journal::Event::Finished), _) => "done".to_string(),
            (Some(journal::Event::RolledBack), _) => format!(
                "rolled back: {}",
                last.and_then(|e| e.data.get("reason"))
                    .cloned()
                    .unwrap_or_default()
            ),
            (Some(journal::Event::Halted), _) => format!(
                "halted: {}",
                last.and_then(|e| e.data.get("reason"))
                    .cloned()
                    .unwrap_or_default()
            ),
            (_, Some(journal::Event::Paused)) => {
                format!(
                    "paused at {step} until {} ({})",
                    last.and_then(|e| e.data.get("until"))
                        .cloned()
                        .unwrap_or_default(),
                    last.and_then(|e| e.data.get("reason"))
                        .cloned()
                        .unwrap_or_default()
                )
            }
            (_, Some(journal::Event::Failed)) => format!(
                "failed at {step}: {}",
                last.and_then(|e| e.data.get("error"))
                    .cloned()
                    .unwrap_or_default()
            ),
            (_, Some(journal::Event::Intent)) => {
                format!("interrupted during {step} (apply again reconciles it)")
            }
            _ => format!(
                "running or interrupted after {}",
                if step.is_empty() {
                    "its start".into()
                } else {
                    step
                }
            ),
        };
        let new_key = record
            .done
            .get("create")
            .and_then(|d| d.get("new_key"))
            .map(|k| format!(", new key {}", short_id(k)))
            .unwrap_or_default();
        let old_key = record
            .begin
            .get("old_key")
            .map(|k| format!("old key {}", short_id(k)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}: {state}  [{old_key}{new_key}; begun {}]",
            record.user,
            to_seconds(&record.started)
        );
    }
    out
}
