//! `uses:`: loading each library (a cycle is an error naming the chain)
//! and binding its params to the `with:` values.

use super::*;

impl Loader {
    pub(super) fn merge_uses(&mut self, file: FileId, path: &Path, content: FileContent) -> Merged {
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

    pub(super) fn load_library(&mut self, dir: &Path, use_: &Placed<UseDoc>) -> Option<Merged> {
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
    pub(super) fn bind(&mut self, file: FileId, mut library: Merged, binding: Binding) -> Merged {
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
}
