//! Faults: apply keeps every invariant when AWS throttles, errors, drops
//! connections, loses answers or stalls, and when its journal or disk is
//! damaged. Faults come from the seeded proxy (scripts/aws-proxy.py).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::account::Account;
use crate::emulator::fault_proxy;
use crate::support::{Setup, assert_rotated, seed};

/// Faults injected and calls made, from a proxy log.
fn census(log: &std::path::Path) -> (usize, BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let calls: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut faults = BTreeMap::new();
    for call in &calls {
        if let Some(fault) = call["fault"].as_str() {
            *faults.entry(fault.to_string()).or_insert(0) += 1;
        }
    }
    (calls.len(), faults)
}

#[test]
fn twenty_rotations_converge_under_throttling_errors_and_lost_connections() {
    let account = Account::new();
    let users = seed(&account, "", 20);
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: works\n      sts_identity: { timeout: 30s }\npolicy:\n  soak: 0s\n  make_room: delete_inactive\n  concurrency: 8\n",
    );
    let log = setup.path().join("calls.jsonl");
    // REKEY_FAULT_SEED and REKEY_FAULT_MIX replay or vary the faults
    // (bench/faults.sh sweeps them).
    let seed = std::env::var("REKEY_FAULT_SEED").unwrap_or_else(|_| "7".into());
    let mix = std::env::var("REKEY_FAULT_MIX")
        .unwrap_or_else(|_| "--throttle 0.10 --error 0.05 --drop 0.01 --lose 0.01".into());
    let mut options = vec!["--seed", seed.as_str()];
    options.extend(mix.split_whitespace());
    let proxy = fault_proxy(&log, &options);
    account.age_keys();
    let mut runs = 0;
    loop {
        runs += 1;
        let run = setup.rekey_at(
            &proxy.endpoint,
            &[],
            &["apply", "workflow.yaml", "--auto-approve"],
        );
        if run.code == 0 {
            break;
        }
        assert_eq!(
            run.code, 1,
            "only errors (resumable) are expected:\n{}",
            run.stdout
        );
        assert!(
            runs < 6,
            "no convergence after {runs} applies:\n{}",
            run.stdout
        );
    }
    assert_rotated(&account, &setup, &users);
    let (calls, faults) = census(&log);
    eprintln!(
        "FAULTS seed={seed} mix=[{mix}] converged=yes runs={runs} calls={calls} faults={faults:?}"
    );
    assert!(
        faults.values().sum::<usize>() >= 20,
        "the faults were injected: {faults:?}"
    );
}

#[test]
fn a_stall_longer_than_the_timeout_fails_cleanly_and_resume_finishes() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    let log = setup.path().join("calls.jsonl");
    let stalled = fault_proxy(
        &log,
        &[
            "--stall",
            "1.0",
            "--stall-ms",
            "30000",
            "--only",
            "DeleteAccessKey",
        ],
    );
    account.age_keys();
    let timeouts = [
        ("REKEY_AWS_ATTEMPT_TIMEOUT", "1s"),
        ("REKEY_AWS_OPERATION_TIMEOUT", "3s"),
    ];
    let run = setup.rekey_at(
        &stalled.endpoint,
        &timeouts,
        &["apply", "workflow.yaml", "--auto-approve"],
    );
    run.exits(1);
    assert!(
        run.stdout
            .contains("FAILED at delete-old: iam:DeleteAccessKey"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("no answer in time"), "{}", run.stdout);
    drop(stalled);
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &users);
}

#[test]
fn a_journal_cut_by_a_crash_is_resumed_and_one_damaged_inside_is_refused() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    let killed = setup.rekey_at(
        crate::emulator::emulator(),
        &[("REKEY_CRASH_AT", "distribute:profile")],
        &["apply", "workflow.yaml", "--auto-approve"],
    );
    assert_eq!(killed.code, -1, "killed");
    let journal = setup.state().join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    // Cut the last record in half, as a crash during the write would.
    std::fs::write(&journal, &text[..text.len() - 20]).unwrap();
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &users);

    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    let killed = setup.rekey_at(
        crate::emulator::emulator(),
        &[("REKEY_CRASH_AT", "distribute:param")],
        &["apply", "workflow.yaml", "--auto-approve"],
    );
    assert_eq!(killed.code, -1, "killed");
    let journal = setup.state().join("journal.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[1] = "{\"time\": garbage".to_string();
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let keys_before = account.keys(&users[0].0);
    let run = setup.apply();
    run.exits(1);
    assert!(
        run.stderr.contains("is damaged at line 2") && run.stderr.contains("will not guess"),
        "{}",
        run.stderr
    );
    assert_eq!(account.keys(&users[0].0), keys_before, "nothing changed");
}

#[test]
fn a_state_directory_that_cannot_be_written_stops_apply_before_any_change() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "");
    account.age_keys();
    // /proc is read-only for everyone, root included.
    let run = setup.rekey(&[
        "apply",
        "workflow.yaml",
        "--auto-approve",
        "--state-dir",
        "/proc/rekey-state",
    ]);
    run.exits(1);
    assert!(
        run.stderr
            .contains("cannot create the state directory /proc/rekey-state"),
        "{}",
        run.stderr
    );
    assert_eq!(
        account.keys(&users[0].0),
        [(users[0].1.clone(), true)],
        "nothing changed in AWS"
    );
}

#[test]
fn a_user_deleted_after_planning_makes_the_saved_plan_stale() {
    let account = Account::new();
    let users = seed(&account, "", 2);
    let setup = Setup::new(&account, "", "policy:\n  make_room: delete_inactive\n");
    account.age_keys();
    setup
        .rekey(&["plan", "workflow.yaml", "--out", "plan.json"])
        .exits(0);
    account.delete_user(&users[0].0);
    let run = setup.rekey(&["apply", "plan.json"]);
    run.exits(1);
    assert!(
        run.stderr.contains("the plan is stale")
            && run
                .stderr
                .contains(&format!("-{}: key {}", users[0].0, users[0].1)),
        "{}",
        run.stderr
    );
}

#[test]
fn a_target_deleted_by_someone_else_before_rollback_halts_with_its_name() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, _) = &users[0];
    let name = format!("/{}/{user}/aws", account.id);
    let python = crate::support::root().join(".venv/bin/python");
    let delete_then_fail = format!(
        "{} -c 'import boto3; boto3.client(\"ssm\", region_name=\"us-east-1\").delete_parameter(Name=\"{name}\")'; exit 1",
        python.display()
    );
    let setup = Setup::new(
        &account,
        "",
        &format!(
            "hooks:\n  verify:\n    - id: check\n      exec: {{ command: [sh, -c, {delete_then_fail:?}] }}\n"
        ),
    );
    account.age_keys();
    let run = setup.apply();
    run.exits(3);
    assert!(
        run.stdout.contains("then rollback failed:") && run.stdout.contains(&name),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("HALTED"), "{}", run.stdout);
    let status = setup.rekey(&["status", "workflow.yaml"]);
    assert!(
        status.stdout.contains("halted while rolling back:"),
        "{}",
        status.stdout
    );
}

#[test]
fn an_answer_missing_its_fields_fails_cleanly_and_a_later_apply_converges() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    let log = setup.path().join("calls.jsonl");
    // CreateAccessKey happens, but its answer has no AccessKey in it.
    let mangling = fault_proxy(&log, &["--mangle", "1.0", "--only", "CreateAccessKey"]);
    account.age_keys();
    let run = setup.rekey_at(
        &mangling.endpoint,
        &[],
        &["apply", "workflow.yaml", "--auto-approve"],
    );
    run.exits(1);
    assert!(
        run.stdout.contains("FAILED at create: iam:CreateAccessKey"),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    drop(mangling);
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &users);
}
