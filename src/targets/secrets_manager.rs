//! The `secrets_manager` target: a new version staged AWSPENDING, then made
//! AWSCURRENT (the old one becomes AWSPREVIOUS). The version's request token
//! is derived from the rotation and the target, so a resumed write names
//! the same version. A rollback moves AWSCURRENT back, or deletes a secret
//! the rotation created.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionError, RecordBefore, Kind, Resolve, Resolved, Restore, Version, Write, Written};
use crate::providers::{Provider, TargetReader, TargetState};
use crate::secret::{SecretString, format_value};
use crate::workflow::vocabulary::{SecretFormat, Templates, maybe};
use crate::workflow::source::DocPath;
use crate::workflow::template::Template;

/// A Secrets Manager secret; the new version is staged AWSPENDING, then
/// made AWSCURRENT.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsManagerTarget {
    pub secret_id: Template,
    #[serde(default)]
    pub format: SecretFormat,
    pub kms_key_id: Option<Template>,
}

impl Templates for SecretsManagerTarget {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        out.push((at.key("secret_id"), &mut self.secret_id));
        maybe(&mut self.kms_key_id, at.key("kms_key_id"), out);
    }
}

/// One user's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub secret_id: String,
    pub format: SecretFormat,
    pub kms_key_id: Option<String>,
}

impl Kind for SecretsManagerTarget {
    type Resolved = Secret;
    const IN_ACCOUNT: bool = true;

    fn resolve(&self, cx: &Resolve<'_>) -> Result<Secret, ActionError> {
        Ok(Secret {
            secret_id: cx.expand(&self.secret_id)?,
            format: self.format,
            kms_key_id: self.kms_key_id.as_ref().map(|k| cx.expand(k)).transpose()?,
        })
    }
}

impl Resolved for Secret {
    type Before = Version;

    fn resource(&self) -> String {
        self.secret_id.clone()
    }

    fn format(&self) -> Option<SecretFormat> {
        Some(self.format)
    }

    fn describe(&self) -> String {
        format!(
            "write a new version of secret {} ({})",
            self.secret_id,
            self.format.name()
        )
    }

    fn writes(&self) -> Vec<String> {
        // By name: a secret named by its ARN and by its name is one.
        vec![format!("secret {}", secret_name(&self.secret_id))]
    }

    async fn observe<P: TargetReader>(
        &self,
        provider: &P,
        _what: &str,
    ) -> Result<Option<TargetState>, ActionError> {
        Ok(Some(provider.secret(&self.secret_id, self.format).await?))
    }

    async fn write<'i, P: Provider>(
        &self,
        cx: &Write<'_, P>,
        recorded: Option<&Version>,
        intent: RecordBefore<'i, Version>,
    ) -> Result<Written, ActionError> {
        let id = &self.secret_id;
        let current = cx.provider.current_secret(id).await?;
        let current_key = current
            .as_ref()
            .and_then(|(_, value)| crate::secret::key_id_in(value, self.format));
        if current_key.as_deref() == Some(cx.new_key) {
            let version = current.map(|(version, _)| version).unwrap_or_default();
            return Ok(Written::version(version));
        }
        if recorded.is_none() {
            intent(Version {
                existed: current.is_some(),
                version: current.as_ref().map(|(version, _)| version.clone()),
            })
            .await?;
        }
        let value = format_value(self.format, cx.new_key, cx.secret, None);
        // The same token on a resumed write names the same version.
        let token = request_token(cx.rotation, cx.target);
        let version = match &current {
            None => {
                cx.provider
                    .create_secret(id, &value, self.kms_key_id.as_deref(), &token)
                    .await?
            }
            Some((current_version, _)) => {
                let version = cx.provider.put_pending(id, &value, &token).await?;
                cx.provider
                    .make_current(id, &version, Some(current_version))
                    .await?;
                cx.provider.clear_pending(id, &version).await?;
                version
            }
        };
        Ok(Written::version(version))
    }

    async fn restore<P: Provider>(
        &self,
        cx: &Restore<'_, P>,
        before: &Version,
    ) -> Result<(), ActionError> {
        let id = &self.secret_id;
        if !before.existed {
            cx.provider.delete_secret(id).await?;
            return Ok(());
        }
        let previous = before.version.clone().unwrap_or_default();
        let current = cx
            .provider
            .current_secret(id)
            .await?
            .map(|(version, _)| version);
        // Already back (a restore whose answer was lost): nothing to move.
        if current.as_deref() == Some(previous.as_str()) {
            return Ok(());
        }
        cx.provider
            .make_current(id, &previous, current.as_deref())
            .await?;
        Ok(())
    }

    async fn old_secrets<P: Provider>(
        &self,
        provider: &P,
        before: &Version,
        _backup: &std::path::Path,
    ) -> Vec<SecretString> {
        let id = &self.secret_id;
        before
            .old_secrets(self.format, async |version| {
                provider.secret_version(id, &version).await
            })
            .await
    }

    fn before_from_v1(data: &BTreeMap<String, String>) -> Option<Version> {
        Version::from_v1(data)
    }
}

/// The name a secret id gives: the id itself, or the name in an ARN
/// (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf`, whose last
/// six characters after the hyphen are AWS's random suffix).
fn secret_name(id: &str) -> &str {
    let Some((_, name)) = id.split_once(":secret:").filter(|_| id.starts_with("arn:")) else {
        return id;
    };
    match name.rsplit_once('-') {
        Some((stem, suffix))
            if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            stem
        }
        _ => name,
    }
}

/// A Secrets Manager ClientRequestToken (32 to 64 characters) that is the
/// same for the same rotation and target, so a resumed write is idempotent.
fn request_token(rotation: &str, target: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{rotation}\0{target}"));
    format!("{digest:x}")[..40].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::SecretStore;
    use crate::providers::memory::Memory;
    use crate::secret::{ExposeSecret, key_id_in};
    use crate::targets::testing::{NEW, OLD, doc, recorder, resolve, restore, write};

    async fn current_key(memory: &Memory, id: &str) -> Option<String> {
        let (_, value) = memory.current_secret(id).await.unwrap()?;
        key_id_in(&value, SecretFormat::Json)
    }

    #[test]
    fn resolves_its_id_for_the_user() {
        let secret = resolve(&doc::<SecretsManagerTarget>("secret_id: ci/${user}"), "app").unwrap();
        assert_eq!(secret.secret_id, "ci/app");
        assert_eq!(secret.format, SecretFormat::Json);
    }

    /// Regression: a secret named by ARN in one target and by name in
    /// another was not seen as one by the collision check.
    #[test]
    fn a_secret_named_by_its_arn_and_by_its_name_is_one_write() {
        let by_name = resolve(&doc::<SecretsManagerTarget>("secret_id: ci/app"), "app").unwrap();
        let by_arn = resolve(
            &doc::<SecretsManagerTarget>(
                "secret_id: arn:aws:secretsmanager:us-east-1:123456789012:secret:ci/app-AbC123",
            ),
            "app",
        )
        .unwrap();
        assert_eq!(by_name.writes(), by_arn.writes());
        assert_eq!(secret_name("ci/app-x"), "ci/app-x");
    }

    #[test]
    fn a_resumed_write_names_the_same_version() {
        assert_eq!(request_token("app@1", "t"), request_token("app@1", "t"));
        assert_ne!(request_token("app@1", "t"), request_token("app@2", "t"));
        assert!((32..=64).contains(&request_token("app@1", "t").len()));
    }

    #[tokio::test]
    async fn a_new_version_becomes_current_and_a_restore_makes_the_old_one_current_again() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        let target = resolve(&doc::<SecretsManagerTarget>("secret_id: ci/${user}"), "app").unwrap();
        // The secret as an earlier rotation left it, holding the old key.
        let old = SecretString::from("old-secret".to_string());
        let (kept_first, kept_second) = (std::sync::Mutex::new(Vec::new()), std::sync::Mutex::new(Vec::new()));
        let first = Write {
            new_key: OLD,
            secret: &old,
            rotation: "app@0",
            ..write(&memory, &old, dir.path())
        };
        target.write(&first, None, &recorder!(kept_first)).await.unwrap();
        assert_eq!(current_key(&memory, "ci/app").await.as_deref(), Some(OLD));
        assert!(!kept_first.lock().unwrap()[0].existed);

        let new = SecretString::from("new-secret".to_string());
        target
            .write(&write(&memory, &new, dir.path()), None, &recorder!(kept_second))
            .await
            .unwrap();
        assert_eq!(current_key(&memory, "ci/app").await.as_deref(), Some(NEW));
        let before = kept_second.lock().unwrap()[0].clone();
        assert!(before.existed);
        let hidden = target.old_secrets(&memory, &before, dir.path()).await;
        assert_eq!(
            hidden.iter().map(|s| s.expose_secret().to_string()).collect::<Vec<_>>(),
            ["old-secret"]
        );
        target
            .restore(&restore(&memory, dir.path()), &before)
            .await
            .unwrap();
        assert_eq!(current_key(&memory, "ci/app").await.as_deref(), Some(OLD));
        // A restore whose answer was lost, run again, changes nothing.
        target
            .restore(&restore(&memory, dir.path()), &before)
            .await
            .unwrap();
        assert_eq!(current_key(&memory, "ci/app").await.as_deref(), Some(OLD));
    }
}
