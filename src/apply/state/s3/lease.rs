//! The lease: taken with `If-None-Match: *` (or over an expired one with
//! `If-Match`), renewed with `If-Match` every quarter of its lifetime,
//! judged by S3's clock; and the takeover object that fences out whoever
//! held it before.

use super::*;

impl S3State {
    /// The lease object as it is, whatever it holds.
    pub(super) async fn lease_object(&self) -> Result<Option<StoredObject>, LockError> {
        self.store
            .get(&self.lease_key())
            .await
            .map_err(|e| self.lock_error(e))
    }

    pub(super) fn lease_body(&self, owner: &Owner, renewals: u64) -> Vec<u8> {
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
    pub(super) async fn current_lease(
        &self,
    ) -> Result<Option<(Lease, StoredObject, i64)>, LockError> {
        let Some(object) = self.lease_object().await? else {
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
    pub(super) async fn take_lease(&self, owner: &Owner) -> Result<(String, bool), LockError> {
        let key = self.lease_key();
        for _ in 0..8 {
            let written = self
                .store
                .put(&key, self.lease_body(owner, 0), Some(Condition::Absent))
                .await;
            let failure = match written {
                Ok(Conditional::Yes(etag)) => return Ok((etag, false)),
                Ok(Conditional::ConditionFailed) => None,
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
                        Ok(Conditional::Yes(etag)) => return Ok((etag, true)),
                        Ok(Conditional::ConditionFailed) | Err(_) => {}
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
    pub(super) fn renew(
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
                    Ok(Conditional::Yes(new)) => *etag.lock().expect("lease etag") = new,
                    // A lost answer to our own renewal, or a takeover.
                    Ok(Conditional::ConditionFailed) | Err(_) => match store.get(&key).await {
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
    pub(super) async fn fence(&self, owner: &Owner) -> Result<u64, LockError> {
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
                Ok(Landed::Ours) => return Ok(seq + 1),
                Ok(Landed::Taken | Landed::Skipped) => seq += 1,
                Err(error) => return Err(self.lock_error(error)),
            }
        }
        Err(LockError::Refused(
            "cannot fence the journal: another runner keeps writing it".into(),
        ))
    }
}
