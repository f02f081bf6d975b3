//! The merge rules of `uses:` (the parent module's doc states them):
//! libraries' items first, the file's own after, ids one namespace,
//! `override: true` to replace, policy field by field.

use super::*;

/// Merges libraries and a file's own content by the rules in the module doc.
pub(super) struct Merger<'l> {
    loader: &'l mut Loader,
    merged: Merged,
    /// Every id so far: where it was defined and in which list.
    ids: HashMap<String, (Origin, List)>,
    /// Policy fields set by libraries: each value and where it was set.
    library_policy: BTreeMap<String, Vec<(Value, Origin)>>,
}

/// Which list an item belongs to; `needs` and `override` stay within one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Targets,
    Hooks(HookPhase),
}

impl<'l> Merger<'l> {
    pub(super) fn new(loader: &'l mut Loader) -> Self {
        Self {
            loader,
            merged: Merged::default(),
            ids: HashMap::new(),
            library_policy: BTreeMap::new(),
        }
    }

    pub(super) fn add_library(&mut self, library: Merged) {
        self.merged.broken.absorb(library.broken);
        for target in library.targets {
            if self.claim(&target.item.id, &target.origin, List::Targets) {
                self.merged.targets.push(target);
            }
        }
        for (phase, hook) in library.hooks {
            if self.claim(&hook.item.id, &hook.origin, List::Hooks(phase)) {
                self.merged.hooks.push((phase, hook));
            }
        }
        for (field, value) in set_fields(&library.policy) {
            let Some(origin) = library.policy_origins.get(&field).cloned() else {
                continue;
            };
            self.library_policy
                .entry(field)
                .or_default()
                .push((value, origin));
        }
    }

    pub(super) fn add_own(mut self, file: FileId, own: Merged) -> Merged {
        self.merged.broken.absorb(own.broken);
        for target in own.targets {
            self.place_target(target);
        }
        for (phase, hook) in own.hooks {
            self.place_hook(phase, hook);
        }
        let mut policy: BTreeMap<String, (Value, Origin)> = BTreeMap::new();
        for (field, value) in set_fields(&own.policy) {
            if let Some(origin) = own.policy_origins.get(&field) {
                policy.insert(field, (value, origin.clone()));
            }
        }
        for (field, values) in std::mem::take(&mut self.library_policy) {
            if policy.contains_key(&field) {
                continue;
            }
            let (first, first_at) = values[0].clone();
            if let Some((_, other_at)) = values.iter().find(|(value, _)| *value != first) {
                self.policy_conflict(&field, other_at, &first_at);
            }
            policy.insert(field, (first, first_at));
        }
        let mapping: Mapping = policy
            .iter()
            .map(|(f, (v, _))| (Value::String(f.clone()), v.clone()))
            .collect();
        self.merged.policy = serde_yaml_ng::from_value(Value::Mapping(mapping)).unwrap_or_default();
        self.merged.policy_origins = policy.into_iter().map(|(f, (_, o))| (f, o)).collect();
        Merged {
            root: Some(file),
            version: own.version,
            kind: own.kind,
            name: own.name,
            description: own.description,
            params: own.params,
            select: own.select,
            staging: own.staging,
            accounts: own.accounts,
            state: own.state,
            schedule: own.schedule,
            parsed: own.parsed,
            written: own.written,
            ..self.merged
        }
    }

    fn policy_conflict(&mut self, field: &str, at: &Origin, first_at: &Origin) {
        let location = Location::resolve(&self.loader.sources, at, Part::Key);
        let first = Location::resolve(&self.loader.sources, first_at, Part::Key);
        let message = format!("two libraries set `policy.{field}` differently");
        let hint = format!("set `policy.{field}` in the workflow that uses them to decide");
        let diagnostic = Diagnostic::new(location, message)
            .with_hint(hint)
            .with_note(first, "the other value is set here");
        self.loader.diagnostics.push(diagnostic);
    }

    fn place_target(&mut self, target: Placed<TargetDoc>) {
        let id = target.item.id.clone();
        match self.resolve_own(&id, &target.origin, List::Targets, target.item.overrides) {
            Placement::New => self.merged.targets.push(target),
            Placement::Replace => {
                if let Some(existing) = self.merged.targets.iter_mut().find(|t| t.item.id == id) {
                    *existing = target;
                }
            }
            Placement::Drop => {}
        }
    }

    fn place_hook(&mut self, phase: HookPhase, hook: Placed<HookDoc>) {
        let id = hook.item.id.clone();
        match self.resolve_own(&id, &hook.origin, List::Hooks(phase), hook.item.overrides) {
            Placement::New => self.merged.hooks.push((phase, hook)),
            Placement::Replace => {
                if let Some(existing) = self.merged.hooks.iter_mut().find(|(_, h)| h.item.id == id)
                {
                    *existing = (phase, hook);
                }
            }
            Placement::Drop => {}
        }
    }

    /// Decides what the file's own item with `id` does: add, replace a
    /// library's item, or nothing (after reporting why).
    fn resolve_own(&mut self, id: &str, origin: &Origin, list: List, overrides: bool) -> Placement {
        let Some((existing, existing_list)) = self.ids.get(id).cloned() else {
            if overrides {
                let message =
                    format!("`{id}` says `override: true`, but no library defines `{id}`");
                let hint = "remove `override: true`, or check the id against the library's";
                self.loader.error_at(
                    &origin.key("override"),
                    Part::Key,
                    message,
                    Some(hint.into()),
                );
            }
            self.ids.insert(id.to_string(), (origin.clone(), list));
            return Placement::New;
        };
        let from_library = existing.file != origin.file;
        if from_library && overrides && existing_list == list {
            self.ids.insert(id.to_string(), (origin.clone(), list));
            return Placement::Replace;
        }
        let hint = if from_library && overrides {
            "an override must be of the same list (targets, or the same hook phase) as what it replaces".to_string()
        } else if from_library {
            "add `override: true` to replace the library's definition, or choose another id"
                .to_string()
        } else {
            "ids must be unique across targets and hooks".to_string()
        };
        self.duplicate(id, origin, &existing, hint);
        Placement::Drop
    }

    /// Records a library's item id; false (after reporting) if it is taken.
    fn claim(&mut self, id: &str, origin: &Origin, list: List) -> bool {
        match self.ids.get(id).cloned() {
            None => {
                self.ids.insert(id.to_string(), (origin.clone(), list));
                true
            }
            Some((existing, _)) => {
                let hint = "two libraries define it; rename it in one of them, or override it in the using file".to_string();
                self.duplicate(id, origin, &existing, hint);
                false
            }
        }
    }

    fn duplicate(&mut self, id: &str, origin: &Origin, existing: &Origin, hint: String) {
        let location = Location::resolve(&self.loader.sources, &origin.key("id"), Part::Value);
        let first = Location::resolve(&self.loader.sources, &existing.key("id"), Part::Value);
        let diagnostic = Diagnostic::new(location, format!("duplicate id `{id}`"))
            .with_hint(hint)
            .with_note(first, format!("`{id}` is first defined here"));
        self.loader.diagnostics.push(diagnostic);
    }
}

enum Placement {
    New,
    Replace,
    Drop,
}
