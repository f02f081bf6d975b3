//! Files several users' rotations write: one credentials file with a
//! profile per user, written by one apply or by two workflows at once. A
//! rollback puts back only its own profile, and concurrent writers lose no
//! update (each holds the file's lock while it reads, changes and replaces
//! it).

use std::time::Duration;

use crate::account::Account;
use crate::support::{Setup, assert_rotated_in, seed};

/// Regression: a rollback put back a copy of the whole file, so the other
/// users' profiles went back to keys that had just been deleted.
#[test]
fn a_rollback_on_a_shared_credentials_file_puts_back_only_its_own_profile() {
    let account = Account::new();
    let users = seed(&account, "", 2);
    let setup = Setup::new(
        &account,
        "",
        "policy:\n  soak: 0s\n  make_room: delete_inactive\n",
    );
    account.age_keys();
    let (first, first_old) = &users[0];
    let (second, _) = &users[1];
    setup
        .rekey(&[
            "apply",
            "workflow.yaml",
            "--auto-approve",
            "--user",
            first,
            "--until",
            "distribute",
        ])
        .exits(0);
    setup
        .rekey(&["apply", "workflow.yaml", "--auto-approve", "--user", second])
        .exits(0);
    setup
        .rekey(&["abort", "workflow.yaml", "--user", first, "--auto-approve"])
        .exits(0);
    assert_eq!(account.keys(first), [(first_old.clone(), true)]);
    assert_eq!(
        setup.profile_secret(first),
        None,
        "{first}'s new profile is gone"
    );
    // The other user's profile keeps its live key and the secret IAM issued.
    assert_rotated_in(&account, &setup, &users[1..], &setup.state());
}

/// Regression: two workflows writing one credentials file at once (each
/// with its own state directory, so its own lock) lost updates: profiles
/// kept deleted keys while both reported success, and one write failed on
/// a temporary file the other had cleaned up.
#[test]
fn two_workflows_writing_one_credentials_file_at_once_lose_no_update() {
    let account = Account::new();
    let p_users = seed(&account, "p/", 8);
    let q_users = seed(&account, "q/", 8);
    let extra = "policy:\n  soak: 0s\n  make_room: delete_inactive\n  concurrency: 8\n";
    let setup = Setup::new(&account, "p/", extra);
    let text = std::fs::read_to_string(setup.path().join("workflow.yaml")).unwrap();
    std::fs::write(
        setup.path().join("q.yaml"),
        text.replace("name: test", "name: q").replace(
            &format!("{}p/", account.path()),
            &format!("{}q/", account.path()),
        ),
    )
    .unwrap();
    account.age_keys();
    let p = setup
        .command(&["apply", "workflow.yaml", "--auto-approve"])
        .spawn()
        .unwrap();
    let q = setup
        .command(&["apply", "q.yaml", "--auto-approve"])
        .spawn()
        .unwrap();
    let (p, q) = (p.wait_with_output().unwrap(), q.wait_with_output().unwrap());
    assert_eq!(
        p.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&p.stdout)
    );
    assert_eq!(
        q.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&q.stdout)
    );
    assert_rotated_in(&account, &setup, &p_users, &setup.state());
    assert_rotated_in(&account, &setup, &q_users, &setup.path().join(".rekey/q"));
}

/// Regression: a target every user resolved to (`/shared/aws`, one env
/// file's fixed variables, one staging parameter) was valid; applied, each
/// key overwrote the last and the old keys were deleted.
#[test]
fn targets_that_collide_are_a_plan_error_naming_both_users_and_the_resource() {
    let account = Account::new();
    let users = seed(&account, "", 2);
    let cases = [
        (
            "  - id: shared\n    ssm_parameter: { name: \"/{id}/shared/aws\" }\n",
            format!("SSM parameter /{}/shared/aws", account.id),
        ),
        (
            "  - id: env\n    env_file: { path: app.env }\n",
            "variable AWS_ACCESS_KEY_ID of".to_string(),
        ),
        (
            "staging:\n  ssm_parameter: \"/{id}/pending\"\n",
            format!("SSM parameter /{}/pending", account.id),
        ),
    ];
    account.age_keys();
    for (extra, resource) in cases {
        let setup = Setup::new(&account, "", extra);
        let plan = setup.rekey(&["plan", "workflow.yaml"]);
        plan.exits(1);
        assert!(
            plan.stderr
                .contains(&format!("would both write {resource}"))
                && plan.stderr.contains(&users[0].0)
                && plan.stderr.contains(&users[1].0),
            "{extra}: {}",
            plan.stderr
        );
        let apply = setup.apply();
        apply.exits(1);
        assert_eq!(account.keys(&users[0].0).len(), 1, "nothing was created");
    }
}

/// Regression: `access_key_id_var: "${user}_ID"` was written literally.
#[test]
fn env_variable_names_interpolate_and_must_be_names() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "  - id: env\n    env_file: { path: app.env, access_key_id_var: \"ID_${account}\", secret_access_key_var: \"SECRET_${account}\" }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    setup.apply().exits(0);
    let env = std::fs::read_to_string(setup.path().join("app.env")).unwrap();
    let key = &account.keys(&users[0].0)[0].0;
    assert!(env.contains(&format!("ID_123456789012={key}\n")), "{env}");
    let bad = Setup::new(
        &account,
        "",
        "  - id: env\n    env_file: { path: app.env, access_key_id_var: \"${user}_ID\" }\n",
    );
    let plan = bad.rekey(&["plan", "workflow.yaml", "--as-of", "2099-01-01"]);
    plan.exits(1);
    assert!(
        plan.stderr.contains("is not a variable name"),
        "{}",
        plan.stderr
    );
}

/// The key id and secret of `profile` in the credentials file at `path`.
fn profile_in(path: &std::path::Path, profile: &str) -> (Option<String>, Option<String>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (None, None);
    };
    let Some(section) = text.split(&format!("[{profile}]")).nth(1) else {
        return (None, None);
    };
    let section = section.split("\n[").next().unwrap_or_default();
    let field = |name: &str| {
        section
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .map(str::to_string)
    };
    (field("aws_access_key_id"), field("aws_secret_access_key"))
}

/// Every target of every user holds a key IAM has active for that user,
/// with the secret IAM issued.
fn assert_targets_hold_live_keys(account: &Account, setup: &Setup, users: &[(String, String)]) {
    let issued = account.issued_secrets();
    for (user, _) in users {
        let live: Vec<String> = account
            .keys(user)
            .into_iter()
            .filter(|(_, active)| *active)
            .map(|(id, _)| id)
            .collect();
        let param = format!("/{}/{user}/aws", account.id);
        let own = profile_in(&setup.path().join(format!("own-{user}")), user);
        let held = [
            (
                "the SSM parameter",
                account.param_key(&param),
                account.param_secret(&param),
            ),
            (
                "the credentials file",
                setup.profile_key(user),
                setup.profile_secret(user),
            ),
            ("its own credentials file", own.0, own.1),
        ];
        for (what, key, secret) in held {
            let Some(key) = key else { continue };
            assert!(
                live.contains(&key),
                "{user}: {what} holds {key}, which IAM no longer has active ({live:?})"
            );
            assert_eq!(
                issued.get(&key),
                secret.as_ref(),
                "{user}: {what} holds another secret than IAM issued for {key}"
            );
        }
    }
}

/// Regression: two applies of one workflow with their own state
/// directories deleted every key the other had just created and staged
/// ("orphans"), and rolled targets back to keys the other had deleted.
#[test]
fn runners_with_their_own_state_directories_never_destroy_each_others_keys() {
    let account = Account::new();
    let users = seed(&account, "", 6);
    let setup = Setup::new(
        &account,
        "",
        "policy:\n  soak: 0s\n  make_room: delete_inactive\n  concurrency: 6\n",
    );
    for round in 0..3 {
        account.age_keys();
        let runners: Vec<_> = ["st1", "st2", "st3"]
            .iter()
            .map(|dir| {
                setup
                    .command(&[
                        "apply",
                        "workflow.yaml",
                        "--auto-approve",
                        "--state-dir",
                        dir,
                    ])
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut rotated = 0;
        for runner in runners {
            let output = runner.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                // 5: the other runner held a user this one had to leave.
                matches!(output.status.code(), Some(0 | 1 | 5)),
                "round {round}: {stdout}"
            );
            rotated += stdout.matches(": rotated:").count();
        }
        assert_targets_hold_live_keys(&account, &setup, &users);
        assert!(rotated > 0, "round {round}: no runner rotated anything");
    }
}

/// Random interleavings of two or three runners (their own state
/// directories), kills included, over a shared credentials file or one
/// per user: once every runner has stopped and the killed ones were run
/// again, no target holds a key that IAM no longer has active.
#[test]
fn random_interleavings_of_runners_and_kills_keep_every_target_live() {
    const ROUNDS: usize = 6;
    let account = Account::new();
    let mut seed_state = 0x00c1_a1a5_2026_u64;
    let mut next = move || {
        seed_state ^= seed_state >> 12;
        seed_state ^= seed_state << 25;
        seed_state ^= seed_state >> 27;
        seed_state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for round in 0..ROUNDS {
        let subpath = format!("i{round}/");
        let users = seed(&account, &subpath, 6);
        let shared = next() % 2 == 0;
        let extra = if shared {
            "policy:\n  soak: 0s\n  make_room: delete_inactive\n  concurrency: 6\n".to_string()
        } else {
            "  - id: own\n    credentials_file: { path: \"own-${user}\" }\npolicy:\n  soak: 0s\n  make_room: delete_inactive\n  concurrency: 6\n".to_string()
        };
        let setup = Setup::new(&account, &subpath, &extra);
        account.age_keys();
        let count = 2 + (next() % 2) as usize;
        let mut runners: Vec<_> = (0..count)
            .map(|i| {
                let dir = format!("st{i}");
                let child = setup
                    .command(&[
                        "apply",
                        "workflow.yaml",
                        "--auto-approve",
                        "--state-dir",
                        &dir,
                    ])
                    .spawn()
                    .unwrap();
                (dir, child)
            })
            .collect();
        // Kill one runner at a random instant.
        let victim = (next() % count as u64) as usize;
        std::thread::sleep(Duration::from_millis(next() % 400));
        let _ = runners[victim].1.kill();
        for (_, runner) in &mut runners {
            let _ = runner.wait();
        }
        // The killed runner's rotations are finished by running it again.
        let (dir, _) = &runners[victim];
        let again = setup.rekey(&[
            "apply",
            "workflow.yaml",
            "--auto-approve",
            "--state-dir",
            dir,
        ]);
        assert!(
            matches!(again.code, 0 | 1),
            "round {round}: {}",
            again.stdout
        );
        assert_targets_hold_live_keys(&account, &setup, &users);
    }
}

/// Regression: a credentials file that is a symlink was replaced by a plain
/// file, so the real one kept the old key, which was then deleted.
#[test]
fn a_symlinked_target_is_written_through_to_its_file() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    let real = setup.path().join("real-credentials");
    std::fs::rename(setup.path().join("credentials"), &real).unwrap();
    std::os::unix::fs::symlink("real-credentials", setup.path().join("credentials")).unwrap();
    account.age_keys();
    setup.apply().exits(0);
    assert!(
        std::fs::symlink_metadata(setup.path().join("credentials"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link is still a link"
    );
    assert_rotated_in(&account, &setup, &users, &setup.state());
}

/// Regression: two spellings of one file, or one file written as two
/// kinds, were not seen as a collision.
#[test]
fn one_file_under_two_spellings_or_two_kinds_is_a_collision() {
    let account = Account::new();
    let _users = seed(&account, "", 2);
    let cases = [
        "  - id: a\n    credentials_file: { path: \"sub/../creds\" }\n  - id: b\n    credentials_file: { path: \"./creds\" }\n",
        "  - id: env\n    env_file: { path: \"./credentials\", access_key_id_var: \"ID_${account}\" }\n",
    ];
    account.age_keys();
    for extra in cases {
        let setup = Setup::new(&account, "", extra);
        std::fs::create_dir_all(setup.path().join("sub")).unwrap();
        let plan = setup.rekey(&["plan", "workflow.yaml"]);
        plan.exits(1);
        assert!(
            plan.stderr.contains("would both write"),
            "{extra}: {}",
            plan.stderr
        );
    }
}

/// Regression: plan ignored claims: it offered to rotate (and make room on)
/// a user another runner's rotation held.
#[test]
fn plan_shows_a_user_another_runner_holds() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    let claim = crate::support::claims_dir()
        .join("123456789012")
        .join(format!("{}.json", users[0].0));
    std::fs::create_dir_all(claim.parent().unwrap()).unwrap();
    std::fs::write(
        &claim,
        r#"{"workflow":"elsewhere","rotation":"x@1","state_dir":"/st","host":"h","pid":1,"since":"2026-11-30T00:00:00Z"}"#,
    )
    .unwrap();
    account.age_keys();
    let plan = setup.rekey(&["plan", "workflow.yaml"]);
    plan.exits(0);
    assert!(
        plan.stdout.contains("held by workflow `elsewhere`"),
        "{}",
        plan.stdout
    );
    // Held by another runner: left due, so 5.
    setup
        .rekey(&["plan", "workflow.yaml", "--detailed-exitcode"])
        .exits(5);
    setup.apply().exits(5);
    assert_eq!(account.keys(&users[0].0).len(), 1, "nothing was done");
    std::fs::remove_file(&claim).unwrap();
}

/// Regression: `path: ~/.aws/credentials` made a folder named `~` beside
/// the workflow; the real file kept the old key, which was deleted.
#[test]
fn a_tilde_path_is_the_home_folder_and_folders_are_made_only_there_or_beside_the_workflow() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let home = tempfile::tempdir().unwrap();
    let setup = Setup::new(
        &account,
        "",
        "  - id: home\n    credentials_file: { path: \"~/.aws/credentials\" }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    let home_env = [("HOME", home.path().to_str().unwrap())];
    let run = setup.rekey_at(
        crate::emulator::emulator(),
        &home_env,
        &["apply", "workflow.yaml", "--auto-approve"],
    );
    run.exits(0);
    assert!(!setup.path().join("~").exists(), "no folder named ~");
    let written = std::fs::read_to_string(home.path().join(".aws/credentials")).unwrap();
    let key = &account.keys(&users[0].0)[0].0;
    assert!(written.contains(key.as_str()), "{written}");
    let elsewhere = Setup::new(
        &account,
        "",
        "  - id: lost\n    env_file: { path: /nonexistent-rekey-folder/app.env }\n",
    );
    let plan = elsewhere.rekey_at(
        crate::emulator::emulator(),
        &home_env,
        &["plan", "workflow.yaml", "--as-of", "2099-01-01"],
    );
    plan.exits(1);
    assert!(
        plan.stderr
            .contains("the folder /nonexistent-rekey-folder does not exist"),
        "{}",
        plan.stderr
    );
}
