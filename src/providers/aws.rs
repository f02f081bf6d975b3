//! The AWS provider: IAM, STS, SSM and Secrets Manager through the SDK.
//!
//! Clients come from the standard `aws-config` chain (profile, region,
//! `AWS_ENDPOINT_URL` or `--endpoint-url`, SSO, instance roles) with the
//! SDK's standard retries on, and timeouts set so a hung endpoint cannot hang
//! a run. Every call is counted per service for the run report. Errors are
//! turned into [`ProviderError`]s that say what to do.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use futures_util::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

use super::{
    AccessKey, ErrorKind, Iam, IamUser, IamWriter, Invocation, KeyStatus, LastUse, NewKey,
    ParameterSpec, ParameterStore, ProviderError, RunCommand, SecretStore, StoredParameter,
    TargetReader, TargetState,
};
use crate::secret::{ExposeSecret, SecretString, key_id_in};
use crate::workflow::document::SecretFormat;

/// Where and as whom to talk to AWS; anything unset comes from the
/// environment and shared config files, as with the AWS CLI.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// API calls made, per service.
#[derive(Debug, Default)]
pub struct Calls {
    iam: AtomicU64,
    sts: AtomicU64,
    organizations: AtomicU64,
    ssm: AtomicU64,
    secretsmanager: AtomicU64,
    /// Shared with the object stores made from this provider.
    s3: std::sync::Arc<AtomicU64>,
}

impl Calls {
    pub fn by_service(&self) -> BTreeMap<&'static str, u64> {
        [
            ("iam", &self.iam),
            ("organizations", &self.organizations),
            ("secretsmanager", &self.secretsmanager),
            ("s3", &*self.s3),
            ("ssm", &self.ssm),
            ("sts", &self.sts),
        ]
        .into_iter()
        .map(|(name, count)| (name, count.load(Ordering::Relaxed)))
        .filter(|(_, count)| *count > 0)
        .collect()
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the pages a paginated listing read.
    fn add(counter: &AtomicU64, pages: usize) {
        counter.fetch_add(pages as u64, Ordering::Relaxed);
    }
}

pub struct Aws {
    config: aws_config::SdkConfig,
    iam: aws_sdk_iam::Client,
    /// IAM's clock, as its answers say.
    clock: ServerClock,
    sts: aws_sdk_sts::Client,
    ssm: aws_sdk_ssm::Client,
    secrets: aws_sdk_secretsmanager::Client,
    /// Shared by the providers made from this one for other accounts.
    pub calls: std::sync::Arc<Calls>,
    /// For another account: the role assumed there (its credentials are
    /// what `credentials: operator` commands get).
    assumed: Option<std::sync::Arc<AssumedRole>>,
}

impl Aws {
    pub async fn connect(options: &AwsOptions) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(
                env_duration("REKEY_AWS_ATTEMPT_TIMEOUT").unwrap_or(Duration::from_secs(20)),
            )
            .operation_timeout(
                env_duration("REKEY_AWS_OPERATION_TIMEOUT").unwrap_or(Duration::from_secs(90)),
            )
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .timeout_config(timeouts);
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let mut config = loader.load().await;
        if config.region().is_none() {
            // IAM and STS are global; SSM and Secrets Manager need a region,
            // and us-east-1 is where IAM itself lives.
            config = config
                .into_builder()
                .region(Region::from_static("us-east-1"))
                .build();
        }
        Self::with_config(config, Default::default(), None)
    }

    fn with_config(
        config: aws_config::SdkConfig,
        calls: std::sync::Arc<Calls>,
        assumed: Option<std::sync::Arc<AssumedRole>>,
    ) -> Self {
        let clock = ServerClock::default();
        let iam_config = aws_sdk_iam::config::Builder::from(&config)
            .interceptor(clock.clone())
            .build();
        Self {
            iam: aws_sdk_iam::Client::from_conf(iam_config),
            clock,
            sts: aws_sdk_sts::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            calls,
            assumed,
            config,
        }
    }

    /// The S3 bucket `bucket` as an object store (rekey's shared state):
    /// in `region` when given, encrypted with KMS key `kms_key_id` when
    /// given (else SSE-S3). Calls count under `s3`.
    pub fn object_store(
        &self,
        bucket: &str,
        region: Option<&str>,
        kms_key_id: Option<&str>,
    ) -> S3Objects {
        let clock = ServerClock::default();
        let mut config = aws_sdk_s3::config::Builder::from(&self.config)
            .interceptor(clock.clone())
            // Plain bodies with a Content-Length: no streamed checksum
            // trailers (proxies and emulators read them poorly).
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            );
        if let Some(region) = region {
            config = config.region(Region::new(region.to_string()));
        }
        if self.config.endpoint_url().is_some() {
            // An emulator or a private endpoint: no bucket subdomains.
            config = config.force_path_style(true);
        }
        S3Objects {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: bucket.to_string(),
            kms_key_id: kms_key_id.map(str::to_string),
            clock,
            calls: self.calls.s3.clone(),
        }
    }
}

/// A role assumed in another account: credentials from `sts:AssumeRole`
/// with this provider's own, kept until five minutes before they expire
/// and then asked for again, so a long apply never runs out of them.
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: Option<String>,
    session_name: String,
    /// How long each session lasts (`REKEY_ROLE_SESSION`, e.g. `1h`; the
    /// role's default, one hour, when unset). STS allows 15 min to 12 h.
    session: Option<Duration>,
    calls: std::sync::Arc<Calls>,
    current: tokio::sync::Mutex<Option<aws_credential_types::Credentials>>,
}

impl AssumedRole {
    async fn credentials(&self) -> Result<aws_credential_types::Credentials, ProviderError> {
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
        Calls::count(&self.calls.sts);
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
struct SharedAssumedRole(std::sync::Arc<AssumedRole>);

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

impl super::Reach for Aws {
    async fn organization_accounts(
        &self,
        ous: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, ProviderError> {
        let client = aws_sdk_organizations::Client::new(&self.config);
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
            let pages = client
                .list_accounts()
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| provider_error("organizations:ListAccounts", None, e))?;
            Calls::add(&self.calls.organizations, pages.len());
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
            let here = client
                .list_accounts_for_parent()
                .parent_id(&parent)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| {
                    provider_error("organizations:ListAccountsForParent", Some(&parent), e)
                })?;
            Calls::add(&self.calls.organizations, here.len());
            accounts.extend(
                here.into_iter()
                    .flat_map(|p| ids(p.accounts.unwrap_or_default())),
            );
            let children = client
                .list_organizational_units_for_parent()
                .parent_id(&parent)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| {
                    provider_error(
                        "organizations:ListOrganizationalUnitsForParent",
                        Some(&parent),
                        e,
                    )
                })?;
            Calls::add(&self.calls.organizations, children.len());
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
                    let pages = client
                        .list_tags_for_resource()
                        .resource_id(&account)
                        .into_paginator()
                        .send()
                        .try_collect()
                        .await
                        .map_err(|e| {
                            provider_error("organizations:ListTagsForResource", Some(&account), e)
                        })?;
                    Calls::add(&self.calls.organizations, pages.len());
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
            calls: self.calls.clone(),
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

/// One S3 bucket, where shared state lives.
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
    kms_key_id: Option<String>,
    clock: ServerClock,
    calls: std::sync::Arc<AtomicU64>,
}

impl S3Objects {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn resource(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The bucket is missing: said plainly, not as a missing object.
    fn no_bucket<E: ProvideErrorMetadata>(
        &self,
        action: &str,
        error: &SdkError<E, HttpResponse>,
    ) -> Option<ProviderError> {
        (error.code() == Some("NoSuchBucket")).then(|| ProviderError {
            action: action.to_string(),
            resource: Some(format!("s3://{}", self.bucket)),
            kind: ErrorKind::Other(
                "the bucket does not exist (or is not in this region); create it, with versioning on, or fix `state.s3.bucket` or --state".into(),
            ),
        })
    }

    /// A failed conditional request (412, or 409 when two race).
    fn condition_failed<E>(error: &SdkError<E, HttpResponse>) -> bool {
        error
            .raw_response()
            .is_some_and(|raw| matches!(raw.status().as_u16(), 409 | 412))
    }
}

impl super::ObjectStore for S3Objects {
    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<super::StoredObject>, ProviderError>>
    {
        Box::pin(async move {
            self.count();
            let answer = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(answer) => answer,
                Err(error) if let Some(missing) = self.no_bucket("s3:GetObject", &error) => {
                    return Err(missing);
                }
                Err(error)
                    if error
                        .raw_response()
                        .is_some_and(|raw| raw.status().as_u16() == 404) =>
                {
                    return Ok(None);
                }
                Err(error) => {
                    return Err(provider_error(
                        "s3:GetObject",
                        Some(&self.resource(key)),
                        error,
                    ));
                }
            };
            let etag = answer.e_tag().unwrap_or_default().to_string();
            let last_modified = answer
                .last_modified()
                .map(to_time)
                .ok_or_else(|| missing("s3:GetObject", "LastModified"))?;
            let body = answer
                .body
                .collect()
                .await
                .map_err(|error| ProviderError {
                    action: "s3:GetObject".into(),
                    resource: Some(self.resource(key)),
                    kind: ErrorKind::Unreachable(error.to_string()),
                })?
                .into_bytes()
                .to_vec();
            Ok(Some(super::StoredObject {
                body,
                etag,
                last_modified,
                now: self.clock.now().unwrap_or_else(OffsetDateTime::now_utc),
            }))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        condition: Option<super::Condition>,
    ) -> futures_util::future::BoxFuture<'a, Result<super::Written, ProviderError>> {
        use aws_sdk_s3::types::ServerSideEncryption;
        Box::pin(async move {
            self.count();
            let mut request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(body.into());
            request = match &self.kms_key_id {
                Some(kms) => request
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(kms),
                None => request.server_side_encryption(ServerSideEncryption::Aes256),
            };
            request = match condition {
                Some(super::Condition::Absent) => request.if_none_match("*"),
                Some(super::Condition::Is(etag)) => request.if_match(etag),
                None => request,
            };
            match request.send().await {
                Ok(answer) => Ok(super::Written::Yes(
                    answer.e_tag().unwrap_or_default().to_string(),
                )),
                Err(error) if Self::condition_failed(&error) => Ok(super::Written::ConditionFailed),
                Err(error) if let Some(missing) = self.no_bucket("s3:PutObject", &error) => {
                    Err(missing)
                }
                Err(error) => Err(provider_error(
                    "s3:PutObject",
                    Some(&self.resource(key)),
                    error,
                )),
            }
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, ProviderError>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            loop {
                self.count();
                match pages.next().await {
                    None => break,
                    Some(Ok(page)) => keys.extend(
                        page.contents()
                            .iter()
                            .filter_map(|o| o.key().map(str::to_string)),
                    ),
                    Some(Err(error)) => {
                        if let Some(missing) = self.no_bucket("s3:ListObjectsV2", &error) {
                            return Err(missing);
                        }
                        return Err(provider_error(
                            "s3:ListObjectsV2",
                            Some(&self.resource(prefix)),
                            error,
                        ));
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        etag: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, Result<super::Written, ProviderError>> {
        Box::pin(async move {
            self.count();
            let mut request = self.client.delete_object().bucket(&self.bucket).key(key);
            if let Some(etag) = etag {
                request = request.if_match(etag);
            }
            match request.send().await {
                Ok(_) => Ok(super::Written::Yes(String::new())),
                Err(error) if Self::condition_failed(&error) => Ok(super::Written::ConditionFailed),
                Err(error)
                    if error
                        .raw_response()
                        .is_some_and(|raw| raw.status().as_u16() == 404) =>
                {
                    Ok(super::Written::Yes(String::new()))
                }
                Err(error) => Err(provider_error(
                    "s3:DeleteObject",
                    Some(&self.resource(key)),
                    error,
                )),
            }
        })
    }
}

/// IAM's clock, from the `Date` header of its answers: `create` judges by
/// it whether an unknown key appeared while its own call was under way, so
/// a skewed clock here can neither spare an orphan nor condemn someone
/// else's key. The latest answer's, one-second resolution.
#[derive(Debug, Clone, Default)]
pub struct ServerClock(std::sync::Arc<std::sync::Mutex<Option<OffsetDateTime>>>);

impl ServerClock {
    pub fn now(&self) -> Option<OffsetDateTime> {
        *self.0.lock().expect("server clock")
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for ServerClock {
    fn name(&self) -> &'static str {
        "rekey-server-clock"
    }

    fn read_after_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(date) = context.response().headers().get("date").and_then(http_date) {
            *self.0.lock().expect("server clock") = Some(date);
        }
        Ok(())
    }
}

/// An HTTP `Date` header: `Mon, 30 Nov 2026 05:54:53 GMT`.
fn http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// Whether `name` is a profile of the shared config file (`[profile NAME]`,
/// or `[default]`) or credentials file (`[NAME]`), where the AWS CLI looks
/// (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/`).
pub fn profile_exists(name: &str) -> bool {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |variable: &str, default: &str| {
        std::env::var_os(variable)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    };
    let has = |text: &str, header: &str| text.lines().any(|line| line.trim() == header);
    let config = file("AWS_CONFIG_FILE", ".aws/config");
    let credentials = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    has(&config, &format!("[profile {name}]"))
        || (name == "default" && has(&config, "[default]"))
        || has(&credentials, &format!("[{name}]"))
}

/// A duration (`2s`, `1m`) from the environment, for the timeouts above.
fn env_duration(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()?
        .parse::<crate::workflow::Duration>()
        .ok()
        .map(|d| d.to_std())
}

/// Turns an SDK error into advice: which action, on what, and what to do.
fn provider_error<E>(
    action: &str,
    resource: Option<&str>,
    error: SdkError<E, HttpResponse>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&error).to_string();
    let kind = match &error {
        SdkError::TimeoutError(_) => ErrorKind::Timeout(action.to_string()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            ErrorKind::Timeout(action.to_string())
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
            if detail.contains("credential") =>
        {
            ErrorKind::NoCredentials
        }
        SdkError::DispatchFailure(failure) if failure.is_io() => {
            ErrorKind::Unreachable(first_line(&detail))
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            classify(error.code(), error.message(), status)
        }
        SdkError::ResponseError(response) => classify(None, None, response.raw().status().as_u16()),
        _ => ErrorKind::Other(first_line(&detail)),
    };
    ProviderError {
        action: action.to_string(),
        resource: resource.map(str::to_string),
        kind,
    }
}

fn classify(code: Option<&str>, message: Option<&str>, status: u16) -> ErrorKind {
    let described = || match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        (None, Some(message)) => message.to_string(),
        (None, None) => format!("HTTP {status}"),
    };
    match code {
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException",
        ) => ErrorKind::AccessDenied(described()),
        Some(
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "ExpiredTokenException",
        ) => ErrorKind::AccessDenied(format!("{}; the credentials were rejected", described())),
        Some("NoSuchEntity" | "ParameterNotFound" | "ResourceNotFoundException") => {
            ErrorKind::NotFound
        }
        Some(
            "Throttling"
            | "ThrottlingException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded",
        ) => ErrorKind::Throttled,
        // Error bodies are not always parsed (moto with authentication on):
        // the status still says what happened.
        _ => match status {
            403 => ErrorKind::AccessDenied(described()),
            404 => ErrorKind::NotFound,
            429 => ErrorKind::Throttled,
            _ => ErrorKind::Other(described()),
        },
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

fn to_time(date: &aws_smithy_types::DateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(date.secs()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn missing(action: &str, what: &str) -> ProviderError {
    ProviderError {
        action: action.to_string(),
        resource: None,
        kind: ErrorKind::Other(format!("the answer has no {what}")),
    }
}

impl Iam for Aws {
    fn location(&self) -> (Option<String>, Option<String>) {
        (
            self.config.region().map(|r| r.to_string()),
            self.config.endpoint_url().map(str::to_string),
        )
    }

    async fn account_id(&self) -> Result<String, ProviderError> {
        Calls::count(&self.calls.sts);
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
            Calls::count(&self.calls.iam);
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
            Calls::count(&self.calls.iam);
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
            Calls::count(&self.calls.iam);
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

    async fn credential_report(&self) -> Result<super::CredentialReport, ProviderError> {
        use aws_sdk_iam::types::ReportStateType;
        // IAM builds it in the background: ask until it is complete.
        let mut wait = Duration::from_millis(200);
        for _ in 0..40 {
            Calls::count(&self.calls.iam);
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
        Calls::count(&self.calls.iam);
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
        super::CredentialReport::parse(&String::from_utf8_lossy(content.as_ref()), generated)
            .map_err(|message| ProviderError {
                action: "iam:GetCredentialReport".into(),
                resource: None,
                kind: ErrorKind::Other(message),
            })
    }

    async fn key_last_used(&self, key_id: &str) -> Result<LastUse, ProviderError> {
        Calls::count(&self.calls.iam);
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

impl TargetReader for Aws {
    async fn ssm_parameter(
        &self,
        name: &str,
        format: SecretFormat,
    ) -> Result<TargetState, ProviderError> {
        Calls::count(&self.calls.ssm);
        match self
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(answer) => {
                let parameter = answer.parameter();
                let value = parameter
                    .and_then(|p| p.value())
                    .map(|v| SecretString::from(v.to_string()));
                Ok(TargetState {
                    exists: true,
                    version: parameter.map(|p| p.version().to_string()),
                    key_id: value.and_then(|v| key_id_in(&v, format)),
                    secure: parameter
                        .and_then(|p| p.r#type())
                        .map(|t| *t == aws_sdk_ssm::types::ParameterType::SecureString),
                })
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(TargetState::absent())
            }
            Err(error) => Err(provider_error("ssm:GetParameter", Some(name), error)),
        }
    }

    async fn secret(&self, id: &str, format: SecretFormat) -> Result<TargetState, ProviderError> {
        Calls::count(&self.calls.secretsmanager);
        match self
            .secrets
            .get_secret_value()
            .secret_id(id)
            .version_stage("AWSCURRENT")
            .send()
            .await
        {
            Ok(answer) => {
                let value = answer
                    .secret_string()
                    .map(|v| SecretString::from(v.to_string()));
                Ok(TargetState {
                    exists: true,
                    version: answer.version_id().map(str::to_string),
                    key_id: value.and_then(|v| key_id_in(&v, format)),
                    secure: None,
                })
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(TargetState::absent())
            }
            Err(error) => Err(provider_error(
                "secretsmanager:GetSecretValue",
                Some(id),
                error,
            )),
        }
    }
}

impl IamWriter for Aws {
    fn server_time(&self) -> Option<OffsetDateTime> {
        self.clock.now()
    }

    async fn create_access_key(&self, user: &str) -> Result<NewKey, ProviderError> {
        Calls::count(&self.calls.iam);
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
        Calls::count(&self.calls.iam);
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
        Calls::count(&self.calls.iam);
        match self
            .iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(provider_error("iam:DeleteAccessKey", Some(key_id), error)),
        }
    }

    async fn identity_of(
        &self,
        key_id: &str,
        secret: &SecretString,
    ) -> Result<String, ProviderError> {
        Calls::count(&self.calls.sts);
        let credentials = aws_sdk_sts::config::Credentials::new(
            key_id,
            secret.expose_secret(),
            None,
            None,
            "rekey-new-key",
        );
        let config = aws_sdk_sts::config::Builder::from(&self.config)
            .credentials_provider(credentials)
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

impl ParameterStore for Aws {
    async fn put_parameter(
        &self,
        spec: &ParameterSpec,
        value: &SecretString,
    ) -> Result<String, ProviderError> {
        Calls::count(&self.calls.ssm);
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
            Calls::count(&self.calls.ssm);
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
        Calls::count(&self.calls.ssm);
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
            Err(error)
                if error.as_service_error().is_some_and(|e| {
                    e.is_parameter_not_found() || e.is_parameter_version_not_found()
                }) =>
            {
                Ok(None)
            }
            Err(error) => Err(provider_error("ssm:GetParameter", Some(&selector), error)),
        }
    }

    async fn parameter_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<StoredParameter>, ProviderError> {
        let mut next: Option<String> = None;
        loop {
            Calls::count(&self.calls.ssm);
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
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_parameter_not_found()) =>
                {
                    return Ok(None);
                }
                Err(error) => {
                    return Err(provider_error("ssm:GetParameterHistory", Some(name), error));
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
        Calls::count(&self.calls.ssm);
        match self.ssm.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(())
            }
            Err(error) => Err(provider_error("ssm:DeleteParameter", Some(name), error)),
        }
    }
}

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
        Calls::count(&self.calls.secretsmanager);
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
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(error) => Err(provider_error(
                "secretsmanager:GetSecretValue",
                Some(id),
                error,
            )),
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
        Calls::count(&self.calls.secretsmanager);
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
        Calls::count(&self.calls.secretsmanager);
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
        Calls::count(&self.calls.secretsmanager);
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
        Calls::count(&self.calls.secretsmanager);
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
        Calls::count(&self.calls.secretsmanager);
        match self
            .secrets
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(provider_error(
                "secretsmanager:DeleteSecret",
                Some(id),
                error,
            )),
        }
    }
}

impl RunCommand for Aws {
    async fn operator_credentials(
        &self,
    ) -> Result<Option<super::OperatorCredentials>, ProviderError> {
        let Some(role) = &self.assumed else {
            return Ok(None);
        };
        let credentials = role.credentials().await?;
        Ok(Some(super::OperatorCredentials {
            access_key_id: credentials.access_key_id().to_string(),
            secret_access_key: SecretString::from(credentials.secret_access_key().to_string()),
            session_token: SecretString::from(
                credentials.session_token().unwrap_or_default().to_string(),
            ),
        }))
    }

    async fn send_shell_command(
        &self,
        commands: &[String],
        instance_ids: &[String],
        tags: &BTreeMap<String, String>,
        timeout_seconds: i32,
    ) -> Result<(String, Vec<String>), ProviderError> {
        Calls::count(&self.calls.ssm);
        let targets: Vec<aws_sdk_ssm::types::Target> = tags
            .iter()
            .map(|(key, value)| {
                aws_sdk_ssm::types::Target::builder()
                    .key(format!("tag:{key}"))
                    .values(value)
                    .build()
            })
            .collect();
        let answer = self
            .ssm
            .send_command()
            .document_name("AWS-RunShellScript")
            .set_instance_ids((!instance_ids.is_empty()).then(|| instance_ids.to_vec()))
            .set_targets((!targets.is_empty()).then_some(targets))
            .parameters("commands", commands.to_vec())
            .timeout_seconds(timeout_seconds)
            .send()
            .await
            .map_err(|e| provider_error("ssm:SendCommand", None, e))?;
        let command = answer
            .command()
            .ok_or_else(|| missing("ssm:SendCommand", "command"))?;
        let id = command
            .command_id()
            .ok_or_else(|| missing("ssm:SendCommand", "command id"))?;
        Ok((id.to_string(), command.instance_ids().to_vec()))
    }

    async fn command_instances(&self, command_id: &str) -> Result<Vec<String>, ProviderError> {
        let mut pages = self
            .ssm
            .list_command_invocations()
            .command_id(command_id)
            .into_paginator()
            .send();
        let mut instances = Vec::new();
        while let Some(page) = pages.next().await {
            Calls::count(&self.calls.ssm);
            let page = page
                .map_err(|e| provider_error("ssm:ListCommandInvocations", Some(command_id), e))?;
            instances.extend(
                page.command_invocations()
                    .iter()
                    .filter_map(|i| i.instance_id().map(str::to_string)),
            );
        }
        Ok(instances)
    }

    async fn invocation(
        &self,
        command_id: &str,
        instance: &str,
    ) -> Result<Option<Invocation>, ProviderError> {
        Calls::count(&self.calls.ssm);
        match self
            .ssm
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance)
            .send()
            .await
        {
            Ok(answer) => {
                let mut output = answer
                    .standard_output_content()
                    .unwrap_or_default()
                    .to_string();
                output.push_str(answer.standard_error_content().unwrap_or_default());
                Ok(Some(Invocation {
                    instance: instance.to_string(),
                    status: answer
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "Pending".into()),
                    response_code: Some(answer.response_code()),
                    output,
                }))
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_invocation_does_not_exist()) =>
            {
                Ok(None)
            }
            Err(error) => Err(provider_error(
                "ssm:GetCommandInvocation",
                Some(instance),
                error,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_read() {
        assert_eq!(
            http_date("Mon, 30 Nov 2026 05:54:53 GMT"),
            Some(time::macros::datetime!(2026-11-30 05:54:53 UTC))
        );
        assert_eq!(http_date("yesterday"), None);
    }

    #[test]
    fn error_codes_and_statuses_become_advice() {
        assert_eq!(
            classify(Some("NoSuchEntity"), None, 404),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(Some("Throttling"), Some("Rate exceeded"), 400),
            ErrorKind::Throttled
        );
        assert!(matches!(
            classify(None, None, 403),
            ErrorKind::AccessDenied(_)
        ));
        assert!(
            matches!(classify(Some("AccessDenied"), Some("User: x is not authorized to perform: iam:ListUsers"), 403), ErrorKind::AccessDenied(m) if m.contains("iam:ListUsers"))
        );
        assert_eq!(
            classify(None, None, 500),
            ErrorKind::Other("HTTP 500".into())
        );
    }
}
