//! The `template` target: a whole file rendered from a template with
//! `{{access_key_id}}` and `{{secret_access_key}}` placeholders (and `${...}`
//! references, filled in first), inline or from a `source` file.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::file::{self, FileFormat, LocalFile};
use super::{ActionError, Kind, Resolve};
use crate::secret::{ExposeSecret, SecretString, looks_like_key_id};
use crate::workflow::diagnostic::{Part, Problem, Problems};
use crate::workflow::vocabulary::{SecretFormat, Templates, maybe};
use crate::workflow::source::{DocPath, Origin};
use crate::workflow::template::Template;

/// A file rendered from a template with `{{access_key_id}}` and
/// `{{secret_access_key}}` placeholders (and `${user}` references).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateTarget {
    /// Path of the file written, relative to the workflow file.
    pub path: Template,
    /// The template, inline. Give this or `source`.
    pub content: Option<Template>,
    /// A file holding the template, relative to the workflow file.
    pub source: Option<Template>,
    /// File mode, in octal (`"0600"`). Default: the file's own, or 0600 for a new file.
    #[schemars(regex(pattern = r"^0?[0-7]{3}$"))]
    pub mode: Option<String>,
}

impl Templates for TemplateTarget {
    fn templates_mut<'a>(&'a mut self, at: &DocPath, out: &mut Vec<(DocPath, &'a mut Template)>) {
        out.push((at.key("path"), &mut self.path));
        maybe(&mut self.content, at.key("content"), out);
        maybe(&mut self.source, at.key("source"), out);
    }
}

/// The template's text, its `${...}` references filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub text: String,
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 2] = ["access_key_id", "secret_access_key"];

impl Kind for TemplateTarget {
    type Resolved = LocalFile<Content>;

    /// A template's content and mode are checked here, not first when a
    /// plan reads them.
    fn check(&self, at: &Origin, problems: &mut Problems) {
        match (&self.content, &self.source) {
            (Some(_), Some(_)) => problems.push(Problem::new(
                at.key("source"),
                Part::Key,
                "a template has `content` and `source`",
                Some("keep one of them".into()),
            )),
            (None, None) => problems.push(Problem::new(
                at.clone(),
                Part::Key,
                "a template needs `content` or `source`",
                Some(
                    "write the template inline under `content:`, or name a file with `source:`"
                        .into(),
                ),
            )),
            (Some(content), None) => {
                for unknown in unknown_placeholders(content.as_str()) {
                    problems.push(Problem::new(
                        at.key("content"),
                        Part::Value,
                        format!("`{{{{{unknown}}}}}` is not a template placeholder"),
                        Some("use {{access_key_id}} and {{secret_access_key}}; `${user}` and the like work too".into()),
                    ));
                }
            }
            (None, Some(_)) => {}
        }
        file::check_mode(at, &self.mode, problems);
    }

    fn resolve(&self, cx: &Resolve<'_>) -> Result<LocalFile<Content>, ActionError> {
        let path = cx.expand(&self.path)?;
        let text = match (&self.content, &self.source) {
            (Some(content), _) => cx.expand(content)?,
            (None, Some(source)) => {
                let source = cx.base_dir.join(cx.expand(source)?);
                std::fs::read_to_string(&source).map_err(|error| ActionError::File {
                    verb: "read",
                    path: source.clone(),
                    source: error,
                })?
            }
            (None, None) => {
                return Err(ActionError::invalid(
                    cx.what,
                    "a template needs `content` or `source`",
                ));
            }
        };
        if let Some(unknown) = unknown_placeholders(&text).first() {
            return Err(ActionError::invalid(
                cx.what,
                format!(
                    "`{{{{{unknown}}}}}` is not a placeholder; use {{{{access_key_id}}}} and {{{{secret_access_key}}}}"
                ),
            ));
        }
        Ok(LocalFile {
            path: file::target_path(cx, &path)?,
            written: path,
            format: Content { text },
            mode: file::mode(&self.mode, cx.what)?,
        })
    }
}

impl FileFormat for Content {
    fn kind(&self) -> &'static str {
        "template"
    }

    fn held_key(&self, text: &str) -> Option<String> {
        key_id_in_text(text)
    }

    fn render(&self, _text: &str, key_id: &str, secret: &SecretString) -> SecretString {
        SecretString::from(
            self.text
                .replace("{{access_key_id}}", key_id)
                .replace("{{secret_access_key}}", secret.expose_secret()),
        )
    }

    fn describe(&self, path: &str) -> String {
        format!("render {path} from its template")
    }

    fn secret_format(&self) -> Option<SecretFormat> {
        None
    }
}

/// `{{name}}` placeholders in `content` that are not [`PLACEHOLDERS`].
pub fn unknown_placeholders(content: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + end].trim();
        if !PLACEHOLDERS.contains(&name) {
            unknown.push(name.to_string());
        }
        rest = &rest[start + end + 2..];
    }
    unknown
}

/// The first token shaped like an AWS access key id (AKIA...) in `text`.
fn key_id_in_text(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|t| t.starts_with("AKIA") && looks_like_key_id(t))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_their_placeholders_and_name_unknown_ones() {
        let target = Content {
            text: "{\"id\": \"{{access_key_id}}\", \"secret\": \"{{secret_access_key}}\"}\n".into(),
        };
        let secret = SecretString::from("n3w".to_string());
        let text = target.render("", "AKIANEW0000000000000", &secret);
        assert_eq!(
            text.expose_secret(),
            "{\"id\": \"AKIANEW0000000000000\", \"secret\": \"n3w\"}\n"
        );
        assert_eq!(
            target.held_key(text.expose_secret()).as_deref(),
            Some("AKIANEW0000000000000")
        );
        assert_eq!(
            unknown_placeholders("{{access_key_id}} {{ region }} {{secret}}"),
            ["region", "secret"]
        );
    }
}
