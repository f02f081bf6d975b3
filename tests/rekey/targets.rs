//! Target kinds under `rekey apply`: what each holds after a rotation and
//! after a rollback.

use crate::account::Account;
use crate::support::{Setup, assert_rotated, seed};

const FAILING_CHECK: &str =
    "hooks:\n  verify:\n    - id: check\n      exec: { command: [\"false\"] }\n";

#[test]
fn secrets_manager_makes_the_new_version_current_and_keeps_the_old_as_previous() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    let secret_id = format!("{}/{user}", account.id);
    account.secret_json(&secret_id, old);
    let setup = Setup::new(
        &account,
        "",
        "  - id: vault\n    secrets_manager: { secret_id: \"{id}/${user}\" }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &users);
    let new = account.keys(user)[0].0.clone();
    assert_eq!(account.secret_key(&secret_id, "AWSCURRENT"), Some(new));
    assert_eq!(
        account.secret_key(&secret_id, "AWSPREVIOUS").as_ref(),
        Some(old)
    );
    assert_eq!(
        account.secret_key(&secret_id, "AWSPENDING"),
        None,
        "nothing is left pending"
    );
}

#[test]
fn secrets_manager_rollback_moves_the_current_label_back_or_deletes_what_it_created() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    let existing = format!("{}/{user}", account.id);
    account.secret_json(&existing, old);
    let setup = Setup::new(
        &account,
        "",
        &format!(
            "  - id: vault\n    secrets_manager: {{ secret_id: \"{{id}}/${{user}}\" }}\n  - id: fresh\n    secrets_manager: {{ secret_id: \"{{id}}/${{user}}/fresh\" }}\n{FAILING_CHECK}"
        ),
    );
    account.age_keys();
    setup.apply().exits(3);
    assert_eq!(
        account.secret_key(&existing, "AWSCURRENT").as_ref(),
        Some(old),
        "the old value is current again"
    );
    assert_eq!(
        account.secret_key(&format!("{existing}/fresh"), "AWSCURRENT"),
        None,
        "the secret the rotation created is gone"
    );
    assert_eq!(account.keys(user), [(old.clone(), true)]);
}

#[test]
fn env_files_and_templates_are_written_and_rolled_back() {
    let account = Account::new();
    let users = seed(&account, "", 2);
    let extra = "  - id: dotenv\n    env_file: { path: \"app-${user}.env\" }\n  - id: config\n    template: { path: \"config-${user}.json\", content: \"{\\\"user\\\": \\\"${user}\\\", \\\"key\\\": \\\"{{access_key_id}}\\\", \\\"secret\\\": \\\"{{secret_access_key}}\\\"}\\n\" }\n";
    let ok = Setup::new(
        &account,
        "",
        &format!("{extra}policy:\n  soak: 0s\n  make_room: delete_inactive\n"),
    );
    for (user, old) in &users {
        std::fs::write(
            ok.path().join(format!("app-{user}.env")),
            format!(
                "# app\nREGION=eu-west-1\nAWS_ACCESS_KEY_ID={old}\nAWS_SECRET_ACCESS_KEY=old\n"
            ),
        )
        .unwrap();
    }
    account.age_keys();
    ok.apply().exits(0);
    assert_rotated(&account, &ok, &users);
    for (user, _) in &users {
        let new = account.keys(user)[0].0.clone();
        let env = std::fs::read_to_string(ok.path().join(format!("app-{user}.env"))).unwrap();
        assert!(
            env.starts_with(&format!(
                "# app\nREGION=eu-west-1\nAWS_ACCESS_KEY_ID={new}\nAWS_SECRET_ACCESS_KEY="
            )),
            "{env}"
        );
        let config = ok.path().join(format!("config-{user}.json"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        assert_eq!(
            (json["user"].as_str(), json["key"].as_str()),
            (Some(user.as_str()), Some(new.as_str()))
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
            0o600,
            "a new file is private"
        );
    }

    let account = Account::new();
    let users = seed(&account, "", 1);
    let failing = Setup::new(&account, "", &format!("{extra}{FAILING_CHECK}"));
    let (user, old) = &users[0];
    let env_path = failing.path().join(format!("app-{user}.env"));
    let original = format!("REGION=eu-west-1\nAWS_ACCESS_KEY_ID={old}\n");
    std::fs::write(&env_path, &original).unwrap();
    account.age_keys();
    failing.apply().exits(3);
    assert_eq!(
        std::fs::read_to_string(&env_path).unwrap(),
        original,
        "the env file is restored"
    );
    assert!(
        !failing.path().join(format!("config-{user}.json")).exists(),
        "the rendered file the rotation created is removed"
    );
}

#[test]
fn a_realistic_credentials_file_changes_in_one_profile_only() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    let file = setup.path().join("credentials");
    let before = format!(
        "# Managed by hand and by rekey.\n; Comments of both kinds stay.\n[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = keep-me\nregion = eu-west-1\n\n[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\nsource_profile = default\n\n[{user}]\n# the CI user\naws_access_key_id = {old}\naws_secret_access_key = old-secret\naws_session_token = stale-token\nregion = us-east-1\n\n[other]\naws_access_key_id=AKIAOTHER00000000000\naws_secret_access_key=other-secret\n"
    );
    std::fs::write(&file, &before).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    account.age_keys();
    setup.apply().exits(0);
    let after = std::fs::read_to_string(&file).unwrap();
    let new = account.keys(user)[0].0.clone();
    let redacted = after.replace(&new, "AKIA[NEW]").replace(user, "[USER]");
    let redacted: String = redacted
        .lines()
        .map(|l| {
            if l.starts_with("aws_secret_access_key = ") && l != "aws_secret_access_key = keep-me" {
                "aws_secret_access_key = [NEW SECRET]"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("credentials_file_after_rotation", redacted);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640,
        "the file keeps its mode"
    );
}

#[test]
fn a_credentials_file_rekey_cannot_parse_is_refused_with_its_line() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "");
    std::fs::write(
        setup.path().join("credentials"),
        "[default]\naws_access_key_id = AKIADEFAULT000000000\n<<<<<<< merge conflict\n",
    )
    .unwrap();
    account.age_keys();
    let run = setup.apply();
    run.exits(1);
    assert!(
        run.stderr
            .contains("line 3 is not a section, a `key = value` line or a comment"),
        "{}",
        run.stderr
    );
    assert_eq!(account.keys(&users[0].0).len(), 1, "nothing changed");
}

#[test]
fn an_exec_target_s_rollback_command_runs_on_rollback() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        &format!(
            "  - id: announce\n    exec: {{ command: [sh, -c, \"echo new >> announce.log\"], rollback: [sh, -c, \"echo back to $REKEY_OLD_ACCESS_KEY_ID >> announce.log\"] }}\n{FAILING_CHECK}"
        ),
    );
    account.age_keys();
    setup.apply().exits(3);
    let log = std::fs::read_to_string(setup.path().join("announce.log")).unwrap();
    assert_eq!(log, format!("new\nback to {}\n", users[0].1));
}

#[test]
fn ssm_formats_types_and_tags() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, _) = &users[0];
    let setup = Setup::new(
        &account,
        "",
        "  - id: as-env\n    ssm_parameter: { name: \"/{id}/${user}/env\", format: env, kms_key_id: alias/aws/ssm, tags: { owner: \"${user}\" } }\n  - id: id-only\n    ssm_parameter: { name: \"/{id}/${user}/id\", format: id_only }\npolicy:\n  soak: 0s\n",
    );
    account.age_keys();
    setup.apply().exits(0);
    let new = account.keys(user)[0].0.clone();
    let env = account
        .param(&format!("/{}/{user}/env", account.id))
        .unwrap();
    assert!(
        env.starts_with(&format!("AWS_ACCESS_KEY_ID={new}\nAWS_SECRET_ACCESS_KEY=")),
        "{env}"
    );
    let (kind, tags) = account.param_type_and_tags(&format!("/{}/{user}/env", account.id));
    assert_eq!(
        (kind.as_str(), tags),
        ("SecureString", vec![("owner".to_string(), user.clone())])
    );
    assert_eq!(
        account.param(&format!("/{}/{user}/id", account.id)),
        Some(new)
    );
    assert_eq!(
        account
            .param_type_and_tags(&format!("/{}/{user}/id", account.id))
            .0,
        "String",
        "a key id alone is not secret"
    );
}

#[test]
fn a_missing_folder_under_the_workflows_is_made_when_the_workflow_is_named_bare() {
    // `rekey apply workflow.yaml` from the workflow's own folder: its folder
    // is `.`, not an empty path.
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(
        &account,
        "",
        "  - id: nested\n    env_file: { path: \"out/deep/${user}.env\" }\npolicy:\n  soak: 0s\n  make_room: delete_inactive\n",
    );
    account.age_keys();
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &users);
    let env =
        std::fs::read_to_string(setup.path().join(format!("out/deep/{}.env", users[0].0))).unwrap();
    assert!(env.contains(&account.keys(&users[0].0)[0].0), "{env}");
}
