//! Seeding the emulator: each test gets its own IAM path and name prefix,
//! so tests run in parallel without resetting the emulator.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_iam::types::{StatusType, Tag};

use crate::emulator::emulator;

/// The secret that seeded targets hold: it must never be printed.
pub const CANARY: &str = "CANARY-SECRET-6f1d2c9e-never-print-me";

pub struct Account {
    runtime: tokio::runtime::Runtime,
    /// Secrets of the keys this test created, by key id.
    key_secrets: std::sync::Mutex<std::collections::HashMap<String, String>>,
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    organizations: aws_sdk_organizations::Client,
    /// Set for an account reached through a role: key, secret, token.
    credentials: Option<(String, String, String)>,
    ssm: aws_sdk_ssm::Client,
    secrets: aws_sdk_secretsmanager::Client,
    s3: aws_sdk_s3::Client,
    /// Unique to this test: `t<pid>x<n>`.
    pub id: String,
    endpoint: String,
}

impl Account {
    pub fn new() -> Self {
        Self::at(emulator())
    }

    /// An account on the emulator at `endpoint` (the shared one by default).
    pub fn at(endpoint: &str) -> Self {
        Self::as_identity(endpoint, None)
    }

    /// Another account of the shared emulator, `account_id`, reached as
    /// rekey reaches it: by assuming a role there (the emulator trusts any).
    pub fn assumed(account_id: &str) -> Self {
        let base = Self::new();
        let answer = base
            .runtime
            .block_on(
                base.sts
                    .assume_role()
                    .role_arn(format!("arn:aws:iam::{account_id}:role/RekeyTests"))
                    .role_session_name("rekey-tests")
                    .send(),
            )
            .unwrap();
        let got = answer.credentials().unwrap();
        Self::as_identity(
            emulator(),
            Some((
                got.access_key_id().to_string(),
                got.secret_access_key().to_string(),
                got.session_token().to_string(),
            )),
        )
    }

    /// The account these credentials (key, secret, session token) act as.
    pub fn identity_of(key: &str, secret: &str, token: &str) -> String {
        let account = Self::as_identity(
            emulator(),
            Some((key.to_string(), secret.to_string(), token.to_string())),
        );
        let answer = account
            .runtime
            .block_on(account.sts.get_caller_identity().send())
            .unwrap();
        answer.account().unwrap().to_string()
    }

    /// The credentials this account is reached with, as environment
    /// variables for rekey.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match &self.credentials {
            Some((key, secret, token)) => vec![
                ("AWS_ACCESS_KEY_ID", key.clone()),
                ("AWS_SECRET_ACCESS_KEY", secret.clone()),
                ("AWS_SESSION_TOKEN", token.clone()),
            ],
            None => Vec::new(),
        }
    }

    /// The Organizations client of this account.
    pub fn organizations(&self) -> &aws_sdk_organizations::Client {
        &self.organizations
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn as_identity(endpoint: &str, credentials: Option<(String, String, String)>) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "t{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(aws_config::Region::from_static("us-east-1"))
                .credentials_provider(match &credentials {
                    Some((key, secret, token)) => aws_sdk_iam::config::Credentials::new(
                        key,
                        secret,
                        Some(token.clone()),
                        None,
                        "tests",
                    ),
                    None => aws_sdk_iam::config::Credentials::new(
                        "testing", "testing", None, None, "tests",
                    ),
                })
                .load(),
        );
        Self {
            iam: aws_sdk_iam::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            organizations: aws_sdk_organizations::Client::new(&config),
            credentials,
            ssm: aws_sdk_ssm::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(true)
                    .build(),
            ),
            runtime,
            key_secrets: Default::default(),
            id,
            endpoint: endpoint.to_string(),
        }
    }

    /// Makes every key this test's users have now an hour older, through
    /// the emulator's test seam: the keys seeded are due at once (no real
    /// wait past `max_key_age`), and the keys a rotation creates later are
    /// as young as ever.
    pub fn age_keys(&self) {
        let identity = self
            .runtime
            .block_on(self.sts.get_caller_identity().send())
            .expect("the emulator's identity");
        let url = format!(
            "{}/moto-api/rekey/backdate?account={}&path={}&seconds=3600",
            self.endpoint,
            identity.account().unwrap_or("123456789012"),
            self.path()
        );
        ureq::get(url).call().expect("the emulator's backdate seam");
    }

    /// Makes the keys of this test's users under `subpath` `days` older
    /// (the emulator's backdate seam).
    pub fn age_keys_under(&self, subpath: &str, days: i64) {
        let url = format!(
            "{}/moto-api/rekey/backdate?account={}&path={}{subpath}&seconds={}",
            self.endpoint,
            self.account_id(),
            self.path(),
            days * 86_400
        );
        ureq::get(url).call().expect("the emulator's backdate seam");
    }

    /// Says that `key` was last used `days` ago by `service` in `region`,
    /// as IAM records a real call (the emulator's last-used seam).
    pub fn used(&self, key: &str, days: i64, service: &str, region: &str) {
        let url = format!(
            "{}/moto-api/rekey/last-used?account={}&key={key}&seconds={}&service={service}&region={region}",
            self.endpoint,
            self.account_id(),
            days * 86_400
        );
        ureq::get(url)
            .call()
            .expect("the emulator's last-used seam");
    }

    /// The account this one's calls act in.
    pub fn account_id(&self) -> String {
        self.runtime
            .block_on(self.sts.get_caller_identity().send())
            .expect("the emulator's identity")
            .account()
            .unwrap_or("123456789012")
            .to_string()
    }

    /// The IAM path all of this test's users live under.
    pub fn path(&self) -> String {
        format!("/rekey-test/{}/", self.id)
    }

    /// A user name unique to this test.
    pub fn name(&self, short: &str) -> String {
        format!("{short}-{}", self.id)
    }

    /// Creates a user named exactly `name` under `path()`.
    pub fn user_named(&self, name: &str) -> String {
        self.runtime
            .block_on(
                self.iam
                    .create_user()
                    .user_name(name)
                    .path(self.path())
                    .send(),
            )
            .unwrap();
        name.to_string()
    }

    /// Creates a user under `path()` + `subpath` with tags; returns its name.
    pub fn user(&self, short: &str, subpath: &str, tags: &[(&str, &str)]) -> String {
        let name = self.name(short);
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
            .collect();
        let path = format!("{}{subpath}", self.path());
        self.runtime
            .block_on(
                self.iam
                    .create_user()
                    .user_name(&name)
                    .path(path)
                    .set_tags(Some(tags))
                    .send(),
            )
            .unwrap();
        name
    }

    /// Creates an access key; returns (id, secret).
    pub fn key(&self, user: &str) -> (String, String) {
        let key = self
            .runtime
            .block_on(self.iam.create_access_key().user_name(user).send())
            .unwrap();
        let key = key.access_key().unwrap();
        let (id, secret) = (
            key.access_key_id().to_string(),
            key.secret_access_key().to_string(),
        );
        self.key_secrets
            .lock()
            .unwrap()
            .insert(id.clone(), secret.clone());
        (id, secret)
    }

    pub fn deactivate(&self, user: &str, key_id: &str) {
        self.runtime
            .block_on(
                self.iam
                    .update_access_key()
                    .user_name(user)
                    .access_key_id(key_id)
                    .status(StatusType::Inactive)
                    .send(),
            )
            .unwrap();
    }

    /// An SSM SecureString holding `key_id` and the canary secret as JSON.
    pub fn ssm_json(&self, name: &str, key_id: &str) {
        self.ssm_put(name, key_id, CANARY);
    }

    /// Writes (or overwrites) an SSM SecureString with `key_id` and `secret` as JSON.
    pub fn ssm_put(&self, name: &str, key_id: &str, secret: &str) {
        let value = format!(r#"{{"AccessKeyId": "{key_id}", "SecretAccessKey": "{secret}"}}"#);
        self.runtime
            .block_on(
                self.ssm
                    .put_parameter()
                    .name(name)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .value(value)
                    .overwrite(true)
                    .send(),
            )
            .unwrap();
    }

    /// A Secrets Manager secret holding `key_id` and the canary as JSON.
    pub fn secret_json(&self, id: &str, key_id: &str) {
        self.secret_json_with(id, key_id, CANARY);
    }

    /// A Secrets Manager secret holding `key_id` and `secret` as JSON.
    pub fn secret_json_with(&self, id: &str, key_id: &str, secret: &str) {
        let value = format!(r#"{{"AccessKeyId": "{key_id}", "SecretAccessKey": "{secret}"}}"#);
        self.runtime
            .block_on(
                self.secrets
                    .create_secret()
                    .name(id)
                    .secret_string(value)
                    .send(),
            )
            .unwrap();
    }

    /// The user's keys: (id, active), oldest first.
    pub fn keys(&self, user: &str) -> Vec<(String, bool)> {
        let answer = self
            .runtime
            .block_on(self.iam.list_access_keys().user_name(user).send())
            .unwrap();
        let mut keys: Vec<_> = answer
            .access_key_metadata()
            .iter()
            .map(|k| {
                (
                    k.create_date().map(|d| d.as_nanos()).unwrap_or_default(),
                    k.access_key_id().unwrap().to_string(),
                    k.status() == Some(&StatusType::Active),
                )
            })
            .collect();
        keys.sort();
        keys.into_iter()
            .map(|(_, id, active)| (id, active))
            .collect()
    }

    /// The raw value of an SSM parameter, if it exists.
    pub fn param(&self, name: &str) -> Option<String> {
        let answer = self
            .runtime
            .block_on(
                self.ssm
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send(),
            )
            .ok()?;
        answer
            .parameter()
            .and_then(|p| p.value())
            .map(str::to_string)
    }

    /// The access key id an SSM parameter holds as JSON.
    pub fn param_key(&self, name: &str) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(&self.param(name)?).ok()?;
        value["AccessKeyId"].as_str().map(str::to_string)
    }

    /// A bucket of this test's own (`rekey-<id>`), created.
    pub fn bucket(&self) -> String {
        let name = format!("rekey-{}", self.id);
        self.runtime
            .block_on(self.s3.create_bucket().bucket(&name).send())
            .unwrap();
        name
    }

    /// Every object of `bucket`: (key, body).
    pub fn objects(&self, bucket: &str) -> Vec<(String, String)> {
        self.runtime.block_on(async {
            let listed = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .send()
                .await
                .unwrap();
            let mut objects = Vec::new();
            for object in listed.contents() {
                let key = object.key().unwrap().to_string();
                let body = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap()
                    .body
                    .collect()
                    .await
                    .unwrap()
                    .into_bytes();
                objects.push((key, String::from_utf8_lossy(&body).into_owned()));
            }
            objects
        })
    }

    /// The secret IAM issued for each key, from the emulator's own record
    /// (`/moto-api/data.json`): the emulator accepts any signature, so only
    /// a comparison with these proves that a target holds a key that works.
    pub fn issued_secrets(&self) -> std::collections::HashMap<String, String> {
        // The emulator serves many tests at once; a read that meets another
        // request's change is read again.
        let read = || -> Option<String> {
            let mut answer = ureq::get(format!("{}/moto-api/data.json", self.endpoint))
                .call()
                .ok()?;
            answer
                .body_mut()
                .with_config()
                .limit(u64::MAX)
                .read_to_string()
                .ok()
        };
        let text = (0..5)
            .find_map(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                read()
            })
            .expect("the emulator's data.json");
        let data: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        data["iam"]["AccessKey"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| {
                Some((
                    k["access_key_id"].as_str()?.to_string(),
                    k["secret_access_key"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// The secret an SSM parameter holds as JSON.
    pub fn param_secret(&self, name: &str) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(&self.param(name)?).ok()?;
        value["SecretAccessKey"].as_str().map(str::to_string)
    }

    /// The secret of a key this test created.
    pub fn secret_of(&self, key_id: &str) -> String {
        self.key_secrets.lock().unwrap()[key_id].clone()
    }

    /// The access key id the secret's `stage` version holds as JSON.
    pub fn secret_key(&self, id: &str, stage: &str) -> Option<String> {
        let answer = self
            .runtime
            .block_on(
                self.secrets
                    .get_secret_value()
                    .secret_id(id)
                    .version_stage(stage)
                    .send(),
            )
            .ok()?;
        let value: serde_json::Value = serde_json::from_str(answer.secret_string()?).ok()?;
        value["AccessKeyId"].as_str().map(str::to_string)
    }

    /// An SSM parameter's type and tags.
    pub fn param_type_and_tags(&self, name: &str) -> (String, Vec<(String, String)>) {
        let parameter = self
            .runtime
            .block_on(self.ssm.get_parameter().name(name).send())
            .unwrap();
        let kind = parameter
            .parameter()
            .and_then(|p| p.r#type())
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let tags = self
            .runtime
            .block_on(
                self.ssm
                    .list_tags_for_resource()
                    .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .send(),
            )
            .unwrap();
        let tags = tags
            .tag_list()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        (kind, tags)
    }

    /// Writes a parameter of `kind` (`String`, `SecureString`) holding
    /// `key_id` and the canary as JSON, with `kms_key_id` when given.
    pub fn ssm_put_as(&self, name: &str, key_id: &str, kind: &str, kms_key_id: Option<&str>) {
        let value = format!(r#"{{"AccessKeyId": "{key_id}", "SecretAccessKey": "{CANARY}"}}"#);
        self.runtime
            .block_on(
                self.ssm
                    .put_parameter()
                    .name(name)
                    .r#type(aws_sdk_ssm::types::ParameterType::from(kind))
                    .set_key_id(kms_key_id.map(str::to_string))
                    .value(value)
                    .overwrite(true)
                    .send(),
            )
            .unwrap();
    }

    /// The type and KMS key of a parameter's latest version.
    pub fn param_kind(&self, name: &str) -> (String, Option<String>) {
        let history = self
            .runtime
            .block_on(self.ssm.get_parameter_history().name(name).send())
            .unwrap();
        let last = history.parameters().last().unwrap();
        (
            last.r#type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            last.key_id().map(str::to_string),
        )
    }

    /// Deletes one of `user`'s keys, as someone else might.
    pub fn delete_key(&self, user: &str, key: &str) {
        self.runtime
            .block_on(
                self.iam
                    .delete_access_key()
                    .user_name(user)
                    .access_key_id(key)
                    .send(),
            )
            .unwrap();
    }

    /// Deletes a user and its keys, as someone else might.
    pub fn delete_user(&self, user: &str) {
        for (key, _) in self.keys(user) {
            self.delete_key(user, &key);
        }
        self.runtime
            .block_on(self.iam.delete_user().user_name(user).send())
            .unwrap();
    }
}
