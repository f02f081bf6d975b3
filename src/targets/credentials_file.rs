//! The `credentials_file` target: one profile of an AWS shared credentials
//! file (`~/.aws/credentials` style). Which access key id a profile holds,
//! and replacing one profile's key in place, leaving every other profile,
//! comment and the file's mode as they were.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::file::{self, FileFormat, LocalFile};
use super::{ActionError, Kind, Resolve};
use crate::providers::TargetState;
use crate::secret::{ExposeSecret, SecretString, looks_like_key_id};
use crate::workflow::vocabulary::{SecretFormat, Templates, maybe};
use crate::workflow::source::DocPath;
use crate::workflow::template::Template;

/// One profile of an AWS shared credentials file, updated in place.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFileTarget {
    /// Path of the file, relative to the workflow file.
    pub path: Template,
    /// Profile (section) name. Default `${user}`.
    pub profile: Option<Template>,
}

impl Templates for CredentialsFileTarget {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        out.push((at.key("path"), &mut self.path));
        maybe(&mut self.profile, at.key("profile"), out);
    }
}

/// The profile a credentials file target writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
}

impl Kind for CredentialsFileTarget {
    type Resolved = LocalFile<Profile>;

    fn resolve(&self, cx: &Resolve<'_>) -> Result<LocalFile<Profile>, ActionError> {
        let path = cx.expand(&self.path)?;
        let name = match &self.profile {
            Some(profile) => cx.expand(profile)?,
            None => cx.values.user.unwrap_or_default().to_string(),
        };
        Ok(LocalFile {
            path: file::target_path(cx, &path)?,
            written: path,
            format: Profile { name },
            mode: None,
        })
    }
}

impl FileFormat for Profile {
    fn kind(&self) -> &'static str {
        "credentials_file"
    }

    fn held_key(&self, text: &str) -> Option<String> {
        profile_state(text, &self.name).key_id
    }

    fn check(&self, text: &str) -> Result<(), String> {
        check(text)
    }

    fn render(&self, text: &str, key_id: &str, secret: &SecretString) -> SecretString {
        SecretString::from(with_profile(text, &self.name, key_id, secret))
    }

    fn part(&self, text: &str) -> Option<String> {
        let lines: Vec<&str> = text.lines().collect();
        let (start, end) = section(&lines, &self.name)?;
        Some(lines[start..end].join("\n") + "\n")
    }

    fn with_part(&self, text: &str, part: Option<&str>) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let found = section(&lines.iter().map(String::as_str).collect::<Vec<_>>(), &self.name);
        match (found, part) {
            (Some((start, end)), Some(part)) => {
                lines.splice(start..end, part.lines().map(str::to_string));
            }
            (Some((start, end)), None) => {
                let last = end == lines.len();
                lines.drain(start..end);
                // A profile rekey appended goes with the blank line before it.
                while last && lines.last().is_some_and(|l| l.trim().is_empty()) {
                    lines.pop();
                }
            }
            (None, Some(part)) => {
                if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    lines.push(String::new());
                }
                lines.extend(part.lines().map(str::to_string));
            }
            (None, None) => {}
        }
        if lines.is_empty() {
            return String::new();
        }
        lines.join("\n") + "\n"
    }

    fn resource(&self, path: &str) -> String {
        format!("{path} [{}]", self.name)
    }

    fn writes(&self, path: &str) -> Vec<String> {
        vec![format!("profile [{}] of {path}", self.name)]
    }

    fn secret_in(&self, text: &str) -> Option<String> {
        let lines: Vec<&str> = text.lines().collect();
        let (start, end) = section(&lines, &self.name)?;
        lines[start..end].iter().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "aws_secret_access_key").then(|| value.trim().to_string())
        })
    }

    fn describe(&self, path: &str) -> String {
        format!("update profile [{}] of {path}", self.name)
    }

    fn secret_format(&self) -> Option<SecretFormat> {
        Some(SecretFormat::Credentials)
    }
}

/// The `[name]` of a section line.
fn header(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix('[')?
        .strip_suffix(']')
        .map(str::trim)
}

/// The lines of `profile`'s section, its `[profile]` line included, up to
/// the next section: `[start, end)`.
fn section(lines: &[&str], profile: &str) -> Option<(usize, usize)> {
    let start = lines.iter().position(|l| header(l) == Some(profile))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| header(l).is_some())
        .map_or(lines.len(), |i| start + 1 + i);
    Some((start, end))
}

/// The state of `profile` in credentials-file `text`.
pub fn profile_state(text: &str, profile: &str) -> TargetState {
    let mut in_profile = false;
    let mut state = TargetState::absent();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
            state.exists |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            if key.trim() == "aws_access_key_id" && looks_like_key_id(value) {
                state.key_id = Some(value.to_string());
            }
        }
    }
    state
}

/// Checks that `text` is a credentials file rekey understands: every line
/// is blank, a comment (`#`, `;`), a `[section]`, or `key = value`.
pub fn check(text: &str) -> Result<(), String> {
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let understood = line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || (line.starts_with('[') && line.ends_with(']'))
            || line
                .split_once('=')
                .is_some_and(|(key, _)| !key.trim().is_empty());
        if !understood {
            return Err(format!(
                "line {} is not a section, a `key = value` line or a comment; rekey will not rewrite a file it does not understand",
                i + 1
            ));
        }
    }
    Ok(())
}

/// `text` with `profile`'s key id and secret replaced (or the profile
/// appended). Other lines of the profile (region, comments) stay.
pub fn with_profile(text: &str, profile: &str, key_id: &str, secret: &SecretString) -> String {
    let id_line = format!("aws_access_key_id = {key_id}");
    let secret_line = format!("aws_secret_access_key = {}", secret.expose_secret());
    let mut out: Vec<String> = Vec::new();
    let mut in_profile = false;
    let mut found = false;
    let mut wrote = (false, false);
    let finish_profile = |out: &mut Vec<String>, wrote: &mut (bool, bool)| {
        // A profile that lacked a key gets one, before its trailing blank lines.
        let at = out
            .iter()
            .rposition(|l| !l.trim().is_empty())
            .map_or(out.len(), |i| i + 1);
        if !wrote.1 {
            out.insert(at, secret_line.clone());
        }
        if !wrote.0 {
            out.insert(at, id_line.clone());
        }
        *wrote = (true, true);
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(section) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if in_profile {
                finish_profile(&mut out, &mut wrote);
            }
            in_profile = section.trim() == profile;
            found |= in_profile;
            out.push(line.to_string());
            continue;
        }
        if in_profile {
            match trimmed.split_once('=').map(|(k, _)| k.trim()) {
                Some("aws_access_key_id") => {
                    out.push(id_line.clone());
                    wrote.0 = true;
                    continue;
                }
                Some("aws_secret_access_key") => {
                    out.push(secret_line.clone());
                    wrote.1 = true;
                    continue;
                }
                // A session token belongs to the old key.
                Some("aws_session_token") => continue,
                _ => {}
            }
        }
        out.push(line.to_string());
    }
    if in_profile {
        finish_profile(&mut out, &mut wrote);
    }
    if !found {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push(format!("[{profile}]"));
        out.push(id_line);
        out.push(secret_line);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_backed_up_and_put_back_alone() {
        let profile = Profile { name: "b".into() };
        let secret = SecretString::from("n3w".to_string());
        let before = "# shared\n[a]\naws_access_key_id = AKIAA000000000000000\n\n[b]\naws_access_key_id = AKIAB000000000000000\naws_secret_access_key = old\nregion = x\n\n[c]\naws_access_key_id = AKIAC000000000000000\n";
        let part = profile.part(before).unwrap();
        assert_eq!(
            part,
            "[b]\naws_access_key_id = AKIAB000000000000000\naws_secret_access_key = old\nregion = x\n\n"
        );
        let written = profile.render(before, "AKIANEW0000000000000", &secret);
        // Meanwhile another user's rotation changes [c].
        let others = written
            .expose_secret()
            .replace("AKIAC000000000000000", "AKIAC111111111111111");
        let restored = profile.with_part(&others, Some(&part));
        assert_eq!(
            restored,
            before.replace("AKIAC000000000000000", "AKIAC111111111111111")
        );
        // A profile that was not there is removed, and the file is as it was.
        let new = Profile { name: "d".into() };
        let appended = new.render(before, "AKIANEW0000000000000", &secret);
        assert_eq!(new.part(before), None);
        assert_eq!(new.with_part(appended.expose_secret(), None), before);
    }

    const FILE: &str = "\
# shared by the CI runners
[default]
aws_access_key_id = AKIADEFAULT000000000
aws_secret_access_key = s3cr3t

[runner]   
; rotated by rekey
aws_access_key_id=AKIARUNNER0000000000
aws_secret_access_key=s3cr3t
";

    #[test]
    fn finds_the_profile_and_its_key_id() {
        let state = profile_state(FILE, "runner");
        assert!(state.exists);
        assert_eq!(state.key_id.as_deref(), Some("AKIARUNNER0000000000"));
    }

    #[test]
    fn replacing_a_profile_changes_only_its_key_lines() {
        let secret = SecretString::from("n3w".to_string());
        let text = with_profile(FILE, "runner", "AKIANEW0000000000000", &secret);
        assert_eq!(
            text,
            FILE.replace(
                "aws_access_key_id=AKIARUNNER0000000000",
                "aws_access_key_id = AKIANEW0000000000000"
            )
            .replace(
                "aws_secret_access_key=s3cr3t\n",
                "aws_secret_access_key = n3w\n"
            )
        );
        let added = with_profile(FILE, "new", "AKIANEW0000000000000", &secret);
        assert!(added.starts_with(FILE) && added.ends_with("\n[new]\naws_access_key_id = AKIANEW0000000000000\naws_secret_access_key = n3w\n"), "{added}");
    }

    #[test]
    fn a_file_that_is_not_a_credentials_file_is_refused_with_its_line() {
        assert_eq!(check(FILE), Ok(()));
        let error = check("[ci]\naws_access_key_id = AKIA\nthis is not ini\n").unwrap_err();
        assert!(error.starts_with("line 3 is not a section"), "{error}");
    }

    #[test]
    fn a_missing_profile_is_absent() {
        assert_eq!(profile_state(FILE, "nobody"), TargetState::absent());
    }
}
