//! `rekey plan` against the AWS emulator: selection, decisions, targets,
//! redaction, read-only, determinism, and the output reviewers read.

use std::path::Path;

use serde_json::Value;

use crate::account::{Account, CANARY};
use crate::emulator::{emulator, recording_proxy};
use crate::support::{Rekey, Run};

/// A workflow in a fresh directory; `{path}` becomes the test's IAM path
/// and `{id}` its unique suffix.
struct Workflow {
    dir: tempfile::TempDir,
}

impl Workflow {
    fn new(account: &Account, body: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("workflow.yaml");
        let text = format!(
            "version: 1\nname: test\n{}",
            body.replace("{path}", &account.path())
                .replace("{id}", &account.id)
        );
        std::fs::write(&file, text).unwrap();
        Self { dir }
    }

    fn plan(&self, args: &[&str]) -> Run {
        self.plan_at(emulator(), args)
    }

    fn plan_at(&self, endpoint: &str, args: &[&str]) -> Run {
        Rekey::new()
            .aws(endpoint)
            .current_dir(self.dir.path())
            .args(["plan", "workflow.yaml"])
            .args(args)
            .run()
    }

    fn json(&self, args: &[&str]) -> Value {
        let run = self.plan(&[&["--json"], args].concat());
        run.exits(0);
        serde_json::from_str(&run.stdout).expect("--json prints JSON")
    }
}

fn users(plan: &Value) -> Vec<(String, String)> {
    plan["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["user"].as_str().unwrap().to_string(),
                u["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const TARGET: &str = "targets:\n  - id: app\n    ssm_parameter: { name: \"/{id}/${user}/aws\" }\n";

#[test]
fn selection_picks_exactly_the_named_globbed_pathed_tagged_and_not_excluded_users() {
    let account = Account::new();
    let ci_a = account.user("ci-a", "ci/", &[("rotation", "enabled")]);
    let ci_b = account.user("ci-b", "ci/", &[]);
    let ci_legacy = account.user("ci-legacy", "ci/", &[("rotation", "enabled")]);
    let app = account.user("app", "apps/", &[("rotation", "enabled")]);
    let id = &account.id;
    let cases: Vec<(String, Vec<&String>)> = vec![
        (
            format!("  users: [{ci_b}]\n  path_prefix: {{path}}\n"),
            vec![&ci_b],
        ),
        (
            format!("  users: [\"ci-*-{id}\"]\n  path_prefix: {{path}}\n"),
            vec![&ci_a, &ci_b, &ci_legacy],
        ),
        (
            "  path_prefix: {path}ci/\n".to_string(),
            vec![&ci_a, &ci_b, &ci_legacy],
        ),
        (
            "  path_prefix: {path}\n  tags: { rotation: enabled }\n".to_string(),
            vec![&app, &ci_a, &ci_legacy],
        ),
        (
            format!(
                "  users: [\"*\"]\n  path_prefix: {{path}}\n  tags: {{ rotation: enabled }}\n  exclude: [\"ci-legacy-*\", {app}]\n"
            ),
            vec![&ci_a],
        ),
    ];
    for (select, expected) in cases {
        let workflow = Workflow::new(&account, &format!("select:\n{select}{TARGET}"));
        let selected: Vec<String> = users(&workflow.json(&[]))
            .into_iter()
            .map(|(user, _)| user)
            .collect();
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(selected, expected, "select:\n{select}");
    }
}

#[test]
fn an_exact_user_name_that_matches_nobody_is_pointed_out() {
    let account = Account::new();
    let user = account.user("svc", "", &[]);
    account.key(&user);
    let typo = account.name("scv");
    let workflow = Workflow::new(
        &account,
        &format!(
            "select:\n  users: [{user}, {typo}, \"nobody-*\"]\n  path_prefix: {{path}}\n{TARGET}"
        ),
    );
    let plan = workflow.json(&[]);
    assert_eq!(
        plan["unmatched"],
        serde_json::json!([typo]),
        "globs may match nobody; exact names should not"
    );
    let run = workflow.plan(&[]);
    assert!(
        run.stdout.contains(&format!(
            "! select.users names `{typo}`, but there is no such IAM user"
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn missing_credentials_are_an_error_that_says_what_to_set() {
    let account = Account::new();
    let workflow = Workflow::new(
        &account,
        &format!("select:\n  path_prefix: {{path}}\n{TARGET}"),
    );
    let run = Rekey::new()
        .aws(emulator())
        .without_env(&["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        .current_dir(workflow.dir.path())
        .args(["plan", "workflow.yaml"])
        .run();
    run.exits(1);
    assert!(
        run.stderr
            .contains("no AWS credentials found; set AWS_PROFILE or --profile"),
        "{}",
        run.stderr
    );
}

#[test]
fn young_keys_stay_and_age_zero_or_a_later_as_of_rotates_them() {
    let account = Account::new();
    let user = account.user("svc", "", &[]);
    account.key(&user);
    let select = "select:\n  path_prefix: {path}\n";
    let default_age = Workflow::new(&account, &format!("{select}{TARGET}"));
    assert_eq!(
        users(&default_age.json(&[])),
        [(user.clone(), "unchanged".into())]
    );
    assert_eq!(
        users(&default_age.json(&["--as-of", "2099-01-01"])),
        [(user.clone(), "rotate".into())],
        "a year ahead the key is due"
    );
    let always = Workflow::new(
        &account,
        &format!("select:\n  path_prefix: {{path}}\n  max_key_age: 0d\n{TARGET}"),
    );
    assert_eq!(users(&always.json(&[])), [(user, "rotate".into())]);
}

#[test]
fn key_slots_decide_between_rotate_make_room_and_blocked() {
    let account = Account::new();
    let two_active = account.user("two-active", "", &[]);
    account.key(&two_active);
    account.key(&two_active);
    let with_inactive = account.user("with-inactive", "", &[]);
    let (inactive, _) = account.key(&with_inactive);
    account.deactivate(&with_inactive, &inactive);
    account.key(&with_inactive);
    let body = |make_room: &str| {
        format!(
            "select:\n  path_prefix: {{path}}\n  max_key_age: 0d\n{TARGET}policy:\n  make_room: {make_room}\n"
        )
    };

    let refuse = Workflow::new(&account, &body("refuse")).json(&[]);
    assert_eq!(
        users(&refuse),
        [
            (two_active.clone(), "blocked".into()),
            (with_inactive.clone(), "blocked".into())
        ]
    );
    assert!(
        refuse["users"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("two active keys")
    );
    assert!(
        refuse["users"][1]["fix"]
            .as_str()
            .unwrap()
            .contains("make_room: delete_inactive")
    );

    let delete = Workflow::new(&account, &body("delete_inactive")).json(&[]);
    assert_eq!(
        users(&delete),
        [
            (two_active, "blocked".into()),
            (with_inactive.clone(), "rotate".into())
        ]
    );
    let rotation = &delete["users"][1];
    assert_eq!(rotation["make_room"], inactive.as_str());
    assert_eq!(rotation["steps"][0]["id"], "make-room");

    // The inactive key is what a target holds: deleting it could break a reader.
    account.ssm_json(&format!("/{}/{with_inactive}/aws", account.id), &inactive);
    let held = Workflow::new(&account, &body("delete_inactive")).json(&[]);
    assert_eq!(held["users"][1]["decision"], "blocked");
    assert!(
        held["users"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("target `app`"),
        "{}",
        held["users"][1]
    );
}

#[test]
fn every_target_kind_reports_the_key_it_holds() {
    let account = Account::new();
    let user = account.user("svc", "", &[]);
    let (key, _) = account.key(&user);
    let id = &account.id;
    account.ssm_json(&format!("/{id}/{user}/aws"), &key);
    account.secret_json(&format!("{id}/{user}"), &key);
    let workflow = Workflow::new(
        &account,
        "select:\n  path_prefix: {path}\n  max_key_age: 0d\ntargets:\n  - id: param\n    ssm_parameter: { name: \"/{id}/${user}/aws\" }\n  - id: vault\n    secrets_manager: { secret_id: \"{id}/${user}\" }\n  - id: profile\n    credentials_file: { path: creds, profile: ci }\n  - id: missing\n    ssm_parameter: { name: \"/{id}/${user}/nothing\" }\n  - id: push\n    exec: { command: [./push.sh, \"${user}\"] }\n  - id: dotenv\n    env_file: { path: app.env }\n  - id: config\n    template: { path: config.json, content: \"{\\\"key\\\": \\\"{{access_key_id}}\\\"}\" }\n",
    );
    std::fs::write(workflow.dir.path().join("creds"), format!("[other]\naws_access_key_id = AKIAOTHER00000000000\n\n[ci]\naws_access_key_id = {key}\naws_secret_access_key = {CANARY}\n")).unwrap();
    std::fs::write(
        workflow.dir.path().join("app.env"),
        format!("REGION=eu-west-1\nAWS_ACCESS_KEY_ID={key}\nAWS_SECRET_ACCESS_KEY={CANARY}\n"),
    )
    .unwrap();
    std::fs::write(
        workflow.dir.path().join("config.json"),
        format!("{{\"key\": \"{key}\"}}"),
    )
    .unwrap();
    let plan = workflow.json(&[]);
    let targets = plan["users"][0]["targets"].as_array().unwrap();
    let held: Vec<(&str, Option<&str>, bool)> = targets
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap(),
                t["before"]["key_id"].as_str(),
                t["before"]["exists"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            ("param", Some(key.as_str()), true),
            ("vault", Some(key.as_str()), true),
            ("profile", Some(key.as_str()), true),
            ("missing", None, false),
            ("push", None, false),
            ("dotenv", Some(key.as_str()), true),
            ("config", Some(key.as_str()), true)
        ]
    );
    assert_eq!(targets[4]["resource"], format!("./push.sh {user}"));
    assert!(
        targets[4].get("before").is_none(),
        "a command's state cannot be read"
    );
}

/// Every output of plan, for the canary search.
fn all_outputs(workflow: &Workflow) -> String {
    let out = workflow.dir.path().join("plan.json");
    let human = workflow.plan(&["--out", out.to_str().unwrap(), "-v"]);
    human.exits(0);
    let json = workflow.plan(&["--json"]);
    json.exits(0);
    let saved = std::fs::read_to_string(&out).unwrap();
    assert!(saved.contains("\"format_version\": 2"));
    [human.stdout, human.stderr, json.stdout, json.stderr, saved].join("\n")
}

#[test]
fn a_secret_held_by_a_target_appears_in_no_output() {
    let account = Account::new();
    let user = account.user("svc", "", &[]);
    let (key, secret) = account.key(&user);
    account.ssm_json(&format!("/{}/{user}/aws", account.id), &key);
    // A parameter that is not in rekey's format at all: just a secret.
    account.ssm_json(&format!("/{}/{user}/raw", account.id), CANARY);
    let workflow = Workflow::new(
        &account,
        "select:\n  path_prefix: {path}\n  max_key_age: 0d\ntargets:\n  - id: app\n    ssm_parameter: { name: \"/{id}/${user}/aws\" }\n  - id: raw\n    ssm_parameter: { name: \"/{id}/${user}/raw\", format: id_only }\n",
    );
    let outputs = all_outputs(&workflow);
    assert!(outputs.contains(&key), "the plan does show the key id");
    assert!(
        !outputs.contains(CANARY),
        "the canary secret leaked:\n{outputs}"
    );
    assert!(
        !outputs.contains(&secret),
        "the user's secret access key leaked"
    );
    assert!(outputs.contains("(sensitive)"));
}

#[test]
fn plan_makes_no_write_call_and_is_deterministic() {
    let account = Account::new();
    for short in ["a", "b", "c"] {
        let user = account.user(short, "", &[("team", "x")]);
        let (key, _) = account.key(&user);
        account.ssm_json(&format!("/{}/{user}/aws", account.id), &key);
    }
    let workflow = Workflow::new(
        &account,
        &format!(
            "select:\n  path_prefix: {{path}}\n  tags: {{ team: x }}\n  max_key_age: 0d\n{TARGET}"
        ),
    );
    let log = workflow.dir.path().join("calls.jsonl");
    let proxy = recording_proxy(&log, 0);
    let first = workflow.plan_at(
        &proxy.endpoint,
        &["--json", "--as-of", "2027-01-01T00:00:00Z"],
    );
    first.exits(0);
    let calls: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<String> = calls
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["service"].as_str().unwrap(),
                c["action"].as_str().unwrap()
            )
        })
        .collect();
    assert!(actions.len() >= 10, "the proxy saw the calls: {actions:?}");
    for action in &actions {
        let name = action.split(':').nth(1).unwrap();
        // GenerateCredentialReport is the one call that is not a read: it
        // asks IAM to refresh the account's report, and changes nothing.
        assert!(
            ["List", "Get", "Describe"]
                .iter()
                .any(|read| name.starts_with(read))
                || action == "iam:GenerateCredentialReport",
            "plan made a write call: {action}"
        );
    }
    assert!(
        actions.contains(&"iam:GenerateCredentialReport".to_string()),
        "{actions:?}"
    );
    let second = workflow.plan_at(
        &proxy.endpoint,
        &["--json", "--as-of", "2027-01-01T00:00:00Z"],
    );
    assert_eq!(
        first.stdout, second.stdout,
        "same state, same plan, byte for byte"
    );
}

/// Snapshots `text` with what changes from run to run (ids, key ids,
/// dates, the temporary directory) replaced by placeholders.
fn assert_redacted_snapshot(name: &str, account: &Account, dir: &Path, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&dir.display().to_string()), "[DIR]");
    settings.add_filter(&regex_escape(&account.id), "[ID]");
    settings.add_filter(r"endpoint http://127\.0\.0\.1:\d+", "endpoint [EMULATOR]");
    settings.add_filter(r"AKIA[A-Z0-9]{16}", "AKIA[KEY]");
    settings.add_filter(r"AKIA…[A-Z0-9]{4}", "AKIA…[KEY]");
    settings.add_filter(
        r"created \d{4}-\d{2}-\d{2}, \d+d old",
        "created [DATE], [AGE]d old",
    );
    settings.add_filter(
        r"\d+d old; due at 90d on \d{4}-\d{2}-\d{2}",
        "[AGE]d old; due at 90d on [DATE]",
    );
    settings.add_filter(r"is \d+d old \(max", "is [AGE]d old (max");
    settings.add_filter(r"as of \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "as of [NOW]");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn the_human_plan_reads_like_a_review() {
    let account = Account::new();
    let rotate = account.user("rotate", "", &[]);
    let (key, _) = account.key(&rotate);
    account.ssm_json(&format!("/{}/{rotate}/aws", account.id), &key);
    let blocked = account.user("blocked", "", &[]);
    account.key(&blocked);
    account.key(&blocked);
    let make_room = account.user("make-room", "", &[]);
    let (inactive, _) = account.key(&make_room);
    account.deactivate(&make_room, &inactive);
    account.key(&make_room);
    let young = account.user("young", "young/", &[]);
    account.key(&young);
    let workflow = Workflow::new(
        &account,
        "select:\n  path_prefix: {path}\n  exclude: [\"young-*\"]\n  max_key_age: 0d\nstaging:\n  ssm_parameter: \"/rekey/pending/${user}\"\ntargets:\n  - id: app\n    ssm_parameter: { name: \"/{id}/${user}/aws\" }\n  - id: vault\n    secrets_manager: { secret_id: \"{id}/${user}\", format: env }\n  - id: push\n    exec: { command: [./push.sh, \"${user}\", \"${new_key.id}\"] }\n    needs: [app]\nhooks:\n  verify:\n    - id: works\n      sts_identity: { timeout: 30s }\npolicy:\n  make_room: delete_inactive\n  soak: 3d\n",
    );
    let run = workflow.plan(&["--as-of", "2027-01-01T00:00:00Z"]);
    run.exits(0);
    assert_redacted_snapshot(
        "plan_rotate_blocked_make_room",
        &account,
        workflow.dir.path(),
        &run.stdout,
    );
    let unchanged = Workflow::new(
        &account,
        "select:\n  path_prefix: {path}young/\ntargets:\n  - id: app\n    ssm_parameter: { name: \"/x/${user}\" }\n",
    );
    let run = unchanged.plan(&["--detailed-exitcode"]);
    run.exits(0);
    assert_redacted_snapshot(
        "plan_nothing_to_do",
        &account,
        unchanged.dir.path(),
        &run.stdout,
    );
}

#[test]
fn detailed_exitcode_says_whether_anything_would_rotate() {
    let account = Account::new();
    let user = account.user("svc", "", &[]);
    account.key(&user);
    let workflow = Workflow::new(
        &account,
        &format!("select:\n  path_prefix: {{path}}\n{TARGET}"),
    );
    workflow.plan(&["--detailed-exitcode"]).exits(0);
    workflow
        .plan(&["--detailed-exitcode", "--as-of", "2099-01-01"])
        .exits(2);
    workflow.plan(&["--as-of", "2099-01-01"]).exits(0);
}

#[test]
fn mistakes_and_an_unreachable_aws_are_errors_with_advice() {
    let account = Account::new();
    let workflow = Workflow::new(
        &account,
        &format!("params:\n  env: {{}}\nselect:\n  path_prefix: {{path}}\n{TARGET}"),
    );
    let missing = workflow.plan(&[]);
    missing.exits(1);
    assert_eq!(
        missing.stderr,
        "error: cannot plan: param `env` has no default: give it with --var env=VALUE\n"
    );
    let unknown = workflow.plan(&["--var", "env=prod", "--var", "evn=prod"]);
    unknown.exits(1);
    assert!(
        unknown
            .stderr
            .contains("--var evn: the workflow has no param `evn`; did you mean `env`?"),
        "{}",
        unknown.stderr
    );
    let bad_time = workflow.plan(&["--var", "env=prod", "--as-of", "next tuesday"]);
    bad_time.exits(1);
    assert!(
        bad_time.stderr.contains("neither an RFC 3339 time"),
        "{}",
        bad_time.stderr
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = workflow.plan_at(&endpoint, &["--var", "env=prod"]);
    unreachable.exits(1);
    assert!(
        unreachable
            .stderr
            .starts_with("error: cannot plan: sts:GetCallerIdentity: cannot reach the endpoint"),
        "{}",
        unreachable.stderr
    );
    assert!(
        !unreachable.stderr.contains("panicked") && unreachable.stderr.lines().count() == 1,
        "{}",
        unreachable.stderr
    );
}

#[test]
fn access_denied_names_the_action_and_the_resource() {
    // A private emulator that checks IAM permissions after two calls: the
    // seeding below. (The shared one never does.)
    let strict = crate::emulator::Server::start(
        std::process::Command::new(crate::support::root().join("scripts/emulator"))
            .arg("serve")
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "2"),
    );
    let account = Account::at(&strict.endpoint);
    let user = account.user("powerless", "", &[]);
    let (key, secret) = account.key(&user);
    let workflow = Workflow::new(
        &account,
        &format!("select:\n  path_prefix: {{path}}\n{TARGET}"),
    );
    let run = Rekey::new()
        .aws(&strict.endpoint)
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .current_dir(workflow.dir.path())
        .args(["plan", "workflow.yaml"])
        .run();
    run.exits(1);
    let expected = format!(
        "error: cannot plan: iam:ListUsers on {}: access denied",
        account.path()
    );
    assert!(run.stderr.starts_with(&expected), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the identity running rekey needs this permission"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&secret));
}

/// With a recent credential report (the proxy dates moto's live report
/// now), plan reads only the users whose keys can be due, decides as a
/// full read would, and counts users outside the workflow with old keys.
#[test]
fn a_recent_credential_report_limits_reads_to_the_users_that_can_be_due() {
    let account = Account::new();
    let mut old = Vec::new();
    for short in ["old1", "old2", "gone"] {
        let user = account.user(short, "", &[]);
        account.key(&user);
        old.push(user);
    }
    std::thread::sleep(std::time::Duration::from_millis(3100));
    for short in ["new1", "new2", "new3"] {
        let user = account.user(short, "", &[]);
        account.key(&user);
    }
    let workflow = Workflow::new(
        &account,
        &format!(
            "select:\n  path_prefix: {{path}}\n  exclude: [\"*gone*\"]\n  max_key_age: 2s\n{TARGET}"
        ),
    );
    let log = workflow.dir.path().join("calls.jsonl");
    let proxy = crate::emulator::fault_proxy(&log, &["--report-now"]);
    let run = workflow.plan_at(&proxy.endpoint, &["--json"]);
    run.exits(0);
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();
    let reads = calls.matches("\"ListAccessKeys\"").count();
    assert_eq!(reads, 2, "only the two due users are read: {calls}");
    let report = &plan["credential_report"];
    assert_eq!(report["used"], true, "{report}");
    assert_eq!(
        (report["read"].as_u64(), report["skipped"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(report["outside"], 1, "the excluded user with an old key");
    let full = workflow.json(&["--no-credential-report"]);
    let decisions = |plan: &Value| -> Vec<(String, String)> { users(plan) };
    assert_eq!(decisions(&plan), decisions(&full));
    assert_eq!(
        decisions(&plan)
            .iter()
            .filter(|(_, d)| d == "rotate")
            .count(),
        2
    );
    // Without the proxy, moto dates its report 2015: too old to decide by.
    let fallback = workflow.json(&[]);
    assert_eq!(fallback["credential_report"]["used"], false);
    assert!(
        fallback["credential_report"]["note"]
            .as_str()
            .unwrap()
            .contains("every selected user was read")
    );
    assert_eq!(decisions(&fallback), decisions(&full));
}
