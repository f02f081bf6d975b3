//! Where apply keeps its state: the journal, the lock that lets one runner
//! at a time write it, and the per-user claims. One [`StateBackend`] trait,
//! two implementations:
//!
//! - [`local::LocalState`] (the default): a state directory on this
//!   machine, `.rekey/<workflow name>` next to the workflow; the lock is a
//!   `flock`, which the kernel releases however the process ends.
//! - [`s3::S3State`] (`state: { s3: … }` or `--state s3://BUCKET/PREFIX`):
//!   objects in a bucket, so that any runner can resume what another
//!   began. The lock is a lease that expires when its holder stops
//!   renewing it, and every write is conditional, so a runner that lost
//!   its lease is fenced out at its next write (see the module's doc).
//!
//! Both store the same records (ids, versions, times: never a secret).

pub mod local;
pub mod s3;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::claims::ClaimStore;
use super::journal::{Entry, JournalError};
use super::lock::LockError;

/// Who runs an apply: what a refusal or `rekey state show` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    pub user: String,
    /// The CI job, when the environment says ([`super::journal::Runner`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
    pub started: String,
}

impl Owner {
    pub fn this_process(started: &str) -> Owner {
        Owner {
            host: crate::text::hostname(),
            pid: std::process::id(),
            user: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            ci_job: super::journal::Runner::this().job,
            started: started.to_string(),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {}, started {} by {}",
            self.pid, self.host, self.started, self.user
        )?;
        if let Some(job) = &self.ci_job {
            write!(f, ", CI job {job}")?;
        }
        Ok(())
    }
}

/// Who holds the lock or lease, as `rekey state show` reports it.
#[derive(Debug, Clone)]
pub struct Holder {
    pub owner: Option<Owner>,
    /// Seconds until the lease expires unless renewed (S3); negative once
    /// it has expired.
    pub expires_in: Option<i64>,
}

/// Where a workflow's journal, lock and claims live.
pub trait StateBackend: Send + Sync {
    /// Where, for people and claims: a folder, or `s3://bucket/prefix/name`.
    fn location(&self) -> String;
    /// Whether runners on other machines see this state (S3): then a new
    /// secret is staged in SSM by default, not in a file on one runner.
    fn shared(&self) -> bool;
    /// Takes the lock (lease) for `owner`, or says who holds it. With a
    /// lease, a holder whose lease expired is taken over and fenced out.
    fn acquire<'a>(&'a self, owner: &'a Owner) -> BoxFuture<'a, Result<(), LockError>>;
    /// Lets the lock go (at the end of a run).
    fn release(&self) -> BoxFuture<'_, ()>;
    /// Every record, oldest first. Needs no lock: `status` reads it too.
    fn read(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>>;
    /// Appends these records (JSON lines), durably and in order, or fails
    /// having appended none. Only while the lock is held.
    fn append(&self, lines: Vec<String>) -> BoxFuture<'_, Result<(), JournalError>>;
    /// Whether this runner still holds the lock: with a lease, read back
    /// (a runner that was paused may have lost it without writing since).
    /// Checked before a claim is taken, so a fenced-out runner takes none.
    fn verify_held(&self) -> BoxFuture<'_, Result<(), JournalError>>;
    /// The per-user claims of every workflow sharing this state's store.
    fn claims(&self) -> &dyn ClaimStore;
    /// Who holds the lock now, if anyone.
    fn holder(&self) -> BoxFuture<'_, Result<Option<Holder>, LockError>>;
    /// Removes the lock whoever holds it (`rekey state unlock --force`):
    /// whether there was one.
    fn force_unlock(&self) -> BoxFuture<'_, Result<bool, LockError>>;
    /// The names of the workflows whose state is kept beside this one's
    /// (the same S3 prefix, or the same `.rekey` folder), this one's too.
    fn neighbours(&self) -> BoxFuture<'_, Result<Vec<String>, LockError>>;
}

/// A bucket and prefix, and how to write there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Location {
    pub bucket: String,
    /// Ends with `/`, or is empty.
    pub prefix: String,
    pub region: Option<String>,
    pub kms_key_id: Option<String>,
    /// How long a lease lasts unless renewed.
    pub lease: std::time::Duration,
}

pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(120);

impl S3Location {
    /// `s3://BUCKET/PREFIX`, as `--state` takes it.
    pub fn parse(text: &str) -> Result<S3Location, String> {
        let rest = text.strip_prefix("s3://").ok_or_else(|| {
            format!("--state {text}: give s3://BUCKET/PREFIX (or leave it out for the local state directory)")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("--state {text}: the bucket name is missing"));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: normalize_prefix(prefix),
            lease: DEFAULT_LEASE,
            ..S3Location::default()
        })
    }
}

/// `a/b` → `a/b/`; `` stays empty; no leading slash.
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// An open backend, shared by the journal and the runner.
pub type State = Arc<dyn StateBackend>;

/// A random nonce (hex): whose lease, whose write.
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random numbers");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
