//! The `ssm_command` hook: shell commands run on instances through SSM Run
//! Command (AWS-RunShellScript), waiting for every invocation to end. The
//! first instance that fails rejects the new key, with its output.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Kind, Outcome, Resolved, Run, Verdict};
use crate::providers::{Invocation, Provider};
use crate::targets::{ActionError, Resolve};
use crate::workflow::duration::Duration;
use crate::workflow::diagnostic::{Part, Problem, Problems};
use crate::workflow::vocabulary::{Templates, each, each_value};
use crate::workflow::vocabulary::HookPhase;
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::Template;

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

impl Templates for SsmCommandHook {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        each(&mut self.commands, &at.key("commands"), out);
        each(&mut self.instance_ids, &at.key("instance_ids"), out);
        each_value(&mut self.instance_tags, &at.key("instance_tags"), out);
    }
}

/// The commands and instances for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commands {
    pub commands: Vec<String>,
    pub instance_ids: Vec<String>,
    pub instance_tags: BTreeMap<String, String>,
    pub timeout: Duration,
}

/// The SSM command that ran, and on how many instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ran {
    pub command_id: String,
    pub instances: usize,
}

impl Outcome for Ran {}

impl Kind for SsmCommandHook {
    type Resolved = Commands;

    fn check(&self, at: &Origin, _phase: HookPhase, problems: &mut Problems) {
        problems.extend(Problem::timeout_too_long(at, self.timeout));
        if self.commands.is_empty() {
            problems.push(Problem::empty_command(at.key("commands")));
        }
        if self.instance_ids.is_empty() && self.instance_tags.is_empty() {
            problems.push(Problem::new(
                at.clone(),
                Part::Key,
                "`ssm_command` names no instances",
                Some("say which instances with `instance_ids:` or `instance_tags:`".into()),
            ));
        }
    }

    fn resolve(&self, cx: &Resolve<'_>) -> Result<Commands, ActionError> {
        Ok(Commands {
            commands: cx.expand_all(&self.commands)?,
            instance_ids: cx.expand_all(&self.instance_ids)?,
            instance_tags: cx.expand_map(&self.instance_tags)?,
            timeout: self.timeout.unwrap_or(Duration::from_secs(300)),
        })
    }
}

impl Resolved for Commands {
    type Outcome = Ran;

    fn runs_commands(&self) -> bool {
        true
    }

    fn describe(&self, _old_key: &str) -> String {
        let count = self.commands.len();
        format!(
            "run {count} command{} on instances through SSM",
            if count == 1 { "" } else { "s" }
        )
    }

    async fn run<P: Provider>(&self, cx: &Run<'_, P>) -> Result<Verdict<Ran>, ActionError> {
        let hook = cx.hook;
        let timeout = self.timeout;
        let sent = cx
            .provider
            .send_shell_command(
                &self.commands,
                &self.instance_ids,
                &self.instance_tags,
                timeout.as_secs().clamp(30, 172_800) as i32,
            )
            .await;
        let (command_id, mut instances) = match sent {
            Ok(sent) => sent,
            Err(error) => return Ok(Verdict::Rejected(format!("hook `{hook}`: {error}"))),
        };
        if instances.is_empty() {
            instances = cx.provider.command_instances(&command_id).await?;
        }
        if instances.is_empty() {
            return Ok(Verdict::Rejected(format!(
                "hook `{hook}`: the command reached no instance"
            )));
        }
        let started = tokio::time::Instant::now();
        let mut wait = StdDuration::from_millis(500);
        loop {
            let mut invocations = Vec::new();
            for instance in &instances {
                let mut invocation = cx.provider.invocation(&command_id, instance).await?;
                // What an instance printed may quote the new secret.
                if let Some(invocation) = &mut invocation {
                    for secret in std::iter::once(cx.secret).chain(cx.also_hide) {
                        for form in crate::secret::disguises(
                            crate::secret::ExposeSecret::expose_secret(secret),
                        ) {
                            invocation.output = invocation.output.replace(&form, "(sensitive)");
                        }
                    }
                }
                invocations.push(invocation.unwrap_or(Invocation {
                    instance: instance.clone(),
                    status: "Pending".into(),
                    response_code: None,
                    output: String::new(),
                }));
            }
            if let Some(verdict) = judge(hook, &invocations) {
                return Ok(match verdict {
                    Ok(()) => Verdict::Passed(Ran {
                        command_id,
                        instances: instances.len(),
                    }),
                    Err(reason) => Verdict::Rejected(reason),
                });
            }
            if started.elapsed() >= timeout.to_std() {
                let waiting: Vec<String> = invocations
                    .iter()
                    .filter(|i| !i.finished())
                    .map(|i| format!("{} ({})", i.instance, i.status))
                    .collect();
                return Ok(Verdict::Rejected(format!(
                    "hook `{hook}`: still running after {timeout}: {}",
                    waiting.join(", ")
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 3 / 2).min(StdDuration::from_secs(5));
        }
    }
}

/// The verdict on a command's invocations: `None` while any runs; an
/// error naming the first instance that failed, with its output.
fn judge(hook: &str, invocations: &[Invocation]) -> Option<Result<(), String>> {
    if let Some(failed) = invocations.iter().find(|i| i.finished() && !i.succeeded()) {
        let code = failed
            .response_code
            .map(|c| format!(", exit {c}"))
            .unwrap_or_default();
        let output = if failed.output.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", failed.output.trim())
        };
        return Some(Err(format!(
            "hook `{hook}`: instance {} {}{code}{output}",
            failed.instance, failed.status
        )));
    }
    invocations
        .iter()
        .all(Invocation::finished)
        .then_some(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(instance: &str, status: &str, code: Option<i32>, output: &str) -> Invocation {
        Invocation {
            instance: instance.into(),
            status: status.into(),
            response_code: code,
            output: output.into(),
        }
    }

    #[test]
    fn a_command_passes_when_every_instance_succeeds_and_fails_on_the_first_failure() {
        assert_eq!(
            judge(
                "restart",
                &[
                    invocation("i-1", "Success", Some(0), ""),
                    invocation("i-2", "InProgress", None, "")
                ]
            ),
            None
        );
        assert_eq!(
            judge(
                "restart",
                &[
                    invocation("i-1", "Success", Some(0), ""),
                    invocation("i-2", "Success", Some(0), "")
                ]
            ),
            Some(Ok(()))
        );
        let failed = judge(
            "restart",
            &[
                invocation("i-1", "Success", Some(0), ""),
                invocation("i-2", "Failed", Some(1), "app: unit not found\n"),
            ],
        );
        assert_eq!(
            failed,
            Some(Err(
                "hook `restart`: instance i-2 Failed, exit 1: app: unit not found".into()
            ))
        );
    }
}
