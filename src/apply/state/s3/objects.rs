//! The journal's objects: numbered batches written with `If-None-Match: *`
//! by group commit (records queued while a write is under way go in the
//! next object), read back after a lost answer by nonce, and compacted
//! into `snapshot.json`.

use super::*;

impl S3State {
    /// Writes journal object `seq` if no one has: `Ours` (also when an
    /// earlier try whose answer was lost wrote it), or `Taken`.
    pub(super) async fn write_object(
        &self,
        seq: u64,
        body: Vec<u8>,
    ) -> Result<Landed, ProviderError> {
        let key = self.journal_key(seq);
        let failure = match self
            .store
            .put(&key, body.clone(), Some(Condition::Absent))
            .await
        {
            Ok(Conditional::Yes(_)) => return Ok(Landed::Ours),
            Ok(Conditional::ConditionFailed) => None,
            Err(error) => Some(error),
        };
        match self.store.get(&key).await? {
            Some(object) if object.body == body => Ok(Landed::Ours),
            Some(object) => {
                let writer = serde_json::from_slice::<Batch>(&object.body)
                    .map(|b| b.writer)
                    .unwrap_or_default();
                if writer == self.nonce {
                    // Ours, but an earlier batch whose answer was lost
                    // (its callers heard of a failure): the next number.
                    Ok(Landed::Skipped)
                } else {
                    Ok(Landed::Taken)
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

    pub(super) async fn snapshot(&self) -> Result<(Compacted, Option<String>), JournalError> {
        let key = self.snapshot_key();
        match self
            .store
            .get(&key)
            .await
            .map_err(|e| self.journal_error(e))?
        {
            None => Ok((Compacted::default(), None)),
            Some(object) => serde_json::from_slice(&object.body)
                .map(|s| (s, Some(object.etag)))
                .map_err(|e| self.damaged(&key, e)),
        }
    }

    /// The journal objects after the snapshot: (number, body), in order;
    /// `None` when a compaction ran meanwhile (read again).
    pub(super) async fn objects_after(
        &self,
        upto: u64,
    ) -> Result<Option<Vec<(u64, Batch)>>, JournalError> {
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
    pub(super) async fn read_all(
        &self,
    ) -> Result<(Compacted, Option<String>, Vec<(u64, Batch)>), JournalError> {
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

    pub(super) fn parse(
        &self,
        values: &[serde_json::Value],
        key: &str,
    ) -> Result<Vec<Entry>, JournalError> {
        values
            .iter()
            .map(|value| journal::parse_value(value.clone()).map_err(|e| self.damaged(key, e)))
            .collect()
    }

    /// Folds the objects below the takeover at `fence` into the snapshot,
    /// then deletes them. Only the lease holder compacts.
    pub(super) async fn compact(&self, fence: u64) -> Result<(), JournalError> {
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
        let body = serde_json::to_vec(&Compacted {
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
            Conditional::Yes(_) => {}
            // Someone else compacted meanwhile: theirs stands.
            Conditional::ConditionFailed => return Ok(()),
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
    pub(super) async fn taker(&self, next: u64) -> String {
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
    pub(super) async fn flush(&self, writer: &mut Writer) {
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

    pub(super) async fn write_batch(
        &self,
        writer: &mut Writer,
        lines: &[String],
    ) -> Result<(), Failure> {
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
                Ok(Landed::Ours) => {
                    writer.next += 1;
                    return Ok(());
                }
                Ok(Landed::Skipped) => writer.next += 1,
                Ok(Landed::Taken) => {
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
pub(super) enum Landed {
    Ours,
    /// An earlier write of ours holds the number: try the next.
    Skipped,
    /// Another runner's write holds it: fenced out.
    Taken,
}

/// The records a snapshot keeps: every record of a rotation in progress;
/// of ended rotations, the first and last record of each user's latest.
pub(super) fn keep(entries: &[Entry], values: &[serde_json::Value]) -> Vec<serde_json::Value> {
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
