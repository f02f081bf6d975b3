//! Per-user claims: one rotation of an IAM user at a time, whatever state
//! directory, workflow or runner it comes from.
//!
//! A rotation claims its user (account and name) before its first record,
//! and keeps the claim until its last (done, rolled back): a claim never
//! expires, and only the rotation that made it takes it over on resume.
//! Another runner finds the user held, says by whom, and leaves it alone;
//! `apply --force` clears a claim, with a warning. Without claims, two
//! runners with their own state directories deleted each other's new keys
//! as orphans.
//!
//! Claims live where the state does ([`ClaimStore`]): with S3 state, in
//! the bucket (`rekey-claims/<account>/<user>.json`, written with
//! `If-None-Match: *`), shared by every workflow and runner whose state is
//! in that bucket; with local state, in a folder per OS user (0700),
//! shared by every state directory of the machine: `$REKEY_CLAIMS_DIR`, else
//! `$XDG_STATE_HOME/rekey/claims`, else `~/.local/state/rekey/claims`. A
//! claim is a small JSON file, `<account>/<user>.json` (0600), created
//! exclusively, so two runners can never both take one.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

mod local;
mod s3;

pub use local::Claims;
pub use s3::S3Claims;

/// Who holds a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub workflow: String,
    /// The rotation's id: only it takes the claim over.
    pub rotation: String,
    /// Where its state is: a state directory, or `s3://bucket/prefix/name`.
    #[serde(rename = "state_dir")]
    pub state: String,
    pub host: String,
    pub pid: u32,
    pub since: String,
}

impl Claim {
    /// Whether it was made from the state at `location`.
    pub fn is_from(&self, location: &str) -> bool {
        self.state == location
    }
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "workflow `{}` (rotation {}, state {}, claimed by pid {} on {} at {})",
            self.workflow, self.rotation, self.state, self.pid, self.host, self.since
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "the user is held by {0}; wait for that rotation to end, or finish it with `rekey apply` of that workflow and state directory (`--force` clears the claim, if it is truly abandoned)"
    )]
    Held(Box<Claim>),
    #[error("cannot read or write the claim: {0}")]
    Store(#[from] crate::providers::ProviderError),
    #[error("cannot use the claims folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
/// Where claims are kept: the local folder, or the state's bucket.
pub trait ClaimStore: Send + Sync {
    /// Who holds `user`, if anyone.
    fn holder<'a>(&'a self, account: &'a str, user: &'a str) -> BoxFuture<'a, Option<Claim>>;
    /// Takes `user` for `claim`'s rotation: done if that rotation already
    /// holds it; refused, naming the holder, if another does. `force`
    /// takes it from another holder.
    fn take<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        claim: &'a Claim,
        force: bool,
    ) -> BoxFuture<'a, Result<(), ClaimError>>;
    /// Gives `user` up, if `rotation` holds it.
    fn release<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        rotation: &'a str,
    ) -> BoxFuture<'a, ()>;
    /// The users of `account` that have a claim, in one listing (`None`
    /// when it cannot be listed: ask [`ClaimStore::holder`] of each).
    fn claimed<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Option<BTreeSet<String>>>;
}

/// This process's claim for `rotation` of `workflow`, whose state is at
/// `location`.
pub fn claim(workflow: &str, rotation: &str, location: &str) -> Claim {
    Claim {
        workflow: workflow.to_string(),
        rotation: rotation.to_string(),
        state: location.to_string(),
        host: crate::text::hostname(),
        pid: std::process::id(),
        since: crate::text::rfc3339(crate::text::now_in_seconds()),
    }
}
