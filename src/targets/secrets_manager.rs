//! The `secrets_manager` target: a new version staged AWSPENDING, then made
//! AWSCURRENT (the old one becomes AWSPREVIOUS). The version's request token
//! is derived from the rotation and the target, so a resumed write names
//! the same version. A rollback moves AWSCURRENT back, or deletes a secret
//! the rotation created.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionError, Intent, Kind, Resolve, Resolved, Restore, Version, Write, Written};
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
        vec![format!("secret {}", self.secret_id)]
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
        intent: Intent<'i, Version>,
    ) -> Result<Written, ActionError> {
        let id = &self.secret_id;
        let current = cx.provider.current_secret(id).await?;
        let current_key = current
            .as_ref()
            .and_then(|(_, value)| crate::secret::key_id_in(value, self.format));
        if current_key.as_deref() == Some(cx.new_key) {
            let version = current.map(|(version, _)| version).unwrap_or_default();
            return Ok(Written {
                version: Some(version),
            });
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
        Ok(Written {
            version: Some(version),
        })
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
        let Some(version) = before.previous() else {
            return Vec::new();
        };
        match provider.secret_version(&self.secret_id, version).await {
            Ok(Some(value)) => crate::secret::secrets_in(&value, self.format),
            _ => Vec::new(),
        }
    }

    fn before_from_v1(data: &BTreeMap<String, String>) -> Option<Version> {
        Version::from_v1(data)
    }
}

/// A Secrets Manager ClientRequestToken (32 to 64 characters) that is the
/// same for the same rotation and target, so a resumed write is idempotent.
fn request_token(rotation: &str, target: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{rotation}\0{target}"));
    format!("{digest:x}")[..40].to_string()
}
