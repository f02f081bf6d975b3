//! Where secrets live: one type that cannot be printed, and the only
//! functions that look inside it.
//!
//! `SecretString` (from the `secrecy` crate) has a redacting `Debug`, no
//! `Display` and no `Serialize`, so a secret cannot reach a log line, a plan
//! file or a journal by accident; reading it takes an explicit
//! `expose_secret()`, which only this module and the code that writes
//! targets call.

pub use secrecy::{ExposeSecret, SecretString};

use crate::workflow::vocabulary::SecretFormat;

/// The forms a secret can take in a command's output: as it is,
/// URL-encoded, JSON-escaped, and base64 at each of the three alignments it
/// can start at in a longer encoded text (standard and URL-safe alphabets).
/// Each is replaced by `(sensitive)` before anyone sees the output.
pub fn disguises(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let url: String = secret
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    forms.push(
        url.to_lowercase()
            .replace("%2b", "%2B")
            .replace("%2f", "%2F"),
    );
    forms.push(url.to_lowercase());
    forms.push(url);
    forms.push(secret.replace('/', "\\/"));
    for skip in 0..3 {
        let mut bytes = vec![0u8; skip];
        bytes.extend_from_slice(secret.as_bytes());
        let encoded = base64(&bytes);
        // Characters that depend on the bytes before or after are cut.
        let start = if skip == 0 { 0 } else { 4 };
        let end = bytes.len() / 3 * 4;
        if end > start {
            let stable = &encoded[start..end];
            forms.push(stable.to_string());
            forms.push(stable.replace('+', "-").replace('/', "_"));
        }
    }
    forms.retain(|f| f.len() >= 8);
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

/// Standard base64, padded.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The values of params marked `sensitive: true`, to be replaced by
/// `(sensitive)` wherever rekey writes text: the journal, plans, reports.
/// Values shorter than four characters are left alone: redacting `1` or
/// `ab` everywhere would garble every line and hide nothing.
#[derive(Debug, Clone, Default)]
pub struct Sensitive(Vec<String>);

impl Sensitive {
    /// Hides these values (those of params marked `sensitive: true`).
    pub fn of<'v>(values: impl IntoIterator<Item = &'v String>) -> Self {
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|v| v.chars().count() >= 4)
            .cloned()
            .collect();
        // Longest first, so a value that contains another goes whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Sensitive(values)
    }

    /// `text` with every sensitive value, as written and JSON-escaped,
    /// replaced by `(sensitive)`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for value in &self.0 {
            text = text.replace(value.as_str(), "(sensitive)");
            let escaped = serde_json::to_string(value).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            if escaped != value {
                text = text.replace(escaped, "(sensitive)");
            }
        }
        text
    }
}

/// The access key id inside `value`, written in `format`. Only something
/// shaped like an access key id is ever returned, so a value that is not in
/// a format rekey wrote cannot leak through this function.
pub fn key_id_in(value: &SecretString, format: SecretFormat) -> Option<String> {
    let text = value.expose_secret();
    let candidate = match format {
        SecretFormat::Json => serde_json::from_str::<serde_json::Value>(text)
            .ok()?
            .get("AccessKeyId")?
            .as_str()?
            .to_string(),
        SecretFormat::Env => assignment(text, "AWS_ACCESS_KEY_ID", '=')?,
        SecretFormat::Credentials => assignment(text, "aws_access_key_id", '=')?,
        SecretFormat::IdOnly => text.trim().to_string(),
    };
    looks_like_key_id(&candidate).then_some(candidate)
}

/// The secret access key a target's value holds, to hide it from output
/// (never to show or store it).
pub fn secret_in(value: &SecretString, format: SecretFormat) -> Option<SecretString> {
    let text = value.expose_secret();
    let secret = match format {
        SecretFormat::Json => serde_json::from_str::<serde_json::Value>(text)
            .ok()?
            .get("SecretAccessKey")?
            .as_str()?
            .to_string(),
        SecretFormat::Env => assignment(text, "AWS_SECRET_ACCESS_KEY", '=')?,
        SecretFormat::Credentials => assignment(text, "aws_secret_access_key", '=')?,
        SecretFormat::IdOnly => return None,
    };
    (!secret.is_empty()).then(|| SecretString::from(secret))
}

/// Every secret a target's value holds, to hide from output: the secret
/// access key in whichever layout the value is (the target's format may
/// have changed since it was written) and any session token. A value in no
/// known layout is hidden whole, unless it is a key id or too short to
/// hide without hiding ordinary text.
pub fn secrets_in(value: &SecretString, format: SecretFormat) -> Vec<SecretString> {
    let text = value.expose_secret();
    let mut found: Vec<String> = [
        format,
        SecretFormat::Json,
        SecretFormat::Env,
        SecretFormat::Credentials,
    ]
    .into_iter()
    .filter_map(|format| secret_in(value, format))
    .map(|secret| secret.expose_secret().to_string())
    .chain(session_tokens(text))
    .collect();
    found.sort();
    found.dedup();
    let whole = text.trim();
    if found.is_empty() && whole.len() >= 8 && !looks_like_key_id(whole) {
        found.push(whole.to_string());
    }
    found.into_iter().map(SecretString::from).collect()
}

/// Session tokens in a JSON, env or credentials layout.
pub fn session_tokens(text: &str) -> Vec<String> {
    let json = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|value| Some(value.get("SessionToken")?.as_str()?.to_string()));
    json.into_iter()
        .chain(assignment(text, "AWS_SESSION_TOKEN", '='))
        .chain(assignment(text, "aws_session_token", '='))
        .filter(|token| !token.is_empty())
        .collect()
}

/// AWS access key ids: 16 to 128 upper-case letters and digits.
pub fn looks_like_key_id(text: &str) -> bool {
    (16..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A target's new value: the key laid out in `format`. `profile` names the
/// INI section of the `credentials` format (default `default`).
pub fn format_value(
    format: SecretFormat,
    key_id: &str,
    secret: &SecretString,
    profile: Option<&str>,
) -> SecretString {
    let secret = secret.expose_secret();
    let text = match format {
        SecretFormat::Json => {
            serde_json::json!({ "AccessKeyId": key_id, "SecretAccessKey": secret }).to_string()
        }
        SecretFormat::Env => {
            format!("AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}\n")
        }
        SecretFormat::Credentials => {
            format!(
                "[{}]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n",
                profile.unwrap_or("default")
            )
        }
        SecretFormat::IdOnly => key_id.to_string(),
    };
    SecretString::from(text)
}

/// The key id and secret of a staged value (written with `Json`).
pub fn parse_staged(value: &SecretString) -> Option<(String, SecretString)> {
    let parsed: serde_json::Value = serde_json::from_str(value.expose_secret()).ok()?;
    let id = parsed.get("AccessKeyId")?.as_str()?;
    let secret = parsed.get("SecretAccessKey")?.as_str()?;
    looks_like_key_id(id).then(|| (id.to_string(), SecretString::from(secret.to_string())))
}

fn assignment(text: &str, name: &str, separator: char) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim().strip_prefix("export ").unwrap_or(line.trim());
        let (key, value) = line.split_once(separator)?;
        (key.trim() == name).then(|| value.trim().trim_matches(['"', '\'']).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden(value: &str, format: SecretFormat) -> Vec<String> {
        secrets_in(&SecretString::from(value.to_string()), format)
            .iter()
            .map(|s| s.expose_secret().to_string())
            .collect()
    }

    #[test]
    fn every_secret_a_target_held_is_found_whatever_its_layout() {
        let json = r#"{"AccessKeyId": "AKIAOLD0000000000001", "SecretAccessKey": "old/secret+1"}"#;
        // Written as JSON, now declared env: still found.
        assert_eq!(hidden(json, SecretFormat::Env), ["old/secret+1"]);
        assert_eq!(
            hidden(
                "AWS_ACCESS_KEY_ID=AKIAOLD0000000000001\nAWS_SECRET_ACCESS_KEY=s3cret-env\nAWS_SESSION_TOKEN=tok-en\n",
                SecretFormat::Json
            ),
            ["s3cret-env", "tok-en"]
        );
        // In no known layout: hidden whole, unless a key id or short.
        assert_eq!(
            hidden("not json OLDSECRET-smraw\n", SecretFormat::Json),
            ["not json OLDSECRET-smraw"]
        );
        assert!(hidden("AKIAOLD0000000000001", SecretFormat::IdOnly).is_empty());
        assert!(hidden("short", SecretFormat::Json).is_empty());
    }

    #[test]
    fn a_secret_is_found_however_it_is_encoded() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let forms = disguises(secret);
        let hide = |text: &str| {
            let mut text = text.to_string();
            for form in &forms {
                text = text.replace(form.as_str(), "(sensitive)");
            }
            text
        };
        for skip in 0..3 {
            let encoded = base64(format!("{}{secret}!", "x".repeat(skip)).as_bytes());
            assert!(
                !hide(&encoded).contains(&encoded[8..24]),
                "alignment {skip}: {encoded}"
            );
        }
        assert_eq!(
            hide("s=wJalrXUtnFEMI%2FK7MDENG%2BbPxRfiCYEXAMPLEKEY&x"),
            "s=(sensitive)&x"
        );
        assert_eq!(
            hide(r#"{"s":"wJalrXUtnFEMI\/K7MDENG+bPxRfiCYEXAMPLEKEY"}"#),
            r#"{"s":"(sensitive)"}"#
        );
    }

    const ID: &str = "AKIAIOSFODNN7EXAMPLE";

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_string())
    }

    #[test]
    fn finds_the_key_id_in_every_format() {
        let json = format!(r#"{{"AccessKeyId": "{ID}", "SecretAccessKey": "s3cr3t"}}"#);
        assert_eq!(
            key_id_in(&secret(&json), SecretFormat::Json).as_deref(),
            Some(ID)
        );
        let env = format!("AWS_ACCESS_KEY_ID={ID}\nAWS_SECRET_ACCESS_KEY=s3cr3t\n");
        assert_eq!(
            key_id_in(&secret(&env), SecretFormat::Env).as_deref(),
            Some(ID)
        );
        let ini = format!("[ci]\naws_access_key_id = {ID}\naws_secret_access_key = s3cr3t\n");
        assert_eq!(
            key_id_in(&secret(&ini), SecretFormat::Credentials).as_deref(),
            Some(ID)
        );
        assert_eq!(
            key_id_in(&secret(&format!("{ID}\n")), SecretFormat::IdOnly).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn never_returns_what_is_not_a_key_id() {
        assert_eq!(
            key_id_in(&secret("s3cr3t-canary"), SecretFormat::IdOnly),
            None
        );
        assert_eq!(
            key_id_in(&secret(r#"{"AccessKeyId": "s3cr3t"}"#), SecretFormat::Json),
            None
        );
        assert_eq!(key_id_in(&secret("not json"), SecretFormat::Json), None);
    }

    #[test]
    fn formatted_values_read_back() {
        let value = format_value(SecretFormat::Json, ID, &secret("s3cr3t"), None);
        let (id, back) = parse_staged(&value).unwrap();
        assert_eq!((id.as_str(), back.expose_secret()), (ID, "s3cr3t"));
        for format in [
            SecretFormat::Env,
            SecretFormat::Credentials,
            SecretFormat::IdOnly,
        ] {
            assert_eq!(
                key_id_in(
                    &format_value(format, ID, &secret("s3cr3t"), Some("ci")),
                    format
                )
                .as_deref(),
                Some(ID)
            );
        }
    }

    #[test]
    fn debug_output_is_redacted() {
        assert!(!format!("{:?}", secret("s3cr3t-canary")).contains("s3cr3t"));
    }
}
