//! Providers: the outside world behind traits.
//!
//! The engine (plan, apply) is generic over these traits and never sees an
//! AWS SDK type; `aws` implements them with the SDK, tests implement them
//! with fakes. A value that contains a secret never leaves a provider: a
//! target's current value is read only to learn which access key id it
//! holds, and is dropped there.

pub mod aws;
pub mod exec;
pub mod files;
pub mod http;
#[cfg(test)]
pub mod memory;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::secret::SecretString;

/// An IAM user, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamUser {
    pub name: String,
    pub arn: String,
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyStatus {
    Active,
    Inactive,
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
        })
    }
}

/// An access key's metadata (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub status: KeyStatus,
    pub created: OffsetDateTime,
}

/// What GetAccessKeyLastUsed says; `date: None` means never used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastUse {
    pub date: Option<OffsetDateTime>,
    pub service: Option<String>,
    pub region: Option<String>,
}

/// What a target holds now: whether it exists, its version, and the
/// access key id found in its value (`None` when the value is not in a
/// format rekey reads, e.g. written by hand).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TargetState {
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Whether it is stored encrypted (an SSM SecureString), where that can
    /// change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

impl TargetState {
    pub fn absent() -> Self {
        Self::default()
    }
}

/// What went wrong talking to a provider, phrased as advice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action}{}: {kind}", resource.as_ref().map(|r| format!(" on {r}")).unwrap_or_default())]
pub struct ProviderError {
    /// The API action, e.g. `iam:ListUsers`.
    pub action: String,
    pub resource: Option<String>,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error(
        "no AWS credentials found; set AWS_PROFILE or --profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    NoCredentials,
    #[error("access denied ({0}); the identity running rekey needs this permission")]
    AccessDenied(String),
    #[error("not found")]
    NotFound,
    #[error("throttled by AWS even after retries; lower --parallelism or try again later")]
    Throttled,
    #[error(
        "cannot reach the endpoint ({0}); check --endpoint-url, AWS_ENDPOINT_URL and the network"
    )]
    Unreachable(String),
    #[error("no answer in time ({0})")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

/// Everything apply reads and changes the world through.
pub trait Provider:
    Iam + IamWriter + TargetReader + ParameterStore + SecretStore + RunCommand
{
}
impl<T: Iam + IamWriter + TargetReader + ParameterStore + SecretStore + RunCommand> Provider for T {}

/// Reaching other accounts: the Organization's, and each through a role.
pub trait Reach: Provider + Sized + Send {
    /// The ACTIVE accounts of the Organization under any of `ous` (at any
    /// depth; empty: all of them) that carry every tag in `tags`, sorted.
    fn organization_accounts(
        &self,
        ous: &[String],
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<String>, ProviderError>> + Send;
    /// A provider acting in another account through `role_arn`, assumed
    /// now (its failure says why the account cannot be reached) and again
    /// before its credentials expire.
    fn assume(
        &self,
        role_arn: &str,
        external_id: Option<&str>,
        session_name: &str,
    ) -> impl Future<Output = Result<Self, ProviderError>> + Send;
}

/// Reading IAM users and their keys, and who we are.
pub trait Iam: Sync {
    /// The region and endpoint calls go to, for the plan's header.
    fn location(&self) -> (Option<String>, Option<String>) {
        (None, None)
    }
    fn account_id(&self) -> impl Future<Output = Result<String, ProviderError>> + Send;
    /// Every user under `path_prefix` (all pages).
    fn list_users(
        &self,
        path_prefix: Option<&str>,
    ) -> impl Future<Output = Result<Vec<IamUser>, ProviderError>> + Send;
    fn user_tags(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, ProviderError>> + Send;
    fn access_keys(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<AccessKey>, ProviderError>> + Send;
    fn key_last_used(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<LastUse, ProviderError>> + Send;
    /// The account's IAM credential report: generated (or the recent one
    /// IAM keeps), waited for, read.
    fn credential_report(
        &self,
    ) -> impl Future<Output = Result<CredentialReport, ProviderError>> + Send;
}

/// IAM's credential report: every user and when each of its (at most two)
/// access keys was created, as of `generated`. No key ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialReport {
    pub generated: OffsetDateTime,
    pub users: BTreeMap<String, ReportUser>,
}

/// One user of a credential report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportUser {
    /// The IAM path (from its ARN), `/` at the least.
    pub path: String,
    pub keys: Vec<ReportKey>,
}

/// One access key slot of a report's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKey {
    pub active: bool,
    pub created: OffsetDateTime,
    /// Its last use as of the report (`date: None`: never used); `None`
    /// when the report has no last-used columns.
    pub last_used: Option<LastUse>,
}

impl CredentialReport {
    /// Reads the report's CSV (RFC 4180 quoting): the root account's row is
    /// left out, and key slots that were never used (`N/A`).
    pub fn parse(csv: &str, generated: OffsetDateTime) -> Result<Self, String> {
        let mut rows = csv.lines().filter(|l| !l.trim().is_empty()).map(csv_fields);
        let header = rows.next().ok_or("the credential report is empty")?;
        let column = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("the credential report has no `{name}` column"))
        };
        let user = column("user")?;
        let arn = column("arn")?;
        let slots = [
            (
                column("access_key_1_active")?,
                column("access_key_1_last_rotated")?,
            ),
            (
                column("access_key_2_active")?,
                column("access_key_2_last_rotated")?,
            ),
        ];
        // Optional: the last use of each slot (date, region, service).
        let used = |n: u8| {
            let at = |what: &str| column(&format!("access_key_{n}_last_used_{what}")).ok();
            at("date").map(|date| (date, at("region"), at("service")))
        };
        let last_used = [used(1), used(2)];
        let mut users = BTreeMap::new();
        for row in rows {
            let Some(name) = row.get(user).filter(|n| *n != "<root_account>") else {
                continue;
            };
            // A slot never used says `N/A`; a date that cannot be read
            // leaves the user out, so that plan reads its keys live
            // instead of taking it for a user with no key.
            let known = |i: Option<usize>| {
                i.and_then(|i| row.get(i))
                    .filter(|v| !v.is_empty() && *v != "N/A" && *v != "not_supported")
                    .cloned()
            };
            let rfc3339 =
                |t: &str| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339);
            let keys: Option<Vec<ReportKey>> = slots
                .iter()
                .zip(&last_used)
                .filter(|((_, rotated), _)| known(Some(*rotated)).is_some())
                .map(|(&(active, rotated), used)| {
                    let created = rfc3339(row.get(rotated)?).ok()?;
                    let last_used = match used {
                        None => None,
                        Some((date, region, service)) => Some(LastUse {
                            date: match known(Some(*date)) {
                                None => None,
                                Some(date) => Some(rfc3339(&date).ok()?),
                            },
                            service: known(*service),
                            region: known(*region),
                        }),
                    };
                    Some(ReportKey {
                        active: row.get(active).is_some_and(|a| a == "true"),
                        created,
                        last_used,
                    })
                })
                .collect();
            let Some(keys) = keys else {
                continue;
            };
            // arn:aws:iam::123456789012:user/some/path/name
            let path = row
                .get(arn)
                .and_then(|arn| arn.split_once(":user"))
                .and_then(|(_, rest)| rest.rfind('/').map(|end| rest[..=end].to_string()))
                .unwrap_or_else(|| "/".to_string());
            users.insert(name.clone(), ReportUser { path, keys });
        }
        Ok(CredentialReport { generated, users })
    }
}

/// One CSV line's fields, with `"…"` quoting and `""` for a quote.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("a field").push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("a field").push(c),
        }
    }
    fields
}

/// Reading what a target holds now. `format` says how to find the key id.
pub trait TargetReader: Sync {
    fn ssm_parameter(
        &self,
        name: &str,
        format: crate::workflow::vocabulary::SecretFormat,
    ) -> impl Future<Output = Result<TargetState, ProviderError>> + Send;
    fn secret(
        &self,
        id: &str,
        format: crate::workflow::vocabulary::SecretFormat,
    ) -> impl Future<Output = Result<TargetState, ProviderError>> + Send;
}

/// A key just created: the only moment its secret is known.
pub struct NewKey {
    pub id: String,
    pub secret: crate::secret::SecretString,
}

/// Changing IAM keys, and asking STS who a key is.
pub trait IamWriter: Sync {
    /// IAM's clock as of its latest answer (its `Date` header), if known.
    fn server_time(&self) -> Option<OffsetDateTime>;
    fn create_access_key(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<NewKey, ProviderError>> + Send;
    fn set_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// Deleting a key that is already gone is not an error.
    fn delete_access_key(
        &self,
        user: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// The ARN that `key_id` with `secret` authenticates as.
    fn identity_of(
        &self,
        key_id: &str,
        secret: &crate::secret::SecretString,
    ) -> impl Future<Output = Result<String, ProviderError>> + Send;
}

/// How to write one SSM parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSpec {
    pub name: String,
    /// SecureString; false writes a plain String (for `format: id_only`).
    pub secure: bool,
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// One version of a parameter as it was written: what a rollback puts back.
pub struct StoredParameter {
    pub value: crate::secret::SecretString,
    /// SecureString (or a plain String).
    pub secure: bool,
    /// The KMS key of a SecureString, when it names one.
    pub kms_key_id: Option<String>,
}

/// SSM Parameter Store writes (targets and staging).
pub trait ParameterStore: Sync {
    /// Writes a new version; returns its version number.
    fn put_parameter(
        &self,
        spec: &ParameterSpec,
        value: &crate::secret::SecretString,
    ) -> impl Future<Output = Result<String, ProviderError>> + Send;
    /// The value at `version` (or the latest), if the parameter exists.
    fn parameter_value(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Option<crate::secret::SecretString>, ProviderError>> + Send;
    /// Version `version` of a parameter with its type and KMS key, if it
    /// still exists (GetParameterHistory).
    fn parameter_version(
        &self,
        name: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<StoredParameter>, ProviderError>> + Send;
    /// Deleting a parameter that is already gone is not an error.
    fn delete_parameter(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
}

/// Secrets Manager writes, by version stage.
pub trait SecretStore: Sync {
    /// The AWSCURRENT version's id and value, if the secret exists.
    fn current_secret(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<(String, crate::secret::SecretString)>, ProviderError>> + Send;
    /// The value of version `version`, if the secret and version exist.
    fn secret_version(
        &self,
        id: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<crate::secret::SecretString>, ProviderError>> + Send;
    /// Creates the secret with `value` as its first (current) version.
    fn create_secret(
        &self,
        id: &str,
        value: &crate::secret::SecretString,
        kms_key_id: Option<&str>,
        token: &str,
    ) -> impl Future<Output = Result<String, ProviderError>> + Send;
    /// Adds `value` as a version staged AWSPENDING; the same `token` again
    /// is the same version (idempotent).
    fn put_pending(
        &self,
        id: &str,
        value: &crate::secret::SecretString,
        token: &str,
    ) -> impl Future<Output = Result<String, ProviderError>> + Send;
    /// Moves AWSCURRENT to `to` from `from` (AWSPREVIOUS follows to `from`).
    fn make_current(
        &self,
        id: &str,
        to: &str,
        from: Option<&str>,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// Takes AWSPENDING off `version`, once it is current.
    fn clear_pending(
        &self,
        id: &str,
        version: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
    /// Deletes the secret at once (no recovery window).
    fn delete_secret(&self, id: &str) -> impl Future<Output = Result<(), ProviderError>> + Send;
}

/// One instance's run of an SSM command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub instance: String,
    /// SSM's status: Pending, InProgress, Success, Failed, TimedOut, ...
    pub status: String,
    pub response_code: Option<i32>,
    /// The end of stdout and stderr.
    pub output: String,
}

impl Invocation {
    pub fn finished(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "Pending" | "InProgress" | "Delayed" | "Cancelling"
        )
    }

    pub fn succeeded(&self) -> bool {
        self.status == "Success"
    }
}

/// Credentials of a role rekey assumed in another account: what a command
/// with `credentials: operator` gets there.
pub struct OperatorCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
}

/// SSM Run Command (AWS-RunShellScript), and what commands run as.
pub trait RunCommand: Sync {
    /// The credentials `credentials: operator` commands get when they are
    /// not rekey's own environment's (`None`): in another account, the role's.
    fn operator_credentials(
        &self,
    ) -> impl Future<Output = Result<Option<OperatorCredentials>, ProviderError>> + Send {
        async { Ok(None) }
    }
    /// Sends `commands` to the instances (by id, or by tags); returns the
    /// command id and the instance ids SSM named in its answer, if any.
    fn send_shell_command(
        &self,
        commands: &[String],
        instance_ids: &[String],
        tags: &BTreeMap<String, String>,
        timeout_seconds: i32,
    ) -> impl Future<Output = Result<(String, Vec<String>), ProviderError>> + Send;
    /// The instances a command runs on (for tag targets, whose answer names none).
    fn command_instances(
        &self,
        command_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, ProviderError>> + Send;
    /// One instance's invocation; `None` while SSM does not know it yet.
    fn invocation(
        &self,
        command_id: &str,
        instance: &str,
    ) -> impl Future<Output = Result<Option<Invocation>, ProviderError>> + Send;
}

/// One object of an object store (S3), as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Vec<u8>,
    pub etag: String,
    /// When it was last written, by the store's clock.
    pub last_modified: OffsetDateTime,
    /// The store's clock when it answered (its `Date` header).
    pub now: OffsetDateTime,
}

/// A conditional write's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `If-None-Match: *`: only if there is no such object.
    Absent,
    /// `If-Match: ETAG`: only if the object is still this one.
    Is(String),
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional {
    /// Written; its new ETag.
    Yes(String),
    /// The condition did not hold (HTTP 412, or 409 for a race): nothing
    /// was written by this call, though an earlier try of it may have
    /// been (a lost answer): read the object back to know.
    ConditionFailed,
}

/// Opens the object stores (S3 buckets) shared state lives in.
pub trait ObjectStores {
    fn object_store(
        &self,
        bucket: &str,
        region: Option<&str>,
        kms_key_id: Option<&str>,
    ) -> std::sync::Arc<dyn ObjectStore>;
}

/// An object store: rekey's shared state lives in one (S3), written only
/// with conditional writes. Object safe, so state backends can hold one.
pub trait ObjectStore: Send + Sync {
    /// Where, for messages: `s3://bucket`.
    fn describe(&self) -> String;
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<StoredObject>, ProviderError>>;
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        condition: Option<Condition>,
    ) -> futures_util::future::BoxFuture<'a, Result<Conditional, ProviderError>>;
    /// Every key under `prefix`, in order.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, ProviderError>>;
    /// Deletes `key` (if it is still `etag`, when given); absent is done.
    fn delete<'a>(
        &'a self,
        key: &'a str,
        etag: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, Result<Conditional, ProviderError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_report_is_read_with_quotes_paths_and_empty_slots() {
        let csv = "user,arn,user_creation_time,access_key_1_active,access_key_1_last_rotated,access_key_2_active,access_key_2_last_rotated\n\
<root_account>,arn:aws:iam::1:root,2020-01-01T00:00:00+00:00,false,N/A,false,N/A\n\
\"a,b\",\"arn:aws:iam::1:user/ci/deploy/a,b\",2020-01-01T00:00:00+00:00,true,2026-01-02T03:04:05+00:00,false,2025-01-01T00:00:00+00:00\n\
plain,arn:aws:iam::1:user/plain,2020-01-01T00:00:00+00:00,false,N/A,false,N/A\n";
        let report =
            CredentialReport::parse(csv, time::macros::datetime!(2026-11-30 0:00 UTC)).unwrap();
        assert_eq!(report.users.len(), 2, "{report:?}");
        let ab = &report.users["a,b"];
        assert_eq!(ab.path, "/ci/deploy/");
        assert_eq!(
            ab.keys,
            [
                ReportKey {
                    active: true,
                    created: time::macros::datetime!(2026-01-02 3:04:05 UTC),
                    last_used: None,
                },
                ReportKey {
                    active: false,
                    created: time::macros::datetime!(2025-01-01 0:00 UTC),
                    last_used: None,
                },
            ]
        );
        assert_eq!(
            report.users["plain"],
            ReportUser {
                path: "/".into(),
                keys: Vec::new()
            }
        );
        assert!(CredentialReport::parse("", report.generated).is_err());
    }

    #[test]
    fn a_credential_report_gives_each_slot_its_last_use() {
        let csv = "user,arn,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service\n\
a,arn:aws:iam::1:user/a,true,2026-01-02T03:04:05+00:00,2026-11-01T10:00:00+00:00,eu-west-1,s3,true,2026-02-01T00:00:00+00:00,N/A,N/A,N/A\n";
        let report =
            CredentialReport::parse(csv, time::macros::datetime!(2026-11-30 0:00 UTC)).unwrap();
        let keys = &report.users["a"].keys;
        assert_eq!(
            keys[0].last_used,
            Some(LastUse {
                date: Some(time::macros::datetime!(2026-11-01 10:00 UTC)),
                service: Some("s3".into()),
                region: Some("eu-west-1".into()),
            })
        );
        assert_eq!(keys[1].last_used, Some(LastUse::default()), "never used");
    }

    /// Regression: a key slot whose `last_rotated` could not be read was
    /// dropped, so its user looked like one with no access key, and plan
    /// could skip it as not due.
    #[test]
    fn a_user_whose_report_row_cannot_be_read_is_left_to_be_read_live() {
        let csv = "user,arn,access_key_1_active,access_key_1_last_rotated,access_key_2_active,access_key_2_last_rotated\n\
odd,arn:aws:iam::1:user/odd,true,2026-13-45T99:00:00+00:00,false,N/A\n\
fine,arn:aws:iam::1:user/fine,true,2026-01-02T03:04:05+00:00,false,N/A\n";
        let report =
            CredentialReport::parse(csv, time::macros::datetime!(2026-11-30 0:00 UTC)).unwrap();
        assert!(!report.users.contains_key("odd"), "{report:?}");
        assert_eq!(report.users["fine"].keys.len(), 1);
    }
}
