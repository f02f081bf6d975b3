//! `rekey validate` and `rekey graph`: the workflow checked, and one
//! user's steps drawn.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::args::GraphFormat;
use super::*;
use crate::workflow::graph::{MakeRoomStep, StepGraph};
use crate::workflow::{self, LoadError};

pub(super) fn validate(paths: &[PathBuf]) -> ExitCode {
    let mut invalid = 0;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    for path in paths {
        match workflow::check(path) {
            Ok(checked) => {
                if !checked.warnings.is_empty() {
                    let _ = write!(stderr.lock(), "{}", checked.warnings);
                }
                let workflow = &checked.workflow;
                let steps = StepGraph::compile(workflow, "${user}", MakeRoomStep::No)
                    .map_or(0, |g| g.len());
                let _ = writeln!(
                    stdout.lock(),
                    "{}: valid ({} {}, {} {}, {steps} steps per user)",
                    path.display(),
                    workflow.targets.len(),
                    plural(workflow.targets.len(), "target"),
                    workflow.hooks.len(),
                    plural(workflow.hooks.len(), "hook"),
                );
            }
            Err(LoadError::Read(error)) => {
                invalid += 1;
                let _ = writeln!(stderr.lock(), "error: {error}");
            }
            Err(LoadError::Invalid(diagnostics)) => {
                invalid += 1;
                let count = diagnostics.len();
                let mut err = stderr.lock();
                let _ = write!(err, "{diagnostics}");
                let _ = writeln!(
                    err,
                    "\n{}: {count} {}\n",
                    path.display(),
                    plural(count, "problem")
                );
            }
        }
    }
    if invalid == 0 {
        Exit::Success.into()
    } else {
        Exit::Error.into()
    }
}

pub(super) fn graph(path: &Path, format: GraphFormat) -> ExitCode {
    let checked = match workflow::check(path) {
        Ok(checked) => checked,
        Err(error) => {
            eprint!("{}", error_text(&error));
            return Exit::Error.into();
        }
    };
    let workflow = &checked.workflow;
    let graph = match StepGraph::compile(workflow, "${user}", MakeRoomStep::Maybe) {
        Ok(graph) => graph,
        Err(error) => {
            eprintln!("error: {error}");
            return Exit::Error.into();
        }
    };
    let text = match format {
        GraphFormat::Dot => render::graph::dot(&workflow.name, &graph),
        GraphFormat::Mermaid => render::graph::mermaid(&workflow.name, &graph),
        GraphFormat::Json => render::graph::json(&workflow.name, &graph),
    };
    print!("{text}");
    Exit::Success.into()
}
