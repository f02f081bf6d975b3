//! IAM: users, their keys and tags, last use and the credential report;
//! creating, disabling and deleting keys.

use super::*;

impl Iam for Aws {
    fn location(&self) -> (Option<String>, Option<String>) {
        (
            self.config.region().map(|r| r.to_string()),
            self.config.endpoint_url().map(str::to_string),
        )
    }

    async fn account_id(&self) -> Result<String, ProviderError> {
        let identity = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| provider_error("sts:GetCallerIdentity", None, e))?;
        identity
            .account()
            .map(str::to_string)
            .ok_or_else(|| missing("sts:GetCallerIdentity", "account"))
    }

    async fn list_users(&self, path_prefix: Option<&str>) -> Result<Vec<IamUser>, ProviderError> {
        let mut pages = self
            .iam
            .list_users()
            .set_path_prefix(path_prefix.map(str::to_string))
            .into_paginator()
            .send();
        let mut users = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| provider_error("iam:ListUsers", path_prefix, e))?;
            users.extend(page.users().iter().map(|u| IamUser {
                name: u.user_name().to_string(),
                arn: u.arn().to_string(),
                path: u.path().to_string(),
            }));
        }
        Ok(users)
    }

    async fn user_tags(&self, user: &str) -> Result<BTreeMap<String, String>, ProviderError> {
        let mut pages = self
            .iam
            .list_user_tags()
            .user_name(user)
            .into_paginator()
            .send();
        let mut tags = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| provider_error("iam:ListUserTags", Some(user), e))?;
            tags.extend(
                page.tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string())),
            );
        }
        Ok(tags)
    }

    async fn access_keys(&self, user: &str) -> Result<Vec<AccessKey>, ProviderError> {
        let mut pages = self
            .iam
            .list_access_keys()
            .user_name(user)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| provider_error("iam:ListAccessKeys", Some(user), e))?;
            for key in page.access_key_metadata() {
                let (Some(id), Some(created)) = (key.access_key_id(), key.create_date()) else {
                    return Err(missing(
                        "iam:ListAccessKeys",
                        "access key id or creation date",
                    ));
                };
                let status = match key.status() {
                    Some(aws_sdk_iam::types::StatusType::Active) => KeyStatus::Active,
                    _ => KeyStatus::Inactive,
                };
                keys.push(AccessKey {
                    id: id.to_string(),
                    status,
                    created: to_time(created),
                });
            }
        }
        // Oldest first; a stable sort keeps IAM's own (creation) order for keys
        // created within the same second.
        keys.sort_by_key(|k| k.created);
        Ok(keys)
    }

    async fn credential_report(&self) -> Result<crate::providers::CredentialReport, ProviderError> {
        use aws_sdk_iam::types::ReportStateType;
        // IAM builds it in the background: ask until it is complete.
        let mut wait = Duration::from_millis(200);
        for _ in 0..40 {
            let answer = self
                .iam
                .generate_credential_report()
                .send()
                .await
                .map_err(|e| provider_error("iam:GenerateCredentialReport", None, e))?;
            if answer.state() == Some(&ReportStateType::Complete) {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        let answer = self
            .iam
            .get_credential_report()
            .send()
            .await
            .map_err(|e| provider_error("iam:GetCredentialReport", None, e))?;
        let generated = answer
            .generated_time()
            .map(to_time)
            .ok_or_else(|| missing("iam:GetCredentialReport", "GeneratedTime"))?;
        let content = answer
            .content()
            .ok_or_else(|| missing("iam:GetCredentialReport", "Content"))?;
        crate::providers::CredentialReport::parse(
            &String::from_utf8_lossy(content.as_ref()),
            generated,
        )
        .map_err(|message| ProviderError {
            action: "iam:GetCredentialReport".into(),
            resource: None,
            kind: ErrorKind::Other(message),
        })
    }

    async fn key_last_used(&self, key_id: &str) -> Result<LastUse, ProviderError> {
        let answer = self
            .iam
            .get_access_key_last_used()
            .access_key_id(key_id)
            .send()
            .await
            .map_err(|e| provider_error("iam:GetAccessKeyLastUsed", Some(key_id), e))?;
        let Some(used) = answer.access_key_last_used() else {
            return Ok(LastUse::default());
        };
        let known = |text: &str| (!text.is_empty() && text != "N/A").then(|| text.to_string());
        Ok(LastUse {
            date: used.last_used_date().map(to_time),
            service: known(used.service_name()),
            region: known(used.region()),
        })
    }
}
impl IamWriter for Aws {
    fn server_time(&self) -> Option<OffsetDateTime> {
        self.clock.now()
    }

    async fn create_access_key(&self, user: &str) -> Result<NewKey, ProviderError> {
        let answer = self
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .map_err(|e| provider_error("iam:CreateAccessKey", Some(user), e))?;
        let key = answer
            .access_key()
            .ok_or_else(|| missing("iam:CreateAccessKey", "access key"))?;
        // The SDK fills missing required fields with empty strings: an
        // answer without a real key id and secret is no key at all.
        if !crate::secret::looks_like_key_id(key.access_key_id())
            || key.secret_access_key().is_empty()
        {
            return Err(missing("iam:CreateAccessKey", "access key id and secret"));
        }
        Ok(NewKey {
            id: key.access_key_id().to_string(),
            secret: SecretString::from(key.secret_access_key().to_string()),
        })
    }

    async fn set_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), ProviderError> {
        let status = match status {
            KeyStatus::Active => aws_sdk_iam::types::StatusType::Active,
            KeyStatus::Inactive => aws_sdk_iam::types::StatusType::Inactive,
        };
        self.iam
            .update_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .status(status)
            .send()
            .await
            .map_err(|e| provider_error("iam:UpdateAccessKey", Some(key_id), e))?;
        Ok(())
    }

    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), ProviderError> {
        match self
            .iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => absent(error, "iam:DeleteAccessKey", Some(key_id)),
        }
    }

    async fn identity_of(
        &self,
        key_id: &str,
        secret: &SecretString,
    ) -> Result<String, ProviderError> {
        let credentials = aws_sdk_sts::config::Credentials::new(
            key_id,
            secret.expose_secret(),
            None,
            None,
            "rekey-new-key",
        );
        let config = aws_sdk_sts::config::Builder::from(&self.config)
            .credentials_provider(credentials)
            .interceptor(Counted(self.calls.sts.clone()))
            .build();
        let sts = aws_sdk_sts::Client::from_conf(config);
        let identity = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| provider_error("sts:GetCallerIdentity", Some(key_id), e))?;
        identity
            .arn()
            .map(str::to_string)
            .ok_or_else(|| missing("sts:GetCallerIdentity", "ARN"))
    }
}
