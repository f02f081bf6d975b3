//! `rekey status` and `rekey state list|show|unlock`: reading and repairing
//! apply's state, printed for people.

use std::path::Path;
use std::process::ExitCode;

use super::args::{Global, StateCommand};
use super::*;
use crate::apply;
use crate::providers::aws::Aws;
use crate::workflow;

pub(super) fn status(global: &Global, workflow: &Path) -> ExitCode {
    if let Err(error) = check_profile(global) {
        return fail(error);
    }
    let checked = match workflow::check(workflow) {
        Ok(checked) => checked,
        Err(error) => return apply_failed(ApplyError::Invalid(error)),
    };
    let name = &checked.workflow.name;
    runtime().block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let choice = state_choice(global);
        let state = match choice.to_read(workflow, &checked.workflow, &aws) {
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
        if let Some(message) = choice.local_in_progress(workflow, &checked.workflow, &state) {
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

pub(super) fn state_command(global: &Global, command: StateCommand) -> ExitCode {
    if let Err(error) = check_profile(global) {
        return fail(error);
    }
    let path = match &command {
        StateCommand::List { workflow }
        | StateCommand::Show { workflow }
        | StateCommand::Unlock { workflow, .. } => workflow.clone(),
    };
    let mut checked = match workflow::check(&path) {
        Ok(checked) => checked,
        Err(error) => return apply_failed(ApplyError::Invalid(error)),
    };
    let choice = state_choice(global);
    choice.adjust(&mut checked.workflow);
    let workflow = &checked.workflow;
    runtime().block_on(async {
        let aws = Aws::connect(&aws_options(global)).await;
        let state = match choice.open(&path, workflow, &aws, None) {
            Ok((_, state)) => state,
            Err(error) => return apply_failed(error),
        };
        let result = match command {
            StateCommand::List { .. } => state_list(&choice, &path, workflow, &aws, &state).await,
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
    choice: &StateChoice,
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
        let other = choice
            .open(path, workflow, aws, Some(&name))
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
