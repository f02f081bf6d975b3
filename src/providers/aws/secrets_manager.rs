//! Secrets Manager: targets, with AWS's staging labels.

use super::*;

impl Aws {
    /// GetSecretValue by stage or version; `None` when the secret (or the
    /// version) does not exist.
    async fn get_secret(
        &self,
        id: &str,
        stage: Option<&str>,
        version: Option<&str>,
    ) -> Result<
        Option<aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput>,
        ProviderError,
    > {
        match self
            .secrets
            .get_secret_value()
            .secret_id(id)
            .set_version_stage(stage.map(str::to_string))
            .set_version_id(version.map(str::to_string))
            .send()
            .await
        {
            Ok(answer) => Ok(Some(answer)),
            Err(error) => absent(error, "secretsmanager:GetSecretValue", Some(id)).map(|()| None),
        }
    }
}

impl SecretStore for Aws {
    async fn current_secret(
        &self,
        id: &str,
    ) -> Result<Option<(String, SecretString)>, ProviderError> {
        let answer = self.get_secret(id, Some("AWSCURRENT"), None).await?;
        Ok(answer.and_then(|answer| {
            answer.version_id().map(|version| {
                (
                    version.to_string(),
                    SecretString::from(answer.secret_string().unwrap_or_default().to_string()),
                )
            })
        }))
    }

    async fn secret_version(
        &self,
        id: &str,
        version: &str,
    ) -> Result<Option<SecretString>, ProviderError> {
        let answer = self.get_secret(id, None, Some(version)).await?;
        Ok(answer.and_then(|answer| {
            answer
                .secret_string()
                .map(|value| SecretString::from(value.to_string()))
        }))
    }

    async fn create_secret(
        &self,
        id: &str,
        value: &SecretString,
        kms_key_id: Option<&str>,
        token: &str,
    ) -> Result<String, ProviderError> {
        let answer = self
            .secrets
            .create_secret()
            .name(id)
            .secret_string(value.expose_secret())
            .set_kms_key_id(kms_key_id.map(str::to_string))
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| provider_error("secretsmanager:CreateSecret", Some(id), e))?;
        answer
            .version_id()
            .map(str::to_string)
            .ok_or_else(|| missing("secretsmanager:CreateSecret", "version id"))
    }

    async fn put_pending(
        &self,
        id: &str,
        value: &SecretString,
        token: &str,
    ) -> Result<String, ProviderError> {
        let answer = self
            .secrets
            .put_secret_value()
            .secret_id(id)
            .secret_string(value.expose_secret())
            .client_request_token(token)
            .version_stages("AWSPENDING")
            .send()
            .await
            .map_err(|e| provider_error("secretsmanager:PutSecretValue", Some(id), e))?;
        answer
            .version_id()
            .map(str::to_string)
            .ok_or_else(|| missing("secretsmanager:PutSecretValue", "version id"))
    }

    async fn make_current(
        &self,
        id: &str,
        to: &str,
        from: Option<&str>,
    ) -> Result<(), ProviderError> {
        self.secrets
            .update_secret_version_stage()
            .secret_id(id)
            .version_stage("AWSCURRENT")
            .move_to_version_id(to)
            .set_remove_from_version_id(from.filter(|f| *f != to).map(str::to_string))
            .send()
            .await
            .map_err(|e| provider_error("secretsmanager:UpdateSecretVersionStage", Some(id), e))?;
        Ok(())
    }

    async fn clear_pending(&self, id: &str, version: &str) -> Result<(), ProviderError> {
        self.secrets
            .update_secret_version_stage()
            .secret_id(id)
            .version_stage("AWSPENDING")
            .remove_from_version_id(version)
            .send()
            .await
            .map_err(|e| provider_error("secretsmanager:UpdateSecretVersionStage", Some(id), e))?;
        Ok(())
    }

    async fn delete_secret(&self, id: &str) -> Result<(), ProviderError> {
        match self
            .secrets
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => absent(error, "secretsmanager:DeleteSecret", Some(id)),
        }
    }
}
