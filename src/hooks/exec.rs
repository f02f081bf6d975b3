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
use crate::workflow::vocabulary::HookPhase;
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
    fn command(&self) -> Option<&[Template]> {
        Some(&self.command)
    }

    type Resolved = Command;

    fn check(&self, at: &Origin, _phase: HookPhase, problems: &mut Problems) {
        problems.extend(Problem::timeout_too_long(at, self.timeout));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::testing::{NEW, doc, problems, resolve, run};
    use crate::providers::memory::Memory;
    use crate::secret::SecretString;

    #[test]
    fn an_empty_command_and_contradicting_credentials_are_problems() {
        let hook: ExecHook = doc("command: []\nwith_credentials: true\ncredentials: none");
        assert_eq!(
            problems(&hook, HookPhase::Verify),
            [
                "the command is empty",
                "`with_credentials: true` and `credentials` say different things"
            ]
        );
        let plain = resolve(&doc::<ExecHook>("command: [./check.sh, \"${user}\"]"));
        assert_eq!(plain.argv, ["./check.sh", "app"]);
        assert_eq!(plain.credentials, Credentials::Operator);
    }

    #[tokio::test]
    async fn a_command_with_the_new_key_passes_and_one_that_fails_is_rejected_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        let secret = SecretString::from("n3w-s3cret-value".to_string());
        let check = resolve(&doc::<ExecHook>(&format!(
            "command: [sh, -c, 'test \"$AWS_ACCESS_KEY_ID\" = {NEW} && test \"$AWS_SECRET_ACCESS_KEY\" = n3w-s3cret-value']\ncredentials: new"
        )));
        let passed = check
            .run(&run(&memory, "arn", &secret, dir.path(), None))
            .await
            .unwrap();
        assert_eq!(passed, Verdict::Passed(()));
        let failing = resolve(&doc::<ExecHook>(
            "command: [sh, -c, 'echo \"key $AWS_SECRET_ACCESS_KEY\"; exit 3']\ncredentials: new",
        ));
        let Verdict::Rejected(reason) = failing
            .run(&run(&memory, "arn", &secret, dir.path(), None))
            .await
            .unwrap()
        else {
            panic!("exit 3 passed");
        };
        assert!(reason.contains("exited 3"), "{reason}");
        assert!(reason.contains("(sensitive)"), "{reason}");
        assert!(!reason.contains("n3w-s3cret-value"), "{reason}");
    }
}
