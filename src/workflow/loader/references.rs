//! Checking the `${...}` references of one file against its own params,
//! before anything is merged.

use super::*;

impl Loader {
    pub(super) fn check_templates(&mut self, file: FileId, content: &mut FileContent) {
        let params: Vec<String> = content.merged.params.keys().cloned().collect();
        for name in &params {
            if !crate::workflow::template::is_param_name(name) {
                let at = Origin::new(file, DocPath::root().key("params").key(name.as_str()));
                let hint = "use letters, digits, `_` and `-`, starting with a letter";
                self.error_at(
                    &at,
                    Part::Key,
                    format!("`{name}` is not a valid param name"),
                    Some(hint.into()),
                );
            }
        }
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let mut found: Vec<(Origin, Scope, &mut Template)> = Vec::new();
        let merged = &mut content.merged;
        if let Some(select) = &mut merged.select {
            collect(&mut found, &select.origin, Scope::Params, &mut select.item);
        }
        if let Some(accounts) = &mut merged.accounts {
            collect(
                &mut found,
                &accounts.origin,
                Scope::Account,
                &mut accounts.item,
            );
        }
        if let Some(staging) = &mut merged.staging {
            collect(
                &mut found,
                &staging.origin,
                Scope::Subject,
                &mut staging.item,
            );
        }
        for target in &mut merged.targets {
            collect(&mut found, &target.origin, Scope::Item, &mut target.item);
        }
        for (_, hook) in &mut merged.hooks {
            collect(&mut found, &hook.origin, Scope::Item, &mut hook.item);
        }
        // A default may use `${user}` and the like, but not other params.
        let mut with_values: Vec<(Origin, Template, &[&str])> = Vec::new();
        for (name, param) in &merged.params {
            if let Some(default) = &param.default {
                let at = Origin::new(
                    file,
                    DocPath::root()
                        .key("params")
                        .key(name.as_str())
                        .key("default"),
                );
                with_values.push((at, Template::new(default.0.clone()), &[]));
            }
        }
        for use_ in &content.uses {
            for (name, value) in &use_.item.with {
                with_values.push((
                    use_.origin.key("with").key(name.as_str()),
                    Template::new(value.0.clone()),
                    &params,
                ));
            }
        }
        let mut problems = Vec::new();
        for (origin, scope, template) in &found {
            problems.push((
                origin.clone(),
                template.as_str().to_string(),
                template.check(*scope, &params),
            ));
        }
        for (origin, template, params) in &with_values {
            problems.push((
                origin.clone(),
                template.as_str().to_string(),
                template.check(Scope::Item, params),
            ));
        }
        for (origin, text, errors) in problems {
            for error in errors {
                let location =
                    self.locate_in_string(&origin, &text[error.offset..error.offset + error.len]);
                let mut diagnostic = Diagnostic::new(location, error.message);
                diagnostic.hint = error.hint;
                self.diagnostics.push(diagnostic);
            }
        }
    }

    /// The position of `needle` inside the string written at `origin`: the
    /// same line as the value when it is found there, else the value itself.
    pub(super) fn locate_in_string(&self, origin: &Origin, needle: &str) -> Location {
        let mut location = Location::resolve(&self.sources, origin, Part::Value);
        let start = location.pos.col - 1;
        let line = &location.line_text;
        let from = line
            .char_indices()
            .nth(start)
            .map_or(line.len(), |(i, _)| i);
        if let Some(found) = line[from..].find(needle) {
            location.pos.col = line[..from + found].chars().count() + 1;
            location.pos.width = needle.chars().count();
        }
        location
    }
}
