//! The `http` hook: one request that must answer with the expected status
//! (and body text), with retries and backoff, and a timeout per attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::workflow::vocabulary::HttpMethod;

/// One request, with templates already expanded.
#[derive(Debug, Clone)]
pub struct Check {
    pub method: HttpMethod,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expect_status: u16,
    pub body_contains: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
}

/// How much of a response body is read to look for `body_contains`.
const BODY_LIMIT: u64 = 1 << 20;

/// Runs the check, retrying with backoff (500 ms, doubling) until it
/// passes or the retries run out; the error says what the last attempt saw.
pub async fn check(check: &Check) -> Result<(), String> {
    let mut wait = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        let once = check.clone();
        let result = tokio::task::spawn_blocking(move || attempt_once(&once))
            .await
            .unwrap_or_else(|e| Err(format!("the request task failed: {e}")));
        match result {
            Ok(()) => return Ok(()),
            Err(error) if attempt >= check.retries => {
                let tries = if check.retries == 0 {
                    String::new()
                } else {
                    format!(" (after {} attempts)", check.retries + 1)
                };
                return Err(format!("{error}{tries}"));
            }
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(8));
            }
        }
    }
}

fn attempt_once(check: &Check) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(check.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let method = check.method.as_str();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(&check.url);
    for (name, value) in &check.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(())
        .map_err(|e| format!("{method} {}: not a valid request: {e}", check.url))?;
    let mut response = agent
        .run(request)
        .map_err(|e| format!("{method} {}: {}", check.url, describe(&e)))?;
    let status = response.status().as_u16();
    if status != check.expect_status {
        return Err(format!(
            "{method} {} answered {status}, expected {}",
            check.url, check.expect_status
        ));
    }
    if let Some(needle) = &check.body_contains {
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| format!("{method} {}: cannot read the body: {e}", check.url))?;
        if !body.contains(needle.as_str()) {
            return Err(format!(
                "{method} {} answered {status} without `{needle}` in its body",
                check.url
            ));
        }
    }
    Ok(())
}

fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is the service up, and the URL right?)".into()
        }
        ureq::Error::Timeout(_) => "no answer within the timeout".into(),
        other => other.to_string(),
    }
}
