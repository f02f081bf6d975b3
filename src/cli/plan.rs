//! `rekey plan`: the plan made, annotated with what the state says, saved
//! and printed.

use std::process::ExitCode;

use super::args::{Global, PlanArgs};
use super::*;
use crate::plan::PlanRequest;
use crate::providers::aws::Aws;
use crate::render::style::Style;
use crate::workflow;

pub(super) fn plan(global: &Global, args: PlanArgs) -> ExitCode {
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
    let exemptions = match exemptions(args.inputs.planning.exemptions.as_deref()) {
        Ok(exemptions) => exemptions,
        Err(error) => return refused(&error),
    };
    let choice = state_choice(global);
    choice.adjust(&mut checked.workflow);
    if checked.workflow.fleet.is_none()
        && let Some(account) = args.inputs.narrow.accounts.first()
    {
        return fail(crate::plan::accounts::AccountsError::NoFleet(
            account.clone(),
        ));
    }
    let request = PlanRequest {
        workflow: &checked.workflow,
        workflow_path: &args.workflow,
        workflow_sha256: checked.sources.sha256(),
        vars: args.inputs.vars.vars.clone(),
        as_of: args
            .inputs
            .planning
            .as_of
            .unwrap_or_else(crate::text::now_in_seconds),
        parallelism: usize::from(args.inputs.planning.parallelism),
        users: args.inputs.narrow.users.clone(),
        accounts: args.inputs.narrow.accounts.clone(),
        credential_report: !args.inputs.planning.no_credential_report,
    };
    let runtime = runtime();
    let started = std::time::Instant::now();
    let (result, calls) = runtime.block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let result = async {
            let note = |text: &str| eprintln!("note: {text}\n");
            let (state, in_progress) = choice
                .read_for_plan(&args.workflow, &checked.workflow, &aws, &note)
                .await
                .map_err(|e| e.to_string())?;
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
            crate::apply::marks::annotate_from_state(
                &mut plan,
                &state,
                in_progress,
                &checked.workflow,
                &args.inputs.vars.vars,
            )
            .await;
            Ok::<_, String>(plan)
        }
        .await;
        (result, aws.calls.by_service())
    });
    let mut plan = match result {
        Ok(plan) => plan,
        Err(error) => return fail(error),
    };
    account_for(&mut plan, &exemptions);
    // Values of sensitive params never reach an output or a saved plan.
    let hide = crate::workflow::params::bind(&checked.workflow, &args.inputs.vars.vars)
        .map(|params| checked.workflow.sensitive(&params))
        .unwrap_or_default();
    if let Some(path) = &args.out
        && let Err(error) = write_out(path, hide.redact(&render::plan::json(&plan)).as_bytes())
    {
        eprintln!("error: cannot save the plan to {}: {error}", path.display());
        return Exit::Error.into();
    }
    // `--out -` is the document on stdout: nothing else goes there.
    let to_stdout = args.out.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if args.json && !to_stdout {
        print!("{}", hide.redact(&render::plan::json(&plan)));
    } else if !to_stdout {
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
    unplanned_accounts(&plan);
    Exit::of_plan(&plan, args.detailed_exitcode).into()
}

/// An account that could not be planned is an error: said on stderr, after
/// everything else.
pub(super) fn unplanned_accounts(plan: &crate::plan::Plan) -> Exit {
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
