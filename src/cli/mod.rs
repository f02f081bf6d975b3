//! The command line: arguments in, engine calls, exit codes out. It
//! parses ([`args`]), calls the engine, prints, and maps what the engine
//! returns to an exit code ([`exit`]); it holds no engine logic.
//!
//! Exit codes (documented in README.md): 0 success, 1 error (including
//! invalid workflows and bad arguments), 2 plan has changes (with
//! `--detailed-exitcode`), 3 apply stopped by a failed verification, 4 apply
//! paused. Usage errors exit 1 rather than clap's 2, which means "changes".

use std::process::ExitCode;

use clap::Parser;

use crate::apply::{ApplyError, StateChoice};
use crate::providers::aws::AwsOptions;
use crate::render;
use crate::workflow::LoadError;
use args::{Cli, Command, Global};
use exit::Exit;

/// A line on stdout; a reader that went away (`| head`) is no error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Text on stdout, as [`say!`] does.
fn say_raw(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

mod apply;
mod args;
mod check;
pub mod exit;
mod plan;
mod report;
mod state;

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Exit::Success.into()
                }
                _ => Exit::Error.into(),
            };
        }
    };
    run(cli)
}

fn run(cli: Cli) -> ExitCode {
    let global = cli.global;
    match cli.command {
        Command::Validate { workflows } => check::validate(&workflows),
        Command::Graph { workflow, format } => check::graph(&workflow, format),
        Command::Schema => {
            print!("{}", crate::schema::workflow_schema());
            Exit::Success.into()
        }
        Command::Plan(args) => plan::plan(&global, args),
        Command::Apply(args) => apply::apply(&global, args),
        Command::Status { workflow } => state::status(&global, &workflow),
        Command::Abort(args) => apply::abort(&global, args),
        Command::State(command) => state::state_command(&global, command),
        Command::Report(args) => report::report(&global, args),
    }
}

/// Prints `error: MESSAGE` and returns exit code 1.
pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    Exit::Error.into()
}

/// Prints an error that already says `error:` (with its file and line),
/// and returns exit code 1.
fn refused(error: &str) -> ExitCode {
    eprintln!("{}", error.trim_end());
    Exit::Error.into()
}

/// Prints why apply could not go on, and returns exit code 1.
fn apply_failed(error: ApplyError) -> ExitCode {
    match &error {
        ApplyError::Invalid(invalid) => eprint!("{}", error_text(invalid)),
        ApplyError::Stale { saved, fresh } => {
            eprintln!("error: {error}:\n");
            eprint!("{}", render::plan::stale_diff(saved, fresh));
            eprintln!("\nMake a new plan and review it.");
        }
        _ => eprintln!("error: {error}"),
    }
    Exit::Error.into()
}

/// Where `--state-dir` and `--state` put the state.
fn state_choice(global: &Global) -> StateChoice {
    StateChoice {
        state_dir: global.state_dir.clone(),
        state: global.state.clone(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `--profile` naming no profile is an error, even when the environment
/// has credentials the SDK would otherwise use instead, silently.
fn check_profile(global: &Global) -> Result<(), String> {
    match &global.profile {
        Some(profile) if !crate::providers::aws::profile_exists(profile) => Err(format!(
            "--profile {profile}: there is no such profile in the AWS config or credentials file (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, ~/.aws/)"
        )),
        _ => Ok(()),
    }
}

fn aws_options(global: &Global) -> AwsOptions {
    AwsOptions {
        profile: global.profile.clone(),
        region: global.region.clone(),
        endpoint_url: global.endpoint_url.clone(),
    }
}

fn error_text(error: &LoadError) -> String {
    match error {
        LoadError::Read(error) => format!("error: {error}\n"),
        LoadError::Invalid(diagnostics) => diagnostics.to_string(),
    }
}

/// `--exemptions FILE`, read before anything reaches AWS (none: empty);
/// its warnings on stderr.
fn exemptions(
    file: Option<&std::path::Path>,
) -> Result<crate::plan::exemptions::Exemptions, String> {
    let Some(path) = file else {
        return Ok(Default::default());
    };
    let exemptions = crate::plan::exemptions::Exemptions::load(path)?;
    for warning in &exemptions.warnings {
        eprintln!("{warning}");
    }
    Ok(exemptions)
}

/// Writes `--out FILE`: `-` is standard output; a FIFO or device is
/// written into (never replaced); a file is replaced atomically, in a
/// folder that must exist.
fn write_out(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        return out.flush();
    }
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(bytes);
    }
    // A link is followed: the file it points at is replaced, not the link.
    let resolved = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is a link to nothing", path.display()),
            )
        })?,
        _ => path.to_path_buf(),
    };
    let folder = resolved.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(folder) = folder.filter(|f| !f.is_dir()) {
        let why = if folder.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} {why}", folder.display()),
        ));
    }
    // An existing file keeps its mode.
    let mode = std::fs::metadata(&resolved).map_or(0o644, |m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o7777
    });
    crate::providers::files::write_atomically(&resolved, bytes, mode)
}

/// Fills what `plan` leaves due, judged at the plan's own instant.
fn account_for(plan: &mut crate::plan::Plan, exemptions: &crate::plan::exemptions::Exemptions) {
    let as_of = crate::text::parse_rfc3339(&plan.as_of).unwrap_or_else(crate::text::now_in_seconds);
    plan.account_for(exemptions, as_of);
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}
