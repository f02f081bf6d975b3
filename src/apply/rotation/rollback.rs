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
            let _ = self
                .record(
                    rotation,
                    Record::Halted {
                        reason: reason.clone(),
                    },
                )
                .await;
            return RotationOutcome::Halted { reason };
        }
        self.roll_back(rotation, reason).await
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
                if self
                    .record(
                        rotation,
                        Record::RolledBack {
                            reason: reason.clone(),
                        },
                    )
                    .await
                    .is_ok()
                {
                    self.claims
                        .release(self.account, &rotation.user, &rotation.id)
                        .await;
                }
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
                let _ = self
                    .record(
                        rotation,
                        Record::RollbackAbandoned {
                            reason: message.clone(),
                        },
                    )
                    .await;
                RotationOutcome::Halted { reason: message }
            }
            Err(error) => {
                let message = format!("{reason}; then rollback failed: {error}");
                let _ = self
                    .record(
                        rotation,
                        Record::Halted {
                            reason: message.clone(),
                        },
                    )
                    .await;
                RotationOutcome::Halted { reason: message }
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
    }
    steps.push(Undo::Discard);
    steps
}
