//! The command line's arguments: clap definitions, with the flags several
//! commands share as `#[command(flatten)]` groups.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::workflow::graph::Phase;

pub const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 error or invalid input, 2 plan has changes (with
--detailed-exitcode), 3 apply stopped by a failed verification, 4 apply paused
(soak or change window), 5 finished but keys that are due were left (a user
blocked or held, a name no user has, a key past the deadline; plan with
--detailed-exitcode too; `rekey report`: a control failed), 130/143 apply
stopped by SIGINT (Ctrl-C) / SIGTERM (run it again to go on).

Examples:
  rekey validate workflows/*.yaml
  rekey plan workflows/ci-deployers.yaml --var env=prod --out plan.json
  rekey plan workflows/ci-deployers.yaml --as-of 2027-03-01 --detailed-exitcode
  rekey apply plan.json
  rekey apply workflows/ci-deployers.yaml --auto-approve --until distribute
  rekey apply workflows/ci-deployers.yaml --user ci-deploy-1
  rekey status workflows/ci-deployers.yaml
  rekey abort workflows/ci-deployers.yaml --user ci-deploy-1
  rekey report workflows/*.yaml --exemptions exemptions.yaml --format html --out keys.html
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
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

/// Options every command takes. AWS settings left unset come from the
/// environment and the shared config files, as for the AWS CLI.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// AWS profile from the shared config files (default: AWS_PROFILE).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region (default: AWS_REGION or the profile's; us-east-1 if none).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Send AWS calls to this endpoint, e.g. a local emulator (default: AWS_ENDPOINT_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// No colour, even on a terminal (NO_COLOR does the same).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Where apply keeps its lock, journal and staged keys (default: .rekey/<workflow name> next to the workflow).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep the journal, lease and claims in S3 instead (overrides the workflow's `state:`), so any runner can resume: s3://BUCKET/PREFIX.
    #[arg(
        long,
        global = true,
        value_name = "s3://BUCKET/PREFIX",
        env = "REKEY_STATE"
    )]
    pub state: Option<String>,
    /// More detail: every unchanged user, and API calls per service.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// The workflow file.
        workflow: PathBuf,
        /// dot (Graphviz), mermaid, or json.
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
    /// `max_key_age`, or would reach `policy.deadline` before the next run
    /// inside the window), unchanged, or blocked (with the reason and the fix). A
    /// rotation lists its steps in order and a diff of every target, with
    /// secrets shown as (sensitive). `--user` must name users the workflow
    /// selects. Exit 0, or with --detailed-exitcode 0 when nothing would
    /// rotate, 2 when something would, and 5 when a due key would be left
    /// (a blocked or held user, a name no user has, a key that reaches or
    /// passed the deadline while the window is closed).
    Plan(PlanArgs),
    /// Carry out the rotations: crash-safe, resumable, verified.
    ///
    /// Given a workflow, plans, shows the plan and asks for `yes` (on a
    /// terminal) or needs --auto-approve. Given a plan saved with `rekey plan
    /// --out`, checks that nothing changed since (or refuses, showing what did)
    /// and applies it: a saved plan fixes its users, accounts, vars and
    /// instant, so --user, --account, --as-of and --var (but for a sensitive
    /// param's) are refused with one. --as-of rotates now what will be due by
    /// then; soak and change windows still run on real time. Every step is
    /// journaled in the state directory; if apply is interrupted, run it
    /// again: it finishes what was started. With the change window closed
    /// it shows the plan and when the window opens, and asks nothing. Exit 0
    /// done, 1 error, 3 a verification failed (rolled back or halted per
    /// policy), 4 paused (soak or change window: run again later), 5 done
    /// but due keys were left (see `plan`).
    Apply(ApplyArgs),
    /// Show where each rotation of the state directory stands.
    Status {
        /// The workflow file.
        workflow: PathBuf,
    },
    /// Roll back rotations in progress (or halted): the old key active
    /// again, every target as it was, the new key deleted.
    ///
    /// Shows what it will undo and asks for `yes` (on a terminal) or needs
    /// --auto-approve. Refused for a rotation whose delete-old has run (the
    /// old key may be gone): finish that one with apply. --user names a user
    /// whose rotation is in progress; --var gives the sensitive params the
    /// rotations need. Exit 0 when every
    /// rotation is rolled back, 1 error, 3 a rollback halted (run abort or
    /// apply again to finish it).
    Abort(AbortArgs),
    /// The auditor's evidence: every access key of every account the workflows reach, judged.
    ///
    /// Lists every IAM user's every access key (selected or not) with its age,
    /// status, last use, the workflow that rotates it (or none) and any
    /// exemption, judged by IAM.3 (rotated within the deadline), IAM.22
    /// (unused for 45 days or more) and CIS's one active key per user, with
    /// their CIS numbers; and, from the workflows' journals, each rotation's
    /// change record (key ids, times, hosts and CI jobs), read from each
    /// workflow's state (its state directory, `--state-dir`, or `--state`
    /// s3://… / `state:`). Reads only; never a target or a secret. Exit 0
    /// when every control passes, 5 when any fails (an expired exemption
    /// included), 1 when an account or a journal cannot be read.
    ///
    /// An exemptions file (`--exemptions`) is YAML:
    ///   exemptions:
    ///     - user: break-glass-*        # a name or a glob
    ///       account: "123456789012"    # optional
    ///       reason: reviewed quarterly (SEC-12)
    ///       expires: 2027-03-31        # its last day
    ///
    /// Examples:
    ///   rekey report workflows/*.yaml
    ///   rekey report workflows/*.yaml --format html --out keys.html
    ///   rekey report workflows/ci.yaml --exemptions exemptions.yaml --format csv --out keys.csv
    ///   rekey report workflows/ci.yaml --as-of 2027-03-31 --format json
    #[command(verbatim_doc_comment)]
    Report(ReportArgs),
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
pub enum StateCommand {
    /// Every workflow whose state is kept where this one's is (the same S3 prefix, or .rekey folder), who holds it, and its rotations in progress.
    List {
        /// The workflow file.
        workflow: PathBuf,
    },
    /// Where the workflow's state is, who holds its lock or lease, each rotation and the users it holds.
    Show {
        /// The workflow file.
        workflow: PathBuf,
    },
    /// Remove the workflow's lease, whoever holds it (S3 state only).
    ///
    /// A lease expires by itself when its holder stops renewing it (2 minutes
    /// by default), and the next apply takes over: unlock only when you cannot
    /// wait and you know the holder is gone. If it is still running, it is
    /// fenced out at its next journal write, but an AWS call under way still lands.
    Unlock {
        /// The workflow file.
        workflow: PathBuf,
        /// Needed: remove the lease even though its holder may still run.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct AbortArgs {
    /// The workflow file.
    pub workflow: PathBuf,
    #[command(flatten)]
    pub narrow: Narrow,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The workflow file.
    pub workflow: PathBuf,
    /// Also save the plan document (JSON) here, for review and for `rekey apply`.
    #[arg(long, value_name = "PLAN.json")]
    pub out: Option<PathBuf>,
    /// Print the plan document (JSON, versioned) instead of the text.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when nothing would rotate, 2 when something would, 5 when a due key would be left, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub inputs: PlanInputs,
}

/// What a plan is made from, for `plan` and for `apply` (which plans
/// first): the params, how the live state is read, and the narrowing.
#[derive(Debug, clap::Args)]
pub struct PlanInputs {
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub planning: Planning,
    #[command(flatten)]
    pub narrow: Narrow,
}

/// `--var`, for every command that binds the workflow's params.
#[derive(Debug, clap::Args)]
pub struct VarArgs {
    /// Give a param a value (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::workflow::params::parse_var)]
    pub vars: Vec<(String, String)>,
}

/// `--user` and `--account`: narrowing a run, like Terraform's -target.
#[derive(Debug, clap::Args)]
pub struct Narrow {
    /// Only this user (repeatable), like Terraform's -target. With many
    /// accounts, NAME is in every account; ACCOUNT/NAME is in one.
    #[arg(long = "user", value_name = "NAME")]
    pub users: Vec<String>,
    /// Only this account (repeatable), of those `accounts.ids` and
    /// `accounts.organization` give.
    #[arg(long = "account", value_name = "ID")]
    pub accounts: Vec<String>,
}

/// How plan (and apply, which plans first) reads the live state.
#[derive(Debug, clap::Args)]
pub struct Planning {
    /// Judge key ages at this instant: RFC 3339 (2027-03-01T09:00:00Z) or a
    /// date (2027-03-01).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<time::OffsetDateTime>,
    /// How many users are read at once while planning.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// Read every selected user's keys instead of first asking IAM's credential report which users can be due.
    #[arg(long)]
    pub no_credential_report: bool,
    /// Exemptions (a YAML file): users listed there that are left due are
    /// reported but do not make the run exit 5; an expired one exempts nothing.
    #[arg(long, value_name = "FILE")]
    pub exemptions: Option<PathBuf>,
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
pub struct ApplyArgs {
    /// A workflow file, or a plan saved with `rekey plan --out` (*.json).
    #[arg(value_name = "WORKFLOW|PLAN.json")]
    pub target: PathBuf,
    /// Do not ask for confirmation (needed when not on a terminal, unless applying a saved plan).
    #[arg(long)]
    pub auto_approve: bool,
    /// Stop after this phase, e.g. `distribute` on Tuesday and the rest on Thursday.
    #[arg(long, value_name = "PHASE", value_parser = parse_phase)]
    pub until: Option<Phase>,
    #[command(flatten)]
    pub inputs: PlanInputs,
    /// Take users whose claim another rotation holds. Only for a runner
    /// that is truly gone: two rotations of one user destroy each other's keys.
    #[arg(long)]
    pub force: bool,
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

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The workflow files whose accounts, coverage and journals to report.
    #[arg(required = true, value_name = "WORKFLOW")]
    pub workflows: Vec<PathBuf>,
    /// text (a table), json, csv (one row per key and control), markdown, or html (one self-contained page).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Judge the keys at this instant: RFC 3339 or a date (default: now).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<time::OffsetDateTime>,
    /// Exemptions (a YAML file): a user name or glob, an account, a reason, an expiry date.
    #[arg(long, value_name = "FILE")]
    pub exemptions: Option<PathBuf>,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Read every key's last use live instead of from IAM's credential report.
    #[arg(long)]
    pub no_credential_report: bool,
    /// How many users are read at once in an account.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Csv,
    Markdown,
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}
