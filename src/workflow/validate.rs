//! Validation: the rules that span fields, from a merged document to the
//! checked [`Workflow`] model.
//!
//! Shape errors (types, unknown keys) were found while loading; here are the
//! rules serde cannot express: exactly one kind per target and hook, ids
//! that can name steps, `needs` that resolve within their list and form no
//! cycle, a selection that selects, a window that parses. Every problem is
//! reported; the model is built only when there is none.
//!
//! Longer than 800 lines: every rule below reads and writes one
//! `Validator` (the diagnostics, the ids seen, the origins), and the kinds'
//! own checks already live in their modules. Its rules by section (ids,
//! selection, window, policy) are the next split.

use std::collections::HashMap;

use super::diagnostic::{
    Diagnostic, Diagnostics, Location, Part, Problem, Problems, did_you_mean, one_of,
};
use super::document::{DocKind, MakeRoom, OnVerifyFailure, WindowDoc};
use super::graph::{MakeRoomStep, StepGraph};
use super::loader::{Merged, Placed};
use super::model::{
    DEFAULT_CONCURRENCY, DEFAULT_MAX_KEY_AGE, DEFAULT_SOAK, Fleet, Hook, MAX_CONCURRENCY,
    Organization, Param, Policy, Selection, Staging, Target, Window, Workflow,
};
use super::source::{DocPath, Origin, Sources};
use super::vocabulary::{HookPhase, MAX_KEY_AGE_BOUND, MAX_SOAK};
use crate::hooks::HookDoc;
use crate::hooks::HookKind;
use crate::targets::TargetDoc;
use crate::targets::TargetKind;

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

    /// A param's `pattern` must be a regular expression.
    fn patterns(&mut self, merged: &Merged, root: &Origin) {
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
    fn shell_params(&mut self, workflow: &Workflow, merged: &Merged) {
        let commands = merged
            .targets
            .iter()
            .filter_map(|t| Some((t.origin.key("exec"), t.item.exec.as_ref()?.command.clone())))
            .chain(merged.hooks.iter().filter_map(|(_, h)| {
                Some((h.origin.key("exec"), h.item.exec.as_ref()?.command.clone()))
            }));
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

    /// `state.s3`: a bucket name S3 accepts, a lease of at least 2s.
    fn state(&mut self, merged: &Merged) -> Option<crate::workflow::model::S3State> {
        let state = merged.state.as_ref()?;
        let at = state.origin.key("s3");
        let Some(s3) = &state.item.s3 else {
            self.error(
                &state.origin,
                Part::Key,
                "`state` needs `s3`",
                Some("write `state: { s3: { bucket: NAME } }`, or remove `state` to keep it in a local folder".into()),
            );
            return None;
        };
        let Some(bucket) = &s3.bucket else {
            self.error(
                &at,
                Part::Key,
                "`state.s3` needs `bucket`",
                Some("name the bucket that holds the state: `bucket: NAME`".into()),
            );
            return None;
        };
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            self.error(
                &at.key("bucket"),
                Part::Value,
                format!("`{bucket}` is not an S3 bucket name"),
                Some("3 to 63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit".into()),
            );
        }
        if let Some(lease) = s3.lease
            && lease.to_std() < std::time::Duration::from_secs(2)
        {
            self.error(
                &at.key("lease"),
                Part::Value,
                "the lease must last at least 2s",
                Some("it is renewed every quarter of its lifetime; `2m` (the default) suits most runs".into()),
            );
        }
        Some(crate::workflow::model::S3State {
            bucket: bucket.clone(),
            prefix: s3.prefix.clone(),
            region: s3.region.clone(),
            kms_key_id: s3.kms_key_id.clone(),
            lease: s3.lease.map(|l| l.to_std()),
        })
    }

    /// `accounts`: the pin (`allowed`) and the fan-out (`ids`,
    /// `organization`, `exclude`, `role`, `external_id`).
    fn accounts(&mut self, merged: &Merged) -> (Vec<String>, Option<Fleet>) {
        let Some(accounts) = &merged.accounts else {
            return (Vec::new(), None);
        };
        let doc = &accounts.item;
        let at = &accounts.origin;
        let fans_out = !doc.ids.is_empty() || doc.organization.is_some();
        if doc.allowed.is_empty() && !fans_out {
            self.error(
                at,
                Part::Key,
                "`accounts` names no account",
                Some("list `allowed` (the accounts the workflow may run in), or `ids` or `organization` (the accounts it rotates in), or remove `accounts`".into()),
            );
        }
        for list in ["allowed", "ids", "exclude"] {
            let ids = match list {
                "allowed" => &doc.allowed,
                "ids" => &doc.ids,
                _ => &doc.exclude,
            };
            for (i, id) in ids.iter().enumerate() {
                if !is_account_id(id) {
                    self.error(
                        &at.key(list).index(i),
                        Part::Value,
                        format!("`{id}` is not an AWS account id"),
                        Some("an account id is 12 digits, quoted: \"123456789012\"".into()),
                    );
                }
            }
        }
        if let Some(organization) = &doc.organization {
            if organization.ous.as_ref().is_some_and(Vec::is_empty) {
                self.error(
                    &at.key("organization").key("ous"),
                    Part::Value,
                    "`ous` lists no OU",
                    Some("name the OUs to rotate in, or remove `ous` to rotate in the whole Organization".into()),
                );
            }
            for (i, ou) in organization.ous.iter().flatten().enumerate() {
                if !is_ou_id(ou) {
                    self.error(
                        &at.key("organization").key("ous").index(i),
                        Part::Value,
                        format!("`{ou}` is not an OU id"),
                        Some("an OU id looks like `ou-abcd-12345678`, the root's like `r-abcd` (`aws organizations list-organizational-units-for-parent`)".into()),
                    );
                }
            }
        }
        if !fans_out {
            for field in ["exclude", "role", "external_id"] {
                let set = match field {
                    "exclude" => !doc.exclude.is_empty(),
                    "role" => doc.role.is_some(),
                    _ => doc.external_id.is_some(),
                };
                if set {
                    self.error(
                        &at.key(field),
                        Part::Key,
                        format!("`accounts.{field}` without `ids` or `organization`"),
                        Some("it applies to the accounts a workflow fans out to: add `ids` or `organization`, or remove it".into()),
                    );
                }
            }
            return (doc.allowed.clone(), None);
        }
        let Some(role) = &doc.role else {
            self.error(
                at,
                Part::Key,
                "`accounts.role` is missing: rekey reaches each account by assuming a role there",
                Some("add `role: RekeyRotation` (a role name), or an ARN template such as `arn:aws:iam::${account}:role/RekeyRotation`".into()),
            );
            return (doc.allowed.clone(), None);
        };
        let text = role.as_str();
        if !role_is_valid(&text.replace("${account}", "123456789012")) {
            self.error(
                &at.key("role"),
                Part::Value,
                format!("`{text}` is neither a role name nor a role ARN"),
                Some("write the role's name (`RekeyRotation`, or with its path `team/RekeyRotation`) or `arn:aws:iam::${account}:role/NAME`".into()),
            );
        } else if text.starts_with("arn:") && !text.contains("${account}") {
            self.error(
                &at.key("role"),
                Part::Value,
                "`accounts.role` is an ARN without `${account}`: every account would assume the same role",
                Some("write `arn:aws:iam::${account}:role/NAME`, or just the role's name".into()),
            );
        }
        let fleet = Fleet {
            ids: doc.ids.clone(),
            organization: doc.organization.as_ref().map(|o| Organization {
                ous: o.ous.clone().unwrap_or_default(),
                tags: o.tags.clone(),
            }),
            exclude: doc.exclude.clone(),
            role: role.clone(),
            external_id: doc.external_id.clone(),
        };
        (doc.allowed.clone(), Some(fleet))
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

    fn policy(&mut self, merged: &Merged) -> Option<Policy> {
        let doc = &merged.policy;
        let at = |field: &str| merged.policy_origins.get(field).cloned();
        let concurrency = doc.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency)
            && let Some(at) = at("concurrency")
        {
            let hint = format!(
                "rotate between 1 and {MAX_CONCURRENCY} users at once; IAM's rate limits make more no faster"
            );
            self.error(
                &at,
                Part::Value,
                format!("concurrency {concurrency} is out of range"),
                Some(hint),
            );
        }
        let account_concurrency = doc.account_concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&account_concurrency)
            && let Some(at) = at("account_concurrency")
        {
            self.error(
                &at,
                Part::Value,
                format!("account_concurrency {account_concurrency} is out of range"),
                Some(format!(
                    "work in between 1 and {MAX_CONCURRENCY} accounts at once"
                )),
            );
        }
        if let Some(at) = at("soak")
            && let Some(problem) = Problem::too_long(at, "soak", doc.soak, MAX_SOAK)
        {
            self.problems(vec![problem]);
        }
        let window = match (&doc.window, at("window")) {
            (Some(window), Some(at)) => self.window(window, &at),
            _ => None,
        };
        Some(Policy {
            soak: doc.soak.unwrap_or(DEFAULT_SOAK),
            on_verify_failure: doc.on_verify_failure.unwrap_or(OnVerifyFailure::Rollback),
            make_room: doc.make_room.unwrap_or(MakeRoom::Refuse),
            concurrency,
            account_concurrency,
            window,
        })
    }

    fn window(&mut self, doc: &WindowDoc, at: &Origin) -> Option<Window> {
        let between = doc
            .between
            .split_once('-')
            .and_then(|(a, b)| Some((clock(a)?, clock(b)?)));
        let Some((start_minute, end_minute)) = between.filter(|(a, b)| a != b) else {
            let hint = "write the window as `HH:MM-HH:MM` in 24-hour time, e.g. `02:00-05:00`";
            self.error(
                &at.key("between"),
                Part::Value,
                format!("`{}` is not a time range", doc.between),
                Some(hint.into()),
            );
            return None;
        };
        let zone = doc.timezone.as_deref().unwrap_or("UTC");
        let Some(utc_offset_minutes) = utc_offset(zone) else {
            let hint =
                "use `UTC` or a fixed offset such as `+02:00` (named zones are not supported yet)";
            self.error(
                &at.key("timezone"),
                Part::Value,
                format!("unknown timezone `{zone}`"),
                Some(hint.into()),
            );
            return None;
        };
        let mut days = doc.days.clone();
        days.sort();
        days.dedup();
        Some(Window {
            days,
            start_minute,
            end_minute,
            utc_offset_minutes,
        })
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

/// `HH:MM` to minutes since midnight.
fn clock(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// `UTC`, `Z` or `+HH:MM`/`-HH:MM` to minutes east of UTC.
fn utc_offset(zone: &str) -> Option<i16> {
    if zone.eq_ignore_ascii_case("utc") || zone == "Z" {
        return Some(0);
    }
    let sign = match zone.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let minutes = clock(&zone[1..])? as i16;
    (minutes <= 14 * 60).then_some(sign * minutes)
}

fn file_stem(sources: &Sources, root: &Origin) -> String {
    let path = sources.path(root.file);
    path.file_stem()
        .map_or_else(|| "workflow".into(), |s| s.to_string_lossy().into_owned())
}

/// Whether `id` is an AWS account id: 12 digits.
pub fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.chars().all(|c| c.is_ascii_digit())
}

/// Whether `id` is an OU id (`ou-abcd-12345678`) or a root's (`r-abcd`).
fn is_ou_id(id: &str) -> bool {
    let lower = |s: &str, min: usize| {
        (min..=32).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    };
    match id.strip_prefix("ou-").map(|rest| rest.split_once('-')) {
        Some(Some((root, ou))) => lower(root, 4) && lower(ou, 8),
        Some(None) => false,
        None => id.strip_prefix("r-").is_some_and(|root| lower(root, 4)),
    }
}

/// Whether a role, written as a name (with its path) or an ARN, once
/// `${account}` is filled in, is one that can be assumed. A role still
/// naming a param is judged when the param is known.
pub fn role_is_valid(role: &str) -> bool {
    if role.contains("${") {
        return true;
    }
    let name_ok = |name: &str| {
        let parts: Vec<&str> = name.split('/').collect();
        parts.iter().all(|p| {
            !p.is_empty()
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        }) && parts.last().is_some_and(|n| n.len() <= 64)
    };
    match role.strip_prefix("arn:") {
        Some(rest) => {
            let fields: Vec<&str> = rest.splitn(5, ':').collect();
            matches!(fields.as_slice(), [partition, "iam", "", account, resource]
                if partition.starts_with("aws")
                    && is_account_id(account)
                    && resource.strip_prefix("role/").is_some_and(name_ok))
        }
        None => name_ok(role),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
