//! Reading one file: parsed to a YAML value, then deserialized one
//! section (and one list item) at a time, every problem reported.

use super::*;

impl Loader {
    pub(super) fn read_file(&mut self, file: FileId) -> FileContent {
        let mut content = FileContent::default();
        content.merged.root = Some(file);
        let source = self.sources.get(file);
        if let Some(pos) = crate::workflow::source::too_deep(&source.text) {
            let message = format!(
                "collections nest deeper than {} levels",
                crate::workflow::source::MAX_DEPTH
            );
            let location = Location::at(&self.sources, file, pos);
            self.diagnostics.push(
                Diagnostic::new(location, message)
                    .with_hint("a workflow never needs this; is the file what you meant to give?"),
            );
            return content;
        }
        let duplicates = source.positions.duplicates().to_vec();
        let value: Value = match serde_yaml_ng::from_str(&source.text) {
            Ok(value) => value,
            Err(error) => {
                if duplicates.is_empty() {
                    self.syntax_error(file, &error);
                }
                for (path, pos) in duplicates {
                    let key = path.last_key().unwrap_or_default().to_string();
                    let message = format!("`{key}` is written twice in the same mapping");
                    let hint = "remove one of them, or merge the two into one";
                    let location = Location::at(
                        &self.sources,
                        file,
                        Pos {
                            width: key.chars().count(),
                            ..pos
                        },
                    );
                    self.diagnostics
                        .push(Diagnostic::new(location, message).with_hint(hint));
                }
                return content;
            }
        };
        let root = Origin::new(file, DocPath::root());
        let Some(entries) = self.mapping(&root, value, "a workflow file") else {
            return content;
        };
        let kind = entries
            .iter()
            .find(|(key, _)| key == "kind")
            .and_then(|(_, value)| serde_yaml_ng::from_value::<DocKind>(value.clone()).ok())
            .unwrap_or_default();
        content.merged.kind = kind;
        content.merged.parsed = true;
        for (key, value) in entries {
            if !TOP_KEYS.contains(&key.as_str()) {
                content
                    .merged
                    .written
                    .extend(did_you_mean(&key, TOP_KEYS.iter().copied()).map(str::to_string));
            } else if key != "targets" {
                // An empty or broken `targets:` is judged by what it holds.
                content.merged.written.insert(key.clone());
            }
            let at = root.key(key.as_str());
            self.read_section(&mut content, &key, at, value, kind);
        }
        self.check_templates(file, &mut content);
        content
    }

    pub(super) fn read_section(
        &mut self,
        content: &mut FileContent,
        key: &str,
        at: Origin,
        value: Value,
        kind: DocKind,
    ) {
        let merged = &mut content.merged;
        if kind == DocKind::Library && LIBRARY_FORBIDS.contains(&key) {
            let message = format!("a library cannot set `{key}`");
            let hint = "only the workflow that uses a library says whose keys rotate, where they are staged and kept, and when it runs; move this there";
            self.error_at(&at, Part::Key, message, Some(hint.into()));
            return;
        }
        match key {
            "version" => merged.version = self.read(&at, value).map(|v| (v, at.clone())),
            "kind" => merged.kind = self.read(&at, value).unwrap_or_default(),
            "name" => merged.name = self.read(&at, value),
            "description" => merged.description = self.read(&at, value),
            "params" => merged.params = self.read(&at, value).unwrap_or_default(),
            "uses" => content.uses = self.items(&at, value, &mut Broken::default()),
            "select" => merged.select = self.placed(&at, value),
            "staging" => merged.staging = self.placed(&at, value),
            "accounts" => merged.accounts = self.placed(&at, value),
            "state" => merged.state = self.placed(&at, value),
            "schedule" => merged.schedule = self.placed(&at, value),
            "targets" => merged.targets = self.items(&at, value, &mut merged.broken),
            "hooks" => merged.hooks = self.hooks(&at, value, &mut merged.broken),
            "policy" => {
                if let Some(policy) = self.read::<PolicyDoc>(&at, value) {
                    merged.policy_origins = set_fields(&policy)
                        .keys()
                        .map(|field| (field.clone(), at.key(field.as_str())))
                        .collect();
                    merged.policy = policy;
                }
            }
            _ => self.unknown_key(&at, key, TOP_KEYS, None),
        }
    }

    pub(super) fn hooks(
        &mut self,
        at: &Origin,
        value: Value,
        broken: &mut Broken,
    ) -> Vec<(HookPhase, Placed<HookDoc>)> {
        let Some(entries) = self.mapping(at, value, "`hooks`") else {
            return Vec::new();
        };
        let mut hooks = Vec::new();
        for (key, value) in entries {
            let phase_at = at.key(key.as_str());
            match HookPhase::from_key(&key) {
                Some(phase) => hooks.extend(
                    self.items(&phase_at, value, broken)
                        .into_iter()
                        .map(|h| (phase, h)),
                ),
                None => self.unknown_key(&phase_at, &key, &HookPhase::KEYS, None),
            }
        }
        hooks
    }

    /// The entries of a mapping with text keys, or an error saying what was
    /// expected instead.
    pub(super) fn mapping(
        &mut self,
        at: &Origin,
        value: Value,
        what: &str,
    ) -> Option<Vec<(String, Value)>> {
        let mapping: Mapping = match value {
            Value::Mapping(mapping) => mapping,
            Value::Null if at.path.is_root() => {
                self.error_at(
                    at,
                    Part::Value,
                    "the file is empty".into(),
                    Some("a workflow starts with `version: 1`".into()),
                );
                return None;
            }
            other => {
                let message = format!(
                    "{what} must be a mapping of keys to values, not {}",
                    describe(&other)
                );
                self.error_at(at, Part::Value, message, None);
                return None;
            }
        };
        let mut entries = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            match key {
                Value::String(key) => entries.push((key, value)),
                other => {
                    let message = format!("keys must be text, not {}", describe(&other));
                    self.error_at(at, Part::Value, message, None);
                }
            }
        }
        Some(entries)
    }

    /// The entries of a list, each read on its own; `broken` gets the `id`
    /// of every entry that could not be read.
    pub(super) fn items<T: DeserializeOwned>(
        &mut self,
        at: &Origin,
        value: Value,
        broken: &mut Broken,
    ) -> Vec<Placed<T>> {
        let items = match value {
            Value::Sequence(items) => items,
            Value::Null => return Vec::new(),
            other => {
                let message = format!("`{}` must be a list, not {}", at.path, describe(&other));
                self.error_at(
                    at,
                    Part::Value,
                    message,
                    Some("write each entry on its own line starting with `- `".into()),
                );
                broken.add(None);
                return Vec::new();
            }
        };
        let mut placed = Vec::with_capacity(items.len());
        for (i, value) in items.into_iter().enumerate() {
            let id = value.get("id").and_then(Value::as_str).map(str::to_string);
            match self.placed(&at.index(i), value) {
                Some(item) => placed.push(item),
                None => broken.add(id),
            }
        }
        placed
    }

    pub(super) fn placed<T: DeserializeOwned>(
        &mut self,
        at: &Origin,
        value: Value,
    ) -> Option<Placed<T>> {
        self.read(at, value).map(|item| Placed {
            item,
            origin: at.clone(),
        })
    }

    /// Deserializes `value`, reporting every problem in it: after each
    /// error the offending entry is removed and the rest read again, so two
    /// mistakes in one mapping are both reported. `None` if there was any.
    pub(super) fn read<T: DeserializeOwned>(&mut self, at: &Origin, mut value: Value) -> Option<T> {
        const MAX_ERRORS_PER_VALUE: usize = 32;
        let mut failed = false;
        for _ in 0..MAX_ERRORS_PER_VALUE {
            match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(read) => return (!failed).then_some(read),
                Err(error) => {
                    failed = true;
                    let path = error.path().clone();
                    let unknown_key = self.shape_error(at, error);
                    if !remove(&mut value, &path, unknown_key.as_deref()) {
                        break;
                    }
                }
            }
        }
        None
    }
}
