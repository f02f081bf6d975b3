//! The `sts_identity` hook: polls STS GetCallerIdentity with the new key
//! until it answers as the rotated user. IAM is eventually consistent, so a
//! new key takes a moment to work; the poll starts at 250 ms and is capped
//! at a second, so the check ends within a second of the key working.

use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Kind, Outcome, Resolved, Run, Verdict};
use crate::providers::Provider;
use crate::targets::{ActionError, Resolve};
use crate::text::short_id;
use crate::workflow::duration::Duration;
use crate::workflow::diagnostic::{Problem, Problems};
use crate::workflow::vocabulary::Templates;
use crate::workflow::vocabulary::HookPhase;
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::Template;

/// Polls STS GetCallerIdentity with the new key until it answers as the
/// rotated user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StsIdentityHook {
    /// Give up after this long. Default 60s.
    pub timeout: Option<Duration>,
}

impl Templates for StsIdentityHook {
    fn templates_mut<'a>(&'a mut self, _: &DocPath, _: &mut Vec<(DocPath, &'a mut Template)>) {}
}

/// The check for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub timeout: Duration,
}

/// How long the new key took to work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticated {
    pub after_ms: u64,
}

impl Outcome for Authenticated {
    fn summary(&self) -> Option<String> {
        Some(format!("authenticated after {} ms", self.after_ms))
    }
}

impl Kind for StsIdentityHook {
    type Resolved = Identity;

    fn check(&self, at: &Origin, _phase: HookPhase, problems: &mut Problems) {
        problems.extend(Problem::timeout_too_long(at, self.timeout));
    }

    fn resolve(&self, cx: &Resolve<'_>) -> Result<Identity, ActionError> {
        Ok(Identity {
            user: cx.values.user.unwrap_or_default().to_string(),
            timeout: self.timeout.unwrap_or(Duration::from_secs(60)),
        })
    }
}

impl Resolved for Identity {
    type Outcome = Authenticated;

    fn describe(&self, _old_key: &str) -> String {
        format!(
            "wait until the new key authenticates as {} (up to {})",
            self.user, self.timeout
        )
    }

    async fn run<P: Provider>(
        &self,
        cx: &Run<'_, P>,
    ) -> Result<Verdict<Authenticated>, ActionError> {
        let timeout = self.timeout.to_std();
        let started = tokio::time::Instant::now();
        let mut wait = StdDuration::from_millis(250);
        loop {
            let last = match cx.provider.identity_of(cx.new_key, cx.secret).await {
                Ok(seen) if seen == cx.arn => {
                    return Ok(Verdict::Passed(Authenticated {
                        after_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    }));
                }
                Ok(seen) => format!("it answered as {seen}"),
                Err(error) => error.to_string(),
            };
            if started.elapsed() + wait > timeout {
                return Ok(Verdict::Rejected(format!(
                    "hook `{}`: the new key {} did not authenticate as {} within {}; last: {last}",
                    cx.hook,
                    short_id(cx.new_key),
                    cx.arn,
                    Duration::from_secs(timeout.as_secs())
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 3 / 2).min(StdDuration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::testing::{NEW, doc, resolve, run};
    use crate::providers::KeyStatus;
    use crate::providers::memory::Memory;
    use crate::secret::SecretString;

    #[tokio::test]
    async fn passes_once_the_new_key_authenticates_as_the_user_and_rejects_a_wrong_secret() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        memory.user("app", "/", &[(NEW, KeyStatus::Active, 0)]);
        let arn = memory.arn("app");
        let identity = resolve(&doc::<StsIdentityHook>("timeout: 1s"));
        assert_eq!(
            identity.describe(""),
            "wait until the new key authenticates as app (up to 1s)"
        );
        let right = SecretString::from(format!("secret-of-{NEW}"));
        let passed = identity
            .run(&run(&memory, &arn, &right, dir.path(), None))
            .await
            .unwrap();
        assert!(matches!(passed, Verdict::Passed(_)), "{passed:?}");
        let wrong = SecretString::from("not-its-secret".to_string());
        let Verdict::Rejected(reason) = identity
            .run(&run(&memory, &arn, &wrong, dir.path(), None))
            .await
            .unwrap()
        else {
            panic!("a wrong secret authenticated");
        };
        assert!(reason.contains("did not authenticate as"), "{reason}");
        assert!(!reason.contains("not-its-secret"), "{reason}");
    }
}
