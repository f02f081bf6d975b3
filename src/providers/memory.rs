//! An account held in memory, for the engine's unit tests: IAM users and
//! keys (with their secrets), SSM parameters with versions, Secrets Manager
//! secrets with stages, and SSM commands that always succeed. No process,
//! no network: plan and apply run against it in milliseconds.
//!
//! `fail_once(action)` makes the next call of that action (e.g.
//! `iam:UpdateAccessKey`) fail, as a throttled or lost call would, so tests
//! can stop a rotation at any step and resume it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use super::{
    AccessKey, ErrorKind, Iam, IamUser, IamWriter, Invocation, KeyStatus, LastUse, NewKey,
    ParameterSpec, ParameterStore, ProviderError, RunCommand, SecretStore, StoredParameter,
    TargetReader, TargetState,
};
use crate::secret::{ExposeSecret, SecretString, key_id_in};
use crate::workflow::vocabulary::SecretFormat;

pub const ACCOUNT: &str = "111122223333";

/// Key ages are counted back from this instant.
pub const REFERENCE: OffsetDateTime = time::macros::datetime!(2026-11-29 00:00 UTC);

#[derive(Debug, Clone)]
struct Key {
    id: String,
    secret: String,
    status: KeyStatus,
    created: OffsetDateTime,
}

#[derive(Debug, Default)]
struct StoredSecret {
    /// (version id, value), oldest first.
    versions: Vec<(String, String)>,
    current: Option<String>,
    pending: Option<String>,
}

#[derive(Debug, Default)]
struct World {
    users: Vec<IamUser>,
    keys: BTreeMap<String, Vec<Key>>,
    next_key: u32,
    /// Every version (value, SecureString, KMS key), oldest first.
    parameters: BTreeMap<String, Vec<(String, bool, Option<String>)>>,
    secrets: BTreeMap<String, StoredSecret>,
    fail: Vec<&'static str>,
    /// A failing PutParameter echoes the value, as AWS's validation
    /// errors do ("Value '…' at 'value' failed to satisfy constraint").
    echo_values: bool,
    report_time: Option<OffsetDateTime>,
    /// The last use of each key, as an application's calls would leave it.
    last_used: BTreeMap<String, LastUse>,
    calls: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Default)]
pub struct Memory {
    state: Mutex<World>,
}

impl Memory {
    fn state(&self) -> std::sync::MutexGuard<'_, World> {
        self.state.lock().expect("memory state")
    }

    /// Adds a user under `path` with keys `(id, status, days before REFERENCE)`.
    pub fn user(&self, name: &str, path: &str, keys: &[(&str, KeyStatus, i64)]) {
        let mut state = self.state();
        state.users.push(IamUser {
            name: name.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user{path}{name}"),
            path: path.into(),
        });
        let keys = keys
            .iter()
            .map(|(id, status, days)| Key {
                id: (*id).into(),
                secret: format!("secret-of-{id}"),
                status: *status,
                created: REFERENCE - time::Duration::days(*days),
            })
            .collect();
        state.keys.insert(name.into(), keys);
    }

    pub fn arn(&self, user: &str) -> String {
        self.state()
            .users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.arn.clone())
            .unwrap_or_default()
    }

    /// Sets a parameter's value (a new SecureString version).
    pub fn parameter(&self, name: &str, value: &str) {
        self.parameter_as(name, value, true, None);
    }

    /// Sets a parameter's value, type and KMS key (a new version).
    pub fn parameter_as(&self, name: &str, value: &str, secure: bool, kms_key_id: Option<&str>) {
        self.state()
            .parameters
            .entry(name.into())
            .or_default()
            .push((value.into(), secure, kms_key_id.map(str::to_string)));
    }

    /// The type and KMS key of a parameter's latest version.
    pub fn parameter_kind(&self, name: &str) -> Option<(bool, Option<String>)> {
        self.state()
            .parameters
            .get(name)
            .and_then(|v| v.last())
            .map(|(_, secure, kms)| (*secure, kms.clone()))
    }

    /// `key_id` was used by `service` at `at`, as an application still
    /// holding it would leave its last use.
    pub fn use_key(&self, key_id: &str, at: OffsetDateTime, service: &str) {
        self.state().last_used.insert(
            key_id.to_string(),
            LastUse {
                date: Some(at),
                service: Some(service.to_string()),
                region: Some("us-east-1".to_string()),
            },
        );
    }

    /// The latest value of a parameter.
    pub fn parameter_now(&self, name: &str) -> Option<String> {
        self.state()
            .parameters
            .get(name)
            .and_then(|v| v.last().map(|(value, ..)| value.clone()))
    }

    /// `(id, status, secret)` of every key of `user`.
    pub fn keys_of(&self, user: &str) -> Vec<(String, KeyStatus, String)> {
        self.state()
            .keys
            .get(user)
            .map(|keys| {
                keys.iter()
                    .map(|k| (k.id.clone(), k.status, k.secret.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A failing PutParameter's error quotes the value it was given.
    pub fn echo_values_in_errors(&self) {
        self.state().echo_values = true;
    }

    /// The credential report says it was made at `time` (default
    /// REFERENCE, the instant key ages count back from).
    pub fn report_made_at(&self, time: OffsetDateTime) {
        self.state().report_time = Some(time);
    }

    /// How many times each action was called.
    pub fn calls(&self) -> BTreeMap<&'static str, usize> {
        self.state().calls.clone()
    }

    /// The next call of `action` fails.
    pub fn fail_once(&self, action: &'static str) {
        self.state().fail.push(action);
    }

    fn call(&self, action: &'static str) -> Result<(), ProviderError> {
        let mut state = self.state();
        *state.calls.entry(action).or_default() += 1;
        match state.fail.iter().position(|a| *a == action) {
            Some(i) => {
                state.fail.remove(i);
                Err(ProviderError {
                    action: action.into(),
                    resource: None,
                    kind: ErrorKind::Other("injected failure".into()),
                })
            }
            None => Ok(()),
        }
    }
}

fn not_found(action: &str, resource: &str) -> ProviderError {
    ProviderError {
        action: action.into(),
        resource: Some(resource.into()),
        kind: ErrorKind::NotFound,
    }
}

impl Iam for Memory {
    async fn account_id(&self) -> Result<String, ProviderError> {
        Ok(ACCOUNT.into())
    }

    async fn credential_report(&self) -> Result<super::CredentialReport, ProviderError> {
        self.call("iam:GenerateCredentialReport")?;
        let state = self.state();
        let users = state
            .users
            .iter()
            .map(|u| {
                let keys = state
                    .keys
                    .get(&u.name)
                    .into_iter()
                    .flatten()
                    .map(|k| super::ReportKey {
                        active: k.status == KeyStatus::Active,
                        created: k.created,
                        last_used: None,
                    })
                    .collect();
                let user = super::ReportUser {
                    path: u.path.clone(),
                    keys,
                };
                (u.name.clone(), user)
            })
            .collect();
        Ok(super::CredentialReport {
            generated: state.report_time.unwrap_or(REFERENCE),
            users,
        })
    }

    async fn list_users(&self, path_prefix: Option<&str>) -> Result<Vec<IamUser>, ProviderError> {
        Ok(self
            .state()
            .users
            .iter()
            .filter(|u| path_prefix.is_none_or(|p| u.path.starts_with(p)))
            .cloned()
            .collect())
    }

    async fn user_tags(&self, _: &str) -> Result<BTreeMap<String, String>, ProviderError> {
        Ok(BTreeMap::new())
    }

    async fn access_keys(&self, user: &str) -> Result<Vec<AccessKey>, ProviderError> {
        self.call("iam:ListAccessKeys")?;
        Ok(self
            .state()
            .keys
            .get(user)
            .map(|keys| {
                keys.iter()
                    .map(|k| AccessKey {
                        id: k.id.clone(),
                        status: k.status,
                        created: k.created,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn key_last_used(&self, key_id: &str) -> Result<LastUse, ProviderError> {
        Ok(self
            .state()
            .last_used
            .get(key_id)
            .cloned()
            .unwrap_or_default())
    }
}

impl TargetReader for Memory {
    async fn ssm_parameter(
        &self,
        name: &str,
        format: SecretFormat,
    ) -> Result<TargetState, ProviderError> {
        let state = self.state();
        Ok(match state.parameters.get(name) {
            Some(versions) => TargetState {
                exists: true,
                version: Some(versions.len().to_string()),
                key_id: versions
                    .last()
                    .and_then(|(v, ..)| key_id_in(&SecretString::from(v.clone()), format)),
                secure: versions.last().map(|(_, secure, _)| *secure),
            },
            None => TargetState::absent(),
        })
    }

    async fn secret(&self, id: &str, format: SecretFormat) -> Result<TargetState, ProviderError> {
        Ok(match self.current_secret(id).await? {
            Some((version, value)) => TargetState {
                exists: true,
                version: Some(version),
                key_id: key_id_in(&value, format),
                secure: None,
            },
            None => TargetState::absent(),
        })
    }
}

impl IamWriter for Memory {
    fn server_time(&self) -> Option<OffsetDateTime> {
        Some(crate::text::now())
    }

    async fn create_access_key(&self, user: &str) -> Result<NewKey, ProviderError> {
        self.call("iam:CreateAccessKey")?;
        let mut state = self.state();
        state.next_key += 1;
        let id = format!("AKIAMEMORY{:010}", state.next_key);
        let secret = format!("memory-secret-{}", state.next_key);
        let keys = state
            .keys
            .get_mut(user)
            .ok_or_else(|| not_found("iam:CreateAccessKey", user))?;
        if keys.len() >= 2 {
            return Err(ProviderError {
                action: "iam:CreateAccessKey".into(),
                resource: Some(user.into()),
                kind: ErrorKind::Other("LimitExceeded".into()),
            });
        }
        keys.push(Key {
            id: id.clone(),
            secret: secret.clone(),
            status: KeyStatus::Active,
            created: crate::text::now(),
        });
        Ok(NewKey {
            id,
            secret: SecretString::from(secret),
        })
    }

    async fn set_key_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), ProviderError> {
        self.call("iam:UpdateAccessKey")?;
        let mut state = self.state();
        let key = state
            .keys
            .get_mut(user)
            .and_then(|keys| keys.iter_mut().find(|k| k.id == key_id))
            .ok_or_else(|| not_found("iam:UpdateAccessKey", key_id))?;
        key.status = status;
        Ok(())
    }

    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), ProviderError> {
        self.call("iam:DeleteAccessKey")?;
        if let Some(keys) = self.state().keys.get_mut(user) {
            keys.retain(|k| k.id != key_id);
        }
        Ok(())
    }

    async fn identity_of(
        &self,
        key_id: &str,
        secret: &SecretString,
    ) -> Result<String, ProviderError> {
        let state = self.state();
        for (user, keys) in &state.keys {
            if keys.iter().any(|k| {
                k.id == key_id
                    && k.secret == secret.expose_secret()
                    && k.status == KeyStatus::Active
            }) {
                let arn = state.users.iter().find(|u| &u.name == user);
                return Ok(arn.map(|u| u.arn.clone()).unwrap_or_default());
            }
        }
        Err(ProviderError {
            action: "sts:GetCallerIdentity".into(),
            resource: None,
            kind: ErrorKind::AccessDenied("InvalidClientTokenId".into()),
        })
    }
}

impl ParameterStore for Memory {
    async fn put_parameter(
        &self,
        spec: &ParameterSpec,
        value: &SecretString,
    ) -> Result<String, ProviderError> {
        self.call("ssm:PutParameter").map_err(|mut error| {
            if self.state().echo_values {
                error.kind = ErrorKind::Other(format!(
                    "1 validation error detected: Value '{}' at 'value' failed to satisfy constraint",
                    value.expose_secret()
                ));
            }
            error
        })?;
        let mut state = self.state();
        let versions = state.parameters.entry(spec.name.clone()).or_default();
        versions.push((
            value.expose_secret().to_string(),
            spec.secure,
            spec.kms_key_id.clone().filter(|_| spec.secure),
        ));
        Ok(versions.len().to_string())
    }

    async fn parameter_value(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<SecretString>, ProviderError> {
        let state = self.state();
        let Some(versions) = state.parameters.get(name) else {
            return Ok(None);
        };
        let value = match version {
            Some(version) => version
                .parse::<usize>()
                .ok()
                .and_then(|v| versions.get(v.wrapping_sub(1))),
            None => versions.last(),
        };
        Ok(value.map(|(v, ..)| SecretString::from(v.clone())))
    }

    async fn parameter_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<StoredParameter>, ProviderError> {
        let state = self.state();
        let found = version
            .parse::<usize>()
            .ok()
            .and_then(|v| state.parameters.get(name)?.get(v.wrapping_sub(1)));
        Ok(found.map(|(value, secure, kms_key_id)| StoredParameter {
            value: SecretString::from(value.clone()),
            secure: *secure,
            kms_key_id: kms_key_id.clone(),
        }))
    }

    async fn delete_parameter(&self, name: &str) -> Result<(), ProviderError> {
        self.call("ssm:DeleteParameter")?;
        self.state().parameters.remove(name);
        Ok(())
    }
}

impl SecretStore for Memory {
    async fn current_secret(
        &self,
        id: &str,
    ) -> Result<Option<(String, SecretString)>, ProviderError> {
        let state = self.state();
        let Some(secret) = state.secrets.get(id) else {
            return Ok(None);
        };
        Ok(secret.current.as_ref().and_then(|current| {
            secret
                .versions
                .iter()
                .find(|(v, _)| v == current)
                .map(|(v, value)| (v.clone(), SecretString::from(value.clone())))
        }))
    }

    async fn secret_version(
        &self,
        id: &str,
        version: &str,
    ) -> Result<Option<SecretString>, ProviderError> {
        let state = self.state();
        Ok(state.secrets.get(id).and_then(|secret| {
            secret
                .versions
                .iter()
                .find(|(v, _)| v == version)
                .map(|(_, value)| SecretString::from(value.clone()))
        }))
    }

    async fn create_secret(
        &self,
        id: &str,
        value: &SecretString,
        _kms_key_id: Option<&str>,
        token: &str,
    ) -> Result<String, ProviderError> {
        let mut state = self.state();
        let secret = state.secrets.entry(id.into()).or_default();
        secret
            .versions
            .push((token.into(), value.expose_secret().to_string()));
        secret.current = Some(token.into());
        Ok(token.into())
    }

    async fn put_pending(
        &self,
        id: &str,
        value: &SecretString,
        token: &str,
    ) -> Result<String, ProviderError> {
        let mut state = self.state();
        let secret = state
            .secrets
            .get_mut(id)
            .ok_or_else(|| not_found("secretsmanager:PutSecretValue", id))?;
        if !secret.versions.iter().any(|(v, _)| v == token) {
            secret
                .versions
                .push((token.into(), value.expose_secret().to_string()));
        }
        secret.pending = Some(token.into());
        Ok(token.into())
    }

    async fn make_current(&self, id: &str, to: &str, _: Option<&str>) -> Result<(), ProviderError> {
        let mut state = self.state();
        let secret = state
            .secrets
            .get_mut(id)
            .ok_or_else(|| not_found("secretsmanager:UpdateSecretVersionStage", id))?;
        secret.current = Some(to.into());
        Ok(())
    }

    async fn clear_pending(&self, id: &str, _: &str) -> Result<(), ProviderError> {
        if let Some(secret) = self.state().secrets.get_mut(id) {
            secret.pending = None;
        }
        Ok(())
    }

    async fn delete_secret(&self, id: &str) -> Result<(), ProviderError> {
        self.state().secrets.remove(id);
        Ok(())
    }
}

impl RunCommand for Memory {
    async fn send_shell_command(
        &self,
        _: &[String],
        instance_ids: &[String],
        _: &BTreeMap<String, String>,
        _: i32,
    ) -> Result<(String, Vec<String>), ProviderError> {
        Ok(("command-1".into(), instance_ids.to_vec()))
    }

    async fn command_instances(&self, _: &str) -> Result<Vec<String>, ProviderError> {
        Ok(Vec::new())
    }

    async fn invocation(
        &self,
        _: &str,
        instance: &str,
    ) -> Result<Option<Invocation>, ProviderError> {
        Ok(Some(Invocation {
            instance: instance.into(),
            status: "Success".into(),
            response_code: Some(0),
            output: String::new(),
        }))
    }
}

type Object = (Vec<u8>, String, OffsetDateTime);

/// A bucket in memory, with S3's conditional writes and a clock the test
/// moves (`advance`), for the state backend's unit tests.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    /// Each object's body, ETag and when it was written.
    objects: Mutex<BTreeMap<String, Object>>,
    clock: Mutex<i64>,
    writes: Mutex<u64>,
    /// The next write is done, and then reported as failed (a lost answer).
    lose_next: Mutex<bool>,
}

impl MemoryObjects {
    fn now(&self) -> OffsetDateTime {
        REFERENCE + time::Duration::seconds(*self.clock.lock().expect("clock"))
    }

    /// Moves the bucket's clock on.
    pub fn advance(&self, seconds: i64) {
        *self.clock.lock().expect("clock") += seconds;
    }

    /// The next write happens, but its caller hears an error.
    pub fn lose_next_answer(&self) {
        *self.lose_next.lock().expect("lose") = true;
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects
            .lock()
            .expect("objects")
            .keys()
            .cloned()
            .collect()
    }

    pub fn body(&self, key: &str) -> Option<String> {
        let objects = self.objects.lock().expect("objects");
        objects
            .get(key)
            .map(|(body, _, _)| String::from_utf8_lossy(body).into_owned())
    }

    fn lost(&self, action: &str) -> Result<(), ProviderError> {
        if std::mem::take(&mut *self.lose_next.lock().expect("lose")) {
            return Err(ProviderError {
                action: action.into(),
                resource: None,
                kind: ErrorKind::Unreachable("connection closed".into()),
            });
        }
        Ok(())
    }
}

impl super::ObjectStore for MemoryObjects {
    fn describe(&self) -> String {
        "s3://memory".into()
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<super::StoredObject>, ProviderError>>
    {
        let now = self.now();
        let found = self.objects.lock().expect("objects").get(key).cloned();
        Box::pin(async move {
            Ok(
                found.map(|(body, etag, last_modified)| super::StoredObject {
                    body,
                    etag,
                    last_modified,
                    now,
                }),
            )
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Vec<u8>,
        condition: Option<super::Condition>,
    ) -> futures_util::future::BoxFuture<'a, Result<super::Conditional, ProviderError>> {
        let now = self.now();
        let result = (|| {
            let mut objects = self.objects.lock().expect("objects");
            let holds = match (&condition, objects.get(key)) {
                (None, _) => true,
                (Some(super::Condition::Absent), found) => found.is_none(),
                (Some(super::Condition::Is(etag)), Some((_, current, _))) => etag == current,
                (Some(super::Condition::Is(_)), None) => false,
            };
            if !holds {
                return Ok(super::Conditional::ConditionFailed);
            }
            let mut writes = self.writes.lock().expect("writes");
            *writes += 1;
            let etag = format!("\"{}\"", *writes);
            objects.insert(key.to_string(), (body, etag.clone(), now));
            drop(objects);
            self.lost("s3:PutObject")?;
            Ok(super::Conditional::Yes(etag))
        })();
        Box::pin(async move { result })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, ProviderError>> {
        let keys = self
            .objects
            .lock()
            .expect("objects")
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        Box::pin(async move { Ok(keys) })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        etag: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, Result<super::Conditional, ProviderError>> {
        let mut objects = self.objects.lock().expect("objects");
        let result = match (etag, objects.get(key)) {
            (Some(etag), Some((_, current, _))) if etag != current => {
                super::Conditional::ConditionFailed
            }
            _ => {
                objects.remove(key);
                super::Conditional::Yes(String::new())
            }
        };
        Box::pin(async move { Ok(result) })
    }
}
