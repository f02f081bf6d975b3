//! Interpolation: `${user}`, `${account}`, `${params.NAME}`, `${new_key.id}`.
//!
//! A template is checked when the workflow is validated, against the names
//! that exist where it is written, and rendered when a subject is known.
//! There is deliberately no name that yields the secret access key: secrets
//! are placed by a target's `format`, never pasted into a string that could
//! end up in an argv, a log line or a parameter name.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A string that may contain `${...}` references. `$$` writes a literal `$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Template(String);

/// A name a template may refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    User,
    Account,
    Param(String),
    NewKeyId,
}

/// Which names are known where a template is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Selection criteria: evaluated before any user is known.
    Params,
    /// How an account is reached (`accounts.role`): before any user.
    Account,
    /// Per-user settings that exist before the new key does (staging).
    Subject,
    /// Targets and hooks: everything, including the new key's id.
    Item,
}

impl Scope {
    fn allows(self, var: &Var) -> bool {
        match var {
            Var::Param(_) => true,
            Var::User => !matches!(self, Scope::Params | Scope::Account),
            Var::Account => self != Scope::Params,
            Var::NewKeyId => self == Scope::Item,
        }
    }

    fn names(self) -> &'static str {
        match self {
            Scope::Params => "`${params.NAME}`",
            Scope::Account => "`${account}` and `${params.NAME}`",
            Scope::Subject => "`${user}`, `${account}` and `${params.NAME}`",
            Scope::Item => "`${user}`, `${account}`, `${params.NAME}` and `${new_key.id}`",
        }
    }
}

/// A problem in one template: where in the string, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset and length of the offending `${...}` in the string.
    pub offset: usize,
    pub len: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// One lexical piece of a template's text, with its byte range.
enum Token<'a> {
    Text(&'a str),
    /// `$$`: a literal dollar.
    Dollar,
    /// `${...}`, with what the name resolved to.
    Ref {
        offset: usize,
        len: usize,
        name: Result<Var, Unresolved>,
    },
    /// `${` with no closing `}`.
    Unclosed {
        offset: usize,
    },
}

fn scan(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(found) = text[i..].find('$') {
        let at = i + found;
        let rest = &text[at + 1..];
        if rest.starts_with('$') {
            tokens.push(Token::Text(&text[i..at]));
            tokens.push(Token::Dollar);
            i = at + 2;
        } else if rest.starts_with('{') {
            tokens.push(Token::Text(&text[i..at]));
            let Some(close) = rest.find('}') else {
                tokens.push(Token::Unclosed { offset: at });
                return tokens;
            };
            let len = close + 2;
            tokens.push(Token::Ref {
                offset: at,
                len,
                name: parse_name(&rest[1..close]),
            });
            i = at + len;
        } else {
            tokens.push(Token::Text(&text[i..=at]));
            i = at + 1;
        }
    }
    tokens.push(Token::Text(&text[i..]));
    tokens
}

impl Template {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The references with their byte offsets and lengths, or the syntax
    /// errors (unclosed `${`, unknown names, any attempt at the secret).
    fn references(&self) -> Result<Vec<(usize, usize, Var)>, Vec<TemplateError>> {
        let mut refs = Vec::new();
        let mut errors = Vec::new();
        for token in scan(&self.0) {
            match token {
                Token::Ref {
                    offset,
                    len,
                    name: Ok(var),
                } => refs.push((offset, len, var)),
                Token::Ref {
                    offset,
                    len,
                    name: Err((message, hint)),
                } => errors.push(TemplateError {
                    offset,
                    len,
                    message,
                    hint,
                }),
                Token::Unclosed { offset } => errors.push(TemplateError {
                    offset,
                    len: self.0.len() - offset,
                    message: "`${` is not closed".into(),
                    hint: Some(
                        "close the reference with `}`, or write `$$` for a literal `$`".into(),
                    ),
                }),
                Token::Text(_) | Token::Dollar => {}
            }
        }
        if errors.is_empty() {
            Ok(refs)
        } else {
            Err(errors)
        }
    }

    /// Every problem with this template where it is written: syntax, names
    /// that do not exist, params not among `params`, and names not
    /// available in `scope`.
    pub fn check(&self, scope: Scope, params: &[&str]) -> Vec<TemplateError> {
        match self.references() {
            Err(errors) => errors,
            Ok(refs) => refs
                .into_iter()
                .filter_map(|(offset, len, var)| {
                    let (message, hint) = scope_error(scope, &var, params)?;
                    Some(TemplateError {
                        offset,
                        len,
                        message,
                        hint,
                    })
                })
                .collect(),
        }
    }

    /// The params this template refers to.
    pub fn params(&self) -> Vec<String> {
        let refs = self.references().unwrap_or_default();
        refs.into_iter()
            .filter_map(|(_, _, var)| match var {
                Var::Param(name) => Some(name),
                _ => None,
            })
            .collect()
    }

    /// Replaces `${params.NAME}` by `values[NAME]` where given, leaving every
    /// other reference (and `$$`) as written. Used to bind a library's params
    /// to the `with:` values of the file that uses it.
    pub fn substitute_params(&self, values: &BTreeMap<String, String>) -> Template {
        let mut out = String::with_capacity(self.0.len());
        let mut last = 0;
        for token in scan(&self.0) {
            if let Token::Ref {
                offset,
                len,
                name: Ok(Var::Param(name)),
            } = token
                && let Some(value) = values.get(&name)
            {
                out.push_str(&self.0[last..offset]);
                out.push_str(value);
                last = offset + len;
            }
        }
        out.push_str(&self.0[last..]);
        Template(out)
    }

    /// Renders the template with the values of one subject. A reference the
    /// caller has no value for is an error naming it.
    pub fn render(&self, lookup: impl Fn(&Var) -> Option<String>) -> Result<String, String> {
        let mut out = String::with_capacity(self.0.len());
        for token in scan(&self.0) {
            match token {
                Token::Text(text) => out.push_str(text),
                Token::Dollar => out.push('$'),
                Token::Ref { name: Ok(var), .. } => match lookup(&var) {
                    Some(value) => out.push_str(&value),
                    None => return Err(format!("`${{{var}}}` has no value here")),
                },
                Token::Ref {
                    name: Err((message, _)),
                    ..
                } => return Err(message),
                Token::Unclosed { .. } => return Err("`${` is not closed".into()),
            }
        }
        Ok(out)
    }
}

/// The values a template is expanded with for one subject. A reference
/// whose value is `None` is an error naming it.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// Bound params: `--var` values (already `$`-escaped) or defaults.
    pub params: &'a BTreeMap<String, String>,
    pub user: Option<&'a str>,
    pub account: Option<&'a str>,
    pub new_key_id: Option<&'a str>,
}

impl Template {
    /// The text for one subject: params first (their values may refer to
    /// the user), then the rest.
    pub fn expand(&self, values: &Values) -> Result<String, String> {
        self.substitute_params(values.params)
            .render(|var| match var {
                Var::User => values.user.map(str::to_string),
                Var::Account => values.account.map(str::to_string),
                Var::NewKeyId => values.new_key_id.map(str::to_string),
                Var::Param(_) => None,
            })
    }
}

impl Template {
    /// Fills in what is known when a rotation begins: `params` (those not
    /// given stay references), `${user}` and `${account}`. `${new_key.id}`
    /// and `$$` stay as written: the result is a template to expand once
    /// the key exists.
    pub fn bind(
        &self,
        params: &BTreeMap<String, String>,
        user: &str,
        account: &str,
    ) -> Result<Template, String> {
        let bound = self.substitute_params(params);
        let escape = |text: &str| text.replace('$', "$$");
        let mut out = String::with_capacity(bound.0.len());
        for token in scan(&bound.0) {
            match token {
                Token::Text(text) => out.push_str(text),
                Token::Dollar => out.push_str("$$"),
                Token::Ref {
                    name: Ok(Var::User),
                    ..
                } => out.push_str(&escape(user)),
                Token::Ref {
                    name: Ok(Var::Account),
                    ..
                } => out.push_str(&escape(account)),
                Token::Ref {
                    offset,
                    len,
                    name: Ok(_),
                } => out.push_str(&bound.0[offset..offset + len]),
                Token::Ref {
                    name: Err((message, _)),
                    ..
                } => return Err(message),
                Token::Unclosed { .. } => return Err("`${` is not closed".into()),
            }
        }
        Ok(Template(out))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::User => f.write_str("user"),
            Var::Account => f.write_str("account"),
            Var::Param(name) => write!(f, "params.{name}"),
            Var::NewKeyId => f.write_str("new_key.id"),
        }
    }
}

impl JsonSchema for Template {
    fn schema_name() -> Cow<'static, str> {
        "Template".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "Text with optional ${user}, ${account}, ${params.NAME} or ${new_key.id} references; $$ writes a literal $."
        })
    }
}

/// Why a name cannot be resolved: the message and a hint.
type Unresolved = (String, Option<String>);

fn parse_name(name: &str) -> Result<Var, Unresolved> {
    let name = name.trim();
    if name.to_ascii_lowercase().contains("secret") {
        return Err((
            format!("`${{{name}}}`: the secret access key cannot be interpolated into a string"),
            Some("a target's `format` (json, env, credentials) places the secret; commands receive it in the environment as AWS_SECRET_ACCESS_KEY".into()),
        ));
    }
    match name.split_once('.') {
        None if name == "user" => Ok(Var::User),
        None if name == "account" => Ok(Var::Account),
        Some(("params", param)) if is_param_name(param) => Ok(Var::Param(param.to_string())),
        Some(("new_key", "id")) => Ok(Var::NewKeyId),
        Some(("new_key", other)) => Err((
            format!("`${{new_key.{other}}}` is not a known reference"),
            Some("the new key offers only `${new_key.id}`".into()),
        )),
        _ if name.is_empty() => Err(("`${}` names nothing".into(), Some(known_hint()))),
        _ => {
            let suggestion =
                super::diagnostic::did_you_mean(name, ["user", "account", "new_key.id"])
                    .map(|s| format!("did you mean `${{{s}}}`? ({})", known_hint()));
            Err((
                format!("`${{{name}}}` is not a known reference"),
                Some(suggestion.unwrap_or_else(known_hint)),
            ))
        }
    }
}

fn known_hint() -> String {
    "known references are `${user}`, `${account}`, `${params.NAME}` and `${new_key.id}`".into()
}

/// Param names: letters, digits, `_` and `-`, starting with a letter or `_`.
pub fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn scope_error(scope: Scope, var: &Var, names: &[&str]) -> Option<Unresolved> {
    if let Var::Param(name) = var {
        if names.contains(&name.as_str()) {
            return None;
        }
        let hint = match super::diagnostic::did_you_mean(name, names.iter().copied()) {
            Some(close) => format!("did you mean `${{params.{close}}}`?"),
            None if names.is_empty() => {
                "this file declares no params; declare it under `params:`".into()
            }
            None => format!(
                "declared params: {}",
                super::diagnostic::one_of(names.iter().copied())
            ),
        };
        return Some((
            format!("`${{params.{name}}}` names a param that is not declared"),
            Some(hint),
        ));
    }
    if scope.allows(var) {
        return None;
    }
    let reason = match var {
        Var::NewKeyId => "the new key does not exist yet where this is evaluated",
        _ => "no user is known yet where this is evaluated",
    };
    Some((
        format!("`${{{var}}}` cannot be used here: {reason}"),
        Some(format!("here you can use {}", scope.names())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, scope: Scope) -> Vec<String> {
        Template::new(text)
            .check(scope, &["env"])
            .into_iter()
            .map(|e| format!("{}@{}+{}", e.message, e.offset, e.len))
            .collect()
    }

    #[test]
    fn accepts_every_known_reference_in_item_scope() {
        assert!(
            check(
                "/apps/${params.env}/${user}/${account}/${new_key.id}",
                Scope::Item
            )
            .is_empty()
        );
        assert!(check("price: $$5 and $HOME", Scope::Item).is_empty());
    }

    #[test]
    fn names_unknown_references_with_their_offset() {
        assert_eq!(
            check("/a/${usr}", Scope::Item),
            ["`${usr}` is not a known reference@3+6"]
        );
        assert_eq!(
            check("${params.nope}", Scope::Item),
            ["`${params.nope}` names a param that is not declared@0+14"]
        );
    }

    #[test]
    fn refuses_every_way_of_naming_the_secret() {
        for text in [
            "${new_key.secret}",
            "${secret}",
            "${new_key.SecretAccessKey}",
            "${new_key.secret_access_key}",
        ] {
            let errors = check(text, Scope::Item);
            assert!(
                errors[0].contains("cannot be interpolated"),
                "{text}: {errors:?}"
            );
        }
    }

    #[test]
    fn scopes_limit_what_is_known() {
        assert_eq!(check("${user}", Scope::Params).len(), 1);
        assert_eq!(check("${new_key.id}", Scope::Subject).len(), 1);
        assert!(check("${params.env}", Scope::Params).is_empty());
    }

    #[test]
    fn an_unclosed_reference_is_an_error() {
        assert_eq!(check("/a/${user", Scope::Item), ["`${` is not closed@3+6"]);
    }

    #[test]
    fn binding_fills_in_the_subject_and_keeps_the_new_key_and_unbound_params() {
        let params = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let template =
            Template::new("/${params.env}/${user}@${account}/${new_key.id}/${params.token}/$$x");
        let bound = template.bind(&params, "app-1", "123").unwrap();
        assert_eq!(
            bound.as_str(),
            "/prod/app-1@123/${new_key.id}/${params.token}/$$x"
        );
        let values = Values {
            params: &BTreeMap::from([("token".to_string(), "t0k".to_string())]),
            user: None,
            account: None,
            new_key_id: Some("AKIANEW"),
        };
        assert_eq!(
            bound.expand(&values).unwrap(),
            "/prod/app-1@123/AKIANEW/t0k/$x"
        );
    }

    #[test]
    fn substitutes_only_the_params_it_is_given() {
        let values = BTreeMap::from([("prefix".to_string(), "/apps/${params.env}".to_string())]);
        let bound = Template::new("${params.prefix}/${user}/$${x}").substitute_params(&values);
        assert_eq!(bound.as_str(), "/apps/${params.env}/${user}/$${x}");
    }

    #[test]
    fn renders_with_values_and_literal_dollars() {
        let rendered = Template::new("/a/${user}/$$x")
            .render(|v| (*v == Var::User).then(|| "ci-1".to_string()));
        assert_eq!(rendered.as_deref(), Ok("/a/ci-1/$x"));
    }
}
