//! Validation: the rules that span fields, from a merged document to the
//! checked [`Workflow`] model.
//!
//! Shape errors (types, unknown keys) were found while loading; here are the
//! rules serde cannot express: exactly one kind per target and hook, ids
//! that can name steps, `needs` that resolve within their list and form no
//! cycle, a selection that selects, a window that parses. Every problem is
//! reported; the model is built only when there is none.
//!
//! The rules of params (`params`), of where the workflow reaches
//! (`accounts`: `state`, `accounts`) and of `policy` (with the window) are
//! submodules; the kinds' own checks live in their modules.

use std::collections::HashMap;

use super::diagnostic::{
    Diagnostic, Diagnostics, Location, Part, Problem, Problems, did_you_mean, one_of,
};
use super::document::{DocKind, MakeRoom, OnVerifyFailure, WindowDoc};
use super::graph::{MakeRoomStep, StepGraph};
use super::loader::{Merged, Placed};
use super::model::{
    DEFAULT_CONCURRENCY, DEFAULT_DEADLINE, DEFAULT_MAX_KEY_AGE, DEFAULT_SOAK, Fleet, Hook,
    MAX_CONCURRENCY, Organization, Param, Policy, Selection, Staging, Target, Window, Workflow,
};
use super::source::{DocPath, Origin, Sources};
use super::vocabulary::{HookPhase, MAX_KEY_AGE_BOUND, MAX_SOAK};
use crate::hooks::HookDoc;
use crate::hooks::HookKind;
use crate::targets::TargetDoc;
use crate::targets::TargetKind;

mod accounts;
mod params;
mod policy;

pub use accounts::{is_account_id, role_is_valid};

pub fn validate(
    merged: Merged,
    sources: &Sources,
    diagnostics: &mut Diagnostics,
    warnings: &mut Diagnostics,
) -> Option<Workflow> {
    let mut checker = Checker {
        sources,
        diagnostics: Diagnostics::default(),
        warnings: Diagnostics::default(),
    };
    let workflow = checker.workflow(merged);
    let clean = checker.diagnostics.is_empty();
    diagnostics.extend(checker.diagnostics);
    warnings.extend(checker.warnings);
    workflow.filter(|_| clean && diagnostics.is_empty())
}

struct Checker<'s> {
    sources: &'s Sources,
    diagnostics: Diagnostics,
    warnings: Diagnostics,
}

impl Checker<'_> {
    fn error(&mut self, at: &Origin, part: Part, message: impl Into<String>, hint: Option<String>) {
        let mut diagnostic = Diagnostic::new(Location::resolve(self.sources, at, part), message);
        diagnostic.hint = hint;
        self.diagnostics.push(diagnostic);
    }

    fn workflow(&mut self, merged: Merged) -> Option<Workflow> {
        let root = Origin::new(merged.root?, DocPath::root());
        if !merged.parsed {
            return None;
        }
        match &merged.version {
            None if merged.written.contains("version") => {}
            None => self.error(
                &root,
                Part::Value,
                "missing `version`",
                Some("start the file with `version: 1`".into()),
            ),
            Some((1, _)) => {}
            Some((other, at)) => self.error(
                at,
                Part::Value,
                format!("unsupported version {other}"),
                Some("this rekey reads `version: 1`".into()),
            ),
        }
        let select = self.selection(&merged, &root);
        let staging = self.staging(&merged);
        let fans_out = merged
            .accounts
            .as_ref()
            .is_some_and(|a| !a.item.ids.is_empty() || a.item.organization.is_some());
        let targets: Vec<Target> = merged
            .targets
            .iter()
            .filter_map(|t| self.target(t, fans_out))
            .collect();
        let hooks: Vec<Hook> = merged
            .hooks
            .iter()
            .filter_map(|(phase, h)| self.hook(*phase, h))
            .collect();
        self.ids(&merged);
        self.needs(&merged);
        if merged.kind == DocKind::Workflow
            && merged.targets.is_empty()
            && merged.broken.count == 0
            && !merged.written.contains("targets")
        {
            // `written` has "targets" only when a misspelt key meant it.
            let at = root.key("targets");
            self.error(
                &at,
                Part::Key,
                "no targets: the new key would be stored nowhere",
                Some("add at least one entry under `targets:`".into()),
            );
        }
        let policy = self.policy(&merged);
        let schedule = self.schedule(&merged, &select, policy.as_ref());
        let (accounts_allowed, fleet) = self.accounts(&merged);
        let workflow = Workflow {
            name: merged
                .name
                .clone()
                .unwrap_or_else(|| file_stem(self.sources, &root)),
            description: merged.description.clone(),
            kind: merged.kind,
            params: merged
                .params
                .iter()
                .map(|(name, p)| {
                    let param = Param {
                        default: p.default.as_ref().map(|d| d.0.clone()),
                        description: p.description.clone(),
                        sensitive: p.sensitive,
                        pattern: p.pattern.clone(),
                        one_of: p.one_of.clone(),
                    };
                    (name.clone(), param)
                })
                .collect(),
            select,
            staging,
            targets,
            hooks,
            policy: policy?,
            accounts_allowed,
            fleet,
            state: self.state(&merged),
            schedule,
        };
        let mut workflow = workflow;
        if workflow.fleet.is_some() && workflow.staging == Staging::StateFile {
            workflow.staging = Staging::AccountStateFile;
        }
        if workflow.state.is_some() {
            workflow.stage_for_shared_state();
        }
        if self.diagnostics.is_empty() {
            self.cycles(&workflow, &merged);
        }
        self.patterns(&merged, &root);
        self.shell_params(&workflow, &merged);
        Some(workflow)
    }

    fn selection(&mut self, merged: &Merged, root: &Origin) -> Selection {
        let Some(select) = &merged.select else {
            if merged.kind == DocKind::Workflow && !merged.written.contains("select") {
                let hint = "add `select:` with `users:`, `path_prefix:` or `tags:`; a file meant for `uses:` says `kind: library`";
                self.error(
                    root,
                    Part::Value,
                    "missing `select`: this workflow selects no users",
                    Some(hint.into()),
                );
            }
            return Selection {
                max_key_age: DEFAULT_MAX_KEY_AGE,
                ..Selection::default()
            };
        };
        let doc = &select.item;
        if doc.users.is_empty() && doc.path_prefix.is_none() && doc.tags.is_empty() {
            let hint = "say which users with `users:` (names or globs; `[\"*\"]` for all), `path_prefix:` or `tags:`";
            self.error(
                &select.origin,
                Part::Key,
                "`select` picks no users",
                Some(hint.into()),
            );
        }
        for (list, names) in [("users", &doc.users), ("exclude", &doc.exclude)] {
            for (i, name) in names.iter().enumerate() {
                let text = name.as_str();
                if text.contains("${") {
                    continue;
                }
                if let Some(bad) = text.chars().find(|c| !is_user_glob_char(*c)) {
                    let at = select.origin.key(list).index(i);
                    let hint =
                        "IAM user names use letters, digits and `+=,.@_-`; globs add `*` and `?`";
                    self.error(
                        &at,
                        Part::Value,
                        format!("`{text}` cannot match an IAM user name: `{bad}` is not allowed"),
                        Some(hint.into()),
                    );
                }
            }
        }
        if let Some(prefix) = &doc.path_prefix {
            let text = prefix.as_str();
            let is_iam_path = text.starts_with('/') && text.ends_with('/');
            if !text.contains("${") && !is_iam_path {
                let at = select.origin.key("path_prefix");
                self.error(
                    &at,
                    Part::Value,
                    format!("`{text}` is not an IAM path"),
                    Some("IAM paths start and end with `/`, e.g. `/ci/`".into()),
                );
            }
        }
        if let Some(problem) = Problem::too_long(
            select.origin.key("max_key_age"),
            "max_key_age",
            doc.max_key_age,
            MAX_KEY_AGE_BOUND,
        ) {
            self.problems(vec![problem]);
        }
        Selection {
            users: doc.users.clone(),
            path_prefix: doc.path_prefix.clone(),
            tags: doc.tags.clone(),
            exclude: doc.exclude.clone(),
            max_key_age: doc.max_key_age.unwrap_or(DEFAULT_MAX_KEY_AGE),
        }
    }

    fn staging(&mut self, merged: &Merged) -> Staging {
        let Some(staging) = &merged.staging else {
            return Staging::StateFile;
        };
        match (&staging.item.ssm_parameter, &staging.item.kms_key_id) {
            (Some(name), kms_key_id) => Staging::SsmParameter {
                name: name.clone(),
                kms_key_id: kms_key_id.clone(),
            },
            (None, Some(_)) => {
                let at = staging.origin.key("kms_key_id");
                self.error(
                    &at,
                    Part::Key,
                    "`kms_key_id` without `ssm_parameter`",
                    Some(
                        "the default staging is a local file; set `ssm_parameter:` to stage in SSM"
                            .into(),
                    ),
                );
                Staging::StateFile
            }
            (None, None) => Staging::StateFile,
        }
    }

    fn target(&mut self, placed: &Placed<TargetDoc>, fans_out: bool) -> Option<Target> {
        let doc = &placed.item;
        let mut kinds = doc.kinds();
        let keys: Vec<&str> = kinds.iter().map(TargetKind::key).collect();
        self.one_kind(&placed.origin, "target", &doc.id, &keys, TargetKind::KEYS)?;
        let kind = kinds.pop()?;
        let mut problems = Problems::new();
        kind.check(&placed.origin.key(kind.key()), &mut problems);
        self.problems(problems);
        if let Some(account) = &doc.account {
            let at = placed.origin.key("account");
            if !is_account_id(account) {
                self.error(
                    &at,
                    Part::Value,
                    format!("`{account}` is not an AWS account id"),
                    Some("an account id is 12 digits, quoted: \"444444444444\"".into()),
                );
            } else if !kind.in_account() {
                self.error(
                    &at,
                    Part::Key,
                    format!("a `{}` target does not live in an AWS account", kind.key()),
                    Some("`account:` applies to `ssm_parameter` and `secrets_manager` targets; remove it".into()),
                );
            } else if !fans_out {
                self.error(
                    &at,
                    Part::Key,
                    "a target in another account needs a role to reach it there",
                    Some("add `accounts:` with `ids` (or `organization`) and `role`; the role is assumed in this account too".into()),
                );
            }
        }
        Some(Target {
            id: doc.id.clone(),
            needs: doc.needs.clone(),
            kind,
            account: doc.account.clone(),
        })
    }

    fn hook(&mut self, phase: HookPhase, placed: &Placed<HookDoc>) -> Option<Hook> {
        let doc = &placed.item;
        let mut kinds = doc.kinds();
        let keys: Vec<&str> = kinds.iter().map(HookKind::key).collect();
        self.one_kind(&placed.origin, "hook", &doc.id, &keys, HookKind::KEYS)?;
        let kind = kinds.pop()?;
        let mut problems = Problems::new();
        kind.check(&placed.origin.key(kind.key()), phase, &mut problems);
        self.problems(problems);
        Some(Hook {
            id: doc.id.clone(),
            phase,
            needs: doc.needs.clone(),
            kind,
        })
    }

    /// What a target or hook kind found in its own settings.
    fn problems(&mut self, problems: Problems) {
        for problem in problems {
            self.error(&problem.at, problem.part, problem.message, problem.hint);
        }
    }

    fn one_kind(
        &mut self,
        at: &Origin,
        what: &str,
        id: &str,
        found: &[&str],
        all: &[&str],
    ) -> Option<()> {
        match found {
            [_] => Some(()),
            [] => {
                let hint = format!("add one of {}", one_of(all.iter().copied()));
                self.error(
                    at,
                    Part::Value,
                    format!("{what} `{id}` has no kind"),
                    Some(hint),
                );
                None
            }
            [first, second, ..] => {
                let message = format!("{what} `{id}` has two kinds, `{first}` and `{second}`");
                let hint = format!(
                    "a {what} does one thing: split it into two {what}s with their own ids"
                );
                self.error(&at.key(*second), Part::Key, message, Some(hint));
                None
            }
        }
    }

    /// Ids must be usable as step names: `distribute:<id>`.
    fn ids(&mut self, merged: &Merged) {
        let items = merged
            .targets
            .iter()
            .map(|t| (&t.item.id, &t.origin))
            .chain(merged.hooks.iter().map(|(_, h)| (&h.item.id, &h.origin)));
        let mut bad = Vec::new();
        for (id, origin) in items {
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bad.push((id.clone(), origin.key("id")));
            }
        }
        for (id, at) in bad {
            self.error(
                &at,
                Part::Value,
                format!("`{id}` is not a valid id"),
                Some("ids use letters, digits, `-` and `_`, e.g. `app-param`".into()),
            );
        }
    }

    /// Every `needs` names an item of the same list.
    fn needs(&mut self, merged: &Merged) {
        let mut lists: HashMap<&str, &'static str> = HashMap::new();
        for target in &merged.targets {
            lists.insert(&target.item.id, "targets");
        }
        for (phase, hook) in &merged.hooks {
            lists.insert(&hook.item.id, phase.key());
        }
        let entries = merged
            .targets
            .iter()
            .map(|t| ("targets", &t.item.needs, &t.origin))
            .chain(
                merged
                    .hooks
                    .iter()
                    .map(|(p, h)| (p.key(), &h.item.needs, &h.origin)),
            );
        let mut problems = Vec::new();
        for (list, needs, origin) in entries {
            let peers: Vec<&str> = lists
                .iter()
                .filter(|(_, l)| **l == list)
                .map(|(id, _)| *id)
                .collect();
            for (i, name) in needs.iter().enumerate() {
                let at = origin.key("needs").index(i);
                match lists.get(name.as_str()) {
                    Some(other) if *other == list => {}
                    Some(other) => {
                        let message = format!(
                            "`needs` names `{name}`, which is in `{other}`, not in `{list}`"
                        );
                        let hint = format!(
                            "`needs` orders items within one list; phases already run in order ({})",
                            phase_order()
                        );
                        problems.push((at, message, Some(hint)));
                    }
                    None if merged.broken.ids.contains(name) => {}
                    None => {
                        let what = if list == "targets" {
                            "a target".to_string()
                        } else {
                            format!("a `{list}` hook")
                        };
                        let hint = did_you_mean(name, peers.iter().copied())
                            .map(|close| format!("did you mean `{close}`?"));
                        problems.push((
                            at,
                            format!("`needs` names `{name}`, which is not {what}"),
                            hint,
                        ));
                    }
                }
            }
        }
        for (at, message, hint) in problems {
            self.error(&at, Part::Value, message, hint);
        }
    }

    /// Compiles the template subject's graph; a cycle is reported with
    /// every step in it and where each of its `needs` was written.
    fn cycles(&mut self, workflow: &Workflow, merged: &Merged) {
        let Err(error) = StepGraph::compile(workflow, "${user}", MakeRoomStep::Maybe) else {
            return;
        };
        let mut needs_at: HashMap<(&str, &str), Origin> = HashMap::new();
        let items = merged
            .targets
            .iter()
            .map(|t| (&t.item.id, &t.item.needs, &t.origin))
            .chain(
                merged
                    .hooks
                    .iter()
                    .map(|(_, h)| (&h.item.id, &h.item.needs, &h.origin)),
            );
        for (id, needs, origin) in items {
            for (i, name) in needs.iter().enumerate() {
                needs_at.insert((id.as_str(), name.as_str()), origin.key("needs").index(i));
            }
        }
        for cycle in error.cycles {
            let names: Vec<String> = cycle.iter().map(|s| format!("`{s}`")).collect();
            let closing = names.first().cloned().unwrap_or_default();
            let message = format!("`needs` form a cycle: {} -> {closing}", names.join(" -> "));
            let ids: Vec<&str> = cycle
                .iter()
                .map(|s| s.item.as_deref().unwrap_or_default())
                .collect();
            let mut notes = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let next = ids[(i + 1) % ids.len()];
                if let Some(at) = needs_at.get(&(*id, next)) {
                    notes.push((
                        Location::resolve(self.sources, at, Part::Value),
                        format!("`{id}` needs `{next}` here"),
                    ));
                }
            }
            if notes.is_empty() {
                continue;
            }
            let (first, _) = notes.remove(0);
            let mut diagnostic = Diagnostic::new(first, message)
                .with_hint("remove one of these `needs` to break the cycle");
            diagnostic.notes = notes;
            self.diagnostics.push(diagnostic);
        }
    }
}

fn phase_order() -> &'static str {
    "distribute, refresh, verify, disable-old, verify_after_disable"
}

fn is_user_glob_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-*?".contains(c)
}

fn file_stem(sources: &Sources, root: &Origin) -> String {
    let path = sources.path(root.file);
    path.file_stem()
        .map_or_else(|| "workflow".into(), |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::policy::{clock, utc_offset};

    #[test]
    fn reads_clock_times_and_offsets() {
        assert_eq!(clock("02:30"), Some(150));
        assert_eq!(clock("24:00"), None);
        assert_eq!(clock("2:30"), None);
        assert_eq!(utc_offset("UTC"), Some(0));
        assert_eq!(utc_offset("+02:00"), Some(120));
        assert_eq!(utc_offset("-05:30"), Some(-330));
        assert_eq!(utc_offset("Europe/Berlin"), None);
    }
}
