//! Files several users' rotations write: one credentials file with a
//! profile per user, written by one apply or by two workflows at once. A
//! rollback puts back only its own profile, and concurrent writers lose no
//! update (each holds the file's lock while it reads, changes and replaces
//! it).

use std::time::Duration;

use crate::account::Account;
use crate::apply::{Setup, assert_rotated_in, seed};

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
    std::thread::sleep(Duration::from_millis(1100));
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
    std::thread::sleep(Duration::from_millis(1100));
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
    std::thread::sleep(Duration::from_millis(1100));
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
    std::thread::sleep(Duration::from_millis(1100));
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
