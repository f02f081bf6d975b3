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

use crate::apply::{self, ApplyError};
use crate::exit::Exit;
use crate::plan::PlanRequest;
use crate::providers::aws::{Aws, AwsOptions};
use crate::render;
use crate::render::style::Style;
use crate::workflow::graph::{MakeRoomStep, Phase, StepGraph};
use crate::workflow::{self, LoadError};

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 error or invalid input, 2 plan has changes (with
--detailed-exitcode), 3 apply stopped by a failed verification, 4 apply paused,
130/143 apply stopped by SIGINT (Ctrl-C) / SIGTERM (run it again to go on).

Examples:
  rekey validate workflows/*.yaml
  rekey plan workflows/ci-deployers.yaml --var env=prod --out plan.json
  rekey plan workflows/ci-deployers.yaml --as-of 2027-03-01 --detailed-exitcode
  rekey apply plan.json
  rekey apply workflows/ci-deployers.yaml --auto-approve --until distribute
  rekey apply workflows/ci-deployers.yaml --user ci-deploy-1
  rekey status workflows/ci-deployers.yaml
  rekey abort workflows/ci-deployers.yaml --user ci-deploy-1
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
    #[command(flatten)]
    global: Global,
}

/// Options every command takes. AWS settings left unset come from the
/// environment and the shared config files, as for the AWS CLI.
#[derive(Debug, clap::Args)]
struct Global {
    /// AWS profile from the shared config files (default: AWS_PROFILE).
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// AWS region (default: AWS_REGION or the profile's; us-east-1 if none).
    #[arg(long, global = true, value_name = "REGION")]
    region: Option<String>,
    /// Send AWS calls to this endpoint, e.g. a local emulator (default: AWS_ENDPOINT_URL).
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// No colour, even on a terminal (NO_COLOR does the same).
    #[arg(long, global = true)]
    no_color: bool,
    /// Where apply keeps its lock, journal and staged keys (default: .rekey/<workflow name> next to the workflow).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Keep the journal, lease and claims in S3 instead (overrides the workflow's `state:`), so any runner can resume: s3://BUCKET/PREFIX.
    #[arg(
        long,
        global = true,
        value_name = "s3://BUCKET/PREFIX",
        env = "REKEY_STATE"
    )]
    state: Option<String>,
    /// More detail: every unchanged user, and API calls per service.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
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
    /// Show what a rotation would do, reading live IAM and target state. Changes nothing.
    ///
    /// For every selected user: rotate (its oldest active key is older than
    /// `max_key_age`), unchanged, or blocked (with the reason and the fix). A
    /// rotation lists its steps in order and a diff of every target, with
    /// secrets shown as (sensitive). Exit 0, or with --detailed-exitcode 0 when
    /// nothing would rotate and 2 when something would.
    Plan(PlanArgs),
    /// Carry out the rotations: crash-safe, resumable, verified.
    ///
    /// Given a workflow, plans, shows the plan and asks for `yes` (on a
    /// terminal) or needs --auto-approve. Given a plan saved with `rekey plan
    /// --out`, checks that nothing changed since (or refuses, showing what did)
    /// and applies it. Every step is journaled in the state directory; if apply
    /// is interrupted, run it again: it finishes what was started. Exit 0 done,
    /// 1 error, 3 a verification failed (rolled back or halted per policy),
    /// 4 paused (soak or change window: run again later).
    Apply(ApplyArgs),
    /// Show where each rotation of the state directory stands.
    Status { workflow: PathBuf },
    /// Roll back rotations in progress (or halted): the old key active
    /// again, every target as it was, the new key deleted.
    ///
    /// Shows what it will undo and asks for `yes` (on a terminal) or needs
    /// --auto-approve. Refused for a rotation whose delete-old has run (the
    /// old key may be gone): finish that one with apply. Exit 0 when every
    /// rotation is rolled back, 1 error, 3 a rollback halted (run abort or
    /// apply again to finish it).
    Abort(AbortArgs),
    /// Inspect and repair apply's state: its journal, its lock or lease, its claims.
    ///
    /// Works from any machine that can read the state (with `state: { s3: … }`
    /// or --state s3://…, any runner). `list` names the workflows whose state is
    /// kept beside this one's; `show` says who holds the lock or lease, every
    /// rotation and the claims held; `unlock --force` removes a lease whose
    /// holder is gone for good.
    #[command(subcommand)]
    State(StateCommand),
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Every workflow whose state is kept where this one's is (the same S3 prefix, or .rekey folder), who holds it, and its rotations in progress.
    List { workflow: PathBuf },
    /// Where the workflow's state is, who holds its lock or lease, each rotation and the users it holds.
    Show { workflow: PathBuf },
    /// Remove the workflow's lease, whoever holds it (S3 state only).
    ///
    /// A lease expires by itself when its holder stops renewing it (2 minutes
    /// by default), and the next apply takes over: unlock only when you cannot
    /// wait and you know the holder is gone. If it is still running, it is
    /// fenced out at its next journal write, but an AWS call under way still lands.
    Unlock {
        workflow: PathBuf,
        /// Needed: remove the lease even though its holder may still run.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Args)]
struct AbortArgs {
    workflow: PathBuf,
    /// Only this user's rotation (repeatable); ACCOUNT/NAME for one account's.
    #[arg(long = "user", value_name = "NAME")]
    users: Vec<String>,
    /// Only the rotations in this account (repeatable), with many accounts.
    #[arg(long = "account", value_name = "ID")]
    accounts: Vec<String>,
    /// Give a param a value (repeatable): sensitive params the rotations need.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::workflow::params::parse_var)]
    vars: Vec<(String, String)>,
    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(long)]
    auto_approve: bool,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    workflow: PathBuf,
    /// Give a param a value (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::workflow::params::parse_var)]
    vars: Vec<(String, String)>,
    /// Judge key ages at this instant: RFC 3339 (2027-03-01T09:00:00Z) or a date (2027-03-01).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    as_of: Option<time::OffsetDateTime>,
    /// Also save the plan document (JSON) here, for review and for `rekey apply`.
    #[arg(long, value_name = "PLAN.json")]
    out: Option<PathBuf>,
    /// Print the plan document (JSON, versioned) instead of the text.
    #[arg(long)]
    json: bool,
    /// Exit 0 when nothing would rotate, 2 when something would, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// How many users are read at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallelism: u16,
    /// Only this user (repeatable), like Terraform's -target; it must be one the workflow selects.
    /// With many accounts, NAME is in every account planned; ACCOUNT/NAME is in one.
    #[arg(long = "user", value_name = "NAME")]
    users: Vec<String>,
    /// Only this account (repeatable), of those `accounts.ids` and `accounts.organization` give.
    #[arg(long = "account", value_name = "ID")]
    accounts: Vec<String>,
    /// Read every selected user's keys instead of first asking IAM's credential report which users can be due.
    #[arg(long)]
    no_credential_report: bool,
}

fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(instant) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(instant);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &date_format)
        .map(|date| date.midnight().assume_utc())
        .map_err(|_| format!("`{text}` is neither an RFC 3339 time (2027-03-01T09:00:00Z) nor a date (2027-03-01)"))
}

#[derive(Debug, clap::Args)]
struct ApplyArgs {
    /// A workflow file, or a plan saved with `rekey plan --out` (*.json).
    #[arg(value_name = "WORKFLOW|PLAN.json")]
    target: PathBuf,
    /// Give a param a value (repeatable; a saved plan keeps its own).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::workflow::params::parse_var)]
    vars: Vec<(String, String)>,
    /// Do not ask for confirmation (needed when not on a terminal, unless applying a saved plan).
    #[arg(long)]
    auto_approve: bool,
    /// Stop after this phase, e.g. `distribute` on Tuesday and the rest on Thursday.
    #[arg(long, value_name = "PHASE", value_parser = parse_phase)]
    until: Option<Phase>,
    /// Judge key ages at this instant: rotate now what will be due by then
    /// (RFC 3339 or a date). Soak and change windows still run on real time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    as_of: Option<time::OffsetDateTime>,
    /// How many users are read at once while planning.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallelism: u16,
    /// Only this user (repeatable), like Terraform's -target: its rotation
    /// in progress, or a new one; refused with a saved plan. With many
    /// accounts, NAME is in every account; ACCOUNT/NAME is in one.
    #[arg(long = "user", value_name = "NAME")]
    users: Vec<String>,
    /// Only this account (repeatable), of those `accounts.ids` and
    /// `accounts.organization` give; refused with a saved plan.
    #[arg(long = "account", value_name = "ID")]
    accounts: Vec<String>,
    /// Take users whose claim another rotation holds. Only for a runner
    /// that is truly gone: two rotations of one user destroy each other's keys.
    #[arg(long)]
    force: bool,
    /// Read every selected user's keys instead of first asking IAM's credential report which users can be due.
    #[arg(long)]
    no_credential_report: bool,
}

fn parse_phase(text: &str) -> Result<Phase, String> {
    Phase::ALL
        .into_iter()
        .find(|p| p.name() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
            format!("`{text}` is not a phase; phases: {}", names.join(", "))
        })
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

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
        Command::Validate { workflows } => validate(&workflows),
        Command::Graph { workflow, format } => graph(&workflow, format),
        Command::Schema => {
            print!("{}", crate::schema::workflow_schema());
            Exit::Success.into()
        }
        Command::Plan(args) => plan(&global, args),
        Command::Apply(args) => apply(&global, args),
        Command::Status { workflow } => status(&global, &workflow),
        Command::Abort(args) => abort(&global, args),
        Command::State(command) => state_command(&global, command),
    }
}

/// Prints `error: MESSAGE` and returns exit code 1.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    Exit::Error.into()
}

fn status(global: &Global, workflow: &Path) -> ExitCode {
    let checked = match workflow::check(workflow) {
        Ok(checked) => checked,
        Err(error) => return apply_failed(ApplyError::Invalid(error)),
    };
    let name = &checked.workflow.name;
    runtime().block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let state = match state_to_read(global, workflow, &checked.workflow, &aws) {
            Ok(state) => state,
            Err(error) => return apply_failed(error),
        };
        if global.state_dir.is_none()
            && !state.shared()
            && let Some((dir, users)) = apply::previous_layout(workflow)
        {
            say!(
                "Rotations begun by an earlier rekey are in progress in {} (every workflow of this folder shared it then): {}. See them with `rekey status {} --state-dir {}`.\n",
                dir.display(),
                users.join(", "),
                workflow.display(),
                dir.display()
            );
        }
        if let Some(message) = local_in_progress(global, workflow, &checked.workflow, &state) {
            say!("Note: {message}.\n");
        }
        match state.read().await {
            Ok(entries) => {
                let records: Vec<_> = apply::journal::rotations(&entries)
                    .into_iter()
                    .filter(|r| r.belongs_to(name))
                    .collect();
                say_raw(&render::apply::status(&records));
                Exit::Success.into()
            }
            Err(error) => fail(error),
        }
    })
}

fn state_command(global: &Global, command: StateCommand) -> ExitCode {
    let path = match &command {
        StateCommand::List { workflow }
        | StateCommand::Show { workflow }
        | StateCommand::Unlock { workflow, .. } => workflow.clone(),
    };
    let mut checked = match workflow::check(&path) {
        Ok(checked) => checked,
        Err(error) => return apply_failed(ApplyError::Invalid(error)),
    };
    if global.state.is_some() {
        checked.workflow.stage_for_shared_state();
    }
    let workflow = &checked.workflow;
    runtime().block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let state = match state_of(global, &path, workflow, &aws, None) {
            Ok((_, state)) => state,
            Err(error) => return apply_failed(error),
        };
        let result = match command {
            StateCommand::List { .. } => state_list(global, &path, workflow, &aws, &state).await,
            StateCommand::Show { .. } => state_show(workflow, &state).await,
            StateCommand::Unlock { force, .. } => state_unlock(&state, force).await,
        };
        match result {
            Ok(code) => code,
            Err(error) => fail(error),
        }
    })
}

async fn state_list(
    global: &Global,
    path: &Path,
    workflow: &crate::workflow::Workflow,
    aws: &Aws,
    state: &apply::state::State,
) -> Result<ExitCode, String> {
    let names = state.neighbours().await.map_err(|e| e.to_string())?;
    if names.is_empty() {
        say!("No state beside {} yet.", state.location());
        return Ok(Exit::Success.into());
    }
    for name in names {
        let other = state_of(global, path, workflow, aws, Some(&name))
            .map_err(|e| e.to_string())?
            .1;
        let holder = match other.holder().await.map_err(|e| e.to_string())? {
            Some(holder) => describe_holder(&holder),
            None => "not held".to_string(),
        };
        let in_progress =
            apply::journal::rotations(&other.read().await.map_err(|e| e.to_string())?)
                .into_iter()
                .filter(apply::journal::RotationRecord::in_progress)
                .count();
        say!(
            "{name}: {} rotation(s) in progress; {holder}\n  {}",
            in_progress,
            other.location()
        );
    }
    Ok(Exit::Success.into())
}

fn describe_holder(holder: &apply::state::Holder) -> String {
    let owner = holder
        .owner
        .as_ref()
        .map_or_else(|| "someone".to_string(), ToString::to_string);
    match holder.expires_in {
        Some(seconds) if seconds < 0 => format!(
            "lease of {owner} expired {}s ago (the next apply takes over)",
            -seconds
        ),
        Some(seconds) => format!("leased by {owner}, for {seconds}s more unless renewed"),
        None => format!("locked by {owner}"),
    }
}

async fn state_show(
    workflow: &crate::workflow::Workflow,
    state: &apply::state::State,
) -> Result<ExitCode, String> {
    say!(
        "State of workflow `{}`: {}",
        workflow.name,
        state.location()
    );
    match state.holder().await.map_err(|e| e.to_string())? {
        Some(holder) => say!("Lock: {}", describe_holder(&holder)),
        None => say!("Lock: not held"),
    }
    let records = apply::journal::rotations(&state.read().await.map_err(|e| e.to_string())?);
    say!("");
    say_raw(&render::apply::status(&records));
    let held: Vec<_> = records.iter().filter(|r| r.in_progress()).collect();
    if !held.is_empty() {
        say!("\nClaims:");
        for record in held {
            let account = record
                .begin
                .snapshot
                .as_ref()
                .map(|s| s.account.clone())
                .unwrap_or_default();
            let claim = state.claims().holder(&account, &record.user).await;
            let line = match claim {
                Some(claim) if claim.rotation == record.id => "held by this rotation".to_string(),
                Some(claim) => format!("held by {claim}"),
                None => "not claimed (apply claims it again when it resumes)".to_string(),
            };
            say!("  {} (account {account}): {line}", record.user);
        }
    }
    Ok(Exit::Success.into())
}

async fn state_unlock(state: &apply::state::State, force: bool) -> Result<ExitCode, String> {
    let holder = state.holder().await.map_err(|e| e.to_string())?;
    let Some(holder) = holder else {
        say!("No lock or lease is held on {}.", state.location());
        return Ok(Exit::Success.into());
    };
    if !force {
        return Err(format!(
            "{} is {}. A lease expires by itself when its holder stops renewing it, and the next apply takes over; to remove it now anyway, pass --force",
            state.location(),
            describe_holder(&holder)
        ));
    }
    eprintln!(
        "warning: removing the lease of {}: if that runner still runs, it and the next apply would both write these rotations (it is fenced out at its next journal write, after at most one AWS call)",
        holder
            .owner
            .as_ref()
            .map_or_else(|| "an unknown holder".to_string(), ToString::to_string)
    );
    state.force_unlock().await.map_err(|e| e.to_string())?;
    say!("Removed the lease on {}.", state.location());
    Ok(Exit::Success.into())
}

/// Rotations of `workflow` in progress in its local state directory while
/// its state is shared: apply refuses to go on until they are finished.
fn local_in_progress(
    global: &Global,
    path: &Path,
    workflow: &crate::workflow::Workflow,
    state: &apply::state::State,
) -> Option<String> {
    if !state.shared() {
        return None;
    }
    let dir = apply::state_dir(global.state_dir.as_deref(), path, &workflow.name);
    let users: Vec<String> = apply::journal::rotations(&apply::journal::read(&dir).ok()?)
        .into_iter()
        .filter(|r| r.in_progress() && r.belongs_to(&workflow.name))
        .map(|r| r.user)
        .collect();
    (!users.is_empty()).then(|| {
        format!(
            "rotations of {} are in progress in the local state directory {}, which the state in {} knows nothing of: finish them there first (run apply without --state, or without the workflow's `state:`), then switch",
            users.join(", "),
            dir.display(),
            state.location()
        )
    })
}

/// The state of the workflow at `path`, to read: rotations of the previous
/// layout are the caller's to mention, not an error.
fn state_to_read(
    global: &Global,
    path: &Path,
    workflow: &crate::workflow::Workflow,
    aws: &Aws,
) -> Result<apply::state::State, ApplyError> {
    match state_of(global, path, workflow, aws, None) {
        Err(ApplyError::PreviousLayout { .. }) => {
            Ok(std::sync::Arc::new(apply::state::local::LocalState::new(
                apply::state_dir(global.state_dir.as_deref(), path, &workflow.name),
                apply::claims::Claims::for_this_user(),
            )))
        }
        other => other.map(|(_, state)| state),
    }
}

/// The state of the workflow at `path`: this machine's state directory
/// (always: file backups live there), and where the journal, lock and
/// claims are: `--state`, the workflow's `state:`, or that directory.
/// Without `--state-dir`, rotations of the previous layout (one `.rekey`
/// for every workflow of a folder) still in progress are an error naming
/// them, when the state is local.
fn state_of(
    global: &Global,
    path: &Path,
    workflow: &crate::workflow::Workflow,
    aws: &Aws,
    name: Option<&str>,
) -> Result<(PathBuf, apply::state::State), ApplyError> {
    use apply::state::{
        DEFAULT_LEASE, S3Location, local::LocalState, normalize_prefix, s3::S3State,
    };
    let name_given = name.is_some();
    let name = name.map_or_else(
        || crate::text::file_name_for(&workflow.name),
        str::to_string,
    );
    let dir = match name.as_str() {
        own if own == crate::text::file_name_for(&workflow.name) => {
            apply::state_dir(global.state_dir.as_deref(), path, &workflow.name)
        }
        other => apply::workflow_dir(path).join(".rekey").join(other),
    };
    let from_workflow = workflow.state.as_ref().map(|s3| S3Location {
        bucket: s3.bucket.clone(),
        prefix: normalize_prefix(s3.prefix.as_deref().unwrap_or_default()),
        region: s3.region.clone(),
        kms_key_id: s3.kms_key_id.clone(),
        lease: s3.lease.unwrap_or(DEFAULT_LEASE),
    });
    let location = match &global.state {
        Some(text) => {
            let mut chosen = S3Location::parse(text).map_err(ApplyError::SavedPlan)?;
            if let Some(from) = &from_workflow {
                // The bucket's settings still come from the workflow.
                chosen.lease = from.lease;
                if from.bucket == chosen.bucket {
                    chosen.region = from.region.clone();
                    chosen.kms_key_id = from.kms_key_id.clone();
                }
            }
            Some(chosen)
        }
        None => from_workflow,
    };
    let state: apply::state::State = match location {
        Some(location) => {
            let store = aws.object_store(
                &location.bucket,
                location.region.as_deref(),
                location.kms_key_id.as_deref(),
            );
            // In S3, names that had to change get a hash: never shared.
            let s3_name = match name_given {
                true => name.clone(),
                false => crate::text::distinct_name_for(&workflow.name),
            };
            std::sync::Arc::new(S3State::new(std::sync::Arc::new(store), location, &s3_name))
        }
        None => {
            if global.state_dir.is_none()
                && let Some((dir, users)) = apply::previous_layout(path)
            {
                return Err(ApplyError::PreviousLayout { dir, users });
            }
            std::sync::Arc::new(LocalState::new(
                dir.clone(),
                apply::claims::Claims::for_this_user(),
            ))
        }
    };
    Ok((dir, state))
}

/// What apply and abort start from: the workflow (or saved plan) read and
/// its params bound, its state directory locked and its journal read,
/// narrowed to `users` when any are named.
async fn open(
    global: &Global,
    aws: &Aws,
    target: &Path,
    vars: &[(String, String)],
    users: &[String],
    accounts: &[String],
) -> Result<(apply::Prepared, apply::Session), ApplyError> {
    let mut prepared = apply::prepare(target, vars.to_vec())?;
    if global.state.is_some() {
        prepared.checked.workflow.stage_for_shared_state();
    }
    let (dir, state) = state_of(
        global,
        &prepared.workflow_path,
        &prepared.checked.workflow,
        aws,
        None,
    )?;
    // Rotations begun with the local state directory are finished there:
    // the shared state knows nothing of them.
    if let Some(message) = local_in_progress(
        global,
        &prepared.workflow_path,
        &prepared.checked.workflow,
        &state,
    ) {
        return Err(ApplyError::SavedPlan(message));
    }
    if let Some(saved) = &prepared.saved {
        let now = state.shared().then(|| state.location());
        if saved.state != now {
            return Err(ApplyError::SavedPlan(format!(
                "the plan was made with its state in {}, and this apply's state is in {}: apply it with the same state (`--state`, or the workflow's `state:`)",
                saved.state.as_deref().unwrap_or("a local state directory"),
                now.as_deref().unwrap_or("a local state directory"),
            )));
        }
    }
    let mut session = apply::Session::open(&prepared, dir, state).await?;
    let narrowed = session
        .only(&prepared, users)
        .and_then(|()| session.only_accounts(&prepared, accounts));
    if let Err(error) = narrowed {
        session.close().await;
        return Err(error);
    }
    Ok((prepared, session))
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

fn apply(global: &Global, args: ApplyArgs) -> ExitCode {
    if let Err(error) = check_profile(global) {
        return fail(error);
    }
    runtime().block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let (prepared, mut session) = match open(
            global,
            &aws,
            &args.target,
            &args.vars,
            &args.users,
            &args.accounts,
        )
        .await
        {
            Ok(opened) => opened,
            Err(error) => return apply_failed(error),
        };
        let code = apply_open(global, &args, &aws, &prepared, &mut session).await;
        session.close().await;
        code
    })
}

/// Apply, once its state is open.
async fn apply_open(
    global: &Global,
    args: &ApplyArgs,
    aws: &Aws,
    prepared: &apply::Prepared,
    session: &mut apply::Session,
) -> ExitCode {
    if prepared.saved.is_some() && args.as_of.is_some() {
        return fail(
            "--as-of with a saved plan: the plan fixes the instant it judged keys at; make a new plan with --as-of instead",
        );
    }
    session.force = args.force;
    session.credential_report = !args.no_credential_report;
    let style = Style::detect(global.no_color);
    let parallelism = usize::from(args.parallelism);
    let workflow = &prepared.checked.workflow;
    let (plan, reached) = match &workflow.fleet {
        Some(fleet) => {
            match session
                .plan_fleet(prepared, fleet, aws, args.as_of, parallelism)
                .await
            {
                Ok((plan, reached)) => (plan, Some(reached)),
                Err(error) => return apply_failed(error),
            }
        }
        None => match session.plan(prepared, aws, args.as_of, parallelism).await {
            Ok(plan) => (plan, None),
            Err(error) => return apply_failed(error),
        },
    };
    let hide = &prepared.sensitive;
    print!(
        "{}",
        hide.redact(&render::plan::human(&plan, style, global.verbose > 0))
    );
    if !session.has_work(&plan) {
        println!("Nothing to do.");
        return unplanned_accounts(&plan).into();
    }
    if prepared.saved.is_none()
        && !args.auto_approve
        && !confirm(
            "\nDo you want to perform these rotations? Only `yes` is accepted: ",
            "Apply",
        )
    {
        return fail(
            "apply needs approval: answer `yes` on a terminal, pass --auto-approve, or apply a saved plan",
        );
    }
    // A progress bar on a terminal; plain lines otherwise.
    let planned: usize = plan.users.iter().map(|u| u.steps.len()).sum();
    let bar = progress_bar(planned.max(session.in_progress.len()) as u64);
    let progress = |line: &str| match &bar {
        Some(bar) => {
            bar.println(format!("  {}", hide.redact(line)));
            if line.contains(" done") {
                bar.inc(1);
            }
        }
        None => println!("  {}", hide.redact(line)),
    };
    println!("\nApplying:");
    let stop = apply::stop::Stop::on_signals();
    let report = match &reached {
        Some(reached) => {
            session
                .execute_fleet(prepared, &plan, reached, args.until, &stop, &progress)
                .await
        }
        None => {
            session
                .execute(prepared, &plan, aws, args.until, &stop, &progress)
                .await
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    print!(
        "{}",
        hide.redact(&render::apply::report(&report, &aws.calls.by_service()))
    );
    report.exit().into()
}

fn abort(global: &Global, args: AbortArgs) -> ExitCode {
    if let Err(error) = check_profile(global) {
        return fail(error);
    }
    runtime().block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let (prepared, mut session) = match open(
            global,
            &aws,
            &args.workflow,
            &args.vars,
            &[],
            &args.accounts,
        )
        .await
        {
            Ok(opened) => opened,
            Err(error) => return apply_failed(error),
        };
        let code = abort_open(&args, &aws, &prepared, &mut session).await;
        session.close().await;
        code
    })
}

/// Abort, once its state is open.
async fn abort_open(
    args: &AbortArgs,
    aws: &Aws,
    prepared: &apply::Prepared,
    session: &mut apply::Session,
) -> ExitCode {
    let workflow = &prepared.checked.workflow;
    if let Some(user) = args.users.iter().find(|u| {
        !session.in_progress.iter().any(|r| {
            r.user == **u
                || r.account()
                    .is_some_and(|a| **u == format!("{a}/{}", r.user))
        })
    }) {
        return fail(format!(
            "--user {user}: no rotation of {user} is in progress for workflow `{}`",
            workflow.name
        ));
    }
    if let Err(error) = session.only(prepared, &args.users) {
        return apply_failed(error);
    }
    let chosen = match session.abortable(workflow) {
        Ok(chosen) => chosen,
        Err(error) => return apply_failed(error),
    };
    if chosen.is_empty() {
        println!(
            "No rotation of workflow `{}` is in progress: nothing to abort.",
            workflow.name
        );
        return Exit::Success.into();
    }
    println!(
        "Abort: roll back {} rotation(s) of workflow `{}`:\n",
        chosen.len(),
        workflow.name
    );
    for (record, steps) in &chosen {
        let steps: Vec<String> = steps.iter().map(ToString::to_string).collect();
        println!(
            "  {}: {}\n    undo: {}",
            record.who(workflow.fleet.is_some()),
            prepared
                .sensitive
                .redact(&apply::describe_progress(record, workflow)),
            steps.join(", ")
        );
    }
    if !args.auto_approve
        && !confirm(
            "\nDo you want to roll these rotations back? Only `yes` is accepted: ",
            "Abort",
        )
    {
        return fail("abort needs approval: answer `yes` on a terminal, or pass --auto-approve");
    }
    let stop = apply::stop::Stop::on_signals();
    let progress = |line: &str| println!("  {}", prepared.sensitive.redact(line));
    println!("\nRolling back:");
    let aborted = match &workflow.fleet {
        Some(fleet) => {
            session
                .abort_fleet(prepared, fleet, aws, &stop, &progress)
                .await
        }
        None => session.abort(prepared, aws, &stop, &progress).await,
    };
    match aborted {
        Ok(report) => {
            print!(
                "{}",
                prepared
                    .sensitive
                    .redact(&render::apply::report(&report, &aws.calls.by_service()))
            );
            report.abort_exit().into()
        }
        Err(error) => apply_failed(error),
    }
}

/// A bar counting steps, when stdout is a terminal.
fn progress_bar(steps: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(steps);
    let style =
        indicatif::ProgressStyle::with_template("  [{elapsed_precise}] {bar:40} {pos}/{len} steps")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// Asks on the terminal; anything but `yes` (or no terminal) is a no.
fn confirm(question: &str, what: &str) -> bool {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return false;
    }
    print!("{question}");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let yes = std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == "yes";
    if !yes {
        println!("{what} cancelled.");
    }
    yes
}

fn validate(paths: &[PathBuf]) -> ExitCode {
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

fn graph(path: &Path, format: GraphFormat) -> ExitCode {
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

fn plan(global: &Global, args: PlanArgs) -> ExitCode {
    if let Err(error) = check_profile(global) {
        return fail(error);
    }
    let mut checked = match workflow::check(&args.workflow) {
        Ok(checked) => checked,
        Err(error) => {
            eprint!("{}", error_text(&error));
            return Exit::Error.into();
        }
    };
    if global.state.is_some() {
        checked.workflow.stage_for_shared_state();
    }
    if checked.workflow.fleet.is_none()
        && let Some(account) = args.accounts.first()
    {
        return fail(crate::plan::accounts::AccountsError::NoFleet(
            account.clone(),
        ));
    }
    let request = PlanRequest {
        workflow: &checked.workflow,
        workflow_path: &args.workflow,
        workflow_sha256: checked.sources.sha256(),
        vars: args.vars.clone(),
        as_of: args.as_of.unwrap_or_else(crate::text::now_in_seconds),
        parallelism: usize::from(args.parallelism),
        users: args.users.clone(),
        accounts: args.accounts.clone(),
        credential_report: !args.no_credential_report,
    };
    let runtime = runtime();
    let started = std::time::Instant::now();
    let (result, calls) = runtime.block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let result = async {
            let (state, in_progress) =
                journal_for_plan(global, &aws, &args.workflow, &checked.workflow).await?;
            let planned = match &checked.workflow.fleet {
                Some(fleet) => {
                    let resume: Vec<String> = in_progress
                        .iter()
                        .filter(|r| r.belongs_to(&checked.workflow.name))
                        .filter_map(|r| r.account().map(str::to_string))
                        .collect();
                    crate::plan::accounts::plan_fleet(
                        &request,
                        fleet,
                        &aws,
                        &[],
                        &resume,
                        &|_, _| false,
                    )
                    .await
                    .map(|(plan, _)| plan)
                }
                None => crate::plan::plan(&request, &aws).await,
            };
            let mut plan = planned.map_err(|error| format!("cannot plan: {error}"))?;
            mark_journal(
                &state,
                in_progress,
                &checked.workflow,
                &args.vars,
                &mut plan,
            )
            .await;
            Ok::<_, String>(plan)
        }
        .await;
        (result, aws.calls.by_service())
    });
    let plan = match result {
        Ok(plan) => plan,
        Err(error) => return fail(error),
    };
    // Values of sensitive params never reach an output or a saved plan.
    let hide = crate::workflow::params::bind(&checked.workflow, &args.vars)
        .map(|params| crate::secret::Sensitive::of(&checked.workflow, &params))
        .unwrap_or_default();
    if let Some(path) = &args.out
        && let Err(error) = crate::providers::files::write_atomically(
            path,
            hide.redact(&render::plan::json(&plan)).as_bytes(),
            0o644,
        )
    {
        eprintln!("error: cannot save the plan to {}: {error}", path.display());
        return Exit::Error.into();
    }
    if args.json {
        print!("{}", hide.redact(&render::plan::json(&plan)));
    } else {
        print!(
            "{}",
            hide.redact(&render::plan::human(
                &plan,
                Style::detect(global.no_color),
                global.verbose > 0
            ))
        );
        if let Some(path) = &args.out {
            println!("Saved the plan to {}.", path.display());
        }
    }
    if global.verbose > 0 {
        eprintln!(
            "API calls: {} in {:.1?}",
            render::apply::calls_line(&calls),
            started.elapsed()
        );
    }
    if unplanned_accounts(&plan) == Exit::Error {
        Exit::Error.into()
    } else if args.detailed_exitcode && plan.summary.rotate + plan.summary.in_progress > 0 {
        Exit::Changes.into()
    } else {
        Exit::Success.into()
    }
}

/// An account that could not be planned is an error: said on stderr, after
/// everything else.
fn unplanned_accounts(plan: &crate::plan::Plan) -> Exit {
    let failed: Vec<&str> = plan
        .accounts
        .iter()
        .filter(|a| a.error.is_some())
        .map(|a| a.account.as_str())
        .collect();
    if failed.is_empty() {
        return Exit::Success;
    }
    eprintln!(
        "error: {} {} not planned ({}): see each account's reason and fix above",
        failed.len(),
        plural(failed.len(), "account"),
        failed.join(", ")
    );
    Exit::Error
}

/// The state plan reads (never locks) and its rotations in progress, read
/// once before planning: a fanned-out plan reaches the accounts of this
/// workflow's even when the workflow no longer selects them. Rotations of
/// the previous layout, or left in the local state directory, are named on
/// stderr.
async fn journal_for_plan(
    global: &Global,
    aws: &Aws,
    path: &Path,
    workflow: &crate::workflow::Workflow,
) -> Result<(apply::state::State, Vec<apply::journal::RotationRecord>), String> {
    if let Some((dir, users)) = global
        .state_dir
        .is_none()
        .then(|| apply::previous_layout(path))
        .flatten()
    {
        eprintln!("note: {}\n", ApplyError::PreviousLayout { dir, users });
    }
    let state = state_to_read(global, path, workflow, aws).map_err(|e| e.to_string())?;
    if let Some(message) = local_in_progress(global, path, workflow, &state) {
        eprintln!("note: {message}\n");
    }
    let entries = state.read().await.map_err(|e| e.to_string())?;
    let in_progress = apply::journal::rotations(&entries)
        .into_iter()
        .filter(apply::journal::RotationRecord::in_progress)
        .collect();
    Ok((state, in_progress))
}

/// Tells the truth about rotations in progress: the journal's own are
/// marked in the plan (narrowed as the plan is), and users another
/// workflow's rotation holds are blocked.
async fn mark_journal(
    state: &apply::state::State,
    in_progress: Vec<apply::journal::RotationRecord>,
    workflow: &crate::workflow::Workflow,
    vars: &[(String, String)],
    plan: &mut crate::plan::Plan,
) {
    let (mut mine, others): (Vec<_>, Vec<_>) = in_progress
        .into_iter()
        .partition(|r| r.belongs_to(&workflow.name));
    // Narrowed as the plan is: `--account`, `--user`.
    let caller = plan.account.clone();
    mine.retain(|r| {
        let account = r.account().unwrap_or(&caller);
        (plan.only_accounts.is_empty() || plan.only_accounts.iter().any(|a| a == account))
            && (plan.only_users.is_empty()
                || plan
                    .only_users
                    .iter()
                    .any(|u| *u == r.user || *u == format!("{account}/{}", r.user)))
    });
    let params = crate::workflow::params::bind(workflow, vars).unwrap_or_default();
    apply::mark_in_progress(plan, &mine, workflow, &params);
    apply::mark_claimed(plan, state.claims(), &state.location()).await;
    apply::mark_held(plan, &others);
    plan.state = state.shared().then(|| state.location());
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

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}
