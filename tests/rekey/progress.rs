//! Rotations in progress, as the world around them changes: each test is
//! named after a failure seen when apply re-derived what to do from
//! whatever workflow it was handed. A rotation now owns a snapshot, belongs
//! to its workflow, rolls back as a journaled phase, is told truthfully by
//! plan, can be aborted, and stops cleanly on a signal.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::account::{Account, CANARY};
use crate::support::{Setup, assert_rotated, seed};

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} is not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// The old key active and alone, every target holding it.
fn assert_rolled_back(account: &Account, setup: &Setup, user: &str, old: &str) {
    assert_eq!(
        account.keys(user),
        [(old.to_string(), true)],
        "{user}: the old key is active again and the new one gone"
    );
    assert_eq!(
        account
            .param_key(&format!("/{}/{user}/aws", account.id))
            .as_deref(),
        Some(old),
        "{user}: the SSM target holds the old key"
    );
    assert_eq!(
        account
            .param_secret(&format!("/{}/{user}/aws", account.id))
            .as_deref(),
        Some(CANARY),
        "{user}: the SSM target holds the old secret"
    );
    let staged = setup.state().join(format!("staging/{user}.json"));
    assert!(!staged.exists(), "{user}: the new secret is still staged");
}

#[test]
fn workflows_side_by_side_never_share_a_rotation() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, _) = &users[0];
    let setup = Setup::new(&account, "", "policy:\n  soak: 1h\n");
    let other = setup.path().join("other.yaml");
    let text = std::fs::read_to_string(setup.path().join("workflow.yaml"))
        .unwrap()
        .replace("name: test", "name: other")
        .replace("soak: 1h", "soak: 0s")
        .replace("path: credentials", "path: other-credentials");
    std::fs::write(&other, text).unwrap();
    account.age_keys();
    setup.apply().exits(4);
    // Default state directories are per workflow.
    let run = setup.rekey(&["apply", "other.yaml", "--auto-approve"]);
    assert!(
        !setup.path().join("other-credentials").exists(),
        "the other workflow wrote its target for this one's rotation: {}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("resuming") && !run.stdout.contains("in progress"),
        "{}",
        run.stdout
    );
    // A state directory shared by hand: the other workflow leaves the
    // rotation alone, holds its user, and does not report it.
    let shared = ["--state-dir", ".rekey/test"];
    let run = setup.rekey(&[
        "apply",
        "other.yaml",
        "--auto-approve",
        shared[0],
        shared[1],
    ]);
    assert!(
        run.stdout
            .contains("a rotation of workflow `test` is in progress on this user"),
        "{}",
        run.stdout
    );
    let status = setup.rekey(&["status", "other.yaml", shared[0], shared[1]]);
    assert!(!status.stdout.contains(user.as_str()), "{}", status.stdout);
    let keys = account.keys(user);
    assert_eq!(keys.len(), 2, "the soak goes on: {keys:?}");
    let status = setup.rekey(&["status", "workflow.yaml"]);
    assert!(
        status.stdout.contains("paused at soak"),
        "{}",
        status.stdout
    );
}

#[test]
fn rollback_restores_what_the_rotation_wrote_not_what_the_workflow_names_now() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    let setup = Setup::new(
        &account,
        "",
        "  - id: env\n    env_file: { path: a.env }\nhooks:\n  verify:\n    - id: health\n      exec: { command: [sh, -c, \"test ! -e broken\"] }\npolicy:\n  soak: 0s\n",
    );
    std::fs::write(
        setup.path().join("a.env"),
        format!("AWS_ACCESS_KEY_ID={old}\nAWS_SECRET_ACCESS_KEY={CANARY}\n"),
    )
    .unwrap();
    let unrelated = "DATABASE_URL=postgres://app@db/app\n";
    std::fs::write(setup.path().join("b.env"), unrelated).unwrap();
    let a_before = std::fs::read(setup.path().join("a.env")).unwrap();
    account.age_keys();
    setup.apply_until("distribute").exits(0);
    edit(
        &setup.path().join("workflow.yaml"),
        "path: a.env",
        "path: b.env",
    );
    let plan = setup.rekey(&["plan", "workflow.yaml"]);
    assert!(
        plan.stdout.contains(
            "The workflow changed since it began (target `env` changed): this rotation goes on as it began"
        ),
        "plan shows the difference: {}",
        plan.stdout
    );
    std::fs::write(setup.path().join("broken"), "").unwrap();
    let run = setup.apply();
    run.exits(3);
    assert!(run.stdout.contains("ROLLED BACK"), "{}", run.stdout);
    assert_eq!(
        std::fs::read(setup.path().join("a.env")).unwrap(),
        a_before,
        "a.env, which the rotation wrote, is restored"
    );
    assert_eq!(
        std::fs::read_to_string(setup.path().join("b.env")).unwrap(),
        unrelated,
        "b.env, which the rotation never wrote, is untouched"
    );
    assert_rolled_back(&account, &setup, user, old);
}

#[test]
fn a_rollback_that_fails_half_way_is_finished_by_the_next_apply() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    // Targets are restored last first: the parameter, then the profile.
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: health\n      exec: { command: [\"false\"] }\npolicy:\n  soak: 0s\n",
    );
    // Put the profile before the parameter.
    let param = format!(
        "  - id: param\n    ssm_parameter: {{ name: \"/{}/${{user}}/aws\" }}\n",
        account.id
    );
    let profile =
        "  - id: profile\n    credentials_file: { path: credentials, profile: \"${user}\" }\n";
    edit(
        &setup.path().join("workflow.yaml"),
        &format!("{param}{profile}"),
        &format!("{profile}{param}"),
    );
    let credentials =
        format!("[{user}]\naws_access_key_id = {old}\naws_secret_access_key = {CANARY}\n");
    std::fs::write(setup.path().join("credentials"), &credentials).unwrap();
    account.age_keys();
    // Stop after distribute, then break the profile's backup: its restore
    // fails after the parameter's succeeded.
    setup.apply_until("distribute").exits(0);
    let backups = setup.state().join("backups");
    let backup = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".profile"))
        .expect("a backup of the profile");
    std::fs::remove_file(&backup).unwrap();
    std::fs::create_dir(&backup).unwrap();
    let halted = setup.apply();
    halted.exits(3);
    assert!(
        halted.stdout.contains("then rollback failed"),
        "{}",
        halted.stdout
    );
    let status = setup.rekey(&["status", "workflow.yaml"]);
    assert!(
        status.stdout.contains("halted while rolling back"),
        "{}",
        status.stdout
    );
    let plan = setup.rekey(&["plan", "workflow.yaml"]);
    assert!(
        plan.stdout.contains("halted while rolling back"),
        "{}",
        plan.stdout
    );
    // Fix the cause: the next apply finishes the rollback, never the rotation.
    std::fs::remove_dir(&backup).unwrap();
    std::fs::write(&backup, &credentials).unwrap();
    let finished = setup.apply();
    finished.exits(3);
    assert!(
        finished.stdout.contains("ROLLED BACK") && !finished.stdout.contains("rotated:"),
        "{}",
        finished.stdout
    );
    assert_rolled_back(&account, &setup, user, old);
    assert_eq!(
        std::fs::read_to_string(setup.path().join("credentials")).unwrap(),
        credentials
    );
    let again = setup.apply();
    assert!(!again.stdout.contains("rotated:"), "{}", again.stdout);
}

#[test]
fn plan_tells_the_truth_about_rotations_in_progress() {
    let account = Account::new();
    let users = seed(&account, "", 2);
    let setup = Setup::new(
        &account,
        "",
        "policy:\n  soak: 1h\n  make_room: delete_inactive\n",
    );
    account.age_keys();
    setup.apply().exits(4);
    let plan = setup.rekey(&["plan", "workflow.yaml", "--detailed-exitcode"]);
    plan.exits(2);
    for (user, _) in &users {
        assert!(
            plan.stdout
                .contains(&format!("> {user}: in progress, paused in soak until"))
                && plan
                    .stdout
                    .contains("continues with soak, delete-old, unstage"),
            "{}",
            plan.stdout
        );
    }
    assert!(
        !plan.stdout.contains("make-room") && !plan.stdout.contains("blocked, "),
        "the soaking old key is not offered for deletion: {}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 0 to rotate, 2 in progress, 0 unchanged, 0 blocked."),
        "{}",
        plan.stdout
    );
    let json = setup.rekey(&["plan", "workflow.yaml", "--json"]);
    let document: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(document["format_version"], 2);
    assert_eq!(document["summary"]["in_progress"], 2);
    assert_eq!(document["users"][0]["decision"], "in_progress");
}

#[test]
fn plan_after_until_distribute_shows_the_rotation_not_two_active_keys() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    setup.apply_until("distribute").exits(0);
    let plan = setup.rekey(&["plan", "workflow.yaml"]);
    assert!(
        plan.stdout
            .contains(&format!("> {}: in progress", users[0].0))
            && !plan.stdout.contains("two active keys"),
        "{}",
        plan.stdout
    );
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &users);
}

#[test]
fn abort_rolls_back_a_rotation_in_progress_and_refuses_after_delete_old() {
    let account = Account::new();
    let users = seed(&account, "", 2);
    let setup = Setup::new(&account, "", "policy:\n  soak: 1h\n");
    account.age_keys();
    // The blocked user (both slots used, `make_room: refuse`) is left due: 5.
    setup.apply().exits(5);
    let (first, first_old) = &users[0];
    let (second, _) = &users[1];
    let no_approval = setup.rekey(&["abort", "workflow.yaml", "--user", first]);
    no_approval.exits(1);
    assert!(
        no_approval.stdout.contains(
            "undo: enable-old, restore:push, restore:profile, restore:param, delete-new, discard"
        ),
        "it shows what it will do: {}",
        no_approval.stdout
    );
    assert_eq!(
        account.keys(first).len(),
        2,
        "nothing changed without approval"
    );
    let unknown = setup.rekey(&[
        "abort",
        "workflow.yaml",
        "--user",
        "nobody",
        "--auto-approve",
    ]);
    unknown.exits(1);
    assert!(
        unknown.stderr.contains("--user nobody"),
        "{}",
        unknown.stderr
    );
    let run = setup.rekey(&["abort", "workflow.yaml", "--user", first, "--auto-approve"]);
    run.exits(0);
    assert_rolled_back(&account, &setup, first, first_old);
    assert_eq!(
        account.keys(second).len(),
        2,
        "--user leaves the others alone"
    );
    let status = setup.rekey(&["status", "workflow.yaml"]);
    assert!(
        status
            .stdout
            .contains(&format!("{first}: rolled back: aborted")),
        "{}",
        status.stdout
    );
    // Once delete-old has run, the old key may be gone: abort refuses.
    let late = seed(&account, "late/", 1);
    let setup = Setup::new(&account, "late/", "policy:\n  soak: 0s\n");
    account.age_keys();
    let crash = setup
        .command(&["apply", "workflow.yaml", "--auto-approve"])
        .env("REKEY_CRASH_AT", "intent:delete-old")
        .output()
        .unwrap();
    assert_eq!(crash.status.code(), None);
    let refused = setup.rekey(&["abort", "workflow.yaml", "--auto-approve"]);
    refused.exits(1);
    assert!(
        refused.stderr.contains("delete-old has run"),
        "{}",
        refused.stderr
    );
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &late);
}

#[test]
fn user_narrows_plan_and_apply_and_is_refused_when_not_selected_or_with_a_saved_plan() {
    let account = Account::new();
    let users = seed(&account, "", 2);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    let (first, _) = &users[0];
    let (second, _) = &users[1];
    let second_keys = account.keys(second);
    let plan = setup.rekey(&["plan", "workflow.yaml", "--user", first]);
    plan.exits(0);
    assert!(
        plan.stdout
            .contains("Plan: 1 to rotate, 0 unchanged, 0 blocked.")
            && !plan.stdout.contains(second.as_str()),
        "{}",
        plan.stdout
    );
    let unknown = setup.rekey(&["plan", "workflow.yaml", "--user", "nobody"]);
    unknown.exits(1);
    assert!(
        unknown
            .stderr
            .contains("--user nobody: the workflow does not select nobody"),
        "{}",
        unknown.stderr
    );
    setup
        .rekey(&["plan", "workflow.yaml", "--out", "plan.json"])
        .exits(0);
    let saved = setup.rekey(&["apply", "plan.json", "--user", first]);
    saved.exits(1);
    assert!(
        saved.stderr.contains("the plan fixes its users"),
        "{}",
        saved.stderr
    );
    setup
        .rekey(&["apply", "workflow.yaml", "--auto-approve", "--user", first])
        .exits(0);
    assert_rotated(&account, &setup, &users[..1]);
    assert_eq!(
        account.keys(second),
        second_keys,
        "the other user is untouched"
    );
}

#[test]
fn ctrl_c_during_a_hook_stops_cleanly_and_is_not_a_failed_verification() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    // The hook waits for a marker that the test writes after the signal.
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: slow\n      exec: { command: [sh, -c, \"echo $$$$ > hook.pid; while [ ! -e ready ]; do sleep 0.1; done\"], timeout: 60s }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    let mut child = setup
        .command(&["apply", "workflow.yaml", "--auto-approve"])
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !setup.path().join("hook.pid").exists() {
        assert!(Instant::now() < deadline, "the hook never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let hook: i32 = std::fs::read_to_string(setup.path().join("hook.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // As a terminal's Ctrl-C: SIGINT to rekey's whole process group.
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling a process group this test created.
    unsafe {
        libc::kill(-pid, libc::SIGINT);
    }
    let started = Instant::now();
    let output = {
        let status = child.wait().unwrap();
        let mut stdout = String::new();
        use std::io::Read;
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        (status, stdout)
    };
    assert_eq!(output.0.code(), Some(130), "{}", output.1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it stopped promptly"
    );
    assert!(
        output.1.contains("INTERRUPTED at verify:slow"),
        "{}",
        output.1
    );
    assert!(
        !output.1.contains("ROLLED BACK") && !output.1.contains("FAILED"),
        "an interruption is not a failed verification: {}",
        output.1
    );
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(hook, 0) } == 0;
    assert!(!alive, "the hook's process group was stopped");
    let journal = setup.journal();
    assert!(
        journal.contains("\"event\":\"interrupted\"") && !journal.contains("rolling_back"),
        "{journal}"
    );
    std::fs::write(setup.path().join("ready"), "").unwrap();
    let resumed = setup.apply();
    resumed.exits(0);
    assert_rotated(&account, &setup, &users);
}

#[test]
fn a_torn_journal_is_recovered_for_good() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 1h\n");
    account.age_keys();
    setup.apply().exits(4);
    let journal = setup.state().join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, &text[..text.len() - 20]).unwrap();
    edit(&setup.path().join("workflow.yaml"), "soak: 1h", "soak: 0s");
    // The rotation keeps its own soak (1h): it pauses again, and the
    // journal stays readable through status and two more applies.
    setup.apply().exits(4);
    let status = setup.rekey(&["status", "workflow.yaml"]);
    status.exits(0);
    assert!(!status.stderr.contains("damaged"), "{}", status.stderr);
    setup.apply().exits(4);
    setup.apply().exits(4);
    for line in std::fs::read_to_string(&journal).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is whole");
    }
    let _ = users;
}

#[test]
fn a_rotation_keeps_the_soak_it_began_with() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 1h\n");
    account.age_keys();
    setup.apply_until("distribute").exits(0);
    edit(&setup.path().join("workflow.yaml"), "soak: 1h", "soak: 0s");
    let run = setup.apply();
    run.exits(4);
    assert!(
        run.stdout.contains("soaks, disabled, for 1h"),
        "{}",
        run.stdout
    );
    assert_eq!(account.keys(&users[0].0).len(), 2, "the old key is kept");
}

#[test]
fn a_sensitive_param_is_never_written_and_is_needed_to_resume() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let token = "TOKEN-never-in-the-journal-51f0";
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: check\n      exec: { command: [sh, -c, \"test x${params.token} = x$EXPECTED\"] }\npolicy:\n  soak: 0s\nparams:\n  token: { sensitive: true }\n",
    );
    account.age_keys();
    let var = format!("token={token}");
    setup
        .rekey(&[
            "apply",
            "workflow.yaml",
            "--auto-approve",
            "--var",
            &var,
            "--until",
            "distribute",
        ])
        .exits(0);
    assert!(!setup.journal().contains(token), "{}", setup.journal());
    let without = setup.rekey(&["apply", "workflow.yaml", "--auto-approve"]);
    without.exits(1);
    assert!(without.stderr.contains("token"), "{}", without.stderr);
    let run = setup.rekey_at(
        crate::emulator::emulator(),
        &[("EXPECTED", token)],
        &["apply", "workflow.yaml", "--auto-approve", "--var", &var],
    );
    run.exits(0);
    assert!(!run.stdout.contains(token), "{}", run.stdout);
    assert_rotated(&account, &setup, &users);
    assert!(!setup.journal().contains(token));
    // Nor in a saved plan, which then needs it again.
    setup
        .rekey(&["plan", "workflow.yaml", "--var", &var, "--out", "plan.json"])
        .exits(0);
    let saved = std::fs::read_to_string(setup.path().join("plan.json")).unwrap();
    assert!(!saved.contains(token), "{saved}");
    let without = setup.rekey(&["apply", "plan.json"]);
    without.exits(1);
    assert!(
        without.stderr.contains("sensitive param `token`"),
        "{}",
        without.stderr
    );
}

/// Regression: a failing hook's message, with the sensitive value in its
/// argv and its output, reached the report, the journal and status.
#[test]
fn a_sensitive_param_in_a_failing_hook_reaches_no_output() {
    let account = Account::new();
    let _users = seed(&account, "", 1);
    let token = "TOKEN-in-a-failing-hook-77aa";
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: check\n      exec: { command: [sh, -c, \"echo got ${params.token}; exit 1\", \"${params.token}\"] }\npolicy:\n  soak: 0s\nparams:\n  token: { sensitive: true }\n",
    );
    account.age_keys();
    let var = format!("token={token}");
    let run = setup.rekey(&["apply", "workflow.yaml", "--auto-approve", "--var", &var]);
    run.exits(3);
    assert!(run.stdout.contains("ROLLED BACK"), "{}", run.stdout);
    let status = setup.rekey(&["status", "workflow.yaml"]);
    for (what, text) in [
        ("stdout", &run.stdout),
        ("stderr", &run.stderr),
        ("journal", &setup.journal()),
        ("status", &status.stdout),
    ] {
        assert!(
            !text.contains(token),
            "the token reached the {what}: {text}"
        );
    }
    assert!(run.stdout.contains("(sensitive)"), "{}", run.stdout);
}

#[test]
fn a_rotation_never_continues_in_another_account() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    setup.apply_until("distribute").exits(0);
    // Rewrite the snapshot's account, as if it had begun elsewhere.
    let journal = setup.state().join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap().replace(
        "\"account\":\"123456789012\"",
        "\"account\":\"210987654321\"",
    );
    std::fs::write(&journal, text).unwrap();
    let run = setup.apply();
    run.exits(1);
    assert!(
        run.stdout.contains("began in account 210987654321"),
        "{}",
        run.stdout
    );
    assert_eq!(account.keys(&users[0].0).len(), 2, "nothing more was done");
    // A workflow may pin its accounts.
    edit(
        &setup.path().join("workflow.yaml"),
        "name: test\n",
        "name: test\naccounts:\n  allowed: [\"210987654321\"]\n",
    );
    let pinned = setup.rekey(&["plan", "workflow.yaml"]);
    pinned.exits(1);
    assert!(
        pinned
            .stderr
            .contains("account 123456789012, which `accounts.allowed` does not list"),
        "{}",
        pinned.stderr
    );
}

#[test]
fn a_rollback_puts_back_the_parameters_type_and_kms_key() {
    let account = Account::new();
    let users = seed(&account, "", 2);
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: health\n      exec: { command: [\"false\"] }\npolicy:\n  soak: 0s\n  make_room: delete_inactive\n",
    );
    let plain = format!("/{}/{}/aws", account.id, users[0].0);
    let custom = format!("/{}/{}/aws", account.id, users[1].0);
    account.ssm_put_as(&plain, &users[0].1, "String", None);
    account.ssm_put_as(&custom, &users[1].1, "SecureString", Some("alias/team-key"));
    account.age_keys();
    let run = setup.apply();
    run.exits(3);
    // (moto keeps the last SecureString's key id on a String overwritten
    // over it; AWS drops it: only the type is compared here.)
    assert_eq!(account.param_kind(&plain).0, "String");
    assert_eq!(
        account.param_kind(&custom),
        (
            "SecureString".to_string(),
            Some("alias/team-key".to_string())
        )
    );
    for (user, old) in &users {
        assert_eq!(
            account
                .param_key(&format!("/{}/{user}/aws", account.id))
                .as_ref(),
            Some(old)
        );
    }
}

/// Regression: after a halt, plan said `fix: delete the inactive key`.
#[test]
fn plan_after_a_halt_says_apply_retries_and_abort_rolls_back() {
    let account = Account::new();
    let _users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: check\n      exec: { command: [\"false\"] }\npolicy:\n  on_verify_failure: halt\n",
    );
    account.age_keys();
    setup.apply().exits(3);
    let plan = setup.rekey(&["plan", "workflow.yaml"]);
    assert!(
        plan.stdout.contains("halted (hook `check`")
            && plan
                .stdout
                .contains("apply retries it, abort rolls it back")
            && !plan.stdout.contains("fix:"),
        "{}",
        plan.stdout
    );
}

/// Regression: Ctrl-C during a slow `rollback:` command left a rollback
/// that the next apply completed as a rotation.
#[test]
fn ctrl_c_during_a_slow_rollback_command_is_finished_by_the_next_apply() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "  - id: slow\n    exec: { command: [\"true\"], rollback: [sh, -c, \"echo $$$$ > rollback.pid; sleep 2\"] }\nhooks:\n  verify:\n    - id: check\n      exec: { command: [\"false\"] }\npolicy:\n  soak: 0s\n",
    );
    let credentials = std::fs::read(setup.path().join("credentials")).unwrap();
    account.age_keys();
    let child = setup
        .command(&["apply", "workflow.yaml", "--auto-approve"])
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !setup.path().join("rollback.pid").exists() {
        assert!(Instant::now() < deadline, "the rollback never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling a process group this test created.
    unsafe {
        libc::kill(-pid, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("INTERRUPTED at rollback"), "{stdout}");
    let resumed = setup.apply();
    resumed.exits(3);
    assert!(
        resumed.stdout.contains("ROLLED BACK") && !resumed.stdout.contains("rotated:"),
        "{}",
        resumed.stdout
    );
    crate::support::assert_rolled_back(&account, &setup, &users, &credentials);
}

/// Regression: a failing hook not given the credentials read the new
/// secret from a target and printed it, raw or encoded: it reached stdout,
/// the journal and status.
#[test]
fn a_hook_that_prints_the_new_secret_in_any_encoding_leaks_nothing() {
    let account = Account::new();
    let _users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: leaky\n      exec: { command: [sh, -c, \"cat credentials; s=$$(sed -n 's/^aws_secret_access_key = //p' credentials | tail -n 1); printf %s \\\"$$s\\\" | base64; printf 'x%s' \\\"$$s\\\" | base64; exit 1\"] }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    let run = setup.apply();
    run.exits(3);
    let journal = setup.journal();
    let new_key = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["step"] == "create" && e["event"] == "done")
        .and_then(|e| e["done"]["created"]["new_key"].as_str().map(str::to_string))
        .expect("a key was created");
    let secret = account
        .issued_secrets()
        .get(&new_key)
        .cloned()
        .expect("IAM's record of the new key");
    let status = setup.rekey(&["status", "workflow.yaml"]);
    for (what, text) in [
        ("stdout", &run.stdout),
        ("journal", &journal),
        ("status", &status.stdout),
    ] {
        assert!(!text.contains(&secret), "the secret reached the {what}");
        assert!(
            !text.contains(&secret[..12]),
            "part of the secret reached the {what}"
        );
    }
    assert!(run.stdout.contains("(sensitive)"), "{}", run.stdout);
}

/// Regression: a failing command target left two active keys and the
/// secret staged, instead of rolling back as a failed check does.
#[test]
fn a_failing_command_target_rolls_back_per_policy() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "  - id: broken\n    exec: { command: [sh, -c, \"echo cannot push; exit 2\"] }\npolicy:\n  soak: 0s\n",
    );
    let credentials = std::fs::read(setup.path().join("credentials")).unwrap();
    account.age_keys();
    let run = setup.apply();
    run.exits(3);
    assert!(
        run.stdout
            .contains("ROLLED BACK: target `broken`: `sh -c echo cannot push; exit 2` exited 2"),
        "{}",
        run.stdout
    );
    crate::support::assert_rolled_back(&account, &setup, &users, &credentials);
}

/// Declining the approval prompt on a terminal says so and changes nothing.
#[test]
fn declining_the_prompt_says_apply_cancelled() {
    use std::io::Write;
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    // `script` gives rekey a terminal, whose input is this test's "no".
    let mut child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} apply workflow.yaml", env!("CARGO_BIN_EXE_rekey")),
            "/dev/null",
        ])
        .current_dir(setup.path())
        .env("NO_COLOR", "1")
        .env("REKEY_CLAIMS_DIR", crate::support::claims_dir())
        .env("AWS_ENDPOINT_URL", crate::emulator::emulator())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    child.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Apply cancelled."), "{stdout}");
    assert_eq!(account.keys(&users[0].0).len(), 1, "nothing changed");
}

/// Regression: a target's `rollback:` got the operator's own credentials,
/// while the docs promised "the previous credentials". Each command now
/// gets what its `credentials` say.
#[test]
fn each_command_gets_the_credentials_it_says() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "  - id: show\n    exec: { command: [sh, -c, \"env > target.env\"], rollback: [sh, -c, \"env > rollback.env\"] }\nhooks:\n  verify:\n    - id: op\n      exec: { command: [sh, -c, \"env > operator.env\"] }\n    - id: bare\n      exec: { command: [sh, -c, \"env > none.env; exit 1\"], credentials: none }\n      needs: [op]\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    let run = setup.rekey_at(
        crate::emulator::emulator(),
        &[("AWS_SESSION_TOKEN", "operator-session-token")],
        &["apply", "workflow.yaml", "--auto-approve"],
    );
    run.exits(3);
    let read = |name: &str| std::fs::read_to_string(setup.path().join(name)).unwrap();
    let (target, operator, none, rollback) = (
        read("target.env"),
        read("operator.env"),
        read("none.env"),
        read("rollback.env"),
    );
    let new_key = target
        .lines()
        .find_map(|l| l.strip_prefix("AWS_ACCESS_KEY_ID="))
        .expect("the target got a key id")
        .to_string();
    assert!(
        new_key.starts_with("AKIA") && new_key != users[0].1,
        "{target}"
    );
    assert!(
        !target.contains("AWS_SESSION_TOKEN"),
        "the operator's token shadows the new key: {target}"
    );
    assert!(
        operator.contains("AWS_ACCESS_KEY_ID=testing")
            && operator.contains("AWS_SESSION_TOKEN=operator-session-token"),
        "{operator}"
    );
    for (what, env) in [("credentials: none", &none), ("rollback", &rollback)] {
        assert!(
            !env.contains("AWS_ACCESS_KEY_ID=") && !env.contains("AWS_SESSION_TOKEN"),
            "{what} got credentials: {env}"
        );
    }
    assert!(
        rollback.contains(&format!("REKEY_OLD_ACCESS_KEY_ID={}", users[0].1)),
        "{rollback}"
    );
}

/// Regression: a saved plan's vars edited to `app; touch PWNED` went
/// through a workflow's `sh -c` hook on apply; `--var` did the same.
#[test]
fn params_accept_only_what_they_declare_and_a_saved_plan_fixes_its_flags() {
    let account = Account::new();
    let _users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: greet\n      exec: { command: [sh, -c, \"echo ${params.app} ${params.free}\"] }\npolicy:\n  soak: 0s\nparams:\n  app: { default: web, pattern: \"[a-z]+\" }\n  tier: { default: blue, one_of: [blue, green] }\n  free: { default: x }\n",
    );
    account.age_keys();
    let validate = setup.rekey(&["validate", "workflow.yaml"]);
    validate.exits(0);
    assert!(
        validate
            .stderr
            .contains("warning: `${params.free}` goes into a shell command unchecked")
            && validate.stderr.matches("warning:").count() == 1,
        "{}",
        validate.stderr
    );
    let injected = setup.rekey(&["plan", "workflow.yaml", "--var", "app=app; touch PWNED"]);
    injected.exits(1);
    assert!(
        injected
            .stderr
            .contains("--var app: `app; touch PWNED` does not match `[a-z]+`"),
        "{}",
        injected.stderr
    );
    let tier = setup.rekey(&["plan", "workflow.yaml", "--var", "tier=red"]);
    tier.exits(1);
    assert!(
        tier.stderr.contains("`red` is not one of `blue`, `green`"),
        "{}",
        tier.stderr
    );
    let plan = setup.rekey(&[
        "plan",
        "workflow.yaml",
        "--var",
        "app=api",
        "--out",
        "plan.json",
    ]);
    plan.exits(0);
    assert!(plan.stdout.contains("Vars: app=api"), "{}", plan.stdout);
    let saved = std::fs::read_to_string(setup.path().join("plan.json")).unwrap();
    std::fs::write(
        setup.path().join("edited.json"),
        saved.replace("\"app\": \"api\"", "\"app\": \"app; touch PWNED\""),
    )
    .unwrap();
    let edited = setup.rekey(&["apply", "edited.json"]);
    edited.exits(1);
    assert!(
        edited.stderr.contains("does not match"),
        "{}",
        edited.stderr
    );
    assert!(!setup.path().join("PWNED").exists());
    let as_of = setup.rekey(&["apply", "plan.json", "--as-of", "2099-01-01"]);
    as_of.exits(1);
    assert!(
        as_of.stderr.contains("--as-of with a saved plan"),
        "{}",
        as_of.stderr
    );
    let var = setup.rekey(&["apply", "plan.json", "--var", "tier=green"]);
    var.exits(1);
    assert!(
        var.stderr.contains("--var tier with a saved plan"),
        "{}",
        var.stderr
    );
    setup.rekey(&["apply", "plan.json"]).exits(0);
}

/// Regression: `--profile` naming a missing profile was silently ignored
/// when the environment had credentials.
#[test]
fn a_missing_profile_is_an_error_even_with_credentials_in_the_environment() {
    let account = Account::new();
    let _users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "");
    let config = setup.path().join("aws-config");
    std::fs::write(&config, "[profile real]\nregion = us-east-1\n").unwrap();
    let config = config.to_str().unwrap();
    // Every command that may reach AWS, `status` and `state` included.
    for command in [&["plan"][..], &["status"], &["state", "show"]] {
        let mut args = command.to_vec();
        args.extend(["workflow.yaml", "--profile", "typo"]);
        let missing = setup.rekey_at(
            crate::emulator::emulator(),
            &[("AWS_CONFIG_FILE", config)],
            &args,
        );
        missing.exits(1);
        assert!(
            missing
                .stderr
                .contains("--profile typo: there is no such profile"),
            "{command:?}: {}",
            missing.stderr
        );
    }
    let real = setup.rekey_at(
        crate::emulator::emulator(),
        &[("AWS_CONFIG_FILE", config)],
        &["plan", "workflow.yaml", "--profile", "real"],
    );
    real.exits(0);
}

/// A SecureString is never silently turned into a String: plan warns.
#[test]
fn plan_warns_when_an_id_only_target_would_turn_a_secure_string_into_a_string() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let name = format!("/{}/{}/id", account.id, users[0].0);
    account.ssm_put_as(&name, &users[0].1, "SecureString", None);
    let setup = Setup::new(
        &account,
        "",
        "  - id: id\n    ssm_parameter: { name: \"/{id}/${user}/id\", format: id_only }\n",
    );
    account.age_keys();
    let plan = setup.rekey(&["plan", "workflow.yaml"]);
    plan.exits(0);
    assert!(
        plan.stdout.contains(
            "it is a SecureString now, and `format: id_only` writes a plain String: its type changes"
        ),
        "{}",
        plan.stdout
    );
}

/// A hook's output never shows the secret a target held before the
/// rotation either (the old key's, which stays valid through the soak).
#[test]
fn a_hook_never_shows_the_secret_a_target_held_before() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    let old_secret = "OLD-secret-held-by-the-profile-0a1b2c3d";
    let vault_secret = "OLD-secret-held-by-the-vault-4e5f6a7b";
    let old_token = "OLD-session-token-of-the-profile-9c8d";
    account.secret_json_with(&format!("{}/{user}", account.id), old, vault_secret);
    let setup = Setup::new(
        &account,
        "",
        "  - id: vault\n    secrets_manager: { secret_id: \"{id}/${user}\" }\nhooks:\n  verify:\n    - id: talk\n      exec: { command: [sh, -c, \"cat app-copy; base64 app-copy; exit 1\"] }\npolicy:\n  soak: 0s\n",
    );
    // The application's own copy of what the profile held.
    // (and what the SSM parameter held: the seeded canary).
    std::fs::write(
        setup.path().join("app-copy"),
        format!("{old_secret}\n{CANARY}\n{vault_secret}\n{old_token}\n"),
    )
    .unwrap();
    std::fs::write(
        setup.path().join("credentials"),
        format!("[{user}]\naws_access_key_id = {old}\naws_secret_access_key = {old_secret}\naws_session_token = {old_token}\n"),
    )
    .unwrap();
    account.age_keys();
    let run = setup.apply();
    run.exits(3);
    let status = setup.rekey(&["status", "workflow.yaml"]);
    for (what, text) in [
        ("stdout", &run.stdout),
        ("journal", &setup.journal()),
        ("status", &status.stdout),
    ] {
        assert!(
            !text.contains(old_secret),
            "the old secret reached the {what}: {text}"
        );
        assert!(
            !text.contains(CANARY),
            "the parameter's old secret reached the {what}: {text}"
        );
        assert!(
            !text.contains(old_token),
            "the profile's session token reached the {what}: {text}"
        );
        assert!(
            !text.contains(vault_secret),
            "the secret's old value reached the {what}: {text}"
        );
        assert!(
            !text.contains("T0xELXNlY3JldC1oZWxk"),
            "its base64 reached the {what}: {text}"
        );
    }
}

/// One user whose rotation's apply was killed right after CreateAccessKey
/// answered: its id journaled, its secret not yet staged.
fn cut_off_create(account: &Account) -> (Setup, Vec<(String, String)>) {
    let users = seed(account, "", 1);
    let setup = Setup::new(account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    let crash = setup
        .command(&["apply", "workflow.yaml", "--auto-approve"])
        .env("REKEY_CRASH_AT", "create:before-stage")
        .output()
        .unwrap();
    assert_eq!(crash.status.code(), None, "killed");
    (setup, users)
}

/// Regression: apply killed right after CreateAccessKey answered (the new
/// key's id journaled, its secret not yet staged), then `rekey abort`: the
/// undo list was only `discard`, abort reported the rotation rolled back,
/// and the user kept the old key and an orphan whose secret nobody has.
#[test]
fn abort_after_a_create_that_was_cut_off_deletes_the_key_it_made() {
    let account = Account::new();
    let (setup, users) = cut_off_create(&account);
    let (user, old) = &users[0];
    assert_eq!(account.keys(user).len(), 2, "the orphan exists");
    let shown = setup.rekey(&["abort", "workflow.yaml"]);
    assert!(
        shown.stdout.contains("undo: delete-orphans, discard"),
        "{}",
        shown.stdout
    );
    let run = setup.rekey(&["abort", "workflow.yaml", "--auto-approve"]);
    run.exits(0);
    assert!(run.stdout.contains("deleting orphan key"), "{}", run.stdout);
    assert_eq!(
        account.keys(user),
        [(old.clone(), true)],
        "only the old key is left, active"
    );
    let plan = setup.rekey(&["plan", "workflow.yaml"]);
    assert!(
        !plan.stdout.contains("two active keys"),
        "nothing is left blocked: {}",
        plan.stdout
    );
}

/// An apply started in the background, once the command it runs has
/// written its process id to `pid_file`: (the apply, that id).
fn apply_while_a_command_runs(setup: &Setup, pid_file: &str) -> (std::process::Child, i32) {
    let child = setup
        .command(&["apply", "workflow.yaml", "--auto-approve"])
        .spawn()
        .unwrap();
    let path = setup.path().join(pid_file);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let pid = std::fs::read_to_string(&path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (child, pid)
}

/// Whether process `pid` runs (a zombie nobody reaped yet does not).
fn running(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z'))
}

/// Regression: after a second Ctrl-C (rekey exits at once), a command
/// still running went on under init: a real one is a deploy script. A
/// target's command is let finish after the first signal, so only the
/// second can end it.
#[test]
fn a_second_signal_ends_the_command_running_before_rekey_exits() {
    let account = Account::new();
    seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "  - id: deploy\n    exec: { command: [sh, -c, \"echo $$$$ > hook.pid; sleep 60\"], timeout: 120s }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    let (mut child, hook) = apply_while_a_command_runs(&setup, "hook.pid");
    let pid = i32::try_from(child.id()).unwrap();
    // Twice, to rekey alone: the second one exits at once.
    for _ in 0..2 {
        // SAFETY: signalling a process this test started.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!running(hook), "the target's command {hook} outlived rekey");
}

/// Regression: a command (a target's or a hook's) kept running under init
/// after rekey was killed (SIGKILL). The next apply ends its process group
/// before it reconciles, matched by process id and start time.
#[test]
fn the_next_apply_ends_a_command_a_killed_rekey_left_running() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "  - id: deploy\n    exec: { command: [sh, -c, \"[ -e deployed ] && exit 0; echo $$$$ > cmd.pid; touch deployed; sleep 60\"], timeout: 120s }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    let (mut child, command) = apply_while_a_command_runs(&setup, "cmd.pid");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(running(command), "the killed rekey's command still runs");
    let again = setup.apply();
    again.exits(0);
    assert!(
        again
            .stderr
            .contains("a command a killed rekey left running"),
        "{}",
        again.stderr
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(!running(command), "the command {command} was not ended");
    assert_rotated(&account, &setup, &users);
}

/// Regression: after a create that was cut off, a key someone else made in
/// the next two minutes was taken for the lost answer's and deleted, by
/// abort and by the next apply alike, although create's answer had been
/// recorded. Only a create whose answer is not recorded can leave one.
#[test]
fn a_key_someone_else_made_after_a_cut_off_create_is_never_deleted() {
    let account = Account::new();
    let (setup, users) = cut_off_create(&account);
    let (user, old) = &users[0];
    // Someone clears the orphan and makes a key of their own.
    let (orphan, _) = account
        .keys(user)
        .into_iter()
        .find(|(id, _)| id != old)
        .unwrap();
    account.delete_key(user, &orphan);
    let (theirs, _) = account.key(user);
    let run = setup.rekey(&["abort", "workflow.yaml", "--auto-approve"]);
    run.exits(3);
    assert!(
        run.stdout.contains("this rotation did not make them"),
        "{}",
        run.stdout
    );
    assert!(
        account.keys(user).iter().any(|(id, _)| *id == theirs),
        "their key {theirs} was deleted"
    );
    let again = setup.apply();
    assert!(
        account.keys(user).iter().any(|(id, _)| *id == theirs),
        "apply deleted their key {theirs}: {}",
        again.stdout
    );
}

/// Regression: a killed rekey's command whose group leader had exited (its
/// children still running, holding its output) was not ended by the next
/// apply: only the leader's id and start time were matched.
#[test]
fn the_next_apply_ends_a_left_command_whose_leader_has_exited() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "  - id: deploy\n    exec: { command: [sh, -c, \"[ -e deployed ] && exit 0; touch deployed; sleep 60 & echo $$! > child.pid; sleep 0.3\"], timeout: 120s }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    let (mut child, _) = apply_while_a_command_runs(&setup, "child.pid");
    let orphan: i32 = std::fs::read_to_string(setup.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The leader has exited; its child keeps the output open.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(running(orphan), "the left command still runs");
    let again = setup.apply();
    again.exits(0);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!running(orphan), "the command {orphan} was not ended");
    assert_rotated(&account, &setup, &users);
}
