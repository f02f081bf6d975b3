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

use super::vocabulary::{Templates, each, each_value, maybe};
/// Each target and hook kind's document type lives in its own module;
/// the registries there generate these two.
use crate::hooks::HookDoc;
use crate::targets::TargetDoc;

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
    /// Which AWS accounts the workflow may run in.
    pub accounts: Option<AccountsDoc>,
    /// Where apply keeps its journal, lease and claims. Absent: a state
    /// directory next to the workflow (`.rekey/<name>`), on this machine.
    pub state: Option<StateDoc>,
    /// The cron (five fields, UTC) the workflow's scheduled job runs on,
    /// e.g. `30 2 * * 2-4`. Plan rotates a key now when it would pass
    /// `policy.deadline` before the next run; validate warns when no run
    /// falls inside `policy.window`.
    pub schedule: Option<String>,
}

/// Shared state, so that any runner can resume what another began.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateDoc {
    /// An S3 bucket: the journal, the lease (a lock that expires when its
    /// holder dies) and per-user claims, written with conditional writes.
    #[schemars(required)]
    pub s3: Option<S3StateDoc>,
}

/// Where in S3, and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3StateDoc {
    /// The bucket (it must exist; rekey never creates one).
    #[schemars(required)]
    pub bucket: Option<String>,
    /// A prefix for this workflow's objects: `PREFIX<workflow name>/`.
    pub prefix: Option<String>,
    /// The bucket's region (default: the region rekey runs in).
    pub region: Option<String>,
    /// A KMS key to encrypt the objects with (default: SSE-S3).
    pub kms_key_id: Option<String>,
    /// How long the lease lasts unless renewed (default `2m`): after a
    /// killed run, the next apply waits at most this long to take over.
    pub lease: Option<Duration>,
}

/// Which AWS accounts the workflow runs in. `allowed` is a pin, like
/// Terraform's `allowed_account_ids`: any other account stops plan and apply
/// before anything is read or changed there. `ids` and `organization` fan
/// the workflow out: the accounts are (ids ∪ the Organization's accounts in
/// `ous` that carry `tags`) − `exclude`, each reached by assuming `role`.
/// Without them, the workflow runs in the credentials' own account.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountsDoc {
    /// 12-digit account ids the workflow may run in. Empty or absent: any.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Accounts to rotate in, by 12-digit id.
    #[serde(default)]
    pub ids: Vec<String>,
    /// The Organization's ACTIVE accounts (read from its management or
    /// delegated administrator account), narrowed by OU and tags.
    pub organization: Option<OrganizationDoc>,
    /// Accounts never rotated in, even when `ids` or the Organization name them.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The role assumed in each account: a name (`RekeyRotation`) or an ARN
    /// template with `${account}`. Required with `ids` or `organization`.
    pub role: Option<Template>,
    /// The external id the role's trust policy asks for (`${params.NAME}`
    /// keeps it out of the file).
    pub external_id: Option<Template>,
}

/// Which of the Organization's accounts: those under any of `ous` (at any
/// depth; absent: the whole Organization) that carry every tag in `tags`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationDoc {
    /// OU ids (`ou-abcd-12345678`) or the root (`r-abcd`); absent: the
    /// whole Organization.
    pub ous: Option<Vec<String>>,
    /// Account tags that must all match.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Templates for AccountsDoc {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        maybe(&mut self.role, at.key("role"), out);
        maybe(&mut self.external_id, at.key("external_id"), out);
    }
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
    /// A secret value (a token in a header, say): never written to the
    /// journal. A rotation in progress needs it given again to go on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// A regular expression every value must match, whole (like Terraform's
    /// variable validation): checked for the default, `--var` and saved
    /// plans alike. Give one (or `one_of`) to a param a shell command uses.
    pub pattern: Option<String>,
    /// The values the param accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<String>,
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
    /// The age no active key may reach (default `90d`, the audit controls'
    /// limit; at least `select.max_key_age`). A key younger than
    /// `max_key_age` is still rotated when it would reach this before the
    /// next chance to rotate it (the next scheduled run, or the next time
    /// the window opens, whichever is later); a run that leaves a key past
    /// it exits 5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
    /// Users rotated at once. Default 4.
    #[schemars(range(min = 1, max = 64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Accounts worked in at once (with `accounts.ids` or
    /// `accounts.organization`); `concurrency` still bounds users overall.
    /// Default 4.
    #[schemars(range(min = 1, max = 64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_concurrency: Option<u32>,
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

impl Weekday {
    /// As cron counts: Sunday 0, Monday 1, … Saturday 6.
    pub fn number_from_sunday(self) -> u8 {
        match self {
            Weekday::Sun => 0,
            Weekday::Mon => 1,
            Weekday::Tue => 2,
            Weekday::Wed => 3,
            Weekday::Thu => 4,
            Weekday::Fri => 5,
            Weekday::Sat => 6,
        }
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
