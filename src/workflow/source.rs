//! Source files and positions.
//!
//! serde_yaml_ng reports a line and column only for errors it raises itself while
//! deserializing. Every check that runs afterwards (duplicate ids, unknown
//! `needs`, cycles, interpolation) must still point at the line a human has to
//! edit, so each file is also read once by yaml-rust2's event parser, which
//! reports markers, into a map from document path (`targets[1].needs[0]`) to
//! the position of the key and of the value written there.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One segment of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path into a YAML document, written the way users read it:
/// `targets[1].ssm_parameter.name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DocPath(Vec<Segment>);

impl DocPath {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.into()));
        next
    }

    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// Appends a relative path such as `command[0]` or `tags.team`.
    pub fn join(&self, relative: &DocPath) -> Self {
        let mut next = self.clone();
        next.0.extend(relative.0.iter().cloned());
        next
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn parent(&self) -> Option<DocPath> {
        let mut parent = self.clone();
        parent.0.pop().map(|_| parent)
    }

    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(key)) => Some(key),
            _ => None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_plain_key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write!(f, "[{key:?}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A 1-based line and column in a file, with the width of what is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
    pub width: usize,
}

impl Pos {
    pub const START: Pos = Pos {
        line: 1,
        col: 1,
        width: 1,
    };
}

/// Where a key and its value were written.
#[derive(Debug, Clone, Copy)]
struct Spot {
    key: Option<Pos>,
    value: Pos,
}

/// Map from document path to position, built once per file.
#[derive(Debug, Default)]
pub struct PositionMap {
    spots: HashMap<DocPath, Spot>,
    /// Keys written a second time in the same mapping, where they were.
    duplicates: Vec<(DocPath, Pos)>,
}

impl PositionMap {
    /// Reads the markers of `text`. A file yaml-rust2 cannot parse yields an
    /// empty map (serde_yaml_ng's own error then says where the syntax is wrong).
    pub fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Self::default();
        }
        Self {
            spots: builder.spots,
            duplicates: builder.duplicates,
        }
    }

    /// Keys written twice in one mapping: the path and the second place.
    pub fn duplicates(&self) -> &[(DocPath, Pos)] {
        &self.duplicates
    }

    /// The position of the value at `path`, or of the nearest ancestor that
    /// was written (a missing field is reported on the mapping that lacks it).
    pub fn value(&self, path: &DocPath) -> Pos {
        self.nearest(path, |spot| spot.value)
    }

    /// The position of the key that introduces `path` (for "unknown key"
    /// errors), falling back to the value.
    pub fn key(&self, path: &DocPath) -> Pos {
        self.nearest(path, |spot| spot.key.unwrap_or(spot.value))
    }

    pub fn contains(&self, path: &DocPath) -> bool {
        self.spots.contains_key(path)
    }

    fn nearest(&self, path: &DocPath, pick: impl Fn(&Spot) -> Pos) -> Pos {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            if let Some(spot) = self.spots.get(&path) {
                return pick(spot);
            }
            current = path.parent();
        }
        Pos::START
    }
}

/// One container being read: where it is, and for mappings the key whose
/// value comes next.
enum Frame {
    Seq {
        path: DocPath,
        next: usize,
    },
    Map {
        path: DocPath,
        key: Option<(String, Pos)>,
        seen: HashSet<String>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    spots: HashMap<DocPath, Spot>,
    duplicates: Vec<(DocPath, Pos)>,
}

impl Builder {
    /// Claims the slot the next node fills: the path it lives at and the
    /// position of its key, if it is a mapping value. `None` means the node
    /// is a mapping key.
    fn claim(&mut self) -> Option<(DocPath, Option<Pos>)> {
        match self.stack.last_mut() {
            None => Some((DocPath::root(), None)),
            Some(Frame::Seq { path, next }) => {
                let slot = path.index(*next);
                *next += 1;
                Some((slot, None))
            }
            Some(Frame::Map { path, key, .. }) => key
                .take()
                .map(|(key, key_pos)| (path.key(key), Some(key_pos))),
        }
    }

    fn record(&mut self, path: DocPath, key: Option<Pos>, value: Pos) {
        self.spots.entry(path).or_insert(Spot { key, value });
    }
}

fn pos_of(mark: Marker, width: usize) -> Pos {
    Pos {
        line: mark.line(),
        col: mark.col() + 1,
        width: width.max(1),
    }
}

fn scalar_width(value: &str, style: TScalarStyle) -> usize {
    if value.contains('\n') {
        return 1;
    }
    let quotes = match style {
        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => 2,
        _ => 0,
    };
    value.chars().count() + quotes
}

impl Builder {
    /// A scalar key of the innermost mapping. A block mapping's own marker
    /// sits after its first key, so the mapping is placed at that key: where
    /// a human reads it to start.
    fn key(&mut self, name: String, pos: Pos) {
        let Some(Frame::Map { path, key, seen }) = self.stack.last_mut() else {
            return;
        };
        if seen.is_empty()
            && let Some(spot) = self.spots.get_mut(path)
        {
            spot.value = Pos { width: 1, ..pos };
        }
        if !seen.insert(name.clone()) {
            self.duplicates.push((path.key(name.as_str()), pos));
        }
        *key = Some((name, pos));
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, style, ..) => {
                let width = scalar_width(&value, style);
                match self.claim() {
                    Some((path, key)) => self.record(path, key, pos_of(mark, width)),
                    None => self.key(value, pos_of(mark, width)),
                }
            }
            Event::Alias(_) => {
                if let Some((path, key)) = self.claim() {
                    self.record(path, key, pos_of(mark, 1));
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let is_seq = matches!(event, Event::SequenceStart(..));
                // A complex (non-scalar) mapping key has no path of its own:
                // its contents are filed under a placeholder that no lookup
                // will ever ask for.
                let (path, key) = self
                    .claim()
                    .unwrap_or_else(|| (DocPath::root().key("\u{0}complex-key"), None));
                self.record(path.clone(), key, pos_of(mark, 1));
                self.stack.push(if is_seq {
                    Frame::Seq { path, next: 0 }
                } else {
                    Frame::Map {
                        path,
                        key: None,
                        seen: HashSet::new(),
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// A file that was read, with its text and position map.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user should see it (relative where it was given so).
    pub path: PathBuf,
    pub text: String,
    pub positions: PositionMap,
}

/// How deep flow collections (`[`, `{`) may nest: far beyond any workflow.
pub const MAX_DEPTH: usize = 64;

/// Where `text` nests flow collections deeper than [`MAX_DEPTH`], found in
/// one pass: a YAML parser takes quadratic time (a 400 KB file of `[` took
/// 69 s), so such a file is refused before it is parsed.
pub fn too_deep(text: &str) -> Option<Pos> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, line) in text.lines().enumerate() {
        let mut previous = ' ';
        for (col, c) in line.chars().enumerate() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '#') if previous.is_whitespace() => break,
                (None, '"' | '\'') if depth > 0 || previous.is_whitespace() || previous == ':' => {
                    quote = Some(c)
                }
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some(Pos {
                            line: i + 1,
                            col: col + 1,
                            width: 1,
                        });
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
    }
    None
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> Self {
        let positions = if too_deep(&text).is_some() {
            PositionMap::default()
        } else {
            PositionMap::build(&text)
        };
        Self {
            path,
            text,
            positions,
        }
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        self.text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or_default()
    }
}

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub usize);

/// Every file read while loading one workflow, the workflow first.
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId(self.files.len() - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0]
    }

    pub fn path(&self, id: FileId) -> &Path {
        &self.files[id.0].path
    }

    /// SHA-256 over every file's path and text, in load order: changes when
    /// the workflow or any library it uses changes.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for file in &self.files {
            hasher.update(file.path.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(file.text.as_bytes());
            hasher.update([0]);
        }
        format!("sha256:{:x}", hasher.finalize())
    }
}

/// Where something was written: a file and a path inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub file: FileId,
    pub path: DocPath,
}

impl Origin {
    pub fn new(file: FileId, path: DocPath) -> Self {
        Self { file, path }
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        Self::new(self.file, self.path.key(key))
    }

    pub fn index(&self, index: usize) -> Self {
        Self::new(self.file, self.path.index(index))
    }
}

/// The folder a workflow's relative paths start from.
pub fn workflow_dir(workflow: &Path) -> &Path {
    workflow
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
version: 1
targets:
  - id: a
    needs: [b, c]
  - id: b
    exec: { command: [\"./x\", \"${user}\"] }
";

    fn path(text: &str) -> DocPath {
        let mut path = DocPath::root();
        for part in text.split('.') {
            let (key, index) = match part.split_once('[') {
                Some((key, rest)) => (key, rest.trim_end_matches(']').parse().ok()),
                None => (part, None),
            };
            path = path.key(key);
            if let Some(index) = index {
                path = path.index(index);
            }
        }
        path
    }

    #[test]
    fn values_and_keys_have_their_own_positions() {
        let map = PositionMap::build(DOC);
        let needs = path("targets[0].needs[1]");
        assert_eq!(
            map.value(&needs),
            Pos {
                line: 4,
                col: 16,
                width: 1
            }
        );
        let id = path("targets[1].id");
        assert_eq!(
            map.key(&id),
            Pos {
                line: 5,
                col: 5,
                width: 2
            }
        );
        assert_eq!(
            map.value(&id),
            Pos {
                line: 5,
                col: 9,
                width: 1
            }
        );
        let arg = path("targets[1].exec.command[1]");
        assert_eq!(map.value(&arg).line, 6);
        assert_eq!(map.value(&arg).width, "\"${user}\"".len());
    }

    #[test]
    fn a_missing_path_falls_back_to_its_nearest_ancestor() {
        let map = PositionMap::build(DOC);
        assert_eq!(map.value(&path("targets[1].nothing.here")).line, 5);
    }

    #[test]
    fn paths_print_like_users_write_them() {
        let p = DocPath::root()
            .key("targets")
            .index(1)
            .key("needs")
            .index(0);
        assert_eq!(p.to_string(), "targets[1].needs[0]");
        assert_eq!(
            DocPath::root().key("tags").key("a.b").to_string(),
            "tags[\"a.b\"]"
        );
    }
}
