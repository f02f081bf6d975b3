//! Binding a workflow's params: `--var NAME=VALUE` over defaults.

use std::collections::BTreeMap;

use super::model::Workflow;

/// Why the params could not be bound; each message names the param.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ParamError(pub Vec<String>);

/// The value of every param, ready for [`super::template::Template::expand`]:
/// `--var` values are literal text (a `$` in them stays a `$`); defaults are
/// templates themselves and may use `${user}` and the like.
pub fn bind(
    workflow: &Workflow,
    vars: &[(String, String)],
) -> Result<BTreeMap<String, String>, ParamError> {
    let mut errors = Vec::new();
    let mut values = BTreeMap::new();
    for (name, value) in vars {
        if let Some(param) = workflow.params.get(name) {
            if let Some(why) = param.refuses(value) {
                errors.push(format!("--var {name}: `{value}` {why}"));
            }
            values.insert(name.clone(), value.replace('$', "$$"));
        } else {
            let declared: Vec<&str> = workflow.params.keys().map(String::as_str).collect();
            let hint = match super::diagnostic::did_you_mean(name, declared.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None if declared.is_empty() => "the workflow declares no params".into(),
                None => format!(
                    "declared params: {}",
                    super::diagnostic::one_of(declared.iter().copied())
                ),
            };
            errors.push(format!(
                "--var {name}: the workflow has no param `{name}`; {hint}"
            ));
        }
    }
    for (name, param) in &workflow.params {
        if values.contains_key(name) {
            continue;
        }
        match &param.default {
            Some(default) => {
                // A default that refers to the user is checked where it is used.
                if !default.contains("${")
                    && let Some(why) = param.refuses(default)
                {
                    errors.push(format!("param `{name}`: its default `{default}` {why}"));
                }
                values.insert(name.clone(), default.clone());
            }
            None => errors.push(format!(
                "param `{name}` has no default: give it with --var {name}=VALUE"
            )),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(ParamError(errors))
    }
}

/// Reads `NAME=VALUE`.
pub fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}
