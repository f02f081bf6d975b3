//! The checked workflow: what plan and apply work from.
//!
//! Everything here has passed validation: every target and hook has exactly
//! one kind, ids are unique, `needs` resolve, references are known, and
//! policy defaults are filled in. No positions, no serde, no AWS types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::document::{DocKind, MakeRoom, OnVerifyFailure, Weekday};
use super::duration::Duration;
use super::template::Template;
use super::vocabulary::HookPhase;
use crate::hooks::HookKind;
use crate::targets::TargetKind;

#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    pub kind: DocKind,
    pub params: BTreeMap<String, Param>,
    pub select: Selection,
    pub staging: Staging,
    pub targets: Vec<Target>,
    pub hooks: Vec<Hook>,
    pub policy: Policy,
    /// Account ids the workflow may run in; empty: any.
    pub accounts_allowed: Vec<String>,
    /// The accounts a fanned-out workflow rotates in (`accounts.ids`,
    /// `accounts.organization`); `None`: the credentials' own account.
    pub fleet: Option<Fleet>,
    /// Shared state in S3; `None`: a local state directory.
    pub state: Option<S3Settings>,
    /// The cron the workflow's scheduled job runs on (`schedule:`).
    pub schedule: Option<super::schedule::Schedule>,
}

impl Workflow {
    /// What must never be written down: the values `params` gives the
    /// params marked `sensitive: true`.
    pub fn sensitive(&self, params: &BTreeMap<String, String>) -> crate::secret::Sensitive {
        crate::secret::Sensitive::of(
            self.params
                .iter()
                .filter(|(_, p)| p.sensitive)
                .filter_map(|(name, _)| params.get(name)),
        )
    }

    /// With state shared between runners, a new secret is staged where
    /// every runner can read it back: unless the workflow says where, the
    /// SSM SecureString `/rekey/staging/<workflow>/<user>` (a file on one
    /// runner could not be resumed on another).
    pub fn stage_for_shared_state(&mut self) {
        if matches!(self.staging, Staging::StateFile | Staging::AccountStateFile) {
            let safe = crate::text::distinct_name_for(&self.name);
            self.staging = Staging::SsmParameter {
                name: Template::new(format!("/rekey/staging/{safe}/${{user}}")),
                kms_key_id: None,
            };
        }
    }
}

/// The accounts a workflow fans out to, and how each is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    pub ids: Vec<String>,
    pub organization: Option<Organization>,
    pub exclude: Vec<String>,
    /// A role name, or an ARN template (`${account}`, params).
    pub role: Template,
    pub external_id: Option<Template>,
}

/// `accounts.organization`: OUs (empty: the whole Organization) and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub ous: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// Where in S3 apply keeps its state (`state.s3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub kms_key_id: Option<String>,
    pub lease: Option<std::time::Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub default: Option<String>,
    pub description: Option<String>,
    /// Its value is never written down: a rotation's snapshot keeps a
    /// reference to it, and a resumed rotation needs it given again.
    pub sensitive: bool,
    /// What its values must match, whole.
    pub pattern: Option<String>,
    /// The values it accepts; empty: any.
    pub one_of: Vec<String>,
}

impl Param {
    /// Whether its values are constrained (`pattern` or `one_of`).
    pub fn constrained(&self) -> bool {
        self.pattern.is_some() || !self.one_of.is_empty()
    }

    /// Why `value` is not accepted, if it is not.
    pub fn refuses(&self, value: &str) -> Option<String> {
        if !self.one_of.is_empty() && !self.one_of.iter().any(|v| v == value) {
            return Some(format!(
                "is not one of {}",
                self.one_of
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let pattern = self.pattern.as_deref()?;
        let whole = regex_lite::Regex::new(&format!("^(?:{pattern})$")).ok()?;
        (!whole.is_match(value)).then(|| format!("does not match `{pattern}`"))
    }
}

/// Which users to rotate; a user must match every criterion given.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub users: Vec<Template>,
    pub path_prefix: Option<Template>,
    pub tags: BTreeMap<String, Template>,
    pub exclude: Vec<Template>,
    pub max_key_age: Duration,
}

pub const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_days(90);

/// Where a new secret is written first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Staging {
    /// A 0600 file under the state directory.
    StateFile,
    /// The same, named by account and user: a fanned-out workflow has a
    /// user of the same name in many accounts.
    AccountStateFile,
    SsmParameter {
        name: Template,
        kms_key_id: Option<Template>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    pub needs: Vec<String>,
    pub kind: TargetKind,
    /// The account it lives in, when not the rotated user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hook {
    pub id: String,
    pub phase: HookPhase,
    pub needs: Vec<String>,
    pub kind: HookKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub soak: Duration,
    pub on_verify_failure: OnVerifyFailure,
    pub make_room: MakeRoom,
    pub concurrency: u32,
    /// The age no active key may reach.
    #[serde(default = "default_deadline")]
    pub deadline: Duration,
    /// Accounts worked in at once.
    #[serde(default = "default_account_concurrency")]
    pub account_concurrency: u32,
    pub window: Option<Window>,
}

fn default_deadline() -> Duration {
    DEFAULT_DEADLINE
}

fn default_account_concurrency() -> u32 {
    DEFAULT_CONCURRENCY
}

pub const DEFAULT_SOAK: Duration = Duration::from_days(7);
/// IAM.3's and CIS's limit: no access key 90 days old or more.
pub const DEFAULT_DEADLINE: Duration = Duration::from_days(90);
pub const DEFAULT_CONCURRENCY: u32 = 4;
pub const MAX_CONCURRENCY: u32 = 64;

/// A change window, in minutes since midnight at a fixed UTC offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Empty: every day.
    pub days: Vec<Weekday>,
    pub start_minute: u16,
    pub end_minute: u16,
    pub utc_offset_minutes: i16,
}
