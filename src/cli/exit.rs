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
    /// Finished, but keys that are due or past the deadline were left:
    /// a user blocked or held, a name no user has, a key past the
    /// deadline not rotated, or one that reaches it before the window
    /// opens. Exemptions do not count.
    LeftDue = 5,
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

    /// How an apply ended, when it `left_due` keys (exit 5): a worse
    /// ending (a signal, an error, a failed verification) wins; a pause
    /// or success does not.
    pub fn of_apply(ending: Ending, left_due: bool) -> Exit {
        match Exit::of(ending) {
            Exit::Success | Exit::Paused if left_due => Exit::LeftDue,
            exit => exit,
        }
    }

    /// How a plan ended: an account that could not be planned is an
    /// error; with `--detailed-exitcode`, keys it would leave due are 5,
    /// and rotations to begin or resume are changes.
    pub fn of_plan(plan: &Plan, detailed: bool) -> Exit {
        if plan.accounts.iter().any(|a| a.error.is_some()) {
            Exit::Error
        } else if detailed && plan.leaves_due() {
            Exit::LeftDue
        } else if detailed && plan.summary.rotate + plan.summary.in_progress > 0 {
            Exit::Changes
        } else {
            Exit::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_due_is_5_unless_a_worse_ending_wins() {
        assert_eq!(Exit::of_apply(Ending::Done, true), Exit::LeftDue);
        assert_eq!(
            Exit::of_apply(Ending::Paused, true),
            Exit::LeftDue,
            "5 wins over a pause"
        );
        assert_eq!(Exit::of_apply(Ending::Paused, false), Exit::Paused);
        assert_eq!(
            Exit::of_apply(Ending::VerifyFailed, true),
            Exit::VerifyFailed
        );
        assert_eq!(Exit::of_apply(Ending::Failed, true), Exit::Error);
        assert_eq!(
            Exit::of_apply(Ending::Signalled(libc::SIGTERM), true),
            Exit::Terminated
        );
        assert_eq!(Exit::of_apply(Ending::Done, false), Exit::Success);
    }
}
