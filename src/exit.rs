//! Exit codes: part of the contract with scripts and CI, documented in
//! README.md and `rekey --help`. Every command ends with one of these.

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
