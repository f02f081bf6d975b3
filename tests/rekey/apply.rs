//! `rekey apply` against the AWS emulator: rotations converge, a kill at
//! any instant is finished by the next apply, one apply at a time, failed
//! verification rolls back, soak pauses, stale plans are refused, and no
//! secret reaches an output, the journal or a plan.

use std::time::{Duration, Instant};

use crate::account::{Account, CANARY};
use crate::support::{
    MAX_KEY_AGE, Setup, assert_rolled_back, assert_rotated, assert_rotated_in, created_keys, seed,
};

#[test]
fn rotating_three_users_with_three_targets_converges() {
    let account = Account::new();
    let users = seed(&account, "", 3);
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: works\n      sts_identity: { timeout: 20s }\npolicy:\n  soak: 0s\n  make_room: delete_inactive\n",
    );
    account.age_keys();
    let run = setup.apply();
    run.exits(0);
    assert!(
        run.stdout
            .contains("Plan: 3 to rotate, 0 unchanged, 0 blocked."),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("API calls: iam"),
        "the report counts calls:\n{}",
        run.stdout
    );
    assert_rotated(&account, &setup, &users);
    let status = setup.rekey(&["status", "workflow.yaml"]);
    assert_eq!(
        status
            .stdout
            .lines()
            .filter(|l| l.contains(": done"))
            .count(),
        3,
        "{}",
        status.stdout
    );
    // With a realistic max_key_age (a 1s one makes "due" a race), the end
    // state has nothing to do: one fresh key each, nothing blocked.
    let workflow = setup.path().join("workflow.yaml");
    let text = std::fs::read_to_string(&workflow)
        .unwrap()
        .replace(&format!("max_key_age: {MAX_KEY_AGE}"), "max_key_age: 1h");
    std::fs::write(&workflow, text).unwrap();
    let plan = setup.rekey(&["plan", "workflow.yaml", "--detailed-exitcode"]);
    plan.exits(0);
    assert!(
        plan.stdout
            .contains("Plan: 0 to rotate, 3 unchanged, 0 blocked."),
        "{}",
        plan.stdout
    );
}

/// Every point a crash can interrupt: right after each step's intent is
/// recorded (the middle of the step: it may or may not have acted), right
/// after it is recorded done, and between CreateAccessKey's answer and the
/// staging write.
const KILL_POINTS: &[&str] = &[
    "intent:make-room",
    "make-room",
    "intent:create",
    "create:before-stage",
    "create",
    "intent:distribute:param",
    "distribute:param",
    "intent:distribute:profile",
    "distribute:profile",
    "intent:distribute:push",
    "distribute:push",
    "intent:refresh:reload",
    "refresh:reload",
    "intent:verify:works",
    "verify:works",
    "intent:disable-old",
    "disable-old",
    "intent:verify_after_disable:still",
    "verify_after_disable:still",
    "soak",
    "intent:delete-old",
    "delete-old",
    "intent:unstage",
    "unstage",
];

#[test]
fn a_kill_at_every_step_is_finished_by_the_next_apply() {
    let account = Account::new();
    let mut cases = Vec::new();
    for (i, point) in KILL_POINTS.iter().enumerate() {
        let subpath = format!("k{i}/");
        let users = seed(&account, &subpath, 2);
        let setup = Setup::new(
            &account,
            &subpath,
            "hooks:\n  refresh:\n    - id: reload\n      exec: { command: [\"true\"] }\n  verify:\n    - id: works\n      sts_identity: { timeout: 20s }\n  verify_after_disable:\n    - id: still\n      sts_identity: { timeout: 20s }\npolicy:\n  soak: 0s\n  make_room: delete_inactive\n  concurrency: 1\n",
        );
        cases.push((point, users, setup));
    }
    account.age_keys();
    for (point, users, setup) in &cases {
        let killed = setup
            .command(&["apply", "workflow.yaml", "--auto-approve"])
            .env("REKEY_CRASH_AT", point)
            .output()
            .unwrap();
        assert_eq!(
            killed.status.code(),
            None,
            "{point}: the process was not killed:\n{}",
            String::from_utf8_lossy(&killed.stdout)
        );
        let created = created_keys(&setup.journal());
        let resumed = setup.apply();
        resumed.exits(0);
        if **point == "create:before-stage" {
            assert!(
                resumed.stdout.contains("deleting orphan key"),
                "{point}: the orphan was not cleaned up:\n{}",
                resumed.stdout
            );
        }
        assert_rotated(&account, setup, users);
        for (user, key) in &created {
            assert_eq!(
                account.keys(user),
                [(key.clone(), true)],
                "{point}: {user} ends with another key than the killed run created"
            );
        }
    }
    eprintln!(
        "kill points covered: {} ({})",
        KILL_POINTS.len(),
        KILL_POINTS.join(", ")
    );
}

/// Every point a crash can interrupt a rollback: after each undo step's
/// intent, and after it is done.
const ROLLBACK_KILL_POINTS: &[&str] = &[
    "intent:rollback:enable-old",
    "rollback:enable-old",
    "intent:rollback:restore:noted",
    "rollback:restore:noted",
    "intent:rollback:restore:push",
    "rollback:restore:push",
    "intent:rollback:restore:profile",
    "rollback:restore:profile",
    "intent:rollback:restore:param",
    "rollback:restore:param",
    "intent:rollback:delete-new",
    "rollback:delete-new",
    "intent:rollback:discard",
    "rollback:discard",
];

/// A rollback: a check after disable-old fails, so every undo step runs.
const FAILING_AFTER_DISABLE: &str = "  - id: noted\n    exec: { command: [sh, -c, \"echo $REKEY_USER >> noted.log\"], rollback: [sh, -c, \"sleep 0.2; echo $REKEY_USER >> undone.log\"] }\nhooks:\n  verify_after_disable:\n    - id: health\n      exec: { command: [\"false\"] }\npolicy:\n  soak: 0s\n";

#[test]
fn a_kill_at_every_rollback_step_is_finished_by_the_next_apply() {
    let account = Account::new();
    let mut cases = Vec::new();
    for (i, point) in ROLLBACK_KILL_POINTS.iter().enumerate() {
        let subpath = format!("rb{i}/");
        let users = seed(&account, &subpath, 1);
        let setup = Setup::new(&account, &subpath, FAILING_AFTER_DISABLE);
        let credentials = std::fs::read(setup.path().join("credentials")).unwrap();
        cases.push((point, users, setup, credentials));
    }
    account.age_keys();
    for (point, users, setup, credentials) in &cases {
        let killed = setup
            .command(&["apply", "workflow.yaml", "--auto-approve"])
            .env("REKEY_CRASH_AT", point)
            .output()
            .unwrap();
        assert_eq!(
            killed.status.code(),
            None,
            "{point}: the process was not killed:\n{}",
            String::from_utf8_lossy(&killed.stdout)
        );
        let resumed = setup.apply();
        resumed.exits(3);
        assert!(
            resumed.stdout.contains("ROLLED BACK") && !resumed.stdout.contains("rotated:"),
            "{point}: {}",
            resumed.stdout
        );
        assert_rolled_back(&account, setup, users, credentials);
    }
}

#[test]
fn kills_at_random_instants_during_rollbacks_all_converge_rolled_back() {
    const RUNS: usize = 16;
    let account = Account::new();
    let cases: Vec<_> = (0..RUNS)
        .map(|i| {
            let subpath = format!("rr{i}/");
            let users = seed(&account, &subpath, 1);
            let setup = Setup::new(&account, &subpath, FAILING_AFTER_DISABLE);
            let credentials = std::fs::read(setup.path().join("credentials")).unwrap();
            (users, setup, credentials)
        })
        .collect();
    let probe_users = seed(&account, "rrprobe/", 1);
    let probe = Setup::new(&account, "rrprobe/", FAILING_AFTER_DISABLE);
    let probe_credentials = std::fs::read(probe.path().join("credentials")).unwrap();
    account.age_keys();
    let started = Instant::now();
    probe.apply().exits(3);
    let full = started.elapsed().as_millis() as u64;
    assert_rolled_back(&account, &probe, &probe_users, &probe_credentials);
    let mut seed_state = 0x0bad_5eed_2026_u64;
    let mut mid_rollback = 0;
    for (users, setup, credentials) in &cases {
        // The second half of a run is mostly its rollback.
        let delay = full / 2 + next(&mut seed_state) % (full / 2 + 1);
        let mut child = setup
            .command(&["apply", "workflow.yaml", "--auto-approve"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        let journal = setup.journal();
        if journal.contains("\"rolling_back\"") && !journal.contains("\"rolled_back\"") {
            mid_rollback += 1;
        }
        let resumed = setup.apply();
        resumed.exits(3);
        assert!(!resumed.stdout.contains("rotated:"), "{}", resumed.stdout);
        assert_rolled_back(&account, setup, users, credentials);
    }
    eprintln!(
        "{RUNS} runs killed after {}..{full} ms; {mid_rollback} mid-rollback",
        full / 2
    );
    assert!(
        mid_rollback >= RUNS / 4,
        "too few kills landed mid-rollback ({mid_rollback} of {RUNS})"
    );
}

/// xorshift64*, seeded: the kill times can be replayed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn fifty_kills_at_random_instants_all_converge() {
    const RUNS: usize = 50;
    let account = Account::new();
    let extra = "policy:\n  soak: 0s\n  make_room: delete_inactive\n";
    let cases: Vec<_> = (0..RUNS)
        .map(|i| {
            let subpath = format!("r{i}/");
            (
                seed(&account, &subpath, 2),
                Setup::new(&account, &subpath, extra),
            )
        })
        .collect();
    account.age_keys();
    // How long a whole apply takes here bounds the kill times: the faster
    // of two probes (the first may pay for IAM's credential report, which
    // the emulator then keeps).
    let probes: Vec<_> = ["probe-a/", "probe-b/"]
        .iter()
        .map(|subpath| {
            (
                seed(&account, subpath, 2),
                Setup::new(&account, subpath, extra),
            )
        })
        .collect();
    account.age_keys();
    let full = probes
        .iter()
        .map(|(users, probe)| {
            let started = Instant::now();
            probe.apply().exits(0);
            assert_rotated(&account, probe, users);
            started.elapsed().as_millis() as u64
        })
        .min()
        .unwrap();
    let mut seed_state = 0x005e_ed0f_2026_u64;
    let mut killed_mid_run = 0;
    for (users, setup) in &cases {
        // Three quarters of a probe run: a run under the suite's load can
        // be faster than the probe was, and a kill after the end proves less.
        let delay = next(&mut seed_state) % (full * 3 / 4 + 1);
        let mut child = setup
            .command(&["apply", "workflow.yaml", "--auto-approve"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let resumed = setup.apply();
        resumed.exits(0);
        assert_rotated(&account, setup, users);
    }
    eprintln!(
        "{RUNS} runs killed after 0..{} ms; {killed_mid_run} were still running when killed",
        full * 3 / 4
    );
    assert!(
        killed_mid_run >= RUNS / 2,
        "most kills should land mid-run ({killed_mid_run} of {RUNS})"
    );
}

#[test]
fn a_second_apply_is_refused_while_one_runs() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "  - id: slow\n    exec: { command: [sleep, \"2\"] }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    let first = setup
        .command(&["apply", "workflow.yaml", "--auto-approve"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !setup.journal().contains("\"event\":\"begin\"") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = setup.apply();
    second.exits(1);
    assert!(
        second
            .stderr
            .contains("another apply is running on this state directory (pid "),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "the refusal names the owner: {}",
        second.stderr
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    assert_rotated(&account, &setup, &users);
    for line in setup.journal().lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every journal line is whole");
    }
}

#[test]
fn a_failed_verification_rolls_everything_back() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    let setup = Setup::new(
        &account,
        "",
        "  - id: fresh\n    ssm_parameter: { name: \"/{id}/${user}/fresh\" }\nhooks:\n  verify_after_disable:\n    - id: health\n      exec: { command: [sh, -c, \"echo unhealthy; exit 7\"] }\npolicy:\n  soak: 0s\n",
    );
    let credentials_before = std::fs::read(setup.path().join("credentials")).unwrap();
    let param_before = account.param(&format!("/{}/{user}/aws", account.id));
    account.age_keys();
    let run = setup.apply();
    run.exits(3);
    assert!(run.stdout.contains("ROLLED BACK: hook `health`: `sh -c echo unhealthy; exit 7` exited 7 (expected 0): unhealthy"), "{}", run.stdout);
    assert_eq!(
        account.keys(user),
        [(old.clone(), true)],
        "the old key is active again and the new one gone"
    );
    assert_eq!(
        account.param(&format!("/{}/{user}/aws", account.id)),
        param_before,
        "the SSM target holds its previous value"
    );
    assert_eq!(
        account.param(&format!("/{}/{user}/fresh", account.id)),
        None,
        "a parameter the rotation created is deleted"
    );
    assert_eq!(
        std::fs::read(setup.path().join("credentials")).unwrap(),
        credentials_before,
        "the credentials file is restored byte for byte"
    );
    let status = setup.rekey(&["status", "workflow.yaml"]);
    assert!(
        status.stdout.contains("rolled back: hook `health`"),
        "{}",
        status.stdout
    );
}

#[test]
fn halt_leaves_both_keys_and_says_so() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: check\n      exec: { command: [\"false\"] }\npolicy:\n  on_verify_failure: halt\n",
    );
    account.age_keys();
    let run = setup.apply();
    run.exits(3);
    assert!(
        run.stdout.contains("HALTED: hook `check`"),
        "{}",
        run.stdout
    );
    let keys = account.keys(&users[0].0);
    assert_eq!(keys.len(), 2, "both keys stay: {keys:?}");
    assert!(keys.iter().all(|(_, active)| *active));
}

#[test]
fn soak_pauses_with_exit_4_and_a_later_apply_finishes() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 3s\n");
    account.age_keys();
    let first = setup.apply();
    first.exits(4);
    assert!(
        first.stdout.contains("paused: the old key"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("run apply again after 20"),
        "it says when to come back: {}",
        first.stdout
    );
    let status = setup.rekey(&["status", "workflow.yaml"]);
    assert!(
        status.stdout.contains("paused at soak until"),
        "{}",
        status.stdout
    );
    let keys = account.keys(&users[0].0);
    assert_eq!(
        keys.iter().filter(|(_, active)| *active).count(),
        1,
        "the old key is disabled while it soaks: {keys:?}"
    );
    assert_eq!(setup.apply().code, 4, "still soaking");
    // Each later apply pauses again until the soak is over, then finishes.
    let started = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let run = setup.apply();
        if run.code == 0 {
            break;
        }
        run.exits(4);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a 3s soak never ended"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the soak ended early"
    );
    assert_rotated(&account, &setup, &users);
}

#[test]
fn until_stops_after_a_phase_and_the_next_apply_goes_on() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    let run = setup.apply_until("distribute");
    run.exits(0);
    assert!(
        run.stdout.contains("stopped after distribute (--until)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        account.keys(&users[0].0).len(),
        2,
        "both keys live until the next apply"
    );
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &users);
}

#[test]
fn a_stale_saved_plan_is_refused_with_what_changed() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  make_room: delete_inactive\n");
    account.age_keys();
    setup
        .rekey(&["plan", "workflow.yaml", "--out", "plan.json"])
        .exits(0);
    let (added, _) = account.key(&users[0].0);
    let run = setup.rekey(&["apply", "plan.json"]);
    run.exits(1);
    assert!(run.stderr.contains("the plan is stale"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("+{}: key {added} Active", users[0].0)),
        "the diff shows the new key:\n{}",
        run.stderr
    );
    assert_eq!(account.keys(&users[0].0).len(), 2, "nothing was changed");
}

#[test]
fn a_fresh_saved_plan_applies_without_asking() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    setup
        .rekey(&["plan", "workflow.yaml", "--out", "plan.json"])
        .exits(0);
    setup.rekey(&["apply", "plan.json"]).exits(0);
    assert_rotated(&account, &setup, &users);
}

#[test]
fn without_approval_nothing_changes() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "");
    account.age_keys();
    let run = setup.rekey(&["apply", "workflow.yaml"]);
    run.exits(1);
    assert!(
        run.stderr.contains("apply needs approval"),
        "{}",
        run.stderr
    );
    assert_eq!(account.keys(&users[0].0), [(users[0].1.clone(), true)]);
}

/// A journal the previous rekey (first journal format) wrote, killed after
/// recording the profile's intent: the new key exists and is staged, the
/// parameter holds it, the profile still holds the old one.
#[test]
fn a_rotation_the_previous_version_left_in_progress_is_finished() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old_key) = &users[0];
    let setup = Setup::new(
        &account,
        "",
        "hooks:\n  verify:\n    - id: works\n      sts_identity: { timeout: 20s }\npolicy:\n  soak: 0s\n",
    );
    let (new_key, new_secret) = account.key(user);
    let staged = format!(r#"{{"AccessKeyId": "{new_key}", "SecretAccessKey": "{new_secret}"}}"#);
    std::fs::create_dir_all(setup.path().join(".rekey/staging")).unwrap();
    std::fs::create_dir_all(setup.path().join(".rekey/backups")).unwrap();
    std::fs::write(
        setup.path().join(format!(".rekey/staging/{user}.json")),
        staged,
    )
    .unwrap();
    account.ssm_put(
        &format!("/{}/{user}/aws", account.id),
        &new_key,
        &new_secret,
    );
    let credentials = format!(
        "# CI runners\n[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = keep-me\n\n[{user}]\naws_access_key_id = {old_key}\naws_secret_access_key = {CANARY}\n"
    );
    std::fs::write(setup.path().join("credentials"), &credentials).unwrap();
    std::fs::write(
        setup.path().join(format!(
            ".rekey/backups/{user}_2026-11-30T04_53_49_009919672Z.profile"
        )),
        &credentials,
    )
    .unwrap();
    let fixture = std::fs::read_to_string(
        crate::support::root().join("tests/fixtures/journal-v1/interrupted-distribute.jsonl"),
    )
    .unwrap();
    let arn = format!("arn:aws:iam::123456789012:user{}{user}", account.path());
    let journal = fixture
        .replace("{OLD_KEY}", old_key)
        .replace("{NEW_KEY}", &new_key)
        .replace("{USER}", user)
        .replace("{ARN}", &arn);
    std::fs::write(setup.path().join(".rekey/journal.jsonl"), journal).unwrap();

    let refused = setup.apply();
    refused.exits(1);
    assert!(
        refused
            .stderr
            .contains(&format!("are in progress in ./.rekey ({user})"))
            && refused.stderr.contains("--state-dir ./.rekey"),
        "a rotation of the previous layout is named, never forgotten: {}",
        refused.stderr
    );
    let status = setup.rekey(&["status", "workflow.yaml"]);
    assert!(status.stdout.contains(user.as_str()), "{}", status.stdout);
    let run = setup.rekey(&[
        "apply",
        "workflow.yaml",
        "--auto-approve",
        "--state-dir",
        ".rekey",
    ]);
    run.exits(0);
    assert!(
        run.stdout
            .contains("in progress, interrupted during distribute:profile; apply reconciles it"),
        "{}",
        run.stdout
    );
    assert_rotated_in(&account, &setup, &users, &setup.path().join(".rekey"));
    assert_eq!(
        account.keys(user),
        [(new_key.clone(), true)],
        "the key the earlier run created is the one kept"
    );
    let param = account
        .param(&format!("/{}/{user}/aws", account.id))
        .unwrap();
    assert!(
        param.contains(&new_secret),
        "the parameter holds the secret IAM issued"
    );
    let credentials = std::fs::read_to_string(setup.path().join("credentials")).unwrap();
    assert!(
        credentials.contains(&format!(
            "aws_access_key_id = {new_key}\naws_secret_access_key = {new_secret}\n"
        )),
        "the profile holds the secret IAM issued"
    );
    let status = setup.rekey(&["status", "workflow.yaml", "--state-dir", ".rekey"]);
    assert!(
        status.stdout.contains(&format!("{user}: done")),
        "{}",
        status.stdout
    );
}

#[test]
fn no_secret_reaches_an_output_the_journal_or_a_plan() {
    let account = Account::new();
    let users = seed(&account, "", 2);
    // A canary in a target that is not rekey's, but read by the plan.
    account.ssm_json(&format!("/{}/{}/canary", account.id, users[0].0), CANARY);
    let setup = Setup::new(
        &account,
        "",
        "  - id: canary\n    ssm_parameter: { name: \"/{id}/${user}/canary\", format: id_only }\nhooks:\n  verify:\n    - id: works\n      sts_identity: {}\n    - id: env\n      exec: { command: [sh, -c, \"echo secret=$AWS_SECRET_ACCESS_KEY\"], with_credentials: true }\npolicy:\n  soak: 0s\n  make_room: delete_inactive\n",
    );
    account.age_keys();
    let plan = setup.rekey(&["plan", "workflow.yaml", "--out", "plan.json", "-v"]);
    let json = setup.rekey(&["plan", "workflow.yaml", "--json"]);
    let apply = setup.rekey(&["apply", "plan.json", "-v"]);
    apply.exits(0);
    let status = setup.rekey(&["status", "workflow.yaml"]);
    let mut everything = vec![
        plan.stdout,
        plan.stderr,
        json.stdout,
        json.stderr,
        apply.stdout,
        apply.stderr,
        status.stdout,
        status.stderr,
    ];
    everything.push(setup.journal());
    everything.push(std::fs::read_to_string(setup.path().join("plan.json")).unwrap());
    let everything = everything.join("\n");
    assert!(!everything.contains(CANARY), "the canary leaked");
    for (user, _) in &users {
        let value: serde_json::Value = serde_json::from_str(
            &account
                .param(&format!("/{}/{user}/aws", account.id))
                .unwrap(),
        )
        .unwrap();
        let secret = value["SecretAccessKey"].as_str().unwrap();
        assert!(!everything.contains(secret), "{user}'s new secret leaked");
    }
}
