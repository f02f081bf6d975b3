//! Params' own rules: a `pattern:` is a regular expression, and a param
//! that accepts anything is not written into a shell's command string.

use super::*;

impl Checker<'_> {
    /// A param's `pattern` must be a regular expression.
    pub(super) fn patterns(&mut self, merged: &Merged, root: &Origin) {
        for (name, param) in &merged.params {
            if let Some(pattern) = &param.pattern
                && let Err(error) = regex_lite::Regex::new(pattern)
            {
                let at = root.key("params").key(name.as_str()).key("pattern");
                self.error(
                    &at,
                    Part::Value,
                    format!("`{pattern}` is not a regular expression: {error}"),
                    None,
                );
            }
        }
    }

    /// Warns where a param that accepts anything is written into a shell's
    /// command string (`sh -c "… ${params.x} …"`): a value like
    /// `app; touch PWNED` would run as a command.
    pub(super) fn shell_params(&mut self, workflow: &Workflow, merged: &Merged) {
        let targets = merged.targets.iter().flat_map(|t| {
            t.item
                .kinds()
                .into_iter()
                .filter_map(|kind| Some((t.origin.key(kind.key()), kind.command()?.to_vec())))
        });
        let hooks = merged.hooks.iter().flat_map(|(_, h)| {
            h.item
                .kinds()
                .into_iter()
                .filter_map(|kind| Some((h.origin.key(kind.key()), kind.command()?.to_vec())))
        });
        let commands = targets.chain(hooks);
        for (at, argv) in commands {
            let shell = argv.first().is_some_and(|program| {
                let name = program.as_str().rsplit('/').next().unwrap_or_default();
                matches!(name, "sh" | "bash" | "zsh" | "dash" | "ksh")
            });
            if !shell || argv.get(1).map(|a| a.as_str()) != Some("-c") {
                continue;
            }
            let Some(script) = argv.get(2) else { continue };
            for name in script.params() {
                if workflow.params.get(&name).is_some_and(|p| !p.constrained()) {
                    let location =
                        Location::resolve(self.sources, &at.key("command").index(2), Part::Value);
                    let mut warning = Diagnostic::new(
                        location,
                        format!(
                            "`${{params.{name}}}` goes into a shell command unchecked: a value like `x; rm -rf ~` would run"
                        ),
                    );
                    warning.warning = true;
                    warning.hint = Some(format!(
                        "give param `{name}` a `pattern:` or `one_of:`, or pass it as its own argument after the script"
                    ));
                    self.warnings.push(warning);
                }
            }
        }
    }
}
