//! The AWS provider: IAM, STS, SSM and Secrets Manager through the SDK.
//!
//! Clients come from the standard `aws-config` chain (profile, region,
//! `AWS_ENDPOINT_URL` or `--endpoint-url`, SSO, instance roles) with the
//! SDK's standard retries on, and timeouts set so a hung endpoint cannot hang
//! a run. Every call is counted per service for the run report. Errors are
//! turned into [`ProviderError`]s that say what to do.

use std::collections::BTreeMap;
use std::sync::Arc;
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
use crate::workflow::vocabulary::SecretFormat;

mod accounts;
mod error;
mod iam;
mod interceptors;
mod s3;
mod secrets_manager;
mod ssm;
mod ssm_command;

use accounts::AssumedRole;
use error::{absent, missing, provider_error, to_time};
use interceptors::Counted;
pub use interceptors::ServerClock;
pub use s3::S3Objects;

/// Where and as whom to talk to AWS; anything unset comes from the
/// environment and shared config files, as with the AWS CLI.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// API calls made, per service: counted by each client's [`Counted`]
/// interceptor, one per operation (a page is one; a retry is not).
#[derive(Debug, Default)]
pub struct Calls {
    iam: Arc<AtomicU64>,
    sts: Arc<AtomicU64>,
    organizations: Arc<AtomicU64>,
    ssm: Arc<AtomicU64>,
    secretsmanager: Arc<AtomicU64>,
    s3: Arc<AtomicU64>,
}

impl Calls {
    pub fn by_service(&self) -> BTreeMap<&'static str, u64> {
        [
            ("iam", &self.iam),
            ("organizations", &self.organizations),
            ("secretsmanager", &self.secretsmanager),
            ("s3", &self.s3),
            ("ssm", &self.ssm),
            ("sts", &self.sts),
        ]
        .into_iter()
        .map(|(name, count)| (name, count.load(Ordering::Relaxed)))
        .filter(|(_, count)| *count > 0)
        .collect()
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
            .interceptor(Counted(calls.iam.clone()))
            .build();
        let sts_config = aws_sdk_sts::config::Builder::from(&config)
            .interceptor(Counted(calls.sts.clone()))
            .build();
        let ssm_config = aws_sdk_ssm::config::Builder::from(&config)
            .interceptor(Counted(calls.ssm.clone()))
            .build();
        let secrets_config = aws_sdk_secretsmanager::config::Builder::from(&config)
            .interceptor(Counted(calls.secretsmanager.clone()))
            .build();
        Self {
            iam: aws_sdk_iam::Client::from_conf(iam_config),
            clock,
            sts: aws_sdk_sts::Client::from_conf(sts_config),
            ssm: aws_sdk_ssm::Client::from_conf(ssm_config),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets_config),
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
            .interceptor(Counted(self.calls.s3.clone()))
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
        }
    }
}

impl super::ObjectStores for Aws {
    fn object_store(
        &self,
        bucket: &str,
        region: Option<&str>,
        kms_key_id: Option<&str>,
    ) -> std::sync::Arc<dyn super::ObjectStore> {
        std::sync::Arc::new(Aws::object_store(self, bucket, region, kms_key_id))
    }
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
        .parse::<crate::workflow::duration::Duration>()
        .ok()
        .map(|d| d.to_std())
}

impl TargetReader for Aws {
    async fn ssm_parameter(
        &self,
        name: &str,
        format: SecretFormat,
    ) -> Result<TargetState, ProviderError> {
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
            Err(error) => {
                absent(error, "ssm:GetParameter", Some(name)).map(|()| TargetState::absent())
            }
        }
    }

    async fn secret(&self, id: &str, format: SecretFormat) -> Result<TargetState, ProviderError> {
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
            Err(error) => absent(error, "secretsmanager:GetSecretValue", Some(id))
                .map(|()| TargetState::absent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error::classify;
    use super::interceptors::http_date;
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
