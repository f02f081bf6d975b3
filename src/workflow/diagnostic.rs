//! Diagnostics: what went wrong in a workflow file, where, and what to do.
//!
//! Every problem found while loading and validating is collected (not just
//! the first) and printed the way compilers do, so editors and CI logs can
//! jump to it:
//!
//! ```text
//! workflows/ci.yaml:12:13: error: `needs` names `app-parm`, which is not a target
//!    |
//! 12 |     needs: [app-parm]
//!    |             ^^^^^^^^
//!    = help: did you mean `app-param`?
//! ```
//!
//! A hand-written renderer rather than miette's: the first line's exact
//! `FILE:LINE:COL: error:` shape is part of the CLI contract, and snapshot
//! tests pin it byte for byte.

use std::fmt::{self, Write as _};

use super::duration::Duration;
use super::source::{Origin, Pos, Sources};
use super::vocabulary::MAX_TIMEOUT;

/// A resolved place in a file, with the line's text for the excerpt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub pos: Pos,
    pub line_text: String,
}

impl Location {
    pub fn resolve(sources: &Sources, origin: &Origin, part: Part) -> Self {
        let file = sources.get(origin.file);
        let pos = match part {
            Part::Key => file.positions.key(&origin.path),
            Part::Value => file.positions.value(&origin.path),
        };
        Self::at(sources, origin.file, pos)
    }

    pub fn at(sources: &Sources, file: super::source::FileId, pos: Pos) -> Self {
        let source = sources.get(file);
        Self {
            file: source.path.display().to_string(),
            line_text: source.line_text(pos.line).to_string(),
            pos,
        }
    }
}

/// Whether a diagnostic points at a mapping key or at its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

/// A problem a target or hook kind finds in its settings, at a place in
/// the document; validation turns it into a [`Diagnostic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Origin,
    pub part: Part,
    pub message: String,
    pub hint: Option<String>,
}

pub type Problems = Vec<Problem>;

impl Problem {
    pub fn new(at: Origin, part: Part, message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            at,
            part,
            message: message.into(),
            hint,
        }
    }

    /// A duration over its bound, if it is: every bound is far beyond any
    /// sensible setting, and keeps the time arithmetic of plan and apply
    /// from overflowing.
    pub fn too_long(
        at: Origin,
        what: &str,
        value: Option<Duration>,
        max: Duration,
    ) -> Option<Self> {
        let value = value.filter(|v| *v > max)?;
        Some(Self::new(
            at,
            Part::Value,
            format!("`{what}: {value}` is longer than {max}, the most rekey accepts"),
            Some(format!("use at most {max}")),
        ))
    }

    /// A `timeout:` (at the kind's `at`) over [`MAX_TIMEOUT`], if it is.
    pub fn timeout_too_long(at: &Origin, timeout: Option<Duration>) -> Option<Self> {
        Self::too_long(at.key("timeout"), "timeout", timeout, MAX_TIMEOUT)
    }

    /// A command list with nothing in it.
    pub fn empty_command(at: Origin) -> Self {
        Self::new(
            at,
            Part::Value,
            "the command is empty",
            Some(
                "give the program and its arguments, e.g. `[\"./reload.sh\", \"${user}\"]`".into(),
            ),
        )
    }
}

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
    pub hint: Option<String>,
    /// Other places that explain this one (e.g. each `needs` of a cycle).
    pub notes: Vec<(Location, String)>,
    /// A warning: worth fixing, but the workflow is valid.
    pub warning: bool,
}

impl Diagnostic {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Self {
            location,
            message: message.into(),
            hint: None,
            notes: Vec::new(),
            warning: false,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_note(mut self, location: Location, note: impl Into<String>) -> Self {
        self.notes.push((location, note.into()));
        self
    }

    fn sort_key(&self) -> (&str, usize, usize) {
        (
            &self.location.file,
            self.location.pos.line,
            self.location.pos.col,
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Location { file, pos, .. } = &self.location;
        writeln!(
            f,
            "{file}:{}:{}: {}: {}",
            pos.line,
            pos.col,
            if self.warning { "warning" } else { "error" },
            self.message
        )?;
        write_excerpt(f, &self.location)?;
        if let Some(hint) = &self.hint {
            writeln!(f, "   = help: {hint}")?;
        }
        for (location, note) in &self.notes {
            let Location { file, pos, .. } = location;
            writeln!(f, "{file}:{}:{}: note: {note}", pos.line, pos.col)?;
            write_excerpt(f, location)?;
        }
        Ok(())
    }
}

fn write_excerpt(f: &mut fmt::Formatter<'_>, location: &Location) -> fmt::Result {
    if location.line_text.trim().is_empty() {
        return Ok(());
    }
    let number = location.pos.line.to_string();
    let gutter = " ".repeat(number.len());
    let line: String = location
        .line_text
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let mut col = location.pos.col.min(line.chars().count() + 1);
    // A very long line is shown around the place: 60 characters each side.
    let line = if line.chars().count() > 160 {
        let start = col.saturating_sub(61);
        let shown: String = line.chars().skip(start).take(120).collect();
        if start > 0 {
            col = col - start + 1;
            format!("…{shown}…")
        } else {
            format!("{shown}…")
        }
    } else {
        line
    };
    let room = line.chars().count() + 1 - col;
    let width = location.pos.width.clamp(1, room.max(1));
    let mut caret = " ".repeat(col - 1);
    caret.extend(std::iter::repeat_n('^', width));
    writeln!(f, "{gutter} |")?;
    writeln!(f, "{number} | {}", line.trim_end())?;
    writeln!(f, "{gutter} | {caret}")
}

/// All the problems found in one run, sorted by place.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        if !self.0.contains(&diagnostic) {
            self.0.push(diagnostic);
        }
    }

    pub fn extend(&mut self, other: Diagnostics) {
        for diagnostic in other.0 {
            self.push(diagnostic);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Sorts by file, line and column, keeping the order of equal places.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char('\n')?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if one is close enough to be what
/// the user meant: similar by Jaro-Winkler, or one edit away (which catches
/// transposed letters in short words, `evn` for `env`).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::jaro_winkler(word, candidate),
                strsim::damerau_levenshtein(word, candidate),
                candidate,
            )
        })
        .filter(|(score, edits, candidate)| *score > 0.8 || (*edits <= 1 && candidate.len() >= 3))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, _, candidate)| candidate)
}

/// `a`, `b` or `c`, for messages that list the choices.
pub fn one_of<'a>(choices: impl IntoIterator<Item = &'a str>) -> String {
    let choices: Vec<String> = choices.into_iter().map(|c| format!("`{c}`")).collect();
    match choices.as_slice() {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(line_text: &str, col: usize, width: usize) -> Location {
        Location {
            file: "w.yaml".into(),
            pos: Pos {
                line: 7,
                col,
                width,
            },
            line_text: line_text.into(),
        }
    }

    #[test]
    fn renders_the_contract_line_an_excerpt_and_a_hint() {
        let diagnostic = Diagnostic::new(location("    needs: [app-parm]", 13, 8), "unknown")
            .with_hint("did you mean `app-param`?");
        assert_eq!(
            diagnostic.to_string(),
            "w.yaml:7:13: error: unknown\n  |\n7 |     needs: [app-parm]\n  |             ^^^^^^^^\n   = help: did you mean `app-param`?\n"
        );
    }

    #[test]
    fn a_caret_never_runs_past_the_line() {
        let text = Diagnostic::new(location("ab", 9, 40), "x").to_string();
        assert!(text.contains("  |   ^\n"), "{text}");
    }

    #[test]
    fn suggests_only_close_words() {
        assert_eq!(
            did_you_mean("tagets", ["targets", "hooks"]),
            Some("targets")
        );
        assert_eq!(did_you_mean("zzz", ["targets", "hooks"]), None);
        assert_eq!(did_you_mean("evn", ["env", "region"]), Some("env"));
        assert_eq!(one_of(["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
