//! The `distribute` steps: each target resolved for the rotation's user,
//! what it held recorded before it is written, and where a file target's
//! backup is kept.

use super::*;

impl<P: Provider> Runner<'_, P> {
    pub(super) async fn distribute(
        &self,
        rotation: &Rotation,
        id: &StepId,
        target: &Target,
        pending: Pending,
    ) -> Result<StepEnd, StepError> {
        let (new_key, secret) = self.new_key(rotation).await?;
        let values = self.values(rotation, Some(&new_key));
        let resolved = self.resolve_target(target, &values)?;
        let recorded = pending
            .flatten()
            .and_then(|intent| self.before(target, intent));
        let write = targets::Write {
            provider: self.target_provider(target)?,
            rotation: &rotation.id,
            target: &target.id,
            user: &rotation.user,
            new_key: &new_key,
            secret: &secret,
            base_dir: self.base_dir,
            backup: self.backup_path(rotation, &target.id),
        };
        let intent = |before: TargetBefore| -> futures_util::future::BoxFuture<'_, _> {
            Box::pin(async move {
                self.intent(rotation, id, Some(Intent::Distribute(before)))
                    .await
                    .map_err(|e| ActionError::Record(e.to_string()))
            })
        };
        self.journal.verify_held().await?;
        let written = resolved.write(&write, recorded.as_ref(), &intent).await?;
        Ok(StepEnd::Done(
            written.version.map(|version| Done::Written { version }),
        ))
    }

    pub(super) fn resolve<'v>(&'v self, values: &'v Values<'v>, what: &'v str) -> Resolve<'v> {
        Resolve {
            values,
            base_dir: self.base_dir,
            what,
        }
    }

    /// The target for this rotation's user, its templates expanded.
    pub(super) fn resolve_target(
        &self,
        target: &Target,
        values: &Values<'_>,
    ) -> Result<ResolvedTarget, ActionError> {
        let what = format!("target `{}`", target.id);
        target.kind.resolve(&self.resolve(values, &what))
    }

    /// What a target held, from its distribute intent (either format).
    pub(super) fn before(&self, target: &Target, intent: Intent) -> Option<TargetBefore> {
        match intent {
            Intent::Distribute(before) => Some(before),
            Intent::DistributeV1(data) => target.kind.before_from_v1(&data),
            Intent::Create { .. } | Intent::Soak { .. } => None,
        }
    }

    pub(super) fn backup_path(&self, rotation: &RotationRecord, target: &str) -> PathBuf {
        let safe: String = rotation
            .id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.state_dir
            .join("backups")
            .join(format!("{safe}.{target}"))
    }
}
