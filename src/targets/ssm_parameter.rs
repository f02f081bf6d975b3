//! The `ssm_parameter` target: an SSM Parameter Store parameter, a
//! SecureString unless it holds only the key id. A rollback writes back the
//! previous version's value, or deletes a parameter the rotation created.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionError, Intent, Kind, Resolve, Resolved, Restore, Version, Write, Written};
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
        intent: Intent<'i, Version>,
    ) -> Result<Written, ActionError> {
        let state = cx
            .provider
            .ssm_parameter(&self.spec.name, self.format)
            .await?;
        if state.key_id.as_deref() == Some(cx.new_key) {
            return Ok(Written {
                version: Some(state.version.unwrap_or_default()),
            });
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
        Ok(Written {
            version: Some(version),
        })
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
        let Some(version) = before.previous() else {
            return Vec::new();
        };
        match provider.parameter_version(&self.spec.name, version).await {
            Ok(Some(stored)) => crate::secret::secrets_in(&stored.value, self.format),
            _ => Vec::new(),
        }
    }

    fn before_from_v1(data: &BTreeMap<String, String>) -> Option<Version> {
        Version::from_v1(data)
    }
}
