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
use crate::apply::claims::{Claim, ClaimError, ClaimStore};
use crate::apply::journal::{self, End, Entry, JournalError, Record};
use crate::apply::lock::LockError;
use crate::providers::{Condition, ObjectStore, ProviderError, StoredObject, Written};

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

/// The snapshot object's body.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
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
            claims: S3Claims {
                store: store.clone(),
                mine: Mutex::new(BTreeMap::new()),
            },
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

    fn lease_body(&self, owner: &Owner, renewals: u64) -> Vec<u8> {
        serde_json::to_vec(&Lease {
            owner: owner.clone(),
            nonce: self.nonce.clone(),
            lifetime_seconds: self.location.lease.as_secs().max(1) as i64,
            renewals,
        })
        .expect("plain data")
    }

    /// The lease as it is now: its body, and seconds until it expires by
    /// S3's clock.
    async fn current_lease(&self) -> Result<Option<(Lease, StoredObject, i64)>, LockError> {
        let Some(object) = self
            .store
            .get(&self.lease_key())
            .await
            .map_err(|e| self.lock_error(e))?
        else {
            return Ok(None);
        };
        let lease: Lease = serde_json::from_slice(&object.body).map_err(|e| {
            LockError::Refused(format!(
                "the lease {} is not one rekey wrote ({e}); remove it with `rekey state unlock --force` if no apply runs",
                self.lease_key()
            ))
        })?;
        let age = (object.now - object.last_modified).whole_seconds();
        let expires_in = lease.lifetime_seconds - age;
        Ok(Some((lease, object, expires_in)))
    }

    /// Takes the lease: a new one, an expired one, or ours (a lost answer).
    async fn take_lease(&self, owner: &Owner) -> Result<(String, bool), LockError> {
        let key = self.lease_key();
        for _ in 0..8 {
            let written = self
                .store
                .put(&key, self.lease_body(owner, 0), Some(Condition::Absent))
                .await;
            let failure = match written {
                Ok(Written::Yes(etag)) => return Ok((etag, false)),
                Ok(Written::ConditionFailed) => None,
                Err(error) => Some(error),
            };
            match self.current_lease().await? {
                None => {}
                Some((lease, object, _)) if lease.nonce == self.nonce => {
                    return Ok((object.etag, false));
                }
                Some(_) if failure.is_some() => {
                    return Err(self.lock_error(failure.expect("an error")));
                }
                Some((lease, _, expires_in)) if expires_in > 0 => {
                    return Err(LockError::Leased {
                        owner: lease.owner.to_string(),
                        expires_in,
                    });
                }
                Some((_, object, _)) => {
                    // Expired: take it over, unless someone renews or takes
                    // it first (then the loop sees who).
                    match self
                        .store
                        .put(
                            &key,
                            self.lease_body(owner, 0),
                            Some(Condition::Is(object.etag)),
                        )
                        .await
                    {
                        Ok(Written::Yes(etag)) => return Ok((etag, true)),
                        Ok(Written::ConditionFailed) | Err(_) => {}
                    }
                }
            }
        }
        Err(LockError::Refused(format!(
            "cannot take the lease {key}: it keeps changing under this runner; try again"
        )))
    }

    /// Renews the lease every quarter of its lifetime until released; on
    /// finding it taken over, marks it lost (every later write refused).
    fn renew(
        &self,
        owner: Owner,
        etag: Arc<Mutex<String>>,
        lost: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let key = self.lease_key();
        let every = (self.location.lease / 4).max(std::time::Duration::from_millis(250));
        let nonce = self.nonce.clone();
        let lifetime = self.location.lease.as_secs().max(1) as i64;
        tokio::spawn(async move {
            let mut renewals = 0;
            loop {
                tokio::time::sleep(every).await;
                renewals += 1;
                let body = serde_json::to_vec(&Lease {
                    owner: owner.clone(),
                    nonce: nonce.clone(),
                    lifetime_seconds: lifetime,
                    renewals,
                })
                .expect("plain data");
                let current = etag.lock().expect("lease etag").clone();
                match store.put(&key, body, Some(Condition::Is(current))).await {
                    Ok(Written::Yes(new)) => *etag.lock().expect("lease etag") = new,
                    // A lost answer to our own renewal, or a takeover.
                    Ok(Written::ConditionFailed) | Err(_) => match store.get(&key).await {
                        Ok(Some(object))
                            if serde_json::from_slice::<Lease>(&object.body)
                                .is_ok_and(|l| l.nonce == nonce) =>
                        {
                            *etag.lock().expect("lease etag") = object.etag;
                        }
                        Ok(_) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        // S3 unreachable: try again at the next tick.
                        Err(_) => {}
                    },
                }
            }
        })
    }

    /// Writes the next journal number as a takeover, fencing out whoever
    /// held the lease before; returns the number after it.
    async fn fence(&self, owner: &Owner) -> Result<u64, LockError> {
        let body = serde_json::to_vec(&Batch {
            writer: self.nonce.clone(),
            entries: Vec::new(),
            takeover: Some(owner.clone()),
        })
        .expect("plain data");
        let (snapshot, _) = self
            .snapshot()
            .await
            .map_err(|e| LockError::Refused(e.to_string()))?;
        let keys = self
            .store
            .list(&self.journal_prefix())
            .await
            .map_err(|e| self.lock_error(e))?;
        let mut seq = keys
            .iter()
            .filter_map(|k| self.seq_of(k))
            .max()
            .unwrap_or(0)
            .max(snapshot.upto)
            + 1;
        for _ in 0..16 {
            match self.write_object(seq, body.clone()).await {
                Ok(Placed::Ours) => return Ok(seq + 1),
                Ok(Placed::Taken | Placed::Skipped) => seq += 1,
                Err(error) => return Err(self.lock_error(error)),
            }
        }
        Err(LockError::Refused(
            "cannot fence the journal: another runner keeps writing it".into(),
        ))
    }

    /// Writes journal object `seq` if no one has: `Ours` (also when an
    /// earlier try whose answer was lost wrote it), or `Taken`.
    async fn write_object(&self, seq: u64, body: Vec<u8>) -> Result<Placed, ProviderError> {
        let key = self.journal_key(seq);
        let failure = match self
            .store
            .put(&key, body.clone(), Some(Condition::Absent))
            .await
        {
            Ok(Written::Yes(_)) => return Ok(Placed::Ours),
            Ok(Written::ConditionFailed) => None,
            Err(error) => Some(error),
        };
        match self.store.get(&key).await? {
            Some(object) if object.body == body => Ok(Placed::Ours),
            Some(object) => {
                let writer = serde_json::from_slice::<Batch>(&object.body)
                    .map(|b| b.writer)
                    .unwrap_or_default();
                if writer == self.nonce {
                    // Ours, but an earlier batch whose answer was lost
                    // (its callers heard of a failure): the next number.
                    Ok(Placed::Skipped)
                } else {
                    Ok(Placed::Taken)
                }
            }
            None => Err(failure.unwrap_or_else(|| ProviderError {
                action: "s3:PutObject".into(),
                resource: Some(key),
                kind: crate::providers::ErrorKind::Other(
                    "the write was refused, yet there is no object".into(),
                ),
            })),
        }
    }

    async fn snapshot(&self) -> Result<(Snapshot, Option<String>), JournalError> {
        let key = self.snapshot_key();
        match self
            .store
            .get(&key)
            .await
            .map_err(|e| self.journal_error(e))?
        {
            None => Ok((Snapshot::default(), None)),
            Some(object) => serde_json::from_slice(&object.body)
                .map(|s| (s, Some(object.etag)))
                .map_err(|e| self.damaged(&key, e)),
        }
    }

    /// The journal objects after the snapshot: (number, body), in order;
    /// `None` when a compaction ran meanwhile (read again).
    async fn objects_after(&self, upto: u64) -> Result<Option<Vec<(u64, Batch)>>, JournalError> {
        let keys = self
            .store
            .list(&self.journal_prefix())
            .await
            .map_err(|e| self.journal_error(e))?;
        let mut seqs: Vec<u64> = keys
            .iter()
            .filter_map(|k| self.seq_of(k))
            .filter(|&s| s > upto)
            .collect();
        seqs.sort_unstable();
        if seqs.first().is_some_and(|&first| first > upto + 1) {
            return Ok(None);
        }
        // Numbers are written one after another: a hole is a deleted record.
        if let Some(pair) = seqs.windows(2).find(|pair| pair[1] != pair[0] + 1) {
            return Err(self.damaged(
                &self.journal_key(pair[0] + 1),
                "this journal object is missing, between two that are there; rekey will not guess what it recorded. Restore it (from the bucket's versions), or check every rotation by hand",
            ));
        }
        let bodies: Vec<Option<StoredObject>> = stream::iter(seqs.iter().copied())
            .map(|seq| {
                let key = self.journal_key(seq);
                async move { self.store.get(&key).await }
            })
            .buffered(16)
            .try_collect()
            .await
            .map_err(|e| self.journal_error(e))?;
        let mut batches = Vec::with_capacity(seqs.len());
        for (seq, object) in seqs.into_iter().zip(bodies) {
            let Some(object) = object else {
                return Ok(None);
            };
            let batch = serde_json::from_slice(&object.body)
                .map_err(|e| self.damaged(&self.journal_key(seq), e))?;
            batches.push((seq, batch));
        }
        Ok(Some(batches))
    }

    /// Every record: the snapshot's, then the objects' after it.
    async fn read_all(
        &self,
    ) -> Result<(Snapshot, Option<String>, Vec<(u64, Batch)>), JournalError> {
        for _ in 0..5 {
            let (snapshot, etag) = self.snapshot().await?;
            if let Some(batches) = self.objects_after(snapshot.upto).await? {
                return Ok((snapshot, etag, batches));
            }
        }
        // Not a compaction under way: the first object after the snapshot
        // is gone.
        let (snapshot, _) = self.snapshot().await?;
        Err(self.damaged(
            &self.journal_key(snapshot.upto + 1),
            "this journal object, the first after the snapshot, is missing; rekey will not guess what it recorded. Restore it (from the bucket's versions), or check every rotation by hand",
        ))
    }

    fn parse(&self, values: &[serde_json::Value], key: &str) -> Result<Vec<Entry>, JournalError> {
        values
            .iter()
            .map(|value| journal::parse_value(value.clone()).map_err(|e| self.damaged(key, e)))
            .collect()
    }

    /// Folds the objects below the takeover at `fence` into the snapshot,
    /// then deletes them. Only the lease holder compacts.
    async fn compact(&self, fence: u64) -> Result<(), JournalError> {
        let (snapshot, etag, batches) = self.read_all().await?;
        let older: Vec<&(u64, Batch)> = batches.iter().filter(|(seq, _)| *seq < fence).collect();
        if older.iter().filter(|(_, b)| b.takeover.is_none()).count() < COMPACT_AFTER {
            return Ok(());
        }
        let mut values = snapshot.entries.clone();
        for (_, batch) in &older {
            values.extend(batch.entries.iter().cloned());
        }
        let entries = self.parse(&values, &self.snapshot_key())?;
        let kept = keep(&entries, &values);
        let upto = older.last().map_or(snapshot.upto, |(seq, _)| *seq);
        let body = serde_json::to_vec(&Snapshot {
            upto,
            entries: kept,
        })
        .expect("plain data");
        let condition = match etag {
            Some(etag) => Condition::Is(etag),
            None => Condition::Absent,
        };
        match self
            .store
            .put(&self.snapshot_key(), body, Some(condition))
            .await
            .map_err(|e| self.journal_error(e))?
        {
            Written::Yes(_) => {}
            // Someone else compacted meanwhile: theirs stands.
            Written::ConditionFailed => return Ok(()),
        }
        // Takeover objects stay for good: each is the number the runner it
        // fenced out would write next, so deleting one would let that
        // runner, should it wake, write again (they hold no records).
        for (seq, _) in older.into_iter().filter(|(_, b)| b.takeover.is_none()) {
            self.store
                .delete(&self.journal_key(*seq), None)
                .await
                .map_err(|e| self.journal_error(e))?;
        }
        Ok(())
    }

    /// Who took the state over from this runner: the latest takeover in
    /// the journal that is not this runner's (read from the newest object
    /// back: only a fenced-out runner asks).
    async fn taker(&self, next: u64) -> String {
        let unknown = || "another runner (this runner's lease was taken over)".to_string();
        // The takeover that fenced this runner out holds its next number.
        let Ok(keys) = self.store.list(&self.journal_prefix()).await else {
            return unknown();
        };
        let first = self.journal_key(next);
        let mut keys: Vec<&String> = keys.iter().filter(|k| **k >= first).collect();
        keys.truncate(64);
        for key in keys {
            let Ok(Some(object)) = self.store.get(key).await else {
                continue;
            };
            if let Ok(Batch {
                writer,
                takeover: Some(owner),
                ..
            }) = serde_json::from_slice::<Batch>(&object.body)
                && writer != self.nonce
            {
                return owner.to_string();
            }
        }
        unknown()
    }

    /// Writes every queued batch as one object.
    async fn flush(&self, writer: &mut Writer) {
        let queued = std::mem::take(&mut *self.queue.lock().expect("journal queue"));
        if queued.is_empty() {
            return;
        }
        let lost = self
            .held
            .lock()
            .expect("lease")
            .as_ref()
            .is_none_or(|held| held.lost.load(Ordering::SeqCst));
        let mut lines = Vec::new();
        let mut waiters = Vec::new();
        for (batch, waiter) in queued {
            lines.extend(batch);
            waiters.push(waiter);
        }
        let result = if let Some(by) = &writer.fenced {
            Err(Failure::Fenced(by.clone()))
        } else if lost {
            let by = self.taker(writer.next).await;
            writer.fenced = Some(by.clone());
            Err(Failure::Fenced(by))
        } else {
            self.write_batch(writer, &lines).await
        };
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }

    async fn write_batch(&self, writer: &mut Writer, lines: &[String]) -> Result<(), Failure> {
        let entries = lines
            .iter()
            .map(|line| serde_json::from_str(line).expect("a JSON record"))
            .collect();
        let body = serde_json::to_vec(&Batch {
            writer: self.nonce.clone(),
            entries,
            takeover: None,
        })
        .expect("plain data");
        for _ in 0..16 {
            match self.write_object(writer.next, body.clone()).await {
                Ok(Placed::Ours) => {
                    writer.next += 1;
                    return Ok(());
                }
                Ok(Placed::Skipped) => writer.next += 1,
                Ok(Placed::Taken) => {
                    let by = match self.store.get(&self.journal_key(writer.next)).await {
                        Ok(Some(object)) => serde_json::from_slice::<Batch>(&object.body)
                            .ok()
                            .and_then(|b| b.takeover)
                            .map_or_else(|| "another runner".to_string(), |o| o.to_string()),
                        _ => "another runner".to_string(),
                    };
                    writer.fenced = Some(by.clone());
                    return Err(Failure::Fenced(by));
                }
                Err(error) => return Err(Failure::Unwritten(error.to_string())),
            }
        }
        Err(Failure::Unwritten("too many lost answers".into()))
    }
}

/// Where a journal write landed.
enum Placed {
    Ours,
    /// An earlier write of ours holds the number: try the next.
    Skipped,
    /// Another runner's write holds it: fenced out.
    Taken,
}

/// The records a snapshot keeps: every record of a rotation in progress;
/// of ended rotations, the first and last record of each user's latest.
fn keep(entries: &[Entry], values: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let rotations = journal::rotations(entries);
    let mut latest_ended: BTreeMap<&str, &str> = BTreeMap::new();
    for rotation in &rotations {
        if matches!(rotation.ended, Some(End::Finished | End::RolledBack)) {
            latest_ended.insert(&rotation.user, &rotation.id);
        }
    }
    let ended: BTreeMap<&str, bool> = rotations
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                matches!(r.ended, Some(End::Finished | End::RolledBack)),
            )
        })
        .collect();
    let mut last_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        last_of.insert(&entry.rotation, i);
    }
    entries
        .iter()
        .zip(values)
        .enumerate()
        .filter(|(i, (entry, _))| {
            let id = entry.rotation.as_str();
            if !ended.get(id).copied().unwrap_or(false) {
                return true;
            }
            latest_ended.get(entry.user.as_str()) == Some(&id)
                && (matches!(
                    &entry.record,
                    Record::Begin(_)
                        | Record::Done {
                            step: crate::workflow::graph::StepId {
                                phase: crate::workflow::graph::Phase::Create,
                                ..
                            },
                            ..
                        }
                ) || last_of.get(id) == Some(i))
        })
        .map(|(_, (_, value))| value.clone())
        .collect()
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
            let Some(object) = self
                .store
                .get(&self.lease_key())
                .await
                .map_err(|e| self.lock_error(e))?
            else {
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

/// Claims in the bucket, at `rekey-claims/<account>/<user>.json`.
pub struct S3Claims {
    store: Arc<dyn ObjectStore>,
    /// The ETags of the claims this runner wrote, by key: a release
    /// deletes its own claim with `If-Match` without reading it first.
    mine: Mutex<BTreeMap<String, (String, String)>>,
}

impl S3Claims {
    fn remember(&self, key: &str, rotation: &str, etag: String) {
        self.mine
            .lock()
            .expect("claims")
            .insert(key.to_string(), (rotation.to_string(), etag));
    }

    fn key(account: &str, user: &str) -> String {
        format!("rekey-claims/{account}/{user}.json")
    }

    async fn read(
        &self,
        account: &str,
        user: &str,
    ) -> Result<Option<(Claim, String)>, ProviderError> {
        let key = Self::key(account, user);
        Ok(self.store.get(&key).await?.map(|o| {
            // A claim rekey did not write still holds the user: someone
            // must look at it (`apply --force` removes it).
            let claim = serde_json::from_slice(&o.body).unwrap_or_else(|_| Claim {
                workflow: format!("(unknown: {key} is not a claim rekey wrote)"),
                rotation: "(unknown)".into(),
                state: "(unknown)".into(),
                host: "(unknown)".into(),
                pid: 0,
                since: "(unknown)".into(),
            });
            (claim, o.etag)
        }))
    }
}

impl ClaimStore for S3Claims {
    fn holder<'a>(&'a self, account: &'a str, user: &'a str) -> BoxFuture<'a, Option<Claim>> {
        Box::pin(async move {
            self.read(account, user)
                .await
                .ok()
                .flatten()
                .map(|(c, _)| c)
        })
    }

    fn take<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        claim: &'a Claim,
        force: bool,
    ) -> BoxFuture<'a, Result<(), ClaimError>> {
        Box::pin(async move {
            let key = Self::key(account, user);
            let body = serde_json::to_vec(claim).expect("plain data");
            for _ in 0..8 {
                let failure = match self
                    .store
                    .put(&key, body.clone(), Some(Condition::Absent))
                    .await
                {
                    Ok(Written::Yes(etag)) => {
                        self.remember(&key, &claim.rotation, etag);
                        return Ok(());
                    }
                    Ok(Written::ConditionFailed) => None,
                    Err(error) => Some(error),
                };
                match self.read(account, user).await? {
                    // Ours, perhaps by an earlier try whose answer was lost.
                    Some((holder, etag)) if holder.rotation == claim.rotation => {
                        self.remember(&key, &claim.rotation, etag);
                        return Ok(());
                    }
                    _ if failure.is_some() => return Err(failure.expect("an error").into()),
                    Some((holder, _)) if !force => return Err(ClaimError::Held(Box::new(holder))),
                    Some((_, etag)) => {
                        self.store.delete(&key, Some(&etag)).await?;
                    }
                    None => {}
                }
            }
            Err(ClaimError::Store(ProviderError {
                action: "s3:PutObject".into(),
                resource: Some(key),
                kind: crate::providers::ErrorKind::Other(
                    "the claim keeps changing; try again".into(),
                ),
            }))
        })
    }

    fn claimed<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Option<std::collections::BTreeSet<String>>> {
        Box::pin(async move {
            let prefix = format!("rekey-claims/{account}/");
            let keys = self.store.list(&prefix).await.ok()?;
            Some(
                keys.iter()
                    .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix(".json"))
                    .map(str::to_string)
                    .collect(),
            )
        })
    }

    fn release<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        rotation: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let key = Self::key(account, user);
            let known = self.mine.lock().expect("claims").remove(&key);
            let etag = match known {
                Some((mine, etag)) if mine == rotation => Some(etag),
                _ => match self.read(account, user).await {
                    Ok(Some((holder, etag))) if holder.rotation == rotation => Some(etag),
                    _ => None,
                },
            };
            if let Some(etag) = etag {
                // If-Match: only while it is still this rotation's. Tried
                // again after a failure: a claim left behind would hold the
                // user from other workflows until this one runs again.
                for wait in [0, 1, 2, 4] {
                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                    if self.store.delete(&key, Some(&etag)).await.is_ok() {
                        break;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::journal::Begin;
    use crate::providers::memory::MemoryObjects;

    fn runner(bucket: &Arc<MemoryObjects>) -> S3State {
        S3State::new(
            bucket.clone(),
            S3Location {
                bucket: "b".into(),
                prefix: "p/".into(),
                lease: std::time::Duration::from_secs(8),
                ..Default::default()
            },
            "wf",
        )
    }

    /// `runner` is paused (no renewal) while S3's clock passes its lease.
    fn pause(runner: &S3State, bucket: &MemoryObjects) {
        runner
            .held
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .renewer
            .abort();
        bucket.advance(9);
    }

    fn owner(host: &str) -> Owner {
        Owner {
            host: host.into(),
            pid: 1,
            user: "ci".into(),
            ci_job: None,
            started: "t".into(),
        }
    }

    fn line(rotation: &str, record: Record) -> String {
        serde_json::to_string(&Entry {
            time: "t".into(),
            rotation: rotation.into(),
            user: rotation.split('@').next().unwrap_or_default().into(),
            record,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_held_lease_is_refused_with_its_owner_until_it_expires_by_s3s_clock() {
        let bucket = Arc::new(MemoryObjects::default());
        let a = runner(&bucket);
        a.acquire(&owner("runner-a")).await.unwrap();
        a.append(vec![line("u@1", Record::Begin(Begin::default()))])
            .await
            .unwrap();
        let b = runner(&bucket);
        let Err(LockError::Leased { owner, expires_in }) = b.acquire(&owner_b()).await else {
            panic!("a second runner took a live lease")
        };
        assert!(
            owner.contains("runner-a") && expires_in == 8,
            "{owner} {expires_in}"
        );
        // A's renewals stop (it is paused); S3's clock passes the expiry.
        pause(&a, &bucket);
        b.acquire(&owner_b()).await.unwrap();
        assert_eq!(b.read().await.unwrap().len(), 1, "B reads what A wrote");
        // A wakes up: its next write is refused, and it writes nothing.
        let before = bucket.keys();
        let Err(JournalError::Fenced { by }) = a.append(vec![line("u@1", Record::Finished)]).await
        else {
            panic!("a fenced-out runner wrote")
        };
        assert!(by.contains("runner-b"), "{by}");
        assert_eq!(bucket.keys(), before);
        assert!(a.append(vec![line("u@1", Record::Finished)]).await.is_err());
        b.append(vec![line("u@1", Record::Finished)]).await.unwrap();
        assert_eq!(b.read().await.unwrap().len(), 2);
        // A lets go of nothing that is not its own.
        a.release().await;
        assert!(bucket.keys().contains(&"p/wf/lease.json".to_string()));
        b.release().await;
        assert!(!bucket.keys().contains(&"p/wf/lease.json".to_string()));
    }

    fn owner_b() -> Owner {
        owner("runner-b")
    }

    #[tokio::test]
    async fn a_lost_answer_to_a_conditional_write_is_read_back_and_kept_once() {
        let bucket = Arc::new(MemoryObjects::default());
        let a = runner(&bucket);
        bucket.lose_next_answer();
        a.acquire(&owner("runner-a")).await.unwrap();
        bucket.lose_next_answer();
        a.append(vec![line("u@1", Record::Begin(Begin::default()))])
            .await
            .unwrap();
        bucket.lose_next_answer();
        a.append(vec![line("u@1", Record::Finished)]).await.unwrap();
        assert_eq!(a.read().await.unwrap().len(), 2, "each record once");
        let claims = a.claims();
        let claim = crate::apply::claims::claim("wf", "u@1", &a.location());
        bucket.lose_next_answer();
        claims.take("1", "u", &claim, false).await.unwrap();
        assert_eq!(claims.holder("1", "u").await.unwrap().rotation, "u@1");
    }

    #[tokio::test]
    async fn a_claim_in_the_bucket_holds_the_user_for_every_workflow() {
        let bucket = Arc::new(MemoryObjects::default());
        let a = runner(&bucket);
        let other = S3State::new(
            bucket.clone(),
            S3Location {
                bucket: "b".into(),
                prefix: "elsewhere/".into(),
                lease: std::time::Duration::from_secs(8),
                ..Default::default()
            },
            "other",
        );
        let mine = crate::apply::claims::claim("wf", "u@1", &a.location());
        let theirs = crate::apply::claims::claim("other", "u@2", &other.location());
        a.claims().take("1", "u", &mine, false).await.unwrap();
        let Err(ClaimError::Held(holder)) = other.claims().take("1", "u", &theirs, false).await
        else {
            panic!("two workflows took one user")
        };
        assert_eq!(holder.workflow, "wf");
        other.claims().release("1", "u", "u@2").await;
        assert!(
            a.claims().holder("1", "u").await.is_some(),
            "only its holder lets go"
        );
        a.claims().release("1", "u", "u@1").await;
        other.claims().take("1", "u", &theirs, false).await.unwrap();
    }

    #[tokio::test]
    async fn ended_rotations_are_compacted_and_what_is_in_progress_is_kept() {
        let bucket = Arc::new(MemoryObjects::default());
        for run in 0..COMPACT_AFTER + 2 {
            let a = runner(&bucket);
            a.acquire(&owner("runner-a")).await.unwrap();
            let id = format!("u{}@{run}", run % 3);
            a.append(vec![line(&id, Record::Begin(Begin::default()))])
                .await
                .unwrap();
            if run != 1 {
                a.append(vec![line(
                    &id,
                    Record::Interrupted {
                        step: "create".parse().unwrap(),
                    },
                )])
                .await
                .unwrap();
                a.append(vec![line(&id, Record::Finished)]).await.unwrap();
            }
            a.release().await;
        }
        let a = runner(&bucket);
        a.acquire(&owner("runner-a")).await.unwrap();
        // Takeovers stay (they fence); records are compacted.
        let journal_objects = bucket
            .keys()
            .iter()
            .filter(|k| {
                k.starts_with("p/wf/journal/") && !bucket.body(k).unwrap().contains("\"takeover\"")
            })
            .count();
        assert!(
            journal_objects < COMPACT_AFTER && bucket.keys().contains(&"p/wf/snapshot.json".into()),
            "compacted: {:?}",
            bucket.keys()
        );
        let rotations = journal::rotations(&a.read().await.unwrap());
        let in_progress: Vec<&str> = rotations
            .iter()
            .filter(|r| r.in_progress())
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(in_progress, ["u1@1"]);
        // The latest ended rotation of each user stays, begin and end.
        let ended: Vec<&str> = rotations
            .iter()
            .filter(|r| !r.in_progress())
            .map(|r| r.id.as_str())
            .collect();
        assert!(
            ended.len() < 10
                && (COMPACT_AFTER - 1..=COMPACT_AFTER + 1)
                    .map(|run| format!("u{}@{run}", run % 3))
                    .all(|id| ended.contains(&id.as_str())),
            "{ended:?}"
        );
        // Compaction keeps fencing: the takeover object stays.
        assert!(bucket.keys().iter().any(|k| k.starts_with("p/wf/journal/")));
    }

    /// Regression: compaction deleted the takeover object that fenced out a
    /// paused runner, and the runner, waking, wrote that number again.
    #[tokio::test]
    async fn compaction_never_reopens_a_number_a_fenced_runner_would_write() {
        let bucket = Arc::new(MemoryObjects::default());
        let a = runner(&bucket);
        a.acquire(&owner("runner-a")).await.unwrap();
        a.append(vec![line("u@1", Record::Begin(Begin::default()))])
            .await
            .unwrap();
        pause(&a, &bucket);
        for run in 0..3 {
            let b = runner(&bucket);
            b.acquire(&owner("runner-b")).await.unwrap();
            for i in 0..COMPACT_AFTER {
                let id = format!("v{run}x{i}@1");
                b.append(vec![line(&id, Record::Begin(Begin::default()))])
                    .await
                    .unwrap();
                b.append(vec![line(&id, Record::Finished)]).await.unwrap();
            }
            b.release().await;
        }
        assert!(bucket.keys().contains(&"p/wf/snapshot.json".to_string()));
        let before = bucket.keys();
        let Err(JournalError::Fenced { .. }) = a.append(vec![line("u@1", Record::Finished)]).await
        else {
            panic!("the fenced-out runner wrote after compaction")
        };
        assert_eq!(bucket.keys(), before);
    }

    /// Regression: when the renewal noticed the takeover first, the message
    /// said "another runner" instead of naming it (its takeover was more
    /// than a few objects back).
    #[tokio::test]
    async fn a_runner_whose_renewal_found_the_lease_lost_names_who_took_it() {
        let bucket = Arc::new(MemoryObjects::default());
        let a = runner(&bucket);
        a.acquire(&owner("runner-a")).await.unwrap();
        pause(&a, &bucket);
        let b = runner(&bucket);
        b.acquire(&owner("runner-b")).await.unwrap();
        for i in 0..40 {
            b.append(vec![line(
                &format!("v{i}@1"),
                Record::Begin(Begin::default()),
            )])
            .await
            .unwrap();
        }
        // What the renewal does when it finds the lease is not its own.
        a.held
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .lost
            .store(true, Ordering::SeqCst);
        let Err(JournalError::Fenced { by }) = a.append(vec![line("u@1", Record::Finished)]).await
        else {
            panic!("a runner that lost its lease wrote")
        };
        assert!(by.contains("runner-b"), "{by}");
    }

    #[tokio::test]
    async fn a_journal_object_missing_between_two_is_refused() {
        let bucket = Arc::new(MemoryObjects::default());
        let a = runner(&bucket);
        a.acquire(&owner("runner-a")).await.unwrap();
        for record in [Record::Begin(Begin::default()), Record::Finished] {
            a.append(vec![line("u@1", record)]).await.unwrap();
        }
        a.append(vec![line("w@1", Record::Begin(Begin::default()))])
            .await
            .unwrap();
        use crate::providers::ObjectStore;
        bucket
            .delete("p/wf/journal/0000000000000003.json", None)
            .await
            .unwrap();
        let Err(JournalError::Damaged { path, reason, .. }) = a.read().await else {
            panic!("a hole in the journal was read as if whole")
        };
        assert!(
            path.display()
                .to_string()
                .ends_with("0000000000000003.json"),
            "{path:?}"
        );
        assert!(reason.contains("missing"), "{reason}");
    }
}
