//! The command line: arguments in, engine calls, exit codes out.
//!
//! Exit codes (documented in README.md): 0 success, 1 error (including
//! invalid workflows and bad arguments), 2 plan has changes (with
//! `--detailed-exitcode`), 3 apply stopped by a failed verification, 4 apply
//! paused. Usage errors exit 1 rather than clap's 2, which means "changes".

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::graph::{MakeRoomStep, StepGraph};
use crate::render;
use crate::workflow::{self, LoadError};

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 error or invalid input, 2 plan has changes (with
--detailed-exitcode), 3 apply stopped by a failed verification, 4 apply paused.

Examples:
  rekey validate workflows/*.yaml
  rekey graph workflows/ci-deployers.yaml --format mermaid
  rekey schema > schemas/workflow.schema.json";

#[derive(Debug, Parser)]
#[command(
    name = "rekey",
    version,
    about = "Rotate cloud credentials as code: plan, review, apply, resume.",
    long_about = "Rotate cloud credentials as code.\n\nA workflow file says which IAM users' access keys to rotate, where the new keys \
                  go and how to prove that everything still works. rekey checks it, shows the steps, and carries them out.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check workflow files: syntax, keys, types, references, `needs` and cycles.
    ///
    /// Every problem of every file is reported as FILE:LINE:COL: error: MESSAGE,
    /// with the line and a hint. Exit 0 when all files are valid, 1 otherwise.
    Validate {
        /// Workflow (or library) files to check.
        #[arg(required = true, value_name = "WORKFLOW")]
        workflows: Vec<PathBuf>,
    },
    /// Print the steps of one user's rotation as a graph.
    ///
    /// Steps are grouped by phase in the order they run; `needs` edges are
    /// labelled. Render with `dot -Tsvg` or paste into a Mermaid viewer.
    Graph {
        workflow: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Print the workflow JSON Schema (the same as schemas/workflow.schema.json).
    ///
    /// Point editors at it with a first line of
    /// `# yaml-language-server: $schema=../schemas/workflow.schema.json`.
    Schema,
    #[command(hide = true)]
    Plan(Unfinished),
    #[command(hide = true)]
    Apply(Unfinished),
    #[command(hide = true)]
    Status(Unfinished),
}

/// A command that this build does not have yet: it says so, exit 1.
#[derive(Debug, clap::Args)]
struct Unfinished {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    run(cli)
}

fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate { workflows } => validate(&workflows),
        Command::Graph { workflow, format } => graph(&workflow, format),
        Command::Schema => {
            print!("{}", crate::schema::workflow_schema());
            ExitCode::SUCCESS
        }
        Command::Plan(_) => unfinished("plan"),
        Command::Apply(_) => unfinished("apply"),
        Command::Status(_) => unfinished("status"),
    }
}

fn unfinished(command: &str) -> ExitCode {
    eprintln!(
        "error: `rekey {command}` is not available in this build yet; `rekey validate` and `rekey graph` are"
    );
    ExitCode::from(1)
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    let mut invalid = 0;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    for path in paths {
        match workflow::check(path) {
            Ok(checked) => {
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
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn graph(path: &Path, format: GraphFormat) -> ExitCode {
    let checked = match workflow::check(path) {
        Ok(checked) => checked,
        Err(error) => {
            eprint!("{}", error_text(&error));
            return ExitCode::from(1);
        }
    };
    let workflow = &checked.workflow;
    let graph = match StepGraph::compile(workflow, "${user}", MakeRoomStep::Maybe) {
        Ok(graph) => graph,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    let text = match format {
        GraphFormat::Dot => render::graph::dot(&workflow.name, &graph),
        GraphFormat::Mermaid => render::graph::mermaid(&workflow.name, &graph),
        GraphFormat::Json => render::graph::json(&workflow.name, &graph),
    };
    print!("{text}");
    ExitCode::SUCCESS
}

fn error_text(error: &LoadError) -> String {
    match error {
        LoadError::Read(error) => format!("error: {error}\n"),
        LoadError::Invalid(diagnostics) => diagnostics.to_string(),
    }
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}
