//! The rollback phase: undo steps ([`Undo`]), each journaled with an
//! intent and an outcome like a forward step, so that a rollback
//! interrupted or failed half-way is finished by the next apply.

use super::*;

impl<P: Provider> Runner<'_, P> {
    /// A refresh or verification failed: roll back or halt, as policy says.
    pub(super) async fn on_verify_failure(
        &self,
        rotation: &Rotation,
        reason: String,
    ) -> RotationOutcome {
        if rotation.workflow.policy.on_verify_failure == OnVerifyFailure::Halt {
            let record = Record::Halted {
                reason: reason.clone(),
            };
            return self.halt(rotation, record, reason).await;
        }
        self.roll_back(rotation, reason).await
    }

    /// Records that the rotation halts, for `reason`: halted, or failed when
    /// even that cannot be recorded.
    async fn halt(&self, rotation: &Rotation, record: Record, reason: String) -> RotationOutcome {
        match self.record(rotation, record).await {
            Ok(()) => RotationOutcome::Halted { reason },
            Err(error) => RotationOutcome::Failed {
                step: "halt".into(),
                error: unrecorded(&format!("halted ({reason})"), &error),
            },
        }
    }

    /// Undoes the rotation: a phase of its own, each step journaled, so
    /// that a rollback interrupted or failed half-way is finished by the
    /// next apply (and never completed as a rotation over it).
    pub async fn roll_back(&self, rotation: &Rotation, reason: String) -> RotationOutcome {
        if rotation.rolling_back.is_none()
            && let Err(error) = self
                .record(
                    rotation,
                    Record::RollingBack {
                        reason: reason.clone(),
                    },
                )
                .await
        {
            return RotationOutcome::Failed {
                step: "rollback".into(),
                error: error.to_string(),
            };
        }
        match self.undo(rotation).await {
            Ok(()) => {
                let _ = self.cleanup(rotation);
                let record = Record::RolledBack {
                    reason: reason.clone(),
                };
                if let Err(error) = self.record(rotation, record).await {
                    // Not recorded: the next apply finds the rollback under
                    // way and finishes it (every undo step is done).
                    return RotationOutcome::Failed {
                        step: "rollback".into(),
                        error: unrecorded(&format!("rolled back ({reason})"), &error),
                    };
                }
                self.claims
                    .release(self.account, &rotation.user, &rotation.id)
                    .await;
                RotationOutcome::RolledBack { reason }
            }
            Err(StepError::Interrupted(signal)) => RotationOutcome::Interrupted {
                step: "rollback".into(),
                signal,
            },
            Err(StepError::OldKeyGone(key)) => {
                let message = format!(
                    "{reason}; and the rotation cannot roll back: the old key {} was deleted outside rekey, so every target keeps the new key, which works. Fix what failed, then run apply: it goes on with the new key",
                    short_id(&key)
                );
                let record = Record::RollbackAbandoned {
                    reason: message.clone(),
                };
                self.halt(rotation, record, message).await
            }
            Err(error) => {
                let message = format!("{reason}; then rollback failed: {error}");
                let record = Record::Halted {
                    reason: message.clone(),
                };
                self.halt(rotation, record, message).await
            }
        }
    }

    /// Puts everything back, skipping what an earlier try already did: the
    /// old key active, every target as it was, the new key deleted,
    /// staging cleared. What each target held comes from the journal on
    /// disk, which knows every intent, this run's included.
    pub(super) async fn undo(&self, rotation: &Rotation) -> Result<(), StepError> {
        let recorded = crate::apply::journal::rotations(&self.journal.entries_of(&rotation.id))
            .into_iter()
            .find(|r| r.id == rotation.id)
            .ok_or(StepError::NotInJournal)?;
        let user = recorded.user.as_str();
        let old_key = recorded.begin.old_key.as_str();
        let new_key = recorded.new_key();
        let steps = undo_steps(&recorded, &rotation.workflow);
        // Putting targets back on an old key that no longer exists would
        // break them all: before anything is restored, it must be there.
        let restored = recorded
            .undone
            .iter()
            .any(|u| matches!(u, Undo::Restore(_)));
        if !restored
            && !self
                .provider
                .access_keys(user)
                .await?
                .iter()
                .any(|k| k.id == old_key)
        {
            return Err(StepError::OldKeyGone(old_key.to_string()));
        }
        let values = self.values(rotation, new_key);
        for undo in steps {
            if recorded.undone.contains(&undo) {
                continue;
            }
            if let Some(signal) = self.stop.requested() {
                return Err(StepError::Interrupted(signal));
            }
            self.record(rotation, Record::UndoIntent { undo: undo.clone() })
                .await?;
            self.crash_point(&format!("intent:rollback:{undo}"));
            self.journal.verify_held().await?;
            let said = match &undo {
                Undo::EnableOld => {
                    self.provider
                        .set_key_status(user, old_key, KeyStatus::Active)
                        .await?;
                    format!("{} is active again", short_id(old_key))
                }
                Undo::Restore(id) => {
                    let target = rotation
                        .workflow
                        .targets
                        .iter()
                        .find(|t| &t.id == id)
                        .ok_or_else(|| StepError::NoRecord(id.clone()))?;
                    let step = StepId {
                        phase: Phase::Distribute,
                        item: Some(id.clone()),
                    };
                    let before = recorded
                        .intent(&step)
                        .cloned()
                        .and_then(|intent| self.before(target, intent))
                        .ok_or_else(|| StepError::NoRecord(id.clone()))?;
                    let resolved = self.resolve_target(target, &values)?;
                    let restore = targets::Restore {
                        provider: self.target_provider(target)?,
                        target: id,
                        user,
                        old_key,
                        new_key,
                        base_dir: self.base_dir,
                    };
                    resolved.restore(&restore, &before).await?;
                    format!("target `{id}` restored")
                }
                Undo::DeleteNew => {
                    let new_key = new_key.unwrap_or_default();
                    self.provider.delete_access_key(user, new_key).await?;
                    format!("new key {} deleted", short_id(new_key))
                }
                Undo::DeleteOrphans => {
                    // Only with create's own record of the keys before it:
                    // without it, no key can be told to be this rotation's.
                    match recorded.intent(&StepId::of(Phase::Create)).cloned() {
                        Some(intent @ Intent::Create { .. }) => {
                            let made = Made::from_intent(Some(intent));
                            let extra: Vec<_> = self
                                .new_keys(user, &made.before)
                                .await?
                                .into_iter()
                                .filter(|k| k.id != old_key)
                                .collect();
                            self.delete_orphans(user, &made, &extra, "", made.resumed_until())
                                .await?;
                            "no key of the interrupted create is left".to_string()
                        }
                        _ => "the interrupted create kept no record of the keys before it: check the user's keys in IAM for one it may have made".to_string(),
                    }
                }
                Undo::Discard => {
                    self.stage(rotation)?.clear(self.provider).await?;
                    "staged secret deleted".to_string()
                }
            };
            self.record(rotation, Record::Undone { undo: undo.clone() })
                .await?;
            (self.progress)(&format!("{user}: rollback: {said}"));
            self.crash_point(&format!("rollback:{undo}"));
        }
        Ok(())
    }
}

/// What undoing a rotation takes, in order: the old key active again if
/// `disable-old` began, every target whose write began put back (last
/// first), the new key deleted if it exists, staging cleared.
pub fn undo_steps(record: &RotationRecord, workflow: &Workflow) -> Vec<Undo> {
    let mut steps: Vec<Undo> = Vec::new();
    if record.intents.contains_key(&StepId::of(Phase::DisableOld)) {
        steps.push(Undo::EnableOld);
    }
    for target in workflow.targets.iter().rev() {
        let step = StepId {
            phase: Phase::Distribute,
            item: Some(target.id.clone()),
        };
        if record.intents.contains_key(&step) {
            steps.push(Undo::Restore(target.id.clone()));
        }
    }
    if record.new_key().is_some() {
        steps.push(Undo::DeleteNew);
    } else if record.intents.contains_key(&StepId::of(Phase::Create)) {
        // `create` was interrupted: the key it made (if any) was never
        // recorded as the new key, and nothing but this rotation knows it.
        steps.push(Undo::DeleteOrphans);
    }
    steps.push(Undo::Discard);
    steps
}
