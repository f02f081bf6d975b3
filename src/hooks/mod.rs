//! Hooks: the reloads and checks run around the switch to the new key, one
//! module per kind.
//!
//! As with targets, each kind's module holds everything about it: its
//! document type, its validation checks, how it is resolved for one user,
//! described in a plan and run. A hook passes, or rejects the new key with
//! a reason (which rolls back or halts, as policy says); an error is a
//! failure to run it at all. What a hook that passed found (how long STS
//! took, which SSM command ran) is its typed `Outcome` in the journal.
//!
//! Adding a kind: write `src/hooks/<kind>.rs` with its document type and
//! the two trait impls, and add one line to the registry at the bottom of
//! this file. The module name is the key users write.

use std::fmt::Debug;
use std::future::Future;
use std::path::Path;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::providers::Provider;
use crate::secret::SecretString;
use crate::targets::{ActionError, Resolve};
use crate::workflow::diagnostic::Problems;
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::Template;
use crate::workflow::vocabulary::HookPhase;
use crate::workflow::vocabulary::Templates;

/// Everything a hook needs to run for one rotation.
pub struct Run<'a, P> {
    pub provider: &'a P,
    pub hook: &'a str,
    pub user: &'a str,
    /// The ARN the new key must authenticate as.
    pub arn: &'a str,
    pub old_key: &'a str,
    pub new_key: &'a str,
    pub secret: &'a SecretString,
    /// Other secrets a command's output must not show: those the targets
    /// held before (from their backups).
    pub also_hide: &'a [SecretString],
    pub base_dir: &'a Path,
    /// When the new key reached its last target or refresh hook; `None`
    /// before distribution.
    pub moved: Option<OffsetDateTime>,
}

/// How a hook ended, when it could run.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<O> {
    Passed(O),
    /// The new key is not proven to work, with the reason.
    Rejected(String),
}

impl<O> Verdict<O> {
    fn map<T>(self, f: impl FnOnce(O) -> T) -> Verdict<T> {
        match self {
            Verdict::Passed(outcome) => Verdict::Passed(f(outcome)),
            Verdict::Rejected(reason) => Verdict::Rejected(reason),
        }
    }
}

/// What a hook that passed found, for the journal and the progress line.
pub trait Outcome: Debug + Clone + PartialEq + Serialize + DeserializeOwned {
    /// A few words for the progress line, if there is anything to say.
    fn summary(&self) -> Option<String> {
        None
    }
}

impl Outcome for () {}

/// A hook kind's document type.
pub trait Kind: Templates {
    type Resolved: Resolved;
    /// Checks validation runs beyond the shape; `at` is the kind's key.
    fn check(&self, _at: &Origin, _phase: HookPhase, _problems: &mut Problems) {}
    /// The program and arguments it runs, if it runs a command: validation
    /// warns of unchecked params in a shell's command string.
    fn command(&self) -> Option<&[Template]> {
        None
    }
    fn resolve(&self, cx: &Resolve<'_>) -> Result<Self::Resolved, ActionError>;
}

/// A hook resolved for one user.
pub trait Resolved: Debug + Clone {
    type Outcome: Outcome;
    /// A plan's line for its step; `old_key` is the key being replaced.
    fn describe(&self, old_key: &str) -> String;
    /// Whether it runs commands, whose output could quote a secret.
    fn runs_commands(&self) -> bool {
        false
    }
    fn run<P: Provider>(
        &self,
        cx: &Run<'_, P>,
    ) -> impl Future<Output = Result<Verdict<Self::Outcome>, ActionError>>;
}

/// Declares every hook kind once: the document's `HookDoc`, the model's
/// `HookKind`, the resolved `ResolvedHook`, the journal's `HookOutcome`,
/// and the dispatch between them.
macro_rules! registry {
    ($( $variant:ident($module:ident :: $doc:ident) ),* $(,)?) => {
        $( pub mod $module; )*

        /// A reload or a check. Exactly one kind per hook.
        #[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[schemars(extend("oneOf" = [ $( { "required": [stringify!($module)] } ),* ]))]
        pub struct HookDoc {
            /// Unique name of this hook among targets and hooks.
            pub id: String,
            /// Ids of hooks of the same phase to run before this one.
            #[serde(default)]
            pub needs: Vec<String>,
            /// Replace a library's hook of the same id instead of clashing with it.
            #[serde(default, rename = "override")]
            pub overrides: bool,
            $( pub $module: Option<$module::$doc>, )*
        }

        impl HookDoc {
            /// The kinds written in this hook (validation wants one).
            pub fn kinds(&self) -> Vec<HookKind> {
                let mut kinds = Vec::new();
                $( if let Some(kind) = &self.$module {
                    kinds.push(HookKind::$variant(kind.clone()));
                } )*
                kinds
            }
        }

        impl Templates for HookDoc {
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

        /// A hook's kind and its settings, as written.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum HookKind {
            $( $variant($module::$doc), )*
        }

        impl Templates for HookKind {
            fn templates_mut<'a>(
                &'a mut self,
                at: &DocPath,
                out: &mut Vec<(DocPath, &'a mut Template)>,
            ) {
                match self {
                    $( HookKind::$variant(kind) => kind.templates_mut(at, out), )*
                }
            }
        }

        impl HookKind {
            /// Every kind's key, in the order the docs list them.
            pub const KEYS: &[&str] = &[$( stringify!($module) ),*];

            pub fn key(&self) -> &'static str {
                match self {
                    $( HookKind::$variant(_) => stringify!($module), )*
                }
            }

            /// The command it runs, if any (`Kind::command`).
            pub fn command(&self) -> Option<&[Template]> {
                match self {
                    $( HookKind::$variant(kind) => kind.command(), )*
                }
            }

            pub fn check(&self, at: &Origin, phase: HookPhase, problems: &mut Problems) {
                match self {
                    $( HookKind::$variant(kind) => kind.check(at, phase, problems), )*
                }
            }

            pub fn resolve(&self, cx: &Resolve<'_>) -> Result<ResolvedHook, ActionError> {
                match self {
                    $( HookKind::$variant(kind) => kind.resolve(cx).map(ResolvedHook::$variant), )*
                }
            }
        }

        /// A hook resolved for one user.
        #[derive(Debug, Clone)]
        pub enum ResolvedHook {
            $( $variant(<$module::$doc as Kind>::Resolved), )*
        }

        /// What a hook that passed found, by kind.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum HookOutcome {
            $( $variant(<<$module::$doc as Kind>::Resolved as Resolved>::Outcome), )*
        }

        impl HookOutcome {
            pub fn summary(&self) -> Option<String> {
                match self {
                    $( HookOutcome::$variant(outcome) => outcome.summary(), )*
                }
            }
        }

        impl ResolvedHook {
            pub fn describe(&self, old_key: &str) -> String {
                match self {
                    $( ResolvedHook::$variant(r) => r.describe(old_key), )*
                }
            }

            /// Whether it runs commands, whose output could quote a secret.
            pub fn runs_commands(&self) -> bool {
                match self {
                    $( ResolvedHook::$variant(r) => r.runs_commands(), )*
                }
            }

            pub async fn run<P: Provider>(
                &self,
                cx: &Run<'_, P>,
            ) -> Result<Verdict<HookOutcome>, ActionError> {
                match self {
                    $( ResolvedHook::$variant(r) => {
                        Ok(r.run(cx).await?.map(HookOutcome::$variant))
                    } )*
                }
            }
        }
    };
}

registry! {
    Http(http::HttpHook),
    StsIdentity(sts_identity::StsIdentityHook),
    KeyUnused(key_unused::KeyUnusedHook),
    Exec(exec::ExecHook),
    SsmCommand(ssm_command::SsmCommandHook),
}

/// What the hook kinds' unit tests share: a hook read from YAML and
/// resolved for a user, its checks, and a run against an account in memory.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::workflow::diagnostic::Problems;
    use crate::workflow::source::FileId;

    pub use crate::targets::testing::{NEW, OLD, doc};

    /// The messages of the problems `kind` finds in `phase`.
    pub fn problems<K: Kind>(kind: &K, phase: HookPhase) -> Vec<String> {
        let mut found = Problems::new();
        let at = Origin {
            file: FileId(0),
            path: DocPath::root(),
        };
        kind.check(&at, phase, &mut found);
        found.into_iter().map(|p| p.message).collect()
    }

    /// `kind` resolved for user `app`.
    pub fn resolve<K: Kind>(kind: &K) -> K::Resolved {
        let params = std::collections::BTreeMap::new();
        let values = crate::workflow::template::Values {
            params: &params,
            user: Some("app"),
            account: Some("123456789012"),
            new_key_id: None,
        };
        kind.resolve(&Resolve {
            values: &values,
            base_dir: Path::new("."),
            what: "hook `h`",
        })
        .expect("the hook resolves")
    }

    /// A run of hook `h` for user `app`, the new key `NEW` with `secret`.
    pub fn run<'a, P>(
        provider: &'a P,
        arn: &'a str,
        secret: &'a SecretString,
        dir: &'a Path,
        moved: Option<OffsetDateTime>,
    ) -> Run<'a, P> {
        Run {
            provider,
            hook: "h",
            user: "app",
            arn,
            old_key: OLD,
            new_key: NEW,
            secret,
            also_hide: &[],
            base_dir: dir,
            moved,
        }
    }
}
