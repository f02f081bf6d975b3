//! The `create` step: a new key made once, its id journaled before its
//! secret is staged, and the orphans an interrupted create can leave
//! (a key whose id was journaled but never staged, or the one unknown key
//! a lost answer leaves) deleted; any other new key stops the step.

use super::*;

impl<P: Provider> Runner<'_, P> {
    pub(super) async fn create(
        &self,
        rotation: &Rotation,
        id: &StepId,
        pending: Pending,
    ) -> Result<StepEnd, StepError> {
        let user = rotation.user.as_str();
        let stage = self.stage(rotation)?;
        if let Some(intent) = pending {
            let made = Made::from_intent(intent);
            let staged = stage.read(self.provider).await?.map(|(key_id, _)| key_id);
            let extra = self.new_keys(user, &made.before).await?;
            if let Some(staged) = staged.filter(|s| extra.iter().any(|k| &k.id == s)) {
                (self.progress)(&format!(
                    "{user}: create was interrupted after staging {}: adopting it",
                    short_id(&staged)
                ));
                self.delete_orphans(user, &made, &extra, &staged, made.resumed_until())
                    .await?;
                return Ok(StepEnd::Done(Some(Done::Created {
                    new_key: staged,
                    staged: stage.describe(),
                })));
            }
            self.delete_orphans(user, &made, &extra, "", made.resumed_until())
                .await?;
            stage.clear(self.provider).await?;
        }
        let keys = self.provider.access_keys(user).await?;
        let mut made = Made {
            before: keys.iter().map(|k| k.id.clone()).collect(),
            created: Vec::new(),
            // IAM's clock when the keys were listed: before the create.
            since: Some(
                self.provider
                    .server_time()
                    .unwrap_or_else(OffsetDateTime::now_utc),
            ),
        };
        self.intent(rotation, id, Some(made.intent())).await?;
        let key = match self.provider.create_access_key(user).await {
            Ok(key) => key,
            Err(error) => {
                // A create whose answer was lost may have made a key (and
                // filled the second slot): clear such an orphan, then once more.
                let extra = self.new_keys(user, &made.before).await?;
                if extra.is_empty() {
                    return Err(error.into());
                }
                self.delete_orphans(user, &made, &extra, "", self.provider.server_time())
                    .await?;
                self.provider.create_access_key(user).await?
            }
        };
        // The proof that this key is this rotation's, before anything else.
        made.created.push(key.id.clone());
        if let Err(error) = self.intent(rotation, id, Some(made.intent())).await {
            // The key's id could not be journaled (another runner took the
            // rotation over, or the journal cannot be written): nothing
            // records this key and its secret will never be staged, so
            // nothing can use it. Deleting it now is the one way not to
            // leave an orphan that no later run could prove is this one's.
            let deleted = self.provider.delete_access_key(user, &key.id).await.is_ok();
            return Err(StepError::UnrecordedCreate {
                key: key.id.clone(),
                cause: error.to_string(),
                deleted,
            });
        }
        self.crash_point("create:before-stage");
        // Each call from here on is one more than the intent covers: a
        // runner that was paused since, and lost its lease, must not make it.
        self.journal.verify_held().await?;
        stage.write(self.provider, &key).await?;
        let extra = self.new_keys(user, &made.before).await?;
        self.delete_orphans(user, &made, &extra, &key.id, self.provider.server_time())
            .await?;
        Ok(StepEnd::Done(Some(Done::Created {
            new_key: key.id.clone(),
            staged: stage.describe(),
        })))
    }

    /// Keys of `user` that are not in `before`.
    pub(super) async fn new_keys(
        &self,
        user: &str,
        before: &[String],
    ) -> Result<Vec<crate::providers::AccessKey>, StepError> {
        let keys = self.provider.access_keys(user).await?;
        Ok(keys
            .into_iter()
            .filter(|k| !before.contains(&k.id))
            .collect())
    }

    /// Deletes the keys of `extra` but `keep` that this rotation made and
    /// whose secret never reached staging, so nothing can ever use them: a
    /// key a create call returned to it, or — after an answer that was lost
    /// (IAM's two-key limit leaves room for at most one such key) — the one
    /// unknown key whose CreateDate falls between the create's start and the
    /// listing that found it, by IAM's own clock (its `Date` header), while
    /// this rotation holds the user's claim. Any other key is someone
    /// else's: the step stops, naming it.
    pub(super) async fn delete_orphans(
        &self,
        user: &str,
        made: &Made,
        extra: &[crate::providers::AccessKey],
        keep: &str,
        until: Option<OffsetDateTime>,
    ) -> Result<(), StepError> {
        let others: Vec<&crate::providers::AccessKey> = extra
            .iter()
            .filter(|k| k.id != keep && !made.created.contains(&k.id))
            .collect();
        let lost_answer = match (made.since, others.as_slice()) {
            // The first journal format kept no proof: as it always did.
            (None, _) => others.iter().map(|k| k.id.clone()).collect(),
            (_, []) => Vec::new(),
            // A create whose answer was recorded lost none: any other key
            // that appeared meanwhile is someone else's.
            (Some(_), others) if !made.created.is_empty() => {
                return Err(StepError::NotOurs(
                    others.iter().map(|k| k.id.clone()).collect(),
                ));
            }
            (Some(since), [only]) if within(only.created, since, until) => {
                vec![only.id.clone()]
            }
            (Some(_), others) => {
                return Err(StepError::NotOurs(
                    others.iter().map(|k| k.id.clone()).collect(),
                ));
            }
        };
        let orphans = extra
            .iter()
            .map(|k| k.id.clone())
            .filter(|k| k != keep && (made.created.contains(k) || lost_answer.contains(k)));
        for orphan in orphans {
            // A runner that lost its lease meanwhile must not judge keys:
            // the one that took over may have made one in this window.
            self.journal.verify_held().await?;
            (self.progress)(&format!(
                "{user}: deleting orphan key {} (created, but its secret never reached staging)",
                short_id(&orphan)
            ));
            self.provider.delete_access_key(user, &orphan).await?;
        }
        Ok(())
    }

    /// The old key is disabled or deleted only while the new one is active:
    /// someone may have deactivated (or deleted) it since it was checked,
    /// and the user would be left with no working key.
    pub(super) async fn new_key_active(&self, rotation: &Rotation) -> Result<(), StepError> {
        let new_key = rotation.new_key().ok_or(StepError::NotCreated)?;
        let keys = self.provider.access_keys(&rotation.user).await?;
        if keys
            .iter()
            .any(|k| k.id == new_key && k.status == KeyStatus::Active)
        {
            Ok(())
        } else {
            Err(StepError::NewKeyNotActive(new_key.to_string()))
        }
    }

    /// The new key and its secret, from staging.
    pub(super) async fn new_key(
        &self,
        rotation: &Rotation,
    ) -> Result<(String, SecretString), StepError> {
        let expected = rotation.new_key().ok_or(StepError::NotCreated)?.to_string();
        let stage = self.stage(rotation)?;
        match stage.read(self.provider).await? {
            Some((id, secret)) if id == expected => Ok((id, secret)),
            Some((id, _)) => Err(StepError::StagingChanged {
                found: id,
                expected,
            }),
            None => Err(StepError::SecretLost {
                key: expected,
                stage: stage.describe(),
            }),
        }
    }
}

/// Whether a key created at `created` (IAM's clock) appeared between
/// `since` and `until`, IAM's clock as its answers before and after said
/// (one-second resolution). Without IAM's clock, this machine's is used
/// with a minute's tolerance.
fn within(created: OffsetDateTime, since: OffsetDateTime, until: Option<OffsetDateTime>) -> bool {
    let (until, slack) = match until {
        Some(until) => (until, time::Duration::seconds(1)),
        None => (crate::text::now(), time::Duration::minutes(1)),
    };
    created >= since - slack && created <= until + slack
}
