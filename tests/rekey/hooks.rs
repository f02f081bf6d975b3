//! Refresh and verification hooks under `rekey apply`: each passes when
//! the world is right, and each failure (status, refusal, timeout, missing
//! command, an old key still in use) names the hook and rolls back or halts
//! as the policy says.

use crate::account::Account;
use crate::http_server::HttpServer;
use crate::support::{Setup, assert_rotated, seed};

fn with_hooks(account: &Account, hooks: &str, policy: &str) -> (Setup, Vec<(String, String)>) {
    with_hooks_at(account, "", hooks, policy)
}

/// Users under `{path}{subpath}`, so one test can set up several cases.
fn with_hooks_at(
    account: &Account,
    subpath: &str,
    hooks: &str,
    policy: &str,
) -> (Setup, Vec<(String, String)>) {
    let users = seed(account, subpath, 1);
    let setup = Setup::new(
        account,
        subpath,
        &format!("hooks:\n{hooks}policy:\n  soak: 0s\n{policy}"),
    );
    account.age_keys();
    (setup, users)
}

#[test]
fn http_hooks_pass_on_the_expected_status_and_body() {
    let account = Account::new();
    let server = HttpServer::start();
    let url = &server.url;
    let hooks = format!(
        "  refresh:\n    - id: reload\n      http: {{ url: \"{url}/ok\", method: POST }}\n  verify_after_disable:\n    - id: health\n      http: {{ url: \"{url}/ok?user=${{user}}\", expect_status: 200, body_contains: healthy, timeout: 5s }}\n"
    );
    let (setup, users) = with_hooks(&account, &hooks, "");
    setup.apply().exits(0);
    assert_rotated(&account, &setup, &users);
    assert_eq!(server.hits(), 2);
}

#[test]
fn an_http_hook_that_fails_retries_then_rolls_back() {
    let account = Account::new();
    let server = HttpServer::start();
    let hooks = format!(
        "  verify:\n    - id: health\n      http: {{ url: \"{}/down\", retries: 2 }}\n",
        server.url
    );
    let (setup, users) = with_hooks(&account, &hooks, "");
    let run = setup.apply();
    run.exits(3);
    assert!(
        run.stdout.contains(&format!(
            "ROLLED BACK: hook `health`: GET {}/down answered 503, expected 200 (after 3 attempts)",
            server.url
        )),
        "{}",
        run.stdout
    );
    assert_eq!(server.hits(), 3);
    assert_eq!(
        account.keys(&users[0].0),
        [(users[0].1.clone(), true)],
        "rolled back to the old key alone"
    );
}

#[test]
fn a_refused_connection_a_timeout_and_a_missing_command_are_clear() {
    let account = Account::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}/reload", closed.local_addr().unwrap());
    drop(closed);
    let server = HttpServer::start();
    let cases = [
        (
            format!(
                "  refresh:\n    - id: reload\n      http: {{ url: \"{refused}\", retries: 0 }}\n"
            ),
            format!("hook `reload`: GET {refused}: connection refused"),
        ),
        (
            format!(
                "  verify:\n    - id: slow\n      http: {{ url: \"{}/slow\", timeout: 1s, retries: 0 }}\n",
                server.url
            ),
            "hook `slow`: GET".to_string(),
        ),
        (
            "  verify:\n    - id: hang\n      exec: { command: [sleep, \"10\"], timeout: 1s }\n"
                .to_string(),
            "hook `hang`: `sleep` did not finish within 1s; it was killed".to_string(),
        ),
        (
            "  verify:\n    - id: missing\n      exec: { command: [./no-such-check.sh] }\n"
                .to_string(),
            "hook `missing`: `./no-such-check.sh` was not found".to_string(),
        ),
    ];
    for (i, (hooks, expected)) in cases.into_iter().enumerate() {
        let (setup, users) = with_hooks_at(
            &account,
            &format!("c{i}/"),
            &hooks,
            "  on_verify_failure: halt\n",
        );
        let run = setup.apply();
        run.exits(3);
        assert!(
            run.stdout.contains(&format!("HALTED: {expected}")),
            "expected `{expected}` in:\n{}",
            run.stdout
        );
        assert_eq!(account.keys(&users[0].0).len(), 2, "halt leaves both keys");
    }
}

#[test]
fn key_unused_passes_when_the_old_key_stays_idle() {
    let account = Account::new();
    let (setup, users) = with_hooks(
        &account,
        "  verify:\n    - id: idle\n      key_unused: { quiet_for: 2s }\n",
        "",
    );
    let run = setup.apply();
    run.exits(0);
    assert_rotated(&account, &setup, &users);
}

#[test]
fn key_unused_catches_an_application_still_using_the_old_key() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let (user, old) = &users[0];
    let secret = account.secret_of(old);
    // The "application" goes on using the old key a second after the
    // refresh phase ends: the kind of straggler key_unused is for.
    let use_old_key = format!(
        "(sleep 1; AWS_ACCESS_KEY_ID={old} AWS_SECRET_ACCESS_KEY={secret} {python} -c 'import boto3; boto3.client(\"sts\", region_name=\"us-east-1\").get_caller_identity()') >/dev/null 2>&1 &",
        python = crate::support::root().join(".venv/bin/python").display()
    );
    let setup = Setup::new(
        &account,
        "",
        &format!(
            "hooks:\n  refresh:\n    - id: reload\n      exec: {{ command: [sh, -c, {use_old_key:?}] }}\n  verify:\n    - id: idle\n      key_unused: {{ quiet_for: 6s }}\npolicy:\n  soak: 0s\n"
        ),
    );
    account.age_keys();
    let run = setup.apply();
    run.exits(3);
    let expected = format!(
        "hook `idle`: the old key {}…{} was used by sts in us-east-1 at ",
        &old[..4],
        &old[old.len() - 4..]
    );
    assert!(
        run.stdout.contains(&expected) && run.stdout.contains("after refresh ended at"),
        "{}",
        run.stdout
    );
    assert_eq!(account.keys(user), [(old.clone(), true)], "rolled back");
}

#[test]
fn ssm_command_runs_on_the_instances_and_waits_for_each() {
    let account = Account::new();
    let hooks = "  refresh:\n    - id: restart\n      ssm_command: { commands: [\"systemctl restart app\"], instance_ids: [i-0123456789abcdef0, i-0fedcba9876543210], timeout: 1m }\n";
    let (setup, users) = with_hooks(&account, hooks, "");
    let run = setup.apply();
    run.exits(0);
    assert!(
        run.stdout.contains("refresh:restart done"),
        "{}",
        run.stdout
    );
    assert!(
        setup.journal().contains("\"instances\":2}"),
        "both invocations were awaited: {}",
        setup.journal()
    );
    assert_rotated(&account, &setup, &users);
}
