//! The `exec` target: a command that receives the new credentials in its
//! environment (never in its arguments), with an optional `rollback:`
//! command that undoes it.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionError, RecordBefore, Kind, Resolve, Resolved, Restore, Write, Written};
use crate::providers::exec::{self, EnvValue};
use crate::providers::{Provider, TargetReader, TargetState};
use crate::workflow::duration::Duration;
use crate::workflow::diagnostic::{Problem, Problems};
use crate::workflow::vocabulary::{Credentials, SecretFormat, Templates, each};
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::Template;

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
    /// What AWS credentials the command gets: `new` (the default), `operator`
    /// or `none`.
    pub credentials: Option<Credentials>,
    /// Command that undoes this target on rollback. It gets no AWS
    /// credentials, and `REKEY_OLD_ACCESS_KEY_ID`, `REKEY_NEW_ACCESS_KEY_ID`.
    pub rollback: Option<Vec<Template>>,
}

impl Templates for ExecTarget {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        each(&mut self.command, &at.key("command"), out);
        if let Some(rollback) = &mut self.rollback {
            each(rollback, &at.key("rollback"), out);
        }
    }
}

/// One user's command and rollback command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    pub rollback: Option<Vec<String>>,
    pub timeout: Duration,
    pub credentials: Credentials,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl Kind for ExecTarget {
    fn command(&self) -> Option<&[Template]> {
        Some(&self.command)
    }

    type Resolved = Command;

    fn check(&self, at: &Origin, problems: &mut Problems) {
        problems.extend(Problem::timeout_too_long(at, self.timeout));
        if self.command.is_empty() {
            problems.push(Problem::empty_command(at.key("command")));
        }
        if self.rollback.as_ref().is_some_and(Vec::is_empty) {
            problems.push(Problem::empty_command(at.key("rollback")));
        }
    }

    fn resolve(&self, cx: &Resolve<'_>) -> Result<Command, ActionError> {
        Ok(Command {
            argv: cx.expand_all(&self.command)?,
            rollback: self
                .rollback
                .as_ref()
                .map(|r| cx.expand_all(r))
                .transpose()?,
            timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
            credentials: self.credentials.unwrap_or(Credentials::New),
        })
    }
}

impl Resolved for Command {
    /// A command leaves nothing rekey can read back.
    type Before = ();

    fn resource(&self) -> String {
        self.argv.join(" ")
    }

    fn format(&self) -> Option<SecretFormat> {
        None
    }

    fn describe(&self) -> String {
        format!(
            "run `{}` with the new key in its environment",
            self.argv.join(" ")
        )
    }

    async fn observe<P: TargetReader>(
        &self,
        _provider: &P,
        _what: &str,
    ) -> Result<Option<TargetState>, ActionError> {
        Ok(None)
    }

    async fn write<'i, P: Provider>(
        &self,
        cx: &Write<'_, P>,
        _recorded: Option<&()>,
        intent: RecordBefore<'i, ()>,
    ) -> Result<Written, ActionError> {
        intent(()).await?;
        let env =
            exec::Environment::of(self.credentials, cx.provider, cx.user, cx.new_key, cx.secret)
                .await?;
        let what = format!("target `{}`", cx.target);
        run(&what, &self.argv, cx.base_dir, &env, &[cx.secret], self.timeout).await?;
        Ok(Written::default())
    }

    async fn restore<P: Provider>(&self, cx: &Restore<'_, P>, _: &()) -> Result<(), ActionError> {
        let Some(rollback) = &self.rollback else {
            return Ok(());
        };
        let env = exec::Environment::without_credentials(vec![
            ("REKEY_USER", EnvValue::Plain(cx.user.to_string())),
            (
                "REKEY_OLD_ACCESS_KEY_ID",
                EnvValue::Plain(cx.old_key.to_string()),
            ),
            (
                "REKEY_NEW_ACCESS_KEY_ID",
                EnvValue::Plain(cx.new_key.unwrap_or_default().to_string()),
            ),
        ]);
        let what = format!("rollback of target `{}`", cx.target);
        run(&what, rollback, cx.base_dir, &env, &[], self.timeout).await
    }

    fn before_from_v1(_: &BTreeMap<String, String>) -> Option<()> {
        Some(())
    }
}

/// Runs a target's command (or its rollback) in the workflow's folder;
/// anything but exit 0 is an error naming `what`.
async fn run(
    what: &str,
    argv: &[String],
    dir: &Path,
    env: &exec::Environment<'_>,
    hide: &[&crate::secret::SecretString],
    timeout: Duration,
) -> Result<(), ActionError> {
    let finished = exec::run(argv, dir, env, hide, timeout)
        .await
        .map_err(|e| ActionError::Command {
            what: what.to_string(),
            message: e.to_string(),
        })?;
    match finished.code {
        Some(0) => Ok(()),
        code => Err(ActionError::Command {
            what: what.to_string(),
            message: format!(
                "`{}` exited {}: {}",
                argv.join(" "),
                exec::exit_text(code),
                finished.output
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::memory::Memory;
    use crate::secret::SecretString;
    use crate::targets::testing::{NEW, OLD, doc, recorder, resolve, restore, write};

    #[tokio::test]
    async fn the_command_gets_the_new_key_in_its_environment_and_its_rollback_the_key_ids() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        let target = resolve(
            &doc::<ExecTarget>(
                "command: [sh, -c, 'echo \"$AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY\" > pushed']\nrollback: [sh, -c, 'echo \"$REKEY_USER $REKEY_OLD_ACCESS_KEY_ID $REKEY_NEW_ACCESS_KEY_ID\" > undone']",
            ),
            "app",
        )
        .unwrap();
        assert_eq!(target.credentials, Credentials::New);
        let secret = SecretString::from("n3w-s3cret".to_string());
        let kept = std::sync::Mutex::new(Vec::new());
        target
            .write(&write(&memory, &secret, dir.path()), None, &recorder!(kept))
            .await
            .unwrap();
        assert_eq!(kept.lock().unwrap().len(), 1, "the intent comes first");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("pushed")).unwrap(),
            format!("{NEW} n3w-s3cret\n")
        );
        target
            .restore(&restore(&memory, dir.path()), &())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("undone")).unwrap(),
            format!("app {OLD} {NEW}\n")
        );
    }

    #[tokio::test]
    async fn a_failing_command_is_an_error_that_never_shows_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        let target = resolve(
            &doc::<ExecTarget>("command: [sh, -c, 'echo \"got $AWS_SECRET_ACCESS_KEY\"; exit 7']"),
            "app",
        )
        .unwrap();
        let secret = SecretString::from("n3w-s3cret".to_string());
        let kept = std::sync::Mutex::new(Vec::new());
        let error = target
            .write(&write(&memory, &secret, dir.path()), None, &recorder!(kept))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("exited 7"), "{error}");
        assert!(error.contains("got (sensitive)"), "{error}");
        assert!(!error.contains("n3w-s3cret"), "{error}");
    }
}
