//! `rekey apply` and `rekey abort`: the plan shown, approval asked, the
//! rotations run with a progress bar (or lines), and the report printed.

use std::io::Write;
use std::process::ExitCode;

use super::args::{AbortArgs, ApplyArgs, Global};
use super::*;
use crate::apply;
use crate::plan::exemptions::Exemptions;
use crate::plan::{Decision, Left, Plan, WindowView};
use crate::providers::aws::Aws;
use crate::render::style::Style;
use time::OffsetDateTime;

pub(super) fn apply(global: &Global, args: ApplyArgs) -> ExitCode {
    let exemptions = match exemptions(args.inputs.planning.exemptions.as_deref()) {
        Ok(exemptions) => exemptions,
        Err(error) => return refused(&error),
    };
    let narrow = (
        &args.inputs.narrow.users[..],
        &args.inputs.narrow.accounts[..],
    );
    with_session(
        global,
        &args.target,
        &args.inputs.vars.vars,
        narrow,
        async |aws, prepared, session| {
            apply_open(global, &args, &exemptions, aws, prepared, session).await
        },
    )
}

/// Runs `work` with the workflow's state open (its lock or lease held),
/// narrowed to `(users, accounts)`, and lets the state go after it.
fn with_session(
    global: &Global,
    target: &std::path::Path,
    vars: &[(String, String)],
    (users, accounts): (&[String], &[String]),
    work: impl AsyncFnOnce(&Aws, &apply::Prepared, &mut apply::Session) -> ExitCode,
) -> ExitCode {
    if let Err(error) = check_profile(global) {
        return fail(error);
    }
    runtime().block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let opened = state_choice(global)
            .open_session(&aws, target, vars, users, accounts)
            .await;
        let (prepared, mut session) = match opened {
            Ok(opened) => opened,
            Err(error) => return apply_failed(error),
        };
        for line in &session.ended_commands {
            eprintln!("note: {line}");
        }
        let code = work(&aws, &prepared, &mut session).await;
        session.close().await;
        code
    })
}

/// Apply, once its state is open.
async fn apply_open(
    global: &Global,
    args: &ApplyArgs,
    exemptions: &Exemptions,
    aws: &Aws,
    prepared: &apply::Prepared,
    session: &mut apply::Session,
) -> ExitCode {
    if prepared.saved.is_some() && args.inputs.planning.as_of.is_some() {
        return fail(
            "--as-of with a saved plan: the plan fixes the instant it judged keys at; make a new plan with --as-of instead",
        );
    }
    session.force = args.force;
    session.credential_report = !args.inputs.planning.no_credential_report;
    let style = Style::detect(global.no_color);
    let parallelism = usize::from(args.inputs.planning.parallelism);
    let as_of = args.inputs.planning.as_of;
    let workflow = &prepared.checked.workflow;
    let (mut plan, reached) = match &workflow.fleet {
        Some(fleet) => {
            match session
                .plan_fleet(prepared, fleet, aws, as_of, parallelism)
                .await
            {
                Ok((plan, reached)) => (plan, Some(reached)),
                Err(error) => return apply_failed(error),
            }
        }
        None => match session.plan(prepared, aws, as_of, parallelism).await {
            Ok(plan) => (plan, None),
            Err(error) => return apply_failed(error),
        },
    };
    // Apply acts now, whatever instant keys are judged at: the window as
    // it stands now decides whether it can.
    plan.time_views(workflow, OffsetDateTime::now_utc());
    account_for(&mut plan, exemptions);
    let hide = &prepared.sensitive;
    print!(
        "{}",
        hide.redact(&render::plan::human(&plan, style, global.verbose > 0))
    );
    let left_due = plan.leaves_due();
    if !session.has_work(&plan) {
        println!("Nothing to do.");
        let exit = super::plan::unplanned_accounts(&plan);
        return say_left(Exit::of_apply(ending_of(exit), left_due));
    }
    if let Some(opens) = plan.window.as_ref().and_then(WindowView::closed_until) {
        // Nothing can act: no approval is asked for a run that would only wait.
        println!(
            "\nNothing was changed: the change window is closed until {}. Run apply again then.",
            crate::text::rfc3339(opens)
        );
        return say_left(Exit::of_apply(apply::Ending::Paused, left_due));
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
    // Everything left, again at the end where a CI log is read: what the
    // plan left, and the keys past the deadline this run did not retire.
    let mut left = plan.left.clone();
    left.extend(past_deadline_left(&plan, &report, exemptions));
    print!(
        "{}",
        render::plan::left(&left, !plan.accounts.is_empty(), style)
    );
    say_left(Exit::of_apply(
        report.ending(),
        left.iter().any(|l| l.counts),
    ))
}

/// Ends a run: exit 5 says why at the end of the output.
fn say_left(exit: Exit) -> ExitCode {
    if exit == Exit::LeftDue {
        println!("Exit 5: due keys or users were left, as listed above.");
    }
    exit.into()
}

/// The users whose active key was past the deadline at the plan's instant
/// and that this run did not retire, whatever the reason.
fn past_deadline_left(plan: &Plan, report: &apply::Report, exemptions: &Exemptions) -> Vec<Left> {
    let as_of = crate::text::parse_rfc3339(&plan.as_of).unwrap_or_else(OffsetDateTime::now_utc);
    let deadline = plan.deadline.as_deref().unwrap_or("90d");
    plan.users
        .iter()
        .filter(|u| matches!(u.decision, Decision::Rotate | Decision::InProgress))
        .filter_map(|u| {
            let reached = u.deadline.as_deref().and_then(crate::text::parse_rfc3339)?;
            if reached > as_of {
                return None;
            }
            let across = format!("{}/{}", u.account, u.user);
            let outcome = report
                .outcomes
                .iter()
                .find(|(who, _)| *who == u.user || *who == across)
                .map(|(_, outcome)| outcome);
            if outcome.is_some_and(|o| o.retired_old_key()) {
                return None;
            }
            let why = format!(
                "its active key passed the {deadline} deadline on {} and this run did not retire it",
                reached.date()
            );
            Some(crate::plan::left::judged(exemptions, &u.account, &u.user, why, as_of))
        })
        .collect()
}

/// The ending an exit code before any rotation ran stands for.
fn ending_of(exit: Exit) -> apply::Ending {
    match exit {
        Exit::Success => apply::Ending::Done,
        _ => apply::Ending::Failed,
    }
}

pub(super) fn abort(global: &Global, args: AbortArgs) -> ExitCode {
    let narrow = (&[][..], &args.narrow.accounts[..]);
    with_session(
        global,
        &args.workflow,
        &args.vars.vars,
        narrow,
        async |aws, prepared, session| abort_open(&args, aws, prepared, session).await,
    )
}

/// Abort, once its state is open.
async fn abort_open(
    args: &AbortArgs,
    aws: &Aws,
    prepared: &apply::Prepared,
    session: &mut apply::Session,
) -> ExitCode {
    let workflow = &prepared.checked.workflow;
    if let Some(user) = args
        .narrow
        .users
        .iter()
        .find(|u| !session.in_progress.iter().any(|r| r.named_by(u, None)))
    {
        return fail(format!(
            "--user {user}: no rotation of {user} is in progress for workflow `{}`",
            workflow.name
        ));
    }
    if let Err(error) = session.only(prepared, &args.narrow.users) {
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
            Exit::of(report.abort_ending()).into()
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
