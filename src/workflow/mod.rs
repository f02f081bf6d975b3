//! Workflow files: load, validate, and the checked model.
//!
//! `load` reads a file and the libraries it uses into one merged document,
//! collecting shape errors with their positions; `validate` applies the
//! rules that span fields and builds the [`Workflow`] model that the rest of
//! rekey works from. Nothing here knows about clap or AWS.

pub mod diagnostic;
pub mod document;
pub mod duration;
pub mod graph;
pub mod loader;
mod messages;
pub mod model;
pub mod params;
pub mod schedule;
pub mod source;
pub mod template;
pub mod validate;
pub mod vocabulary;
pub mod window;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use duration::Duration;
pub use model::Workflow;
pub use template::Template;

/// A workflow that passed every check, with the files it came from.
#[derive(Debug)]
pub struct Checked {
    pub workflow: Workflow,
    pub sources: source::Sources,
    /// Worth fixing, though the workflow is valid.
    pub warnings: Diagnostics,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] loader::ReadError),
    #[error("{}", .0)]
    Invalid(Diagnostics),
}

/// Loads, merges and validates the workflow at `path`.
pub fn check(path: &Path) -> Result<Checked, LoadError> {
    finish(loader::load(path)?)
}

/// Like [`check`] for text already read (`uses:` are read relative to `path`).
pub fn check_str(path: &Path, text: String) -> Result<Checked, LoadError> {
    finish(loader::load_str(path, text))
}

fn finish(
    (merged, sources, mut diagnostics): (loader::Merged, source::Sources, Diagnostics),
) -> Result<Checked, LoadError> {
    let mut warnings = Diagnostics::default();
    match validate::validate(merged, &sources, &mut diagnostics, &mut warnings) {
        Some(workflow) if diagnostics.is_empty() => Ok(Checked {
            workflow,
            sources,
            warnings: warnings.sorted(),
        }),
        _ => Err(LoadError::Invalid(diagnostics.sorted())),
    }
}
