//! Exit codes: part of the contract with scripts and CI, documented in
//! README.md and `rekey --help`. Every command ends with one of these,
//! and only the command line decides which: the engine returns outcomes
//! ([`Ending`], the plan), mapped here.

use crate::apply::Ending;
use crate::plan::Plan;

/// How a command ended. Usage errors are `Error` (1), not clap's 2, which
/// means "changes".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Done, valid, or nothing to do.
    Success = 0,
    /// An error, or invalid input.
    Error = 1,
    /// `plan --detailed-exitcode`: there are changes.
    Changes = 2,
    /// Apply stopped because a verification failed (rolled back or halted).
    VerifyFailed = 3,
    /// Apply paused (soak or change window): run it again later.
    Paused = 4,
    /// Stopped by SIGINT (Ctrl-C): run it again to go on.
    Interrupted = 130,
    /// Stopped by SIGTERM: run it again to go on.
    Terminated = 143,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

impl Exit {
    /// How an apply ended, as an exit code: a signal's own (130, 143),
    /// then error, failed verification, paused, done.
    pub fn of(ending: Ending) -> Exit {
        match ending {
            Ending::Signalled(signal) if signal == libc::SIGTERM => Exit::Terminated,
            Ending::Signalled(_) => Exit::Interrupted,
            Ending::Failed => Exit::Error,
            Ending::VerifyFailed => Exit::VerifyFailed,
            Ending::Paused => Exit::Paused,
            Ending::Done => Exit::Success,
        }
    }

    /// How a plan ended: an account that could not be planned is an
    /// error; with `--detailed-exitcode`, rotations to begin or resume are
    /// changes.
    pub fn of_plan(plan: &Plan, detailed: bool) -> Exit {
        if plan.accounts.iter().any(|a| a.error.is_some()) {
            Exit::Error
        } else if detailed && plan.summary.rotate + plan.summary.in_progress > 0 {
            Exit::Changes
        } else {
            Exit::Success
        }
    }
}
