//! Hiding secrets from what steps print: the rotation's new secret and
//! every secret its targets held before it wrote them, in any encoding.

use super::*;

impl<P: Provider> Runner<'_, P> {
    /// `text` (an error an SDK or a command produced) with the rotation's
    /// secrets, new and old, replaced by `(sensitive)` in any encoding.
    pub(super) async fn redact(&self, rotation: &Rotation, mut text: String) -> String {
        let new_key = rotation.new_key().map(str::to_string);
        let values = self.values(rotation, new_key.as_deref());
        let mut secrets = self.old_secrets(rotation, &values).await;
        if new_key.is_some()
            && let Ok((_, secret)) = self.new_key(rotation).await
        {
            secrets.push(secret);
        }
        for secret in &secrets {
            for form in crate::secret::disguises(crate::secret::ExposeSecret::expose_secret(secret))
            {
                text = text.replace(&form, "(sensitive)");
            }
        }
        text
    }

    /// The secrets the rotation's targets held before it wrote them (file
    /// backups, SSM and Secrets Manager previous versions): a hook that
    /// prints a target must not show even the old one. From the intents of
    /// earlier runs and of this one.
    pub(super) async fn old_secrets(
        &self,
        rotation: &Rotation,
        values: &Values<'_>,
    ) -> Vec<SecretString> {
        let mut intents: BTreeMap<StepId, Intent> = rotation
            .intents
            .iter()
            .filter_map(|(step, intent)| Some((step.clone(), intent.clone()?)))
            .collect();
        intents.extend(self.journal.intents_of(&rotation.id));
        let mut secrets = Vec::new();
        for target in &rotation.workflow.targets {
            let step = StepId {
                phase: Phase::Distribute,
                item: Some(target.id.clone()),
            };
            let Some(before) = intents
                .get(&step)
                .cloned()
                .and_then(|intent| self.before(target, intent))
            else {
                continue;
            };
            let Ok(resolved) = self.resolve_target(target, values) else {
                continue;
            };
            let backup = self.backup_path(rotation, &target.id);
            let Ok(provider) = self.target_provider(target) else {
                continue;
            };
            secrets.extend(resolved.old_secrets(provider, &before, &backup).await);
        }
        secrets
    }
}
