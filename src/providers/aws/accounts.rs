//! Reaching the Organization's accounts: Organizations listings, and a
//! provider per account through `sts:AssumeRole` ([`AssumedRole`]:
//! credentials asked for again before they expire).

use super::*;

/// Every page of a listing, or the error as advice naming `action`.
macro_rules! every_page {
    ($request:expr, $action:literal, $resource:expr) => {
        $request
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| provider_error($action, $resource, e))
    };
}

/// A role assumed in another account: credentials from `sts:AssumeRole`
/// with this provider's own, kept until five minutes before they expire
/// and then asked for again, so a long apply never runs out of them.
#[derive(Debug)]
pub(super) struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: Option<String>,
    session_name: String,
    /// How long each session lasts (`REKEY_ROLE_SESSION`, e.g. `1h`; the
    /// role's default, one hour, when unset). STS allows 15 min to 12 h.
    session: Option<Duration>,
    current: tokio::sync::Mutex<Option<aws_credential_types::Credentials>>,
}

impl AssumedRole {
    pub(super) async fn credentials(
        &self,
    ) -> Result<aws_credential_types::Credentials, ProviderError> {
        let mut current = self.current.lock().await;
        // Asked again five minutes before they expire (a quarter of a
        // shorter session).
        let margin = self.session.map_or(Duration::from_secs(300), |s| {
            (s / 4).min(Duration::from_secs(300))
        });
        let fresh = |c: &aws_credential_types::Credentials| {
            c.expiry()
                .is_none_or(|at| at > std::time::SystemTime::now() + margin)
        };
        if let Some(credentials) = current.as_ref().filter(|c| fresh(c)) {
            return Ok(credentials.clone());
        }
        let answer = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .set_external_id(self.external_id.clone())
            .set_duration_seconds(self.session.map(|s| s.as_secs() as i32))
            .send()
            .await
            .map_err(|e| provider_error("sts:AssumeRole", Some(&self.role_arn), e))?;
        let got = answer
            .credentials()
            .ok_or_else(|| missing("sts:AssumeRole", "credentials"))?;
        let expiry = std::time::SystemTime::try_from(*got.expiration()).ok();
        let credentials = aws_credential_types::Credentials::new(
            got.access_key_id(),
            got.secret_access_key(),
            Some(got.session_token().to_string()),
            expiry,
            "rekey-assume-role",
        );
        *current = Some(credentials.clone());
        Ok(credentials)
    }
}

#[derive(Debug, Clone)]
pub(super) struct SharedAssumedRole(std::sync::Arc<AssumedRole>);

impl aws_credential_types::provider::ProvideCredentials for SharedAssumedRole {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            self.0.credentials().await.map_err(|error| {
                aws_credential_types::provider::error::CredentialsError::provider_error(
                    error.to_string(),
                )
            })
        })
    }
}
impl crate::providers::Reach for Aws {
    async fn organization_accounts(
        &self,
        ous: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, ProviderError> {
        let client = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(&self.config)
                .interceptor(Counted(self.calls.organizations.clone()))
                .build(),
        );
        // `State` (newer) or, from an older endpoint, `Status`.
        let active = |account: &aws_sdk_organizations::types::Account| match account.state() {
            Some(state) => state.as_str() == "ACTIVE",
            None => account.status().is_some_and(|s| s.as_str() == "ACTIVE"),
        };
        let ids = |page: Vec<aws_sdk_organizations::types::Account>| {
            page.into_iter()
                .filter(active)
                .filter_map(|a| a.id)
                .collect::<Vec<String>>()
        };
        let mut accounts: Vec<String> = Vec::new();
        if ous.is_empty() {
            let pages = every_page!(client.list_accounts(), "organizations:ListAccounts", None)?;
            accounts.extend(
                pages
                    .into_iter()
                    .flat_map(|p| ids(p.accounts.unwrap_or_default())),
            );
        }
        // The OUs' accounts, at any depth.
        let mut parents: Vec<String> = ous.to_vec();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(parent) = parents.pop() {
            if !seen.insert(parent.clone()) {
                continue;
            }
            let here = every_page!(
                client.list_accounts_for_parent().parent_id(&parent),
                "organizations:ListAccountsForParent",
                Some(&parent)
            )?;
            accounts.extend(
                here.into_iter()
                    .flat_map(|p| ids(p.accounts.unwrap_or_default())),
            );
            let children = every_page!(
                client
                    .list_organizational_units_for_parent()
                    .parent_id(&parent),
                "organizations:ListOrganizationalUnitsForParent",
                Some(&parent)
            )?;
            parents.extend(
                children
                    .into_iter()
                    .flat_map(|p| p.organizational_units.unwrap_or_default())
                    .filter_map(|ou| ou.id),
            );
        }
        accounts.sort();
        accounts.dedup();
        if tags.is_empty() {
            return Ok(accounts);
        }
        // One listing per account: eight at once (Organizations allows
        // a few requests per second per account, and retries throttling).
        let tagged: Vec<Option<String>> = futures_util::stream::iter(accounts)
            .map(|account| {
                let client = &client;
                async move {
                    let pages = every_page!(
                        client.list_tags_for_resource().resource_id(&account),
                        "organizations:ListTagsForResource",
                        Some(&account)
                    )?;
                    let have: BTreeMap<String, String> = pages
                        .into_iter()
                        .flat_map(|p| p.tags.unwrap_or_default())
                        .map(|t| (t.key, t.value))
                        .collect();
                    Ok::<_, ProviderError>(
                        tags.iter()
                            .all(|(k, v)| have.get(k) == Some(v))
                            .then_some(account),
                    )
                }
            })
            .buffered(8)
            .try_collect()
            .await?;
        let tagged: Vec<String> = tagged.into_iter().flatten().collect();
        Ok(tagged)
    }

    async fn assume(
        &self,
        role_arn: &str,
        external_id: Option<&str>,
        session_name: &str,
    ) -> Result<Self, ProviderError> {
        let role = std::sync::Arc::new(AssumedRole {
            sts: self.sts.clone(),
            role_arn: role_arn.to_string(),
            external_id: external_id.map(str::to_string),
            session_name: session_name.to_string(),
            session: env_duration("REKEY_ROLE_SESSION"),
            current: tokio::sync::Mutex::new(None),
        });
        // Asked once here, so that a role that cannot be assumed is named
        // as such; the provider keeps them and asks again before expiry.
        role.credentials().await?;
        let config = self
            .config
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(SharedAssumedRole(
                    role.clone(),
                )),
            )
            .build();
        Ok(Self::with_config(config, self.calls.clone(), Some(role)))
    }
}
