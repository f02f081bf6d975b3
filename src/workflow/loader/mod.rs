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
use serde_yaml_ng::{Mapping, Value};

use super::diagnostic::{Diagnostic, Diagnostics, Location, Part, did_you_mean, one_of};
use super::document::{
    AccountsDoc, DocKind, ParamDoc, PolicyDoc, SelectDoc, StagingDoc, StateDoc, UseDoc,
};
use super::source::{DocPath, FileId, Origin, Pos, SourceFile, Sources};
use super::template::{Scope, Template};
use super::vocabulary::Templates;
use crate::hooks::HookDoc;
use crate::hooks::HookKind;
use crate::targets::TargetDoc;
use crate::targets::TargetKind;
use crate::workflow::vocabulary::HookPhase;

mod merge;
mod read;
mod references;
mod uses;

use merge::Merger;

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
    "schedule",
];
const LIBRARY_FORBIDS: &[&str] = &["select", "staging", "accounts", "state", "schedule"];

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
    pub schedule: Option<Placed<String>>,
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

    fn error_at(&mut self, at: &Origin, part: Part, message: String, hint: Option<String>) {
        let mut diagnostic = Diagnostic::new(Location::resolve(&self.sources, at, part), message);
        diagnostic.hint = hint;
        self.diagnostics.push(diagnostic);
    }

    fn syntax_error(&mut self, file: FileId, error: &serde_yaml_ng::Error) {
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
        error: serde_path_to_error::Error<serde_yaml_ng::Error>,
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
    let Ok(Value::Mapping(fields)) = serde_yaml_ng::to_value(policy) else {
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
