//! SSM Parameter Store: targets and staging.

use super::*;

impl ParameterStore for Aws {
    async fn put_parameter(
        &self,
        spec: &ParameterSpec,
        value: &SecretString,
    ) -> Result<String, ProviderError> {
        let kind = if spec.secure {
            aws_sdk_ssm::types::ParameterType::SecureString
        } else {
            aws_sdk_ssm::types::ParameterType::String
        };
        let answer = self
            .ssm
            .put_parameter()
            .name(&spec.name)
            .value(value.expose_secret())
            .r#type(kind)
            .set_key_id(spec.kms_key_id.clone().filter(|_| spec.secure))
            .overwrite(true)
            .send()
            .await
            .map_err(|e| provider_error("ssm:PutParameter", Some(&spec.name), e))?;
        if !spec.tags.is_empty() {
            let tags: Vec<aws_sdk_ssm::types::Tag> = spec
                .tags
                .iter()
                .filter_map(|(k, v)| {
                    aws_sdk_ssm::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .ok()
                })
                .collect();
            self.ssm
                .add_tags_to_resource()
                .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                .resource_id(&spec.name)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| provider_error("ssm:AddTagsToResource", Some(&spec.name), e))?;
        }
        Ok(answer.version().to_string())
    }

    async fn parameter_value(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<SecretString>, ProviderError> {
        let selector = match version {
            Some(version) => format!("{name}:{version}"),
            None => name.to_string(),
        };
        match self
            .ssm
            .get_parameter()
            .name(&selector)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(answer) => Ok(answer
                .parameter()
                .and_then(|p| p.value())
                .map(|v| SecretString::from(v.to_string()))),
            Err(error) => absent(error, "ssm:GetParameter", Some(&selector)).map(|()| None),
        }
    }

    async fn parameter_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<StoredParameter>, ProviderError> {
        let mut next: Option<String> = None;
        loop {
            let answer = match self
                .ssm
                .get_parameter_history()
                .name(name)
                .with_decryption(true)
                .set_next_token(next.take())
                .send()
                .await
            {
                Ok(answer) => answer,
                Err(error) => {
                    return absent(error, "ssm:GetParameterHistory", Some(name)).map(|()| None);
                }
            };
            if let Some(found) = answer
                .parameters()
                .iter()
                .find(|p| p.version().to_string() == version)
            {
                return Ok(found.value().map(|value| StoredParameter {
                    value: SecretString::from(value.to_string()),
                    secure: found.r#type()
                        == Some(&aws_sdk_ssm::types::ParameterType::SecureString),
                    kms_key_id: found.key_id().map(str::to_string),
                }));
            }
            match answer.next_token() {
                Some(token) => next = Some(token.to_string()),
                None => return Ok(None),
            }
        }
    }

    async fn delete_parameter(&self, name: &str) -> Result<(), ProviderError> {
        match self.ssm.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(error) => absent(error, "ssm:DeleteParameter", Some(name)),
        }
    }
}
