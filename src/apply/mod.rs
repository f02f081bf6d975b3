//! Apply: carry out a plan, crash-safe and resumable.
//!
//! The state (`state`: a state directory, default `.rekey/<name>` next to
//! the workflow, or S3) holds the lock or lease, the journal and the
//! claims; the state directory also holds staged secrets (0600 files, when
//! staging is local) and 0600 backups of file targets. One apply runs per
//! workflow's state.
//! Rotations left in progress by an earlier apply (crashed, paused, halted)
//! are resumed first; then the plan's new rotations begin. Each rotation is
//! run by [`rotation::Runner`], `policy.concurrency` users at once.
//!
//! The use case, in the order the command line calls it: [`prepare`] reads
//! the workflow (or a saved plan and its workflow) and binds the params;
//! [`Session::open`] takes the state directory's lock and reads its
//! journal through the state backend; [`Session::plan`] plans against live state (refusing a stale
//! saved plan) and marks the rotations it will resume; [`Session::execute`]
//! runs them and returns the [`Report`]. Rendering is `render::apply`'s.

pub mod claims;
mod error;
pub mod journal;
pub mod lock;
pub mod marks;
mod prepare;
mod report;
pub mod rotation;
mod schedule;
mod session;
pub mod snapshot;
pub mod staging;
pub mod state;
pub mod stop;

#[cfg(test)]
mod tests;

pub use error::{ApplyError, StepError};
pub use marks::{describe_progress, mark_claimed, mark_held, mark_in_progress};
pub use prepare::{Prepared, StateChoice, prepare, previous_layout, state_dir, workflow_dir};
pub use report::{AccountReport, Ending, Report};
pub use schedule::run;
pub use session::Session;
