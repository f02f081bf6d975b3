//! What happened to each user ([`Report`]), per account across accounts.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use super::journal::RotationRecord;
use super::rotation::RotationOutcome;
use crate::plan::accounts::Reached;
use crate::workflow::graph::Phase;

/// One account's part of a fanned-out run.
#[derive(Debug)]
pub struct AccountReport {
    pub account: String,
    /// Why nothing was done there: it could not be reached.
    pub error: Option<String>,
    pub outcomes: Vec<(String, RotationOutcome)>,
}

impl AccountReport {
    pub(super) fn unreachable<P>(
        reach: &Reached<'_, P>,
        why: &crate::plan::accounts::Unreachable,
        in_progress: &[RotationRecord],
    ) -> Self {
        AccountReport {
            account: reach.account.clone(),
            error: Some(format!("{}; {}", why.reason, why.fix)),
            outcomes: in_progress
                .iter()
                .map(|r| {
                    (
                        r.user.clone(),
                        RotationOutcome::Failed {
                            step: "reach the account".into(),
                            error: why.reason.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// What happened to each user, for the report and the exit code.
#[derive(Debug, Default)]
pub struct Report {
    /// Per user (`ACCOUNT/NAME` across accounts).
    pub outcomes: Vec<(String, RotationOutcome)>,
    pub phase_times: BTreeMap<Phase, StdDuration>,
    /// Across accounts: each account's outcomes, or why it was not reached.
    pub accounts: Vec<AccountReport>,
    /// The signal that asked the run to stop, if one did (rotations not
    /// yet begun then were left for the next apply).
    pub signal: Option<i32>,
}

/// How a run ended overall, the worst of what happened winning: a signal,
/// then an error, a failed verification, a pause. The command line turns
/// it into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Done,
    Paused,
    VerifyFailed,
    Failed,
    /// A signal asked the run to stop.
    Signalled(i32),
}

impl Report {
    /// Done; an error; a verification failed; paused: the worst wins.
    pub fn ending(&self) -> Ending {
        let any = |f: fn(&RotationOutcome) -> bool| self.outcomes.iter().any(|(_, o)| f(o));
        let signal = self
            .outcomes
            .iter()
            .find_map(|(_, o)| match o {
                RotationOutcome::Interrupted { signal, .. } => Some(*signal),
                _ => None,
            })
            .or(self.signal);
        if let Some(signal) = signal {
            Ending::Signalled(signal)
        } else if any(|o| matches!(o, RotationOutcome::Failed { .. }))
            || self.accounts.iter().any(|a| a.error.is_some())
        {
            Ending::Failed
        } else if any(|o| {
            matches!(
                o,
                RotationOutcome::RolledBack { .. } | RotationOutcome::Halted { .. }
            )
        }) {
            Ending::VerifyFailed
        } else if any(|o| matches!(o, RotationOutcome::Paused { .. })) {
            Ending::Paused
        } else {
            Ending::Done
        }
    }

    /// For `abort`: done when every rotation is rolled back.
    pub fn abort_ending(&self) -> Ending {
        match self.ending() {
            Ending::VerifyFailed
                if self
                    .outcomes
                    .iter()
                    .all(|(_, o)| matches!(o, RotationOutcome::RolledBack { .. })) =>
            {
                Ending::Done
            }
            ending => ending,
        }
    }
}
