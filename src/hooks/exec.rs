//! The `exec` hook: a command that must exit with the expected code. It
//! gets the new key's id, and its secret too only with `with_credentials`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Kind, Resolved, Run, Verdict};
use crate::providers::Provider;
use crate::providers::exec;
use crate::targets::{ActionError, Resolve};
use crate::workflow::duration::Duration;
use crate::workflow::diagnostic::{Part, Problem, Problems};
use crate::workflow::vocabulary::{Credentials, Templates, each};
use crate::workflow::vocabulary::{HookPhase, MAX_TIMEOUT};
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::Template;

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
    /// What AWS credentials the command gets: `operator` (the default:
    /// rekey's own, e.g. to restart a service), `new` or `none`.
    pub credentials: Option<Credentials>,
    /// The same as `credentials: new` (kept for existing workflows).
    #[serde(default)]
    pub with_credentials: bool,
}

impl Templates for ExecHook {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        each(&mut self.command, &at.key("command"), out);
    }
}

/// The command for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub expect_exit: i32,
    pub credentials: Credentials,
}

impl Kind for ExecHook {
    type Resolved = Command;

    fn check(&self, at: &Origin, _phase: HookPhase, problems: &mut Problems) {
        problems.extend(Problem::too_long(
            at.key("timeout"),
            "timeout",
            self.timeout,
            MAX_TIMEOUT,
        ));
        if self.command.is_empty() {
            problems.push(Problem::empty_command(at.key("command")));
        }
        if self.with_credentials
            && self
                .credentials
                .is_some_and(|c| c != Credentials::New)
        {
            problems.push(Problem::new(
                at.key("with_credentials"),
                Part::Key,
                "`with_credentials: true` and `credentials` say different things",
                Some("keep `credentials:` alone".into()),
            ));
        }
    }

    fn resolve(&self, cx: &Resolve<'_>) -> Result<Command, ActionError> {
        Ok(Command {
            argv: cx.expand_all(&self.command)?,
            timeout: self.timeout.unwrap_or(Duration::from_secs(60)),
            expect_exit: self.expect_exit.unwrap_or(0),
            credentials: match (self.with_credentials, self.credentials) {
                (true, _) => Credentials::New,
                (false, credentials) => credentials.unwrap_or(Credentials::Operator),
            },
        })
    }
}

/// The new secret and every other the hook must not show.
fn hidden<'s, P>(cx: &'s Run<'_, P>) -> Vec<&'s crate::secret::SecretString> {
    std::iter::once(cx.secret).chain(cx.also_hide.iter()).collect()
}

impl Resolved for Command {
    type Outcome = ();

    fn runs_commands(&self) -> bool {
        true
    }

    fn describe(&self, _old_key: &str) -> String {
        format!("run {}", self.argv.join(" "))
    }

    async fn run<P: Provider>(&self, cx: &Run<'_, P>) -> Result<Verdict<()>, ActionError> {
        let env =
            exec::Environment::of(self.credentials, cx.provider, cx.user, cx.new_key, cx.secret)
                .await?;
        let expected = self.expect_exit;
        Ok(
            // The new secret is hidden even from a hook not given it: the
            // hook may read it from a target and print it.
            match exec::run(&self.argv, cx.base_dir, &env, &hidden(cx), self.timeout).await {
                Ok(finished) if finished.code == Some(expected) => Verdict::Passed(()),
                Ok(finished) => Verdict::Rejected(format!(
                    "hook `{}`: `{}` exited {} (expected {expected}): {}",
                    cx.hook,
                    self.argv.join(" "),
                    exec::exit_text(finished.code),
                    finished.output
                )),
                Err(error) => Verdict::Rejected(format!("hook `{}`: {error}", cx.hook)),
            },
        )
    }
}
