//! The `ssm_parameter` target: an SSM Parameter Store parameter, a
//! SecureString unless it holds only the key id. A rollback writes back the
//! previous version's value, or deletes a parameter the rotation created.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionError, RecordBefore, Kind, Resolve, Resolved, Restore, Version, Write, Written};
use crate::providers::{ParameterSpec, Provider, TargetReader, TargetState};
use crate::secret::{SecretString, format_value};
use crate::workflow::vocabulary::{SecretFormat, Templates, each_value, maybe};
use crate::workflow::source::DocPath;
use crate::workflow::template::Template;

/// An SSM Parameter Store parameter (SecureString unless `format: id_only`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SsmParameterTarget {
    pub name: Template,
    #[serde(default)]
    pub format: SecretFormat,
    /// KMS key id, ARN or alias for the SecureString.
    pub kms_key_id: Option<Template>,
    #[serde(default)]
    pub tags: BTreeMap<String, Template>,
}

impl Templates for SsmParameterTarget {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        out.push((at.key("name"), &mut self.name));
        maybe(&mut self.kms_key_id, at.key("kms_key_id"), out);
        each_value(&mut self.tags, &at.key("tags"), out);
    }
}

/// One user's parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub spec: ParameterSpec,
    pub format: SecretFormat,
}

impl Kind for SsmParameterTarget {
    type Resolved = Parameter;
    const IN_ACCOUNT: bool = true;

    fn resolve(&self, cx: &Resolve<'_>) -> Result<Parameter, ActionError> {
        Ok(Parameter {
            spec: ParameterSpec {
                name: cx.expand(&self.name)?,
                secure: self.format != SecretFormat::IdOnly,
                kms_key_id: self.kms_key_id.as_ref().map(|k| cx.expand(k)).transpose()?,
                tags: cx.expand_map(&self.tags)?,
            },
            format: self.format,
        })
    }
}

impl Resolved for Parameter {
    type Before = Version;

    fn resource(&self) -> String {
        self.spec.name.clone()
    }

    fn format(&self) -> Option<SecretFormat> {
        Some(self.format)
    }

    fn describe(&self) -> String {
        format!(
            "write SSM parameter {} ({})",
            self.spec.name,
            self.format.name()
        )
    }

    fn writes(&self) -> Vec<String> {
        vec![format!("SSM parameter {}", self.spec.name)]
    }

    async fn observe<P: TargetReader>(
        &self,
        provider: &P,
        _what: &str,
    ) -> Result<Option<TargetState>, ActionError> {
        Ok(Some(
            provider.ssm_parameter(&self.spec.name, self.format).await?,
        ))
    }

    async fn write<'i, P: Provider>(
        &self,
        cx: &Write<'_, P>,
        recorded: Option<&Version>,
        intent: RecordBefore<'i, Version>,
    ) -> Result<Written, ActionError> {
        let state = cx
            .provider
            .ssm_parameter(&self.spec.name, self.format)
            .await?;
        if state.key_id.as_deref() == Some(cx.new_key) {
            return Ok(Written::version(state.version.unwrap_or_default()));
        }
        if recorded.is_none() {
            intent(Version {
                existed: state.exists,
                version: state.version,
            })
            .await?;
        }
        let value = format_value(self.format, cx.new_key, cx.secret, None);
        let version = cx.provider.put_parameter(&self.spec, &value).await?;
        Ok(Written::version(version))
    }

    async fn restore<P: Provider>(
        &self,
        cx: &Restore<'_, P>,
        before: &Version,
    ) -> Result<(), ActionError> {
        let name = &self.spec.name;
        if !before.existed {
            cx.provider.delete_parameter(name).await?;
            return Ok(());
        }
        let version = before.version.clone().unwrap_or_default();
        let stored = cx
            .provider
            .parameter_version(name, &version)
            .await?
            .ok_or_else(|| {
                ActionError::Missing(format!(
                    "version {version} of SSM parameter {name} is gone (deleted by someone else?): put the old key's value back by hand, then run apply to finish the rollback"
                ))
            })?;
        // As it was: its type (a String stays a String) and its KMS key.
        let spec = ParameterSpec {
            name: name.clone(),
            secure: stored.secure,
            kms_key_id: stored.kms_key_id,
            tags: BTreeMap::new(),
        };
        let value = stored.value;
        cx.provider.put_parameter(&spec, &value).await?;
        Ok(())
    }

    async fn old_secrets<P: Provider>(
        &self,
        provider: &P,
        before: &Version,
        _backup: &std::path::Path,
    ) -> Vec<SecretString> {
        let name = &self.spec.name;
        before
            .old_secrets(self.format, async |version| {
                let stored = provider.parameter_version(name, &version).await?;
                Ok(stored.map(|stored| stored.value))
            })
            .await
    }

    fn before_from_v1(data: &BTreeMap<String, String>) -> Option<Version> {
        Version::from_v1(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::memory::Memory;
    use crate::secret::ExposeSecret;
    use crate::targets::testing::{NEW, OLD, doc, recorder, resolve, restore, write};

    fn value(key: &str, secret: &str) -> String {
        format_value(SecretFormat::Json, key, &SecretString::from(secret.to_string()), None)
            .expose_secret()
            .to_string()
    }

    #[test]
    fn resolves_its_name_for_the_user_and_is_secure_unless_it_holds_only_the_id() {
        let secure = resolve(&doc::<SsmParameterTarget>("name: /app/${user}/aws"), "ci").unwrap();
        assert_eq!(secure.spec.name, "/app/ci/aws");
        assert!(secure.spec.secure);
        assert_eq!(secure.describe(), "write SSM parameter /app/ci/aws (json)");
        let plain = doc::<SsmParameterTarget>("name: /app/${user}/id\nformat: id_only");
        assert!(!resolve(&plain, "ci").unwrap().spec.secure);
    }

    #[tokio::test]
    async fn a_write_records_what_was_there_once_and_a_restore_puts_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        memory.parameter("/app/app/aws", &value(OLD, "old-secret"));
        let target = resolve(&doc::<SsmParameterTarget>("name: /app/${user}/aws"), "app").unwrap();
        let secret = SecretString::from("new-secret".to_string());
        let kept = std::sync::Mutex::new(Vec::new());
        let record = recorder!(kept);
        let written = target
            .write(&write(&memory, &secret, dir.path()), None, &record)
            .await
            .unwrap();
        assert_eq!(written.version.as_deref(), Some("2"));
        assert_eq!(memory.parameter_now("/app/app/aws"), Some(value(NEW, "new-secret")));
        let before = kept.lock().unwrap().clone();
        assert_eq!(
            before,
            [Version {
                existed: true,
                version: Some("1".into())
            }]
        );
        // Resumed after a crash: the parameter already holds the new key,
        // so nothing is written or recorded again.
        target
            .write(&write(&memory, &secret, dir.path()), Some(&before[0]), &record)
            .await
            .unwrap();
        assert_eq!(kept.lock().unwrap().len(), 1);
        target
            .restore(&restore(&memory, dir.path()), &before[0])
            .await
            .unwrap();
        assert_eq!(memory.parameter_now("/app/app/aws"), Some(value(OLD, "old-secret")));
    }

    #[tokio::test]
    async fn a_parameter_the_rotation_created_is_deleted_on_restore() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        let target = resolve(&doc::<SsmParameterTarget>("name: /new/${user}"), "app").unwrap();
        let secret = SecretString::from("new-secret".to_string());
        let kept = std::sync::Mutex::new(Vec::new());
        let record = recorder!(kept);
        target
            .write(&write(&memory, &secret, dir.path()), None, &record)
            .await
            .unwrap();
        let before = kept.lock().unwrap()[0].clone();
        assert!(!before.existed);
        target
            .restore(&restore(&memory, dir.path()), &before)
            .await
            .unwrap();
        assert_eq!(memory.parameter_now("/new/app"), None);
    }
}
