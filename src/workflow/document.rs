//! The workflow file format (version 1), as serde reads it.
//!
//! These types are the contract users write against: the JSON Schema in
//! `schemas/workflow.schema.json` is generated from them, and their doc
//! comments are what an editor shows on hover. They describe shape only;
//! rules that span fields (exactly one kind per target, ids unique, `needs`
//! resolvable, references known) live in `validate`, which turns a
//! [`WorkflowDoc`] into the checked model.
//!
//! Every struct denies unknown fields, so a typo is an error, not a silently
//! ignored setting. No `untagged` or `flatten`: they would ruin the messages.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::source::DocPath;
use super::template::Template;

/// A rekey workflow: which IAM users' access keys to rotate, where the new
/// keys go, and how to prove that everything still works.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "rekey workflow (version 1)")]
pub struct WorkflowDoc {
    /// Format version; always 1.
    #[schemars(required, range(min = 1, max = 1))]
    pub version: Option<u32>,
    /// `workflow` (the default) rotates keys; `library` only provides
    /// targets, hooks and policy for other files to pull in with `uses:`.
    pub kind: Option<DocKind>,
    /// Short name, shown in plans and reports.
    pub name: Option<String>,
    pub description: Option<String>,
    /// Values the file can be given (`--var NAME=VALUE`, or `with:` when it is
    /// a library), referred to as `${params.NAME}`.
    #[serde(default)]
    pub params: BTreeMap<String, ParamDoc>,
    /// Libraries whose targets, hooks and policy are merged into this file.
    #[serde(default)]
    pub uses: Vec<UseDoc>,
    /// Which IAM users to rotate. Required in a workflow.
    pub select: Option<SelectDoc>,
    /// Where the new secret is written first, before anything else.
    pub staging: Option<StagingDoc>,
    /// Where the new key is distributed.
    #[serde(default)]
    pub targets: Vec<TargetDoc>,
    /// Checks and reloads run around the switch to the new key.
    #[serde(default)]
    pub hooks: HooksDoc,
    #[serde(default)]
    pub policy: PolicyDoc,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    #[default]
    Workflow,
    Library,
}

/// A param. Without a default it must be given (`--var`, or `with:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamDoc {
    pub default: Option<ScalarValue>,
    pub description: Option<String>,
}

/// A plain value: text, a number or a boolean, used as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ScalarValue(pub String);

impl<'de> Deserialize<'de> for ScalarValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ScalarValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("text, a number or a boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<ScalarValue, E> {
                Ok(ScalarValue(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<ScalarValue, E> {
                Ok(ScalarValue(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ScalarValue, E> {
                Ok(ScalarValue(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ScalarValue, E> {
                Ok(ScalarValue(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ScalarValue, E> {
                Ok(ScalarValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for ScalarValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScalarValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// A library to merge in.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UseDoc {
    /// Path of the library file, relative to this file.
    pub file: String,
    /// Values for the library's params; they may refer to this file's
    /// params (`${params.env}`).
    #[serde(default)]
    pub with: BTreeMap<String, ScalarValue>,
}

/// Which IAM users (and so which access keys) the workflow rotates. A user
/// is selected when it matches every criterion given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectDoc {
    /// User names or globs (`*` any run of characters, `?` one character).
    /// `["*"]` selects every user, and must be written out.
    #[serde(default)]
    pub users: Vec<Template>,
    /// IAM path prefix, e.g. `/ci/`.
    pub path_prefix: Option<Template>,
    /// Tags the user must carry, with these values.
    #[serde(default)]
    pub tags: BTreeMap<String, Template>,
    /// Names or globs of users never to touch, even if selected.
    #[serde(default)]
    pub exclude: Vec<Template>,
    /// Keys younger than this are left alone (`0d`: always rotate).
    /// Default 90d.
    pub max_key_age: Option<Duration>,
}

/// Where the new secret is written right after CreateAccessKey.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StagingDoc {
    /// An SSM SecureString parameter name, e.g. `/rekey/pending/${user}`.
    /// Without it, a 0600 file under the state directory.
    pub ssm_parameter: Option<Template>,
    /// KMS key for the staging parameter (default: the account's SSM key).
    pub kms_key_id: Option<Template>,
}

/// A place the new key is written to. Exactly one kind per target.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["ssm_parameter"] },
    { "required": ["secrets_manager"] },
    { "required": ["credentials_file"] },
    { "required": ["env_file"] },
    { "required": ["template"] },
    { "required": ["exec"] },
]))]
pub struct TargetDoc {
    /// Unique name of this target among targets and hooks.
    pub id: String,
    /// Ids of targets to write before this one.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Replace a library's target of the same id instead of clashing with it.
    #[serde(default, rename = "override")]
    pub overrides: bool,
    pub ssm_parameter: Option<SsmParameterTarget>,
    pub secrets_manager: Option<SecretsManagerTarget>,
    pub credentials_file: Option<CredentialsFileTarget>,
    pub env_file: Option<EnvFileTarget>,
    pub template: Option<TemplateTarget>,
    pub exec: Option<ExecTarget>,
}

/// How a secret is laid out where it is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretFormat {
    /// `{"AccessKeyId": "...", "SecretAccessKey": "..."}`
    #[default]
    Json,
    /// `AWS_ACCESS_KEY_ID=...` and `AWS_SECRET_ACCESS_KEY=...` lines.
    Env,
    /// An INI profile with `aws_access_key_id` and `aws_secret_access_key`.
    Credentials,
    /// Only the access key id (not secret).
    IdOnly,
}

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

/// A Secrets Manager secret; the new version is staged AWSPENDING, then
/// made AWSCURRENT.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsManagerTarget {
    pub secret_id: Template,
    #[serde(default)]
    pub format: SecretFormat,
    pub kms_key_id: Option<Template>,
}

/// One profile of an AWS shared credentials file, updated in place.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFileTarget {
    /// Path of the file, relative to the workflow file.
    pub path: Template,
    /// Profile (section) name. Default `${user}`.
    pub profile: Option<Template>,
}

/// Two variables of a dotenv file (`NAME=value` lines), updated in place,
/// leaving every other line as it was.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvFileTarget {
    /// Path of the file, relative to the workflow file.
    pub path: Template,
    /// Variable for the key id. Default AWS_ACCESS_KEY_ID.
    pub access_key_id_var: Option<String>,
    /// Variable for the secret. Default AWS_SECRET_ACCESS_KEY.
    pub secret_access_key_var: Option<String>,
    /// File mode, in octal (`"0600"`). Default: the file's own, or 0600 for a new file.
    #[schemars(regex(pattern = r"^0?[0-7]{3}$"))]
    pub mode: Option<String>,
}

/// A file rendered from a template with `{{access_key_id}}` and
/// `{{secret_access_key}}` placeholders (and `${user}` references).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateTarget {
    /// Path of the file written, relative to the workflow file.
    pub path: Template,
    /// The template, inline. Give this or `source`.
    pub content: Option<Template>,
    /// A file holding the template, relative to the workflow file.
    pub source: Option<Template>,
    /// File mode, in octal (`"0600"`). Default: the file's own, or 0600 for a new file.
    #[schemars(regex(pattern = r"^0?[0-7]{3}$"))]
    pub mode: Option<String>,
}

/// A command that receives the new credentials in its environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), never in its arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecTarget {
    /// Program and arguments; no shell is involved.
    #[schemars(length(min = 1))]
    pub command: Vec<Template>,
    /// Default 60s.
    pub timeout: Option<Duration>,
    /// Command that undoes this target on rollback (same environment, with
    /// the previous credentials).
    pub rollback: Option<Vec<Template>>,
}

/// Hooks by phase, each list run in order of `needs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HooksDoc {
    /// After distribution: make the applications pick up the new key.
    #[serde(default)]
    pub refresh: Vec<HookDoc>,
    /// Before the old key is disabled: prove the new one works.
    #[serde(default)]
    pub verify: Vec<HookDoc>,
    /// After the old key is disabled: prove nothing broke.
    #[serde(default)]
    pub verify_after_disable: Vec<HookDoc>,
}

/// A reload or a check. Exactly one kind per hook.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["http"] },
    { "required": ["sts_identity"] },
    { "required": ["key_unused"] },
    { "required": ["exec"] },
    { "required": ["ssm_command"] },
]))]
pub struct HookDoc {
    /// Unique name of this hook among targets and hooks.
    pub id: String,
    /// Ids of hooks of the same phase to run before this one.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Replace a library's hook of the same id instead of clashing with it.
    #[serde(default, rename = "override")]
    pub overrides: bool,
    pub http: Option<HttpHook>,
    pub sts_identity: Option<StsIdentityHook>,
    pub key_unused: Option<KeyUnusedHook>,
    pub exec: Option<ExecHook>,
    pub ssm_command: Option<SsmCommandHook>,
}

/// An HTTP request that must answer with the expected status.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpHook {
    pub url: Template,
    /// Default GET.
    pub method: Option<HttpMethod>,
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    /// Default 200.
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<u16>,
    /// Text the response body must contain.
    pub body_contains: Option<String>,
    /// Default 30s.
    pub timeout: Option<Duration>,
    /// Further attempts, with backoff, before the hook fails. Default 2.
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// Polls STS GetCallerIdentity with the new key until it answers as the
/// rotated user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StsIdentityHook {
    /// Give up after this long. Default 60s.
    pub timeout: Option<Duration>,
}

/// The old key must show no use (GetAccessKeyLastUsed) after the refresh
/// phase ended, watched for `quiet_for`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyUnusedHook {
    pub quiet_for: Duration,
}

/// A command that must exit with the expected code.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecHook {
    #[schemars(length(min = 1))]
    pub command: Vec<Template>,
    /// Default 60s.
    pub timeout: Option<Duration>,
    /// Default 0.
    pub expect_exit: Option<i32>,
    /// Pass the new credentials in the environment. Default false.
    #[serde(default)]
    pub with_credentials: bool,
}

/// Runs shell commands on instances through SSM Run Command
/// (AWS-RunShellScript) and waits for every invocation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SsmCommandHook {
    #[schemars(length(min = 1))]
    pub commands: Vec<Template>,
    /// Instance ids; or give `instance_tags`.
    #[serde(default)]
    pub instance_ids: Vec<Template>,
    /// Instances carrying these tags.
    #[serde(default)]
    pub instance_tags: BTreeMap<String, Template>,
    /// Default 5m.
    pub timeout: Option<Duration>,
}

/// How carefully to rotate. In a library, these are defaults that the using
/// file can override field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// How long the old key stays disabled before it is deleted. Default 7d.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<Duration>,
    /// What to do when a verification fails. Default rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_verify_failure: Option<OnVerifyFailure>,
    /// How to free a key slot when a user already has two keys.
    /// Default refuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub make_room: Option<MakeRoom>,
    /// Users rotated at once. Default 4.
    #[schemars(range(min = 1, max = 64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// When apply may change anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowDoc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnVerifyFailure {
    /// Re-enable the old key, restore every target, delete the new key.
    Rollback,
    /// Leave both keys as they are and stop.
    Halt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MakeRoom {
    /// Delete an inactive key that no target holds.
    DeleteInactive,
    /// Block the user with the reason.
    Refuse,
}

/// A change window: days of the week and a time range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowDoc {
    /// Default: every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// `HH:MM-HH:MM`; may cross midnight (`22:00-02:00`).
    #[schemars(regex(pattern = r"^\d{2}:\d{2}-\d{2}:\d{2}$"))]
    pub between: String,
    /// `UTC` (default) or a fixed offset such as `+02:00`.
    pub timezone: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Every [`Template`] field of a document part, with its path relative to
/// the part, so that interpolation can be checked where it is written and
/// a library's params bound to the values its user gives.
pub trait Templates {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>);
}

fn each<'a>(items: &'a mut [Template], at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
    out.extend(items.iter_mut().enumerate().map(|(i, t)| (at.index(i), t)));
}

fn each_value<'a>(
    map: &'a mut BTreeMap<String, Template>,
    at: &DocPath,
    out: &mut Vec<(DocPath, &'a mut Template)>,
) {
    out.extend(map.iter_mut().map(|(k, t)| (at.key(k.as_str()), t)));
}

fn maybe<'a>(
    field: &'a mut Option<Template>,
    at: DocPath,
    out: &mut Vec<(DocPath, &'a mut Template)>,
) {
    if let Some(template) = field {
        out.push((at, template));
    }
}

impl Templates for SelectDoc {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        each(&mut self.users, &at.key("users"), out);
        maybe(&mut self.path_prefix, at.key("path_prefix"), out);
        each_value(&mut self.tags, &at.key("tags"), out);
        each(&mut self.exclude, &at.key("exclude"), out);
    }
}

impl Templates for StagingDoc {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        maybe(&mut self.ssm_parameter, at.key("ssm_parameter"), out);
        maybe(&mut self.kms_key_id, at.key("kms_key_id"), out);
    }
}

impl Templates for TargetDoc {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        if let Some(ssm) = &mut self.ssm_parameter {
            let at = at.key("ssm_parameter");
            out.push((at.key("name"), &mut ssm.name));
            maybe(&mut ssm.kms_key_id, at.key("kms_key_id"), out);
            each_value(&mut ssm.tags, &at.key("tags"), out);
        }
        if let Some(secret) = &mut self.secrets_manager {
            let at = at.key("secrets_manager");
            out.push((at.key("secret_id"), &mut secret.secret_id));
            maybe(&mut secret.kms_key_id, at.key("kms_key_id"), out);
        }
        if let Some(file) = &mut self.credentials_file {
            let at = at.key("credentials_file");
            out.push((at.key("path"), &mut file.path));
            maybe(&mut file.profile, at.key("profile"), out);
        }
        if let Some(file) = &mut self.env_file {
            out.push((at.key("env_file").key("path"), &mut file.path));
        }
        if let Some(template) = &mut self.template {
            let at = at.key("template");
            out.push((at.key("path"), &mut template.path));
            maybe(&mut template.content, at.key("content"), out);
            maybe(&mut template.source, at.key("source"), out);
        }
        if let Some(exec) = &mut self.exec {
            let at = at.key("exec");
            each(&mut exec.command, &at.key("command"), out);
            if let Some(rollback) = &mut exec.rollback {
                each(rollback, &at.key("rollback"), out);
            }
        }
    }
}

impl Templates for HookDoc {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        if let Some(http) = &mut self.http {
            let at = at.key("http");
            out.push((at.key("url"), &mut http.url));
            each_value(&mut http.headers, &at.key("headers"), out);
        }
        if let Some(exec) = &mut self.exec {
            each(&mut exec.command, &at.key("exec").key("command"), out);
        }
        if let Some(ssm) = &mut self.ssm_command {
            let at = at.key("ssm_command");
            each(&mut ssm.commands, &at.key("commands"), out);
            each(&mut ssm.instance_ids, &at.key("instance_ids"), out);
            each_value(&mut ssm.instance_tags, &at.key("instance_tags"), out);
        }
    }
}
