//! The `http` hook: a request that must answer with the expected status
//! (and body text), retried with backoff before it fails.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Kind, Resolved, Run, Verdict};
use crate::providers::Provider;
use crate::providers::http::Check;
use crate::targets::{ActionError, Resolve};
use crate::workflow::duration::Duration;
use crate::workflow::diagnostic::{Part, Problem, Problems};
use crate::workflow::vocabulary::{HttpMethod, Templates, each_value};
use crate::workflow::vocabulary::HookPhase;
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::Template;

/// An HTTP request that must answer with the expected status.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpHook {
    pub url: Template,
    /// Default GET.
    pub method: Option<HttpMethod>,
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    /// Default 200.
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<u16>,
    /// Text the response body must contain.
    pub body_contains: Option<String>,
    /// Default 30s.
    pub timeout: Option<Duration>,
    /// Further attempts, with backoff, before the hook fails. Default 2.
    pub retries: Option<u32>,
}

impl Templates for HttpHook {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        out.push((at.key("url"), &mut self.url));
        each_value(&mut self.headers, &at.key("headers"), out);
    }
}

impl Kind for HttpHook {
    type Resolved = Check;

    fn check(&self, at: &Origin, _phase: HookPhase, problems: &mut Problems) {
        problems.extend(Problem::timeout_too_long(at, self.timeout));
        let url = self.url.as_str();
        if !url.starts_with("${") && !url.starts_with("http://") && !url.starts_with("https://") {
            problems.push(Problem::new(
                at.key("url"),
                Part::Value,
                format!("`{url}` is not an http:// or https:// URL"),
                None,
            ));
        }
        if let Some(status) = self.expect_status.filter(|s| !(100..=599).contains(s)) {
            problems.push(Problem::new(
                at.key("expect_status"),
                Part::Value,
                format!("{status} is not an HTTP status"),
                Some("use a status from 100 to 599".into()),
            ));
        }
    }

    fn resolve(&self, cx: &Resolve<'_>) -> Result<Check, ActionError> {
        Ok(Check {
            method: self.method.unwrap_or(HttpMethod::Get),
            url: cx.expand(&self.url)?,
            headers: cx.expand_map(&self.headers)?,
            expect_status: self.expect_status.unwrap_or(200),
            body_contains: self.body_contains.clone(),
            timeout: self.timeout.unwrap_or(Duration::from_secs(30)).to_std(),
            retries: self.retries.unwrap_or(2),
        })
    }
}

impl Resolved for Check {
    type Outcome = ();

    fn describe(&self, _old_key: &str) -> String {
        format!(
            "{} {} expecting {}",
            self.method.as_str(),
            self.url,
            self.expect_status
        )
    }

    async fn run<P: Provider>(&self, cx: &Run<'_, P>) -> Result<Verdict<()>, ActionError> {
        Ok(match crate::providers::http::check(self).await {
            Ok(()) => Verdict::Passed(()),
            Err(error) => Verdict::Rejected(format!("hook `{}`: {error}", cx.hook)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::testing::{doc, problems, resolve};

    #[test]
    fn a_url_must_be_http_and_a_status_must_be_one() {
        let bad: HttpHook = doc("url: ftp://example.com\nexpect_status: 42");
        assert_eq!(
            problems(&bad, HookPhase::Verify),
            [
                "`ftp://example.com` is not an http:// or https:// URL",
                "42 is not an HTTP status"
            ]
        );
        let templated: HttpHook = doc("url: \"${params.health}/ok\"");
        assert!(problems(&templated, HookPhase::Refresh).is_empty());
    }

    #[test]
    fn defaults_to_a_get_expecting_200_with_two_retries() {
        let check = resolve(&doc::<HttpHook>("url: https://app.example.com/health/${user}"));
        assert_eq!(check.url, "https://app.example.com/health/app");
        assert_eq!((check.expect_status, check.retries), (200, 2));
        assert_eq!(check.timeout, std::time::Duration::from_secs(30));
        assert_eq!(
            check.describe("AKIAOLD0000000000000"),
            "GET https://app.example.com/health/app expecting 200"
        );
    }
}
