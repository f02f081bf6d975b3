//! State in S3, for teams and CI runners: any runner resumes what another
//! began, and no two write at once.
//!
//! Under `PREFIX<workflow>/` (the workflow's name, made file-safe):
//!
//! - `lease.json`: who may write, taken with `If-None-Match: *` and renewed
//!   with `If-Match` every quarter of its lifetime. It holds the owner
//!   (host, pid, CI job, start) and a random nonce: the ETag is only the
//!   body's MD5, so the nonce is what tells this runner's lease from
//!   another's after a lost answer. Expiry is judged by S3's clock (the
//!   object's LastModified against the answer's `Date`), never the local
//!   one. A lease past its expiry is taken over with `If-Match` on it.
//! - `journal/<seq>.json`: the journal, one object per batch of records,
//!   numbered; each is written with `If-None-Match: *`, so no two writers
//!   ever both write one number. Taking the lease writes the next number
//!   first (a `takeover` object): a runner that lost its lease (a paused VM
//!   that wakes up) then fails its next write with 412 and stops, having
//!   made at most the one AWS call whose intent it had already written.
//!   Records are appended by group commit: while one write is under way,
//!   the records of other rotations queue and go in the next object.
//! - `snapshot.json`: records compacted from older objects (those below
//!   the current holder's takeover), keeping every record of a rotation in
//!   progress and only the first and last of the latest ended rotation of
//!   each user, so reading state stays cheap.
//!
//! Claims live at the bucket's root, `rekey-claims/<account>/<user>.json`,
//! shared by every workflow whose state is in the bucket, whatever its
//! prefix. Objects are written with SSE (KMS when a key is given); they
//! hold ids, versions and times, never a secret.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{Holder, Owner, S3Location, StateBackend, nonce};
use crate::apply::claims::{ClaimStore, S3Claims};
use crate::apply::journal::{self, End, Entry, JournalError, Record};
use crate::apply::lock::LockError;
use crate::providers::{Condition, Conditional, ObjectStore, ProviderError, StoredObject};

mod lease;
mod objects;
#[cfg(test)]
mod tests;

use objects::Landed;

/// Journal objects compacted into the snapshot once there are this many.
const COMPACT_AFTER: usize = 16;

/// The lease object's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    owner: Owner,
    nonce: String,
    lifetime_seconds: i64,
    #[serde(default)]
    renewals: u64,
}

/// A journal object's body: records (JSON lines as values), or a takeover.
#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    /// The nonce of the lease its writer held.
    writer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    entries: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    takeover: Option<Owner>,
}

/// The body of `snapshot.json`: the records compacted from older objects.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Compacted {
    /// Every journal object up to this number is in it.
    upto: u64,
    entries: Vec<serde_json::Value>,
}

/// The lease while it is held.
struct Held {
    etag: Arc<Mutex<String>>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

/// The journal's writer, one write at a time.
struct Writer {
    next: u64,
    /// Set once another runner took the state over: no write again.
    fenced: Option<String>,
}

/// Why a batch was not written.
#[derive(Debug, Clone)]
enum Failure {
    /// Another runner took the state over (who, when known).
    Fenced(String),
    /// S3 could not be written; nothing of the batch was.
    Unwritten(String),
}

type Waiter = oneshot::Sender<Result<(), Failure>>;

pub struct S3State {
    store: Arc<dyn ObjectStore>,
    location: S3Location,
    /// `PREFIX<workflow>/`.
    base: String,
    nonce: String,
    held: Mutex<Option<Held>>,
    writer: tokio::sync::Mutex<Writer>,
    queue: Mutex<Vec<(Vec<String>, Waiter)>>,
    claims: S3Claims,
}

impl S3State {
    pub fn new(store: Arc<dyn ObjectStore>, location: S3Location, workflow: &str) -> Self {
        let base = format!("{}{}/", location.prefix, workflow);
        Self {
            claims: S3Claims::new(store.clone()),
            store,
            location,
            base,
            nonce: nonce(),
            held: Mutex::new(None),
            writer: tokio::sync::Mutex::new(Writer {
                next: 1,
                fenced: None,
            }),
            queue: Mutex::new(Vec::new()),
        }
    }

    fn lease_key(&self) -> String {
        format!("{}lease.json", self.base)
    }

    fn snapshot_key(&self) -> String {
        format!("{}snapshot.json", self.base)
    }

    fn journal_prefix(&self) -> String {
        format!("{}journal/", self.base)
    }

    fn journal_key(&self, seq: u64) -> String {
        format!("{}{seq:016}.json", self.journal_prefix())
    }

    fn seq_of(&self, key: &str) -> Option<u64> {
        key.strip_prefix(&self.journal_prefix())?
            .strip_suffix(".json")?
            .parse()
            .ok()
    }

    fn lock_error(&self, source: ProviderError) -> LockError {
        LockError::Store {
            location: self.location(),
            source,
        }
    }

    fn journal_error(&self, source: ProviderError) -> JournalError {
        JournalError::Store {
            location: self.location(),
            source,
        }
    }

    fn damaged(&self, key: &str, reason: impl ToString) -> JournalError {
        JournalError::Damaged {
            path: format!("s3://{}/{key}", self.location.bucket).into(),
            line: 1,
            reason: reason.to_string(),
        }
    }
}

impl StateBackend for S3State {
    fn location(&self) -> String {
        format!(
            "s3://{}/{}",
            self.location.bucket,
            self.base.trim_end_matches('/')
        )
    }

    fn shared(&self) -> bool {
        true
    }

    fn acquire<'a>(&'a self, owner: &'a Owner) -> BoxFuture<'a, Result<(), LockError>> {
        Box::pin(async move {
            let (etag, _took_over) = self.take_lease(owner).await?;
            let etag = Arc::new(Mutex::new(etag));
            let lost = Arc::new(AtomicBool::new(false));
            let renewer = self.renew(owner.clone(), etag.clone(), lost.clone());
            *self.held.lock().expect("lease") = Some(Held {
                etag,
                lost,
                renewer,
            });
            let next = match self.fence(owner).await {
                Ok(next) => next,
                Err(error) => {
                    self.release().await;
                    return Err(error);
                }
            };
            self.writer.lock().await.next = next;
            // Compaction is housekeeping: a failure leaves more to read.
            let _ = self.compact(next - 1).await;
            Ok(())
        })
    }

    fn release(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let held = self.held.lock().expect("lease").take();
            if let Some(held) = held {
                held.renewer.abort();
                let etag = held.etag.lock().expect("lease etag").clone();
                if !held.lost.load(Ordering::SeqCst) {
                    // Only if it is still ours (If-Match); tried again after
                    // a failure, or the next run waits for it to expire.
                    for wait in [0, 1, 2] {
                        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                        if self
                            .store
                            .delete(&self.lease_key(), Some(&etag))
                            .await
                            .is_ok()
                        {
                            break;
                        }
                    }
                }
            }
        })
    }

    fn read(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        Box::pin(async move {
            let (snapshot, _, batches) = self.read_all().await?;
            let mut entries = self.parse(&snapshot.entries, &self.snapshot_key())?;
            for (seq, batch) in batches {
                entries.extend(self.parse(&batch.entries, &self.journal_key(seq))?);
            }
            Ok(entries)
        })
    }

    fn append(&self, lines: Vec<String>) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            let (sender, receiver) = oneshot::channel();
            self.queue
                .lock()
                .expect("journal queue")
                .push((lines, sender));
            {
                let mut writer = self.writer.lock().await;
                self.flush(&mut writer).await;
            }
            match receiver.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(Failure::Fenced(by))) => Err(JournalError::Fenced { by }),
                Ok(Err(Failure::Unwritten(reason))) => Err(JournalError::Unwritten {
                    location: self.location(),
                    reason,
                }),
                Err(_) => Err(JournalError::Unwritten {
                    location: self.location(),
                    reason: "the write was dropped".into(),
                }),
            }
        })
    }

    fn verify_held(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            // Not waiting for a journal write under way: the lease says.
            if let Ok(writer) = self.writer.try_lock()
                && let Some(by) = writer.fenced.clone()
            {
                return Err(JournalError::Fenced { by });
            }
            let lost = self
                .held
                .lock()
                .expect("lease")
                .as_ref()
                .map(|h| h.lost.clone());
            let Some(lost) = lost else {
                return Err(JournalError::Fenced {
                    by: "nobody: this runner does not hold the lease".into(),
                });
            };
            let by = match self.current_lease().await {
                Ok(Some((lease, _, _)))
                    if lease.nonce == self.nonce && !lost.load(Ordering::SeqCst) =>
                {
                    return Ok(());
                }
                Ok(Some((lease, _, _))) => lease.owner.to_string(),
                Ok(None) => {
                    let next = self.writer.lock().await.next;
                    self.taker(next).await
                }
                Err(error) => {
                    return Err(JournalError::Unwritten {
                        location: self.location(),
                        reason: error.to_string(),
                    });
                }
            };
            lost.store(true, Ordering::SeqCst);
            self.writer.lock().await.fenced = Some(by.clone());
            Err(JournalError::Fenced { by })
        })
    }

    fn claims(&self) -> &dyn ClaimStore {
        &self.claims
    }

    fn holder(&self) -> BoxFuture<'_, Result<Option<Holder>, LockError>> {
        Box::pin(async move {
            match self.current_lease().await {
                Ok(lease) => Ok(lease.map(|(lease, _, expires_in)| Holder {
                    owner: Some(lease.owner),
                    expires_in: Some(expires_in),
                })),
                // Not one rekey wrote: held by someone unknown.
                Err(LockError::Refused(_)) => Ok(Some(Holder {
                    owner: None,
                    expires_in: None,
                })),
                Err(error) => Err(error),
            }
        })
    }

    fn neighbours(&self) -> BoxFuture<'_, Result<Vec<String>, LockError>> {
        Box::pin(async move {
            let keys = self
                .store
                .list(&self.location.prefix)
                .await
                .map_err(|e| self.lock_error(e))?;
            let mut names: Vec<String> = keys
                .iter()
                .filter_map(|k| k.strip_prefix(&self.location.prefix)?.split_once('/'))
                .filter(|(_, rest)| {
                    *rest == "lease.json"
                        || *rest == "snapshot.json"
                        || rest.starts_with("journal/")
                })
                .map(|(name, _)| name.to_string())
                .collect();
            names.dedup();
            Ok(names)
        })
    }

    fn force_unlock(&self) -> BoxFuture<'_, Result<bool, LockError>> {
        Box::pin(async move {
            // Whatever it holds, even what rekey did not write.
            let Some(object) = self.lease_object().await? else {
                return Ok(false);
            };
            self.store
                .delete(&self.lease_key(), Some(&object.etag))
                .await
                .map_err(|e| self.lock_error(e))?;
            Ok(true)
        })
    }
}
