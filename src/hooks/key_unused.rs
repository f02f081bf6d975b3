//! The `key_unused` hook: the old key must show no use (IAM's
//! GetAccessKeyLastUsed) after the new key reached every target and the
//! refresh hooks ran, watched for `quiet_for`. A use after that means an
//! application still holds the old key.

use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Kind, Outcome, Resolved, Run, Verdict};
use crate::providers::Provider;
use crate::targets::{ActionError, Resolve};
use crate::text::{rfc3339, short_id};
use crate::workflow::duration::Duration;
use crate::workflow::diagnostic::{Part, Problem, Problems};
use crate::workflow::vocabulary::Templates;
use crate::workflow::vocabulary::{HookPhase, MAX_QUIET_FOR};
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::Template;

/// The old key must show no use (GetAccessKeyLastUsed) after the refresh
/// phase ended, watched for `quiet_for`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyUnusedHook {
    pub quiet_for: Duration,
}

impl Templates for KeyUnusedHook {
    fn templates_mut<'a>(&'a mut self, _: &DocPath, _: &mut Vec<(DocPath, &'a mut Template)>) {}
}

/// The watch for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub quiet_for: Duration,
}

/// How many times the old key's last use was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quiet {
    pub checks: u32,
}

impl Outcome for Quiet {}

impl Kind for KeyUnusedHook {
    type Resolved = Watch;

    fn check(&self, at: &Origin, phase: HookPhase, problems: &mut Problems) {
        problems.extend(Problem::too_long(
            at.key("quiet_for"),
            "quiet_for",
            Some(self.quiet_for),
            MAX_QUIET_FOR,
        ));
        if phase != HookPhase::Verify {
            problems.push(Problem::new(
                at.clone(),
                Part::Key,
                format!("`key_unused` cannot run in `{}`", phase.key()),
                Some(
                    "it watches the old key while it is still active: put it under `hooks.verify`"
                        .into(),
                ),
            ));
        }
    }

    fn resolve(&self, _: &Resolve<'_>) -> Result<Watch, ActionError> {
        Ok(Watch {
            quiet_for: self.quiet_for,
        })
    }
}

impl Resolved for Watch {
    type Outcome = Quiet;

    fn describe(&self, old_key: &str) -> String {
        format!(
            "check that {} shows no use for {}",
            short_id(old_key),
            self.quiet_for
        )
    }

    async fn run<P: Provider>(&self, cx: &Run<'_, P>) -> Result<Verdict<Quiet>, ActionError> {
        let moved = cx
            .moved
            .ok_or_else(|| ActionError::Missing("the new key was not distributed yet".into()))?;
        let watch = self.quiet_for.to_std();
        let interval = (watch / 10).clamp(StdDuration::from_secs(1), StdDuration::from_secs(30));
        let started = tokio::time::Instant::now();
        let mut checks = 0;
        loop {
            checks += 1;
            let used = cx.provider.key_last_used(cx.old_key).await?;
            if let Some(date) = used.date.filter(|date| *date > moved) {
                let service = used.service.unwrap_or_else(|| "an unknown service".into());
                let region = used.region.map(|r| format!(" in {r}")).unwrap_or_default();
                return Ok(Verdict::Rejected(format!(
                    "hook `{}`: the old key {} was used by {service}{region} at {}, after refresh ended at {}: something still uses it",
                    cx.hook,
                    short_id(cx.old_key),
                    rfc3339(date),
                    rfc3339(moved)
                )));
            }
            if started.elapsed() >= watch {
                return Ok(Verdict::Passed(Quiet { checks }));
            }
            tokio::time::sleep(
                interval
                    .min(watch.saturating_sub(started.elapsed()))
                    .max(StdDuration::from_millis(100)),
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::testing::{OLD, doc, problems, resolve, run};
    use time::OffsetDateTime;
    use crate::providers::memory::Memory;
    use crate::secret::SecretString;

    #[test]
    fn runs_only_while_the_old_key_is_still_active() {
        let hook: KeyUnusedHook = doc("quiet_for: 10m");
        assert!(problems(&hook, HookPhase::Verify).is_empty());
        assert_eq!(
            problems(&hook, HookPhase::VerifyAfterDisable),
            ["`key_unused` cannot run in `verify_after_disable`"]
        );
    }

    #[tokio::test]
    async fn a_use_of_the_old_key_after_the_cut_over_rejects_it_and_one_before_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        let secret = SecretString::from("s".to_string());
        let watch = resolve(&doc::<KeyUnusedHook>("quiet_for: 0s"));
        let moved = OffsetDateTime::now_utc();
        memory.use_key(OLD, moved - time::Duration::minutes(5), "s3");
        let quiet = watch
            .run(&run(&memory, "arn", &secret, dir.path(), Some(moved)))
            .await
            .unwrap();
        assert_eq!(quiet, Verdict::Passed(Quiet { checks: 1 }));
        memory.use_key(OLD, moved + time::Duration::seconds(3), "s3");
        let Verdict::Rejected(reason) = watch
            .run(&run(&memory, "arn", &secret, dir.path(), Some(moved)))
            .await
            .unwrap()
        else {
            panic!("a use after the cut-over passed");
        };
        assert!(reason.contains("was used by s3 in us-east-1"), "{reason}");
        // Before distribution there is nothing to watch after.
        assert!(
            watch
                .run(&run(&memory, "arn", &secret, dir.path(), None))
                .await
                .is_err()
        );
    }
}
