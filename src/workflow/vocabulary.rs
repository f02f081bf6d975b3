//! The words of the workflow language that every layer uses: how a secret
//! is laid out (`format:`), what AWS credentials a command gets, HTTP
//! methods, when a hook runs, the bounds on durations, and the walk over
//! every templated field ([`Templates`]). It sits below the kinds, the
//! providers and the document alike, so none of them imports a later
//! stage to name these.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::source::DocPath;
use super::template::Template;

/// Bounds on durations: far beyond any sensible setting, and within what
/// time arithmetic can hold.
pub const MAX_KEY_AGE_BOUND: Duration = Duration::from_days(3650);

pub const MAX_SOAK: Duration = Duration::from_days(365);

pub const MAX_QUIET_FOR: Duration = Duration::from_days(7);

pub const MAX_TIMEOUT: Duration = Duration::from_hours(24);

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPhase {
    Refresh,
    Verify,
    VerifyAfterDisable,
}

impl HookPhase {
    pub const ALL: [HookPhase; 3] = [
        HookPhase::Refresh,
        HookPhase::Verify,
        HookPhase::VerifyAfterDisable,
    ];
    pub const KEYS: [&'static str; 3] = ["refresh", "verify", "verify_after_disable"];

    pub fn key(self) -> &'static str {
        Self::KEYS[self as usize]
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::KEYS
            .iter()
            .position(|k| *k == key)
            .map(|i| Self::ALL[i])
    }
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

impl SecretFormat {
    /// The name written in a workflow file.
    pub fn name(self) -> &'static str {
        match self {
            SecretFormat::Json => "json",
            SecretFormat::Env => "env",
            SecretFormat::Credentials => "credentials",
            SecretFormat::IdOnly => "id_only",
        }
    }
}

/// What AWS credentials a command finds in its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Credentials {
    /// The new key (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), and no
    /// other credentials of rekey's (session token, profile, role) that
    /// could shadow it.
    New,
    /// rekey's own, as rekey got them (to call AWS as the operator).
    Operator,
    /// No AWS credentials at all.
    None,
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

/// Every [`Template`] field of a document part, with its path relative to
/// the part, so that interpolation can be checked where it is written and
/// a library's params bound to the values its user gives.
pub trait Templates {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>);
}

pub fn each<'a>(
    items: &'a mut [Template],
    at: &DocPath,
    out: &mut Vec<(DocPath, &'a mut Template)>,
) {
    out.extend(items.iter_mut().enumerate().map(|(i, t)| (at.index(i), t)));
}

pub fn each_value<'a>(
    map: &'a mut BTreeMap<String, Template>,
    at: &DocPath,
    out: &mut Vec<(DocPath, &'a mut Template)>,
) {
    out.extend(map.iter_mut().map(|(k, t)| (at.key(k.as_str()), t)));
}

pub fn maybe<'a>(
    field: &'a mut Option<Template>,
    at: DocPath,
    out: &mut Vec<(DocPath, &'a mut Template)>,
) {
    if let Some(template) = field {
        out.push((at, template));
    }
}
