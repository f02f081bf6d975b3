//! Targets: the places a new key is written to, one module per kind.
//!
//! Each kind's module holds everything about it: its document type (the
//! file format and the schema), the checks validation runs on it, how it is
//! resolved for one user, described in a plan, observed, written and
//! restored. The rest of rekey never switches on a kind: it asks the
//! [`registry!`] below, which maps a document's key (`ssm_parameter`) to its
//! module, as Terraform's core asks a provider by type name.
//!
//! A kind is two types: its document type (implementing [`Kind`]) and what
//! it resolves to for one user (implementing [`Resolved`]), whose `Before`
//! is the typed record the journal keeps of what the target held, so a
//! rollback can put it back. Kind modules use the foundations (templates,
//! providers, secrets) and never a stage (`workflow::validate`, `plan`,
//! `apply`).
//!
//! Adding a kind: write `src/targets/<kind>.rs` with its document type and
//! the two trait impls, and add one line to the registry at the bottom of
//! this file. The module name is the key users write.

pub mod file;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::providers::{Provider, ProviderError, TargetReader, TargetState};
use crate::secret::SecretString;
use crate::workflow::diagnostic::Problems;
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::{Template, Values};
use crate::workflow::vocabulary::{SecretFormat, Templates};

/// What a target or hook failed at, phrased for the operator. Provider
/// errors keep their advice.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A template that does not expand, a mode that is not one, a file
    /// rekey cannot rewrite without losing what it holds.
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("cannot {verb} {}: {source}", path.display())]
    File {
        verb: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A command that could not run, or exited with an error.
    #[error("{what}: {message}")]
    Command { what: String, message: String },
    /// What a restore needs is no longer there, or a step came too early.
    #[error("{0}")]
    Missing(String),
    /// The journal refused the record that must come before the change.
    #[error("{0}")]
    Record(String),
    /// A file's backup is on the machine that wrote it (state in S3 lets
    /// another runner resume, but not read that machine's files).
    #[error(
        "the backup {} is on machine `{host}`, which wrote it: run this rollback there (`rekey apply` or `rekey abort` on `{host}`), or restore the file by hand",
        path.display()
    )]
    Elsewhere { path: PathBuf, host: String },
}

impl ActionError {
    pub fn invalid(what: &str, message: impl Into<String>) -> Self {
        ActionError::Invalid {
            what: what.to_string(),
            message: message.into(),
        }
    }
}

/// What a target's templates are filled with for one user.
pub struct Resolve<'a> {
    pub values: &'a Values<'a>,
    /// The workflow's folder: relative paths start there.
    pub base_dir: &'a Path,
    /// `target `id``, for messages.
    pub what: &'a str,
}

impl Resolve<'_> {
    pub fn expand(&self, template: &Template) -> Result<String, ActionError> {
        template
            .expand(self.values)
            .map_err(|message| ActionError::invalid(self.what, message))
    }

    pub fn expand_all(&self, templates: &[Template]) -> Result<Vec<String>, ActionError> {
        templates.iter().map(|t| self.expand(t)).collect()
    }

    pub fn expand_map(
        &self,
        templates: &BTreeMap<String, Template>,
    ) -> Result<BTreeMap<String, String>, ActionError> {
        templates
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.expand(v)?)))
            .collect()
    }
}

/// Everything a write needs besides the target itself.
pub struct Write<'a, P> {
    pub provider: &'a P,
    /// The rotation's id: the same on every resume.
    pub rotation: &'a str,
    pub target: &'a str,
    pub user: &'a str,
    pub new_key: &'a str,
    pub secret: &'a SecretString,
    pub base_dir: &'a Path,
    /// Where a file kind keeps its copy of the file for a rollback.
    pub backup: PathBuf,
}

/// What a write left, for the journal and the progress line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Written {
    /// A write that left version `version` of a versioned store.
    pub fn version(version: String) -> Self {
        Written {
            version: Some(version),
        }
    }
}

/// Everything a restore needs besides the target and its record.
pub struct Restore<'a, P> {
    pub provider: &'a P,
    pub target: &'a str,
    pub user: &'a str,
    pub old_key: &'a str,
    pub new_key: Option<&'a str>,
    pub base_dir: &'a Path,
}

/// A kind's document type.
pub trait Kind: Templates {
    type Resolved: Resolved;
    /// Whether it lives in an AWS account, so that a target's `account:`
    /// can put it in another one (a central secrets account).
    const IN_ACCOUNT: bool = false;
    /// Checks validation runs beyond the shape; `at` is the kind's key.
    fn check(&self, _at: &Origin, _problems: &mut Problems) {}
    /// The program and arguments it runs, if it runs a command: validation
    /// warns of unchecked params in a shell's command string.
    fn command(&self) -> Option<&[Template]> {
        None
    }
    /// The target for one user, every template expanded.
    fn resolve(&self, cx: &Resolve<'_>) -> Result<Self::Resolved, ActionError>;
}

/// Records what a target holds before `write` changes it: the journal's
/// intent, durable once the future is done.
pub type RecordBefore<'i, B> =
    &'i (dyn Fn(B) -> futures_util::future::BoxFuture<'i, Result<(), ActionError>> + Send + Sync);

/// A kind resolved for one user: what it acts on, and how.
///
/// `write` records what the target holds through `intent` before it changes
/// anything (unless `recorded` has it from an interrupted write), and is
/// done at once when the target already holds the new key.
pub trait Resolved: Debug + Clone {
    /// What the target held, as the journal keeps it: never a secret.
    type Before: Debug + Clone + PartialEq + Serialize + DeserializeOwned;

    /// The parameter name, secret id, `path [profile]` or command.
    fn resource(&self) -> String;
    /// How the secret is laid out there, when rekey can read it.
    fn format(&self) -> Option<SecretFormat>;
    /// A plan's line for its distribute step.
    fn describe(&self) -> String;
    /// What it writes, named so that two targets writing the same thing
    /// (for two users, or twice for one) name it alike: a plan refuses
    /// that, since each write would undo the other's. Commands write
    /// nothing rekey can name.
    fn writes(&self) -> Vec<String> {
        Vec::new()
    }
    /// The file it writes and as which kind: one file is written by one
    /// kind only (a profile and a dotenv line in one file would break it).
    fn file(&self) -> Option<(PathBuf, &'static str)> {
        None
    }
    /// The secret the target held before the rotation wrote it (from its
    /// backup, or its previous version), to hide from commands' output.
    fn old_secrets<P: Provider>(
        &self,
        _provider: &P,
        _before: &Self::Before,
        _backup: &Path,
    ) -> impl Future<Output = Vec<SecretString>> {
        async { Vec::new() }
    }
    /// What it holds now; `None` for kinds that cannot be read (exec).
    fn observe<P: TargetReader>(
        &self,
        provider: &P,
        what: &str,
    ) -> impl Future<Output = Result<Option<TargetState>, ActionError>>;
    fn write<'i, P: Provider>(
        &self,
        cx: &Write<'_, P>,
        recorded: Option<&Self::Before>,
        intent: RecordBefore<'i, Self::Before>,
    ) -> impl Future<Output = Result<Written, ActionError>>;
    /// Puts back what `before` says the target held.
    fn restore<P: Provider>(
        &self,
        cx: &Restore<'_, P>,
        before: &Self::Before,
    ) -> impl Future<Output = Result<(), ActionError>>;
    /// Reads the record the previous journal format kept (string fields).
    fn before_from_v1(data: &BTreeMap<String, String>) -> Option<Self::Before>;
}

/// What a versioned target (a parameter, a secret) held: whether it
/// existed, and its version then. A rollback goes back to that version, or
/// deletes what the rotation created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub existed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Version {
    /// The secrets the previous version held, to hide from output: `read`
    /// gets a version's value from its store.
    pub async fn old_secrets<F, R>(&self, format: SecretFormat, read: F) -> Vec<SecretString>
    where
        F: FnOnce(String) -> R,
        R: Future<Output = Result<Option<SecretString>, ProviderError>>,
    {
        let Some(version) = self.previous() else {
            return Vec::new();
        };
        match read(version.to_string()).await {
            Ok(Some(value)) => crate::secret::secrets_in(&value, format),
            _ => Vec::new(),
        }
    }

    /// The version the target held before, if it existed then.
    pub fn previous(&self) -> Option<&str> {
        self.version.as_deref().filter(|_| self.existed)
    }

    /// The first journal format's `previous_exists` and `previous_version`.
    pub fn from_v1(data: &BTreeMap<String, String>) -> Option<Self> {
        Some(Version {
            existed: v1_flag(data, "previous_exists"),
            version: data.get("previous_version").cloned(),
        })
    }
}

/// Text fields of a version 1 journal record.
pub(crate) fn v1_flag(data: &BTreeMap<String, String>, name: &str) -> bool {
    data.get(name).is_some_and(|v| v == "true")
}

/// Declares every target kind once: the document's `TargetDoc` (one field
/// per kind, named after its module), the model's `TargetKind`, the
/// resolved `ResolvedTarget`, the journal's `TargetBefore`, and the
/// dispatch between them.
macro_rules! registry {
    ($( $variant:ident($module:ident :: $doc:ident) ),* $(,)?) => {
        $( pub mod $module; )*

        /// A place the new key is written to. Exactly one kind per target.
        #[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[schemars(extend("oneOf" = [ $( { "required": [stringify!($module)] } ),* ]))]
        pub struct TargetDoc {
            /// Unique name of this target among targets and hooks.
            pub id: String,
            /// Ids of targets to write before this one.
            #[serde(default)]
            pub needs: Vec<String>,
            /// Replace a library's target of the same id instead of clashing with it.
            #[serde(default, rename = "override")]
            pub overrides: bool,
            /// The AWS account it lives in, when not the rotated user's (a
            /// central secrets account): reached with `accounts.role`. For
            /// `ssm_parameter` and `secrets_manager`.
            pub account: Option<String>,
            $( pub $module: Option<$module::$doc>, )*
        }

        impl TargetDoc {
            /// The kinds written in this target (validation wants one).
            pub fn kinds(&self) -> Vec<TargetKind> {
                let mut kinds = Vec::new();
                $( if let Some(kind) = &self.$module {
                    kinds.push(TargetKind::$variant(kind.clone()));
                } )*
                kinds
            }
        }

        impl Templates for TargetDoc {
            fn templates_mut<'a>(
                &'a mut self,
                at: &DocPath,
                out: &mut Vec<(DocPath, &'a mut Template)>,
            ) {
                $( if let Some(kind) = &mut self.$module {
                    kind.templates_mut(&at.key(stringify!($module)), out);
                } )*
            }
        }

        /// A target's kind and its settings, as written.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum TargetKind {
            $( $variant($module::$doc), )*
        }

        impl Templates for TargetKind {
            fn templates_mut<'a>(
                &'a mut self,
                at: &DocPath,
                out: &mut Vec<(DocPath, &'a mut Template)>,
            ) {
                match self {
                    $( TargetKind::$variant(kind) => kind.templates_mut(at, out), )*
                }
            }
        }

        impl TargetKind {
            /// Every kind's key, in the order the docs list them.
            pub const KEYS: &[&str] = &[$( stringify!($module) ),*];

            /// The key that names this kind in a workflow file.
            pub fn key(&self) -> &'static str {
                match self {
                    $( TargetKind::$variant(_) => stringify!($module), )*
                }
            }

            /// The command it runs, if any (`Kind::command`).
            pub fn command(&self) -> Option<&[Template]> {
                match self {
                    $( TargetKind::$variant(kind) => kind.command(), )*
                }
            }

            /// Whether it lives in an AWS account (`Kind::IN_ACCOUNT`).
            pub fn in_account(&self) -> bool {
                match self {
                    $( TargetKind::$variant(_) => <$module::$doc as Kind>::IN_ACCOUNT, )*
                }
            }

            pub fn check(&self, at: &Origin, problems: &mut Problems) {
                match self {
                    $( TargetKind::$variant(kind) => kind.check(at, problems), )*
                }
            }

            pub fn resolve(&self, cx: &Resolve<'_>) -> Result<ResolvedTarget, ActionError> {
                match self {
                    $( TargetKind::$variant(kind) => kind.resolve(cx).map(ResolvedTarget::$variant), )*
                }
            }

            /// A version 1 journal's record of what this target held.
            pub fn before_from_v1(&self, data: &BTreeMap<String, String>) -> Option<TargetBefore> {
                match self {
                    $( TargetKind::$variant(_) =>
                        <<$module::$doc as Kind>::Resolved as Resolved>::before_from_v1(data)
                            .map(TargetBefore::$variant), )*
                }
            }
        }

        /// A target resolved for one user.
        #[derive(Debug, Clone)]
        pub enum ResolvedTarget {
            $( $variant(<$module::$doc as Kind>::Resolved), )*
        }

        /// What a target held before a rotation wrote it: the journal's
        /// record, by kind.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum TargetBefore {
            $( $variant(<<$module::$doc as Kind>::Resolved as Resolved>::Before), )*
        }

        impl ResolvedTarget {
            pub fn key(&self) -> &'static str {
                match self {
                    $( ResolvedTarget::$variant(_) => stringify!($module), )*
                }
            }

            pub fn resource(&self) -> String {
                match self {
                    $( ResolvedTarget::$variant(r) => r.resource(), )*
                }
            }

            pub fn format(&self) -> Option<SecretFormat> {
                match self {
                    $( ResolvedTarget::$variant(r) => r.format(), )*
                }
            }

            pub fn describe(&self) -> String {
                match self {
                    $( ResolvedTarget::$variant(r) => r.describe(), )*
                }
            }

            pub fn writes(&self) -> Vec<String> {
                match self {
                    $( ResolvedTarget::$variant(r) => r.writes(), )*
                }
            }

            pub fn file(&self) -> Option<(PathBuf, &'static str)> {
                match self {
                    $( ResolvedTarget::$variant(r) => r.file(), )*
                }
            }

            pub async fn old_secrets<P: Provider>(
                &self,
                provider: &P,
                before: &TargetBefore,
                backup: &Path,
            ) -> Vec<SecretString> {
                match (self, before) {
                    $( (ResolvedTarget::$variant(r), TargetBefore::$variant(before)) => {
                        r.old_secrets(provider, before, backup).await
                    } )*
                    #[allow(unreachable_patterns)]
                    _ => Vec::new(),
                }
            }

            pub async fn observe<P: TargetReader>(
                &self,
                provider: &P,
                what: &str,
            ) -> Result<Option<TargetState>, ActionError> {
                match self {
                    $( ResolvedTarget::$variant(r) => r.observe(provider, what).await, )*
                }
            }

            /// Writes the new key; `intent` records what the target held.
            pub async fn write<'i, P: Provider>(
                &self,
                cx: &Write<'_, P>,
                recorded: Option<&TargetBefore>,
                intent: RecordBefore<'i, TargetBefore>,
            ) -> Result<Written, ActionError> {
                match self {
                    $( ResolvedTarget::$variant(r) => {
                        let recorded = match recorded {
                            Some(TargetBefore::$variant(before)) => Some(before),
                            _ => None,
                        };
                        let intent = |before| intent(TargetBefore::$variant(before));
                        r.write(cx, recorded, &intent).await
                    } )*
                }
            }

            pub async fn restore<P: Provider>(
                &self,
                cx: &Restore<'_, P>,
                before: &TargetBefore,
            ) -> Result<(), ActionError> {
                match (self, before) {
                    $( (ResolvedTarget::$variant(r), TargetBefore::$variant(before)) => {
                        r.restore(cx, before).await
                    } )*
                    #[allow(unreachable_patterns)]
                    (_, other) => Err(ActionError::Missing(format!(
                        "target `{}`: the journal's record is of another kind ({other:?}); restore it by hand",
                        cx.target
                    ))),
                }
            }
        }
    };
}

registry! {
    SsmParameter(ssm_parameter::SsmParameterTarget),
    SecretsManager(secrets_manager::SecretsManagerTarget),
    CredentialsFile(credentials_file::CredentialsFileTarget),
    EnvFile(env_file::EnvFileTarget),
    Template(template::TemplateTarget),
    Exec(exec::ExecTarget),
}

/// What the kinds' unit tests share: a kind read from YAML and resolved
/// for a user, and the contexts of a write and a restore against an
/// account in memory.
#[cfg(test)]
pub(crate) mod testing {

    use super::*;

    pub const OLD: &str = "AKIAOLD0000000000000";
    pub const NEW: &str = "AKIANEW0000000000000";

    /// A kind's document from its YAML, as a workflow would write it.
    pub fn doc<K: DeserializeOwned>(yaml: &str) -> K {
        serde_yaml_ng::from_str(yaml).expect("a kind's document")
    }

    /// `kind` resolved for `user` of account 123456789012, with no params.
    pub fn resolve<K: Kind>(kind: &K, user: &str) -> Result<K::Resolved, ActionError> {
        let params = BTreeMap::new();
        let values = Values {
            params: &params,
            user: Some(user),
            account: Some("123456789012"),
            new_key_id: None,
        };
        kind.resolve(&Resolve {
            values: &values,
            base_dir: Path::new("."),
            what: "target `t`",
        })
    }

    /// A write of the key `NEW` with `secret` for user `app`.
    pub fn write<'a, P>(provider: &'a P, secret: &'a SecretString, dir: &'a Path) -> Write<'a, P> {
        Write {
            provider,
            rotation: "app@1",
            target: "t",
            user: "app",
            new_key: NEW,
            secret,
            base_dir: dir,
            backup: dir.join("backup"),
        }
    }

    /// A restore of the key `OLD` over `NEW` for user `app`.
    pub fn restore<'a, P>(provider: &'a P, dir: &'a Path) -> Restore<'a, P> {
        Restore {
            provider,
            target: "t",
            user: "app",
            old_key: OLD,
            new_key: Some(NEW),
            base_dir: dir,
        }
    }

    /// An intent recorder keeping every intent a write records in `$kept`
    /// (a `Mutex<Vec<_>>`), as the journal would. A macro, so that the
    /// closure's future may borrow as long as each call needs.
    macro_rules! recorder {
        ($kept:expr) => {
            |before| -> futures_util::future::BoxFuture<'_, Result<(), $crate::targets::ActionError>> {
                $kept.lock().expect("intents").push(before);
                Box::pin(async { Ok(()) })
            }
        };
    }
    pub(crate) use recorder;
}
