//! The `env_file` target: two variables of a dotenv file (`NAME=value`
//! lines), replaced in place (keeping an `export ` prefix) or appended,
//! leaving every other line as it was.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::file::{self, FileFormat, LocalFile};
use super::{ActionError, Kind, Resolve};
use crate::secret::{ExposeSecret, SecretString, looks_like_key_id};
use crate::workflow::diagnostic::Problems;
use crate::workflow::vocabulary::{SecretFormat, Templates, maybe};
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::Template;

/// Two variables of a dotenv file (`NAME=value` lines), updated in place,
/// leaving every other line as it was.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvFileTarget {
    /// Path of the file, relative to the workflow file.
    pub path: Template,
    /// Variable for the key id (may use `${user}` and the like; must be a
    /// variable name once filled in). Default AWS_ACCESS_KEY_ID.
    pub access_key_id_var: Option<Template>,
    /// Variable for the secret, likewise. Default AWS_SECRET_ACCESS_KEY.
    pub secret_access_key_var: Option<Template>,
    /// File mode, in octal (`"0600"`). Default: the file's own, or 0600 for a new file.
    #[schemars(regex(pattern = r"^0?[0-7]{3}$"))]
    pub mode: Option<String>,
}

impl Templates for EnvFileTarget {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        out.push((at.key("path"), &mut self.path));
        maybe(&mut self.access_key_id_var, at.key("access_key_id_var"), out);
        maybe(
            &mut self.secret_access_key_var,
            at.key("secret_access_key_var"),
            out,
        );
    }
}

/// The two variables an env file target writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vars {
    pub id_var: String,
    pub secret_var: String,
}

impl Kind for EnvFileTarget {
    type Resolved = LocalFile<Vars>;

    fn check(&self, at: &Origin, problems: &mut Problems) {
        file::check_mode(at, &self.mode, problems);
    }

    fn resolve(&self, cx: &Resolve<'_>) -> Result<LocalFile<Vars>, ActionError> {
        let path = cx.expand(&self.path)?;
        Ok(LocalFile {
            path: file::target_path(cx, &path)?,
            written: path,
            format: Vars {
                id_var: variable(cx, &self.access_key_id_var, "AWS_ACCESS_KEY_ID")?,
                secret_var: variable(cx, &self.secret_access_key_var, "AWS_SECRET_ACCESS_KEY")?,
            },
            mode: file::mode(&self.mode, cx.what)?,
        })
    }
}

impl FileFormat for Vars {
    fn kind(&self) -> &'static str {
        "env_file"
    }

    fn held_key(&self, text: &str) -> Option<String> {
        env_value(text, &self.id_var).filter(|v| looks_like_key_id(v))
    }

    fn render(&self, text: &str, key_id: &str, secret: &SecretString) -> SecretString {
        SecretString::from(with_env_vars(
            text,
            &[
                (&self.id_var, key_id),
                (&self.secret_var, secret.expose_secret()),
            ],
        ))
    }

    fn part(&self, text: &str) -> Option<String> {
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| self.owns(line))
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n") + "\n")
    }

    fn with_part(&self, text: &str, part: Option<&str>) -> String {
        let mut wanted: Vec<&str> = part.unwrap_or_default().lines().collect();
        let mut out: Vec<String> = Vec::new();
        for line in text.lines() {
            match var_name(line).filter(|_| self.owns(line)) {
                Some(name) => {
                    if let Some(i) = wanted.iter().position(|w| var_name(w) == Some(name)) {
                        out.push(wanted.remove(i).to_string());
                    }
                }
                None => out.push(line.to_string()),
            }
        }
        out.extend(wanted.into_iter().map(str::to_string));
        if out.is_empty() {
            return String::new();
        }
        out.join("\n") + "\n"
    }

    fn describe(&self, path: &str) -> String {
        format!("update {} and {} in {path}", self.id_var, self.secret_var)
    }

    fn secret_in(&self, text: &str) -> Option<String> {
        env_value(text, &self.secret_var)
    }

    fn writes(&self, path: &str) -> Vec<String> {
        vec![
            format!("variable {} of {path}", self.id_var),
            format!("variable {} of {path}", self.secret_var),
        ]
    }

    fn secret_format(&self) -> Option<SecretFormat> {
        Some(SecretFormat::Env)
    }
}

/// A variable name setting, filled in: letters, digits and `_`, not
/// starting with a digit.
fn variable(
    cx: &Resolve<'_>,
    name: &Option<Template>,
    default: &str,
) -> Result<String, ActionError> {
    let name = match name {
        Some(name) => cx.expand(name)?,
        None => return Ok(default.to_string()),
    };
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ActionError::invalid(
            cx.what,
            format!("`{name}` is not a variable name: use letters, digits and `_`, not starting with a digit"),
        ));
    }
    Ok(name)
}

impl Vars {
    /// Whether `line` sets one of the two variables.
    fn owns(&self, line: &str) -> bool {
        var_name(line).is_some_and(|name| name == self.id_var || name == self.secret_var)
    }
}

/// The variable a `NAME=value` (or `export NAME=value`) line sets.
fn var_name(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let line = line.strip_prefix("export ").unwrap_or(line);
    line.split_once('=').map(|(name, _)| name.trim())
}

/// The value of `NAME=value` (or `export NAME=value`) in a dotenv text.
fn env_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches(['"', '\'']).to_string())
    })
}

/// `text` with each `NAME=value` line of `vars` replaced (keeping an
/// `export ` prefix), or appended when missing; every other line stays.
fn with_env_vars(text: &str, vars: &[(&str, &str)]) -> String {
    let mut seen = vec![false; vars.len()];
    let mut out: Vec<String> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let (export, rest) = match trimmed.strip_prefix("export ") {
                Some(rest) => ("export ", rest),
                None => ("", trimmed),
            };
            let name = rest.split_once('=').map(|(k, _)| k.trim());
            match vars.iter().position(|(var, _)| Some(*var) == name) {
                Some(i) => {
                    seen[i] = true;
                    format!("{export}{}={}", vars[i].0, vars[i].1)
                }
                None => line.to_string(),
            }
        })
        .collect();
    for (i, (var, value)) in vars.iter().enumerate() {
        if !seen[i] {
            out.push(format!("{var}={value}"));
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_change_only_their_two_variables() {
        let target = Vars {
            id_var: "AWS_ACCESS_KEY_ID".into(),
            secret_var: "AWS_SECRET_ACCESS_KEY".into(),
        };
        let secret = SecretString::from("n3w".to_string());
        let text = "# app settings\nREGION=eu-west-1\nexport AWS_ACCESS_KEY_ID=AKIAOLD0000000000000\nAWS_SECRET_ACCESS_KEY=old\n";
        assert_eq!(
            target.held_key(text).as_deref(),
            Some("AKIAOLD0000000000000")
        );
        let new = target.render(text, "AKIANEW0000000000000", &secret);
        assert_eq!(
            new.expose_secret(),
            "# app settings\nREGION=eu-west-1\nexport AWS_ACCESS_KEY_ID=AKIANEW0000000000000\nAWS_SECRET_ACCESS_KEY=n3w\n"
        );
        let fresh = target.render("", "AKIANEW0000000000000", &secret);
        assert_eq!(
            fresh.expose_secret(),
            "AWS_ACCESS_KEY_ID=AKIANEW0000000000000\nAWS_SECRET_ACCESS_KEY=n3w\n"
        );
        // A rollback puts back the two variables alone.
        let part = target.part(text).unwrap();
        let changed = new.expose_secret().replace("eu-west-1", "us-east-2");
        assert_eq!(
            target.with_part(&changed, Some(&part)),
            text.replace("eu-west-1", "us-east-2")
        );
        assert_eq!(target.with_part(fresh.expose_secret(), None), "");
    }
}
