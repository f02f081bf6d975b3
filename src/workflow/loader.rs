//! Loading: from a file path to one merged document, collecting every error.
//!
//! Each file is parsed to a YAML value, then deserialized one section (and
//! one list item) at a time, so one bad target does not hide the next. The
//! references in each file are checked against that file's own params before
//! anything is merged: a library is checked in its namespace, the `with:`
//! values that bind it in the namespace of the file that uses it.
//!
//! Merge rules for `uses:` (documented in README.md, "Reusable workflows"):
//!
//! - A used file must say `kind: library`. A library may hold params, uses,
//!   targets, hooks and policy, but not `select` or `staging`.
//! - `with:` gives the library's params their values; a value may refer to
//!   the using file's params. A library param without a default that is not
//!   given is an error at the `uses:` entry; a `with:` key the library does
//!   not declare is an error at that key.
//! - Targets and hooks: the libraries' come first, in `uses:` order, then the
//!   file's own. Ids are one namespace across targets and hooks. The same id
//!   from two libraries is an error; the file's own item with an id a library
//!   also defines is an error unless it says `override: true`, and then it
//!   replaces the library's item (of the same list) where that item stood.
//! - Policy: field by field, the using file wins; a field two libraries set
//!   to different values is an error unless the using file sets it too.
//! - A `uses:` cycle is an error naming the chain of files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::diagnostic::{Diagnostic, Diagnostics, Location, Part, did_you_mean, one_of};
use super::document::{
    AccountsDoc, DocKind, HookDoc, ParamDoc, PolicyDoc, SelectDoc, StagingDoc, StateDoc, TargetDoc,
    Templates, UseDoc,
};
use super::source::{DocPath, FileId, Origin, Pos, SourceFile, Sources};
use super::template::{Scope, Template};
use crate::workflow::model::{HookKind, HookPhase, TargetKind};

/// Top-level keys of a workflow file (the properties of `WorkflowDoc`).
pub const TOP_KEYS: &[&str] = &[
    "version",
    "kind",
    "name",
    "description",
    "params",
    "uses",
    "select",
    "staging",
    "targets",
    "hooks",
    "policy",
    "accounts",
    "state",
];
const LIBRARY_FORBIDS: &[&str] = &["select", "staging", "accounts", "state"];

/// A target or hook with where it was written.
#[derive(Debug, Clone)]
pub struct Placed<T> {
    pub item: T,
    pub origin: Origin,
}

/// A workflow and all its libraries, merged into the root file's namespace.
#[derive(Debug, Default)]
pub struct Merged {
    pub root: Option<FileId>,
    pub version: Option<(u32, Origin)>,
    pub kind: DocKind,
    pub name: Option<String>,
    pub description: Option<String>,
    pub params: BTreeMap<String, ParamDoc>,
    pub select: Option<Placed<SelectDoc>>,
    pub staging: Option<Placed<StagingDoc>>,
    pub accounts: Option<Placed<AccountsDoc>>,
    pub state: Option<Placed<StateDoc>>,
    pub targets: Vec<Placed<TargetDoc>>,
    pub hooks: Vec<(HookPhase, Placed<HookDoc>)>,
    pub policy: PolicyDoc,
    /// Where each policy field that is set was written.
    pub policy_origins: BTreeMap<String, Origin>,
    /// Targets and hooks that failed to load (and were reported).
    pub broken: Broken,
    /// Whether the root file parsed into a mapping at all.
    pub parsed: bool,
    /// Top-level keys the root file wrote, or meant where a misspelt key
    /// has a close match, even if their value failed to load: nothing is
    /// reported missing that is there but wrong.
    pub written: HashSet<String>,
}

/// Targets and hooks that failed to load. A `needs` naming one is not
/// reported again, nor is a list "empty" that only had broken entries.
#[derive(Debug, Default)]
pub struct Broken {
    pub ids: HashSet<String>,
    pub count: usize,
}

impl Broken {
    fn add(&mut self, id: Option<String>) {
        self.ids.extend(id);
        self.count += 1;
    }

    fn absorb(&mut self, other: Broken) {
        self.ids.extend(other.ids);
        self.count += other.count;
    }
}

/// Why a workflow could not be loaded at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Reads `path` and every library it uses. Returns the merged document with
/// the diagnostics found so far; the caller validates it further.
pub fn load(path: &Path) -> Result<(Merged, Sources, Diagnostics), ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(load_str(path, text))
}

/// Like [`load`], with the root file's text already in hand; `uses:` paths
/// are still read relative to `path`.
pub fn load_str(path: &Path, text: String) -> (Merged, Sources, Diagnostics) {
    let mut loader = Loader::default();
    let merged = loader.load_file(path, text, None);
    (merged, loader.sources, loader.diagnostics)
}

/// The `uses:` entry a library is loaded for, and the values it binds.
struct Binding<'u> {
    site: Origin,
    with: &'u BTreeMap<String, (String, Origin)>,
}

#[derive(Default)]
struct Loader {
    sources: Sources,
    diagnostics: Diagnostics,
    /// Canonical paths of the files being loaded, outermost first.
    stack: Vec<PathBuf>,
}

/// One file's own content, before its `uses:` are merged in.
#[derive(Default)]
struct FileContent {
    merged: Merged,
    uses: Vec<Placed<UseDoc>>,
}

impl Loader {
    fn load_file(&mut self, path: &Path, text: String, binding: Option<Binding>) -> Merged {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let file = self.sources.add(SourceFile::new(path.to_path_buf(), text));
        self.stack.push(canonical);
        let content = self.read_file(file);
        let merged = self.merge_uses(file, path, content);
        self.stack.pop();
        match binding {
            Some(binding) => self.bind(file, merged, binding),
            None => merged,
        }
    }

    // ---- reading one file ------------------------------------------------

    fn read_file(&mut self, file: FileId) -> FileContent {
        let mut content = FileContent::default();
        content.merged.root = Some(file);
        let source = self.sources.get(file);
        if let Some(pos) = super::source::too_deep(&source.text) {
            let message = format!(
                "collections nest deeper than {} levels",
                super::source::MAX_DEPTH
            );
            let location = Location::at(&self.sources, file, pos);
            self.diagnostics.push(
                Diagnostic::new(location, message)
                    .with_hint("a workflow never needs this; is the file what you meant to give?"),
            );
            return content;
        }
        let duplicates = source.positions.duplicates().to_vec();
        let value: Value = match serde_yaml::from_str(&source.text) {
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
            .and_then(|(_, value)| serde_yaml::from_value::<DocKind>(value.clone()).ok())
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

    fn read_section(
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
            let hint = "only the workflow that uses a library selects users and stages keys; move this there";
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

    fn hooks(
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
    fn mapping(&mut self, at: &Origin, value: Value, what: &str) -> Option<Vec<(String, Value)>> {
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
    fn items<T: DeserializeOwned>(
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

    fn placed<T: DeserializeOwned>(&mut self, at: &Origin, value: Value) -> Option<Placed<T>> {
        self.read(at, value).map(|item| Placed {
            item,
            origin: at.clone(),
        })
    }

    /// Deserializes `value`, reporting every problem in it: after each
    /// error the offending entry is removed and the rest read again, so two
    /// mistakes in one mapping are both reported. `None` if there was any.
    fn read<T: DeserializeOwned>(&mut self, at: &Origin, mut value: Value) -> Option<T> {
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

    // ---- references -------------------------------------------------------

    fn check_templates(&mut self, file: FileId, content: &mut FileContent) {
        let params: Vec<String> = content.merged.params.keys().cloned().collect();
        for name in &params {
            if !super::template::is_param_name(name) {
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
    fn locate_in_string(&self, origin: &Origin, needle: &str) -> Location {
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

    // ---- uses --------------------------------------------------------------

    fn merge_uses(&mut self, file: FileId, path: &Path, content: FileContent) -> Merged {
        let FileContent { merged: own, uses } = content;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut libraries = Vec::new();
        for use_ in uses {
            if let Some(library) = self.load_library(dir, &use_) {
                libraries.push(library);
            }
        }
        let mut merger = Merger::new(self);
        for library in libraries {
            merger.add_library(library);
        }
        merger.add_own(file, own)
    }

    fn load_library(&mut self, dir: &Path, use_: &Placed<UseDoc>) -> Option<Merged> {
        let file_at = use_.origin.key("file");
        let path = normalize(&dir.join(&use_.item.file));
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if let Some(start) = self.stack.iter().position(|p| *p == canonical) {
            let chain: Vec<String> = self.stack[start..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| short_name(p))
                .collect();
            let message = format!("`uses:` cycle: {}", chain.join(" -> "));
            self.error_at(
                &file_at,
                Part::Value,
                message,
                Some("a library cannot use, directly or not, a file that uses it".into()),
            );
            return None;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                let message = format!("cannot read `{}`: {}", path.display(), io_reason(&error));
                let hint = "`file:` is relative to the file that has the `uses:`";
                self.error_at(&file_at, Part::Value, message, Some(hint.into()));
                return None;
            }
        };
        let with: BTreeMap<String, (String, Origin)> = use_
            .item
            .with
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    (v.0.clone(), use_.origin.key("with").key(k.as_str())),
                )
            })
            .collect();
        let binding = Binding {
            site: use_.origin.clone(),
            with: &with,
        };
        let library = self.load_file(&path, text, Some(binding));
        if library.kind != DocKind::Library {
            let message = format!("`{}` is a workflow, not a library", use_.item.file);
            let hint = "add `kind: library` to the file that is meant to be shared";
            self.error_at(&file_at, Part::Value, message, Some(hint.into()));
            return None;
        }
        Some(library)
    }

    /// Gives a library's params the values of its `uses:` entry: every
    /// `${params.NAME}` in its targets and hooks becomes the `with:` value
    /// (written in the using file's namespace) or the default (a literal).
    fn bind(&mut self, file: FileId, mut library: Merged, binding: Binding) -> Merged {
        let mut values = BTreeMap::new();
        // A misspelt `with:` key is reported once, not also as a missing param.
        let mut meant = HashSet::new();
        for (name, (value, origin)) in binding.with {
            if library.params.contains_key(name) {
                values.insert(name.clone(), value.clone());
            } else {
                let declared: Vec<&str> = library.params.keys().map(String::as_str).collect();
                let library_name = self.sources.path(file).display().to_string();
                let hint = match did_you_mean(name, declared.iter().copied()) {
                    Some(close) => {
                        meant.insert(close.to_string());
                        format!("did you mean `{close}`?")
                    }
                    None if declared.is_empty() => "it declares no params".into(),
                    None => format!("it declares {}", one_of(declared.iter().copied())),
                };
                self.error_at(
                    origin,
                    Part::Key,
                    format!("`{library_name}` has no param `{name}`"),
                    Some(hint),
                );
            }
        }
        for (name, param) in &library.params {
            if values.contains_key(name) || meant.contains(name) {
                continue;
            }
            match &param.default {
                Some(default) => {
                    values.insert(name.clone(), default.0.clone());
                }
                None => {
                    let library_name = self.sources.path(file).display().to_string();
                    let message = format!("missing param `{name}` for `{library_name}`");
                    let hint = format!("give it under `with:`, e.g. `with: {{ {name}: ... }}`");
                    self.error_at(&binding.site, Part::Key, message, Some(hint));
                }
            }
        }
        let mut found = Vec::new();
        for target in &mut library.targets {
            collect(&mut found, &target.origin, Scope::Item, &mut target.item);
        }
        for (_, hook) in &mut library.hooks {
            collect(&mut found, &hook.origin, Scope::Item, &mut hook.item);
        }
        for (_, _, template) in found {
            *template = template.substitute_params(&values);
        }
        library.params.clear();
        library
    }

    // ---- errors -----------------------------------------------------------

    fn error_at(&mut self, at: &Origin, part: Part, message: String, hint: Option<String>) {
        let mut diagnostic = Diagnostic::new(Location::resolve(&self.sources, at, part), message);
        diagnostic.hint = hint;
        self.diagnostics.push(diagnostic);
    }

    fn syntax_error(&mut self, file: FileId, error: &serde_yaml::Error) {
        let pos = error
            .location()
            .map(|l| Pos {
                line: l.line(),
                col: l.column(),
                width: 1,
            })
            .unwrap_or(Pos::START);
        let (message, hint) = super::messages::syntax(&error.to_string());
        let mut diagnostic = Diagnostic::new(Location::at(&self.sources, file, pos), message);
        diagnostic.hint = hint;
        self.diagnostics.push(diagnostic);
    }

    /// Reports a deserialization error; returns the key if it was an
    /// unknown one.
    fn shape_error(
        &mut self,
        at: &Origin,
        error: serde_path_to_error::Error<serde_yaml::Error>,
    ) -> Option<String> {
        let mut path = at.path.clone();
        for segment in error.path().iter() {
            path = match segment {
                serde_path_to_error::Segment::Seq { index } => path.index(*index),
                serde_path_to_error::Segment::Map { key } => path.key(key.as_str()),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => continue,
            };
        }
        let origin = Origin::new(at.file, path);
        let problem = super::messages::shape(&error.inner().to_string());
        match problem {
            super::messages::Shape::UnknownKey { key, expected } => {
                // serde_path_to_error stops at the mapping that holds the key.
                let key_at = if origin.path.last_key() == Some(key.as_str()) {
                    origin.clone()
                } else {
                    origin.key(key.as_str())
                };
                let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
                let kinds = kinds_hint(&key_at.path, &key);
                self.unknown_key(&key_at, &key, &expected, kinds);
                Some(key)
            }
            super::messages::Shape::Other {
                message,
                hint,
                on_key,
            } => {
                let part = if on_key { Part::Key } else { Part::Value };
                self.error_at(&origin, part, message, hint);
                None
            }
        }
    }

    fn unknown_key(&mut self, at: &Origin, key: &str, expected: &[&str], kinds: Option<String>) {
        let hint = match did_you_mean(key, expected.iter().copied()) {
            Some(close) => Some(format!("did you mean `{close}`?")),
            None => {
                kinds.or_else(|| Some(format!("expected {}", one_of(expected.iter().copied()))))
            }
        };
        self.error_at(at, Part::Key, format!("unknown key `{key}`"), hint);
    }
}

/// Removes what an error was about from `value` so the rest can be read
/// again: the unknown `key` in the mapping at `path`, or the entry at
/// `path` (a whole list for a bad list entry: removing one entry would
/// shift the positions of the next). False if there is nothing to remove.
fn remove(value: &mut Value, path: &serde_path_to_error::Path, unknown_key: Option<&str>) -> bool {
    let mut segments: Vec<&serde_path_to_error::Segment> = path.iter().collect();
    if let Some(key) = unknown_key {
        let holder = if matches!(segments.last(), Some(serde_path_to_error::Segment::Map { key: k }) if k == key)
        {
            segments.pop();
            segments
        } else {
            segments
        };
        return match walk(value, &holder) {
            Some(Value::Mapping(mapping)) => mapping.remove(key).is_some(),
            _ => false,
        };
    }
    while let Some(serde_path_to_error::Segment::Seq { .. }) = segments.last() {
        segments.pop();
    }
    let Some(serde_path_to_error::Segment::Map { key }) = segments.pop() else {
        return false;
    };
    match walk(value, &segments) {
        Some(Value::Mapping(mapping)) => mapping.remove(key.as_str()).is_some(),
        _ => false,
    }
}

fn walk<'v>(
    value: &'v mut Value,
    segments: &[&serde_path_to_error::Segment],
) -> Option<&'v mut Value> {
    let mut value = value;
    for segment in segments {
        value = match segment {
            serde_path_to_error::Segment::Map { key } => value.get_mut(key.as_str())?,
            serde_path_to_error::Segment::Seq { index } => value.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

/// For an unknown key directly in a target or hook, the kinds there are.
fn kinds_hint(path: &DocPath, key: &str) -> Option<String> {
    let segments = path.segments();
    let parent_is = |name: &str| {
        segments.len() >= 3
            && matches!(&segments[segments.len() - 3], super::source::Segment::Key(k) if k == name)
    };
    let in_hooks = segments.len() >= 4
        && matches!(&segments[segments.len() - 4], super::source::Segment::Key(k) if k == "hooks");
    if parent_is("targets") && segments.len() == 3 {
        Some(format!(
            "`{key}` is not a target kind; target kinds are {}",
            one_of(TargetKind::KEYS.iter().copied())
        ))
    } else if in_hooks && segments.len() == 4 {
        Some(format!(
            "`{key}` is not a hook kind; hook kinds are {}",
            one_of(HookKind::KEYS.iter().copied())
        ))
    } else {
        None
    }
}

fn collect<'a, T: Templates>(
    found: &mut Vec<(Origin, Scope, &'a mut Template)>,
    origin: &Origin,
    scope: Scope,
    item: &'a mut T,
) {
    let mut templates = Vec::new();
    item.templates_mut(&origin.path, &mut templates);
    found.extend(
        templates
            .into_iter()
            .map(|(path, t)| (Origin::new(origin.file, path), scope, t)),
    );
}

/// The fields of a policy that are set, as YAML values, for a field-wise merge.
fn set_fields(policy: &PolicyDoc) -> BTreeMap<String, Value> {
    let Ok(Value::Mapping(fields)) = serde_yaml::to_value(policy) else {
        return BTreeMap::new();
    };
    fields
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .filter_map(|(key, value)| key.as_str().map(|key| (key.to_string(), value)))
        .collect()
}

/// What a YAML value is, for messages.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// `a/b/../c` as `a/c`, without touching the file system, so messages show
/// the path a user would write.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn short_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

/// Merges libraries and a file's own content by the rules in the module doc.
struct Merger<'l> {
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
    fn new(loader: &'l mut Loader) -> Self {
        Self {
            loader,
            merged: Merged::default(),
            ids: HashMap::new(),
            library_policy: BTreeMap::new(),
        }
    }

    fn add_library(&mut self, library: Merged) {
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

    fn add_own(mut self, file: FileId, own: Merged) -> Merged {
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
        self.merged.policy = serde_yaml::from_value(Value::Mapping(mapping)).unwrap_or_default();
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
