//! A run answers for what it leaves undone (issue 20): a due user it will
//! not rotate (blocked, held: `shared::plan_shows_a_user_another_runner_holds`,
//! a name no user has) and a key past the
//! deadline make apply, and plan with --detailed-exitcode, exit 5; an
//! exemption keeps a user from counting until it expires; the deadline
//! rule rotates a key the next run would find overdue; a closed window
//! asks nothing.

use crate::account::Account;
use crate::support::{Setup, seed};

fn exemptions(setup: &Setup, user: &str, expires: &str) {
    std::fs::write(
        setup.path().join("exemptions.yaml"),
        format!(
            "exemptions:\n  - user: \"{user}\"\n    account: \"123456789012\"\n    reason: vendor appliance (CHG-1)\n    expires: {expires}\n"
        ),
    )
    .unwrap();
}

/// A user with two active keys beside one that rotates.
fn blocked_and_due() -> (Account, Setup, String, Vec<(String, String)>) {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let blocked = account.user("twokeys", "", &[]);
    account.key(&blocked);
    account.key(&blocked);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    account.age_keys();
    (account, setup, blocked, users)
}

#[test]
fn a_blocked_user_makes_plan_and_apply_exit_5_after_the_rest_rotate() {
    let (account, setup, blocked, users) = blocked_and_due();
    let plan = setup.rekey(&["plan", "workflow.yaml", "--detailed-exitcode"]);
    plan.exits(5);
    assert!(
        plan.stdout.contains("1 due left as it is:")
            && plan
                .stdout
                .contains(&format!("{blocked}: blocked: two active keys")),
        "{}",
        plan.stdout
    );
    setup.rekey(&["plan", "workflow.yaml"]).exits(0);
    let json = setup.rekey(&["plan", "workflow.yaml", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["left"][0]["user"], blocked.as_str());
    assert_eq!(doc["left"][0]["counts"], true);
    let apply = setup.apply();
    apply.exits(5);
    assert_eq!(account.keys(&users[0].0).len(), 1);
    assert_ne!(
        account.keys(&users[0].0)[0].0,
        users[0].1,
        "the other user rotated"
    );
    assert_eq!(
        account.keys(&blocked).len(),
        2,
        "the blocked user is as it was"
    );
}

#[test]
fn an_exemption_keeps_a_user_from_counting_until_it_expires() {
    let (_account, setup, blocked, _users) = blocked_and_due();
    // `plan --detailed-exitcode` or `apply --auto-approve`, with the file.
    let with_exemptions = |command: &str, expires: &str| {
        exemptions(&setup, &blocked, expires);
        let flag = if command == "plan" {
            "--detailed-exitcode"
        } else {
            "--auto-approve"
        };
        setup.rekey(&[
            command,
            "workflow.yaml",
            flag,
            "--exemptions",
            "exemptions.yaml",
        ])
    };
    let plan = with_exemptions("plan", "2999-12-31");
    plan.exits(2);
    assert!(
        plan.stdout
            .contains(&format!("exempt, not counted: {blocked}"))
            && plan.stdout.contains("vendor appliance (CHG-1)"),
        "{}",
        plan.stdout
    );
    let expired = with_exemptions("plan", "2020-01-31");
    expired.exits(5);
    assert!(
        expired
            .stdout
            .contains("exemption expired (its last day was 2020-01-31)"),
        "{}",
        expired.stdout
    );
    with_exemptions("apply", "2020-01-31").exits(5);
    with_exemptions("apply", "2999-12-31").exits(0);
}

#[test]
fn a_bad_exemptions_file_is_refused_at_its_line_before_aws_is_reached() {
    let (_account, setup, _blocked, _users) = blocked_and_due();
    std::fs::write(
        setup.path().join("exemptions.yaml"),
        "exemptions:\n  - user: x\n    reason: r\n    expires: soon\n",
    )
    .unwrap();
    let plan = setup.rekey_at(
        "http://127.0.0.1:9",
        &[],
        &["plan", "workflow.yaml", "--exemptions", "exemptions.yaml"],
    );
    plan.exits(1);
    assert!(
        plan.stderr
            .contains("exemptions.yaml:4:14: error: `soon` is not a date"),
        "{}",
        plan.stderr
    );
}

#[test]
fn a_name_no_user_has_exits_5() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n");
    let text = std::fs::read_to_string(setup.path().join("workflow.yaml")).unwrap();
    let missing = account.name("no-such-user");
    let text = text.replace(
        "select:\n",
        &format!("select:\n  users: [\"{}\", \"{missing}\"]\n", users[0].0),
    );
    std::fs::write(setup.path().join("workflow.yaml"), text).unwrap();
    account.age_keys();
    let plan = setup.rekey(&["plan", "workflow.yaml", "--detailed-exitcode"]);
    plan.exits(5);
    assert!(
        plan.stdout
            .contains(&format!("`{missing}` in `select.users` names no IAM user")),
        "{}",
        plan.stdout
    );
    setup.apply().exits(5);
    assert_ne!(
        account.keys(&users[0].0)[0].0,
        users[0].1,
        "the real user rotated"
    );
}

#[test]
fn a_key_past_the_deadline_that_the_run_does_not_retire_exits_5() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "policy:\n  soak: 0s\n  deadline: 1h\n");
    account.age_keys();
    // Stopped before disable-old: the old key is still active, past 1h.
    let until = setup.apply_until("distribute");
    until.exits(5);
    assert!(
        until.stdout.contains(&format!(
            "{}: its active key passed the 1h deadline",
            users[0].0
        )),
        "{}",
        until.stdout
    );
    // The next run retires it: nothing is left.
    setup.apply().exits(0);
}

/// `HH:MM-HH:MM` (UTC) from `from` to `to` minutes after now.
fn window_from_now(from: i64, to: i64) -> String {
    let now = time::OffsetDateTime::now_utc();
    let at = |m: i64| {
        let t = now + time::Duration::minutes(m);
        format!("{:02}:{:02}", t.hour(), t.minute())
    };
    format!("{}-{}", at(from), at(to))
}

#[test]
fn a_closed_window_asks_nothing_and_is_5_when_a_key_would_pass_the_deadline_first() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let window = window_from_now(120, 180);
    let setup = Setup::new(
        &account,
        "",
        &format!("policy:\n  soak: 0s\n  deadline: 1h\n  window: {{ between: \"{window}\" }}\n"),
    );
    account.age_keys();
    // No --auto-approve and no terminal: a run that can act would refuse
    // (exit 1); one that cannot act asks nothing.
    let apply = setup.rekey(&["apply", "workflow.yaml"]);
    apply.exits(5);
    assert!(
        apply.stdout.contains("the change window is closed until")
            && apply.stdout.contains("passed the 1h deadline"),
        "{}",
        apply.stdout
    );
    assert_eq!(
        account.keys(&users[0].0),
        [(users[0].1.clone(), true)],
        "nothing changed"
    );
    let plan = setup.rekey(&["plan", "workflow.yaml", "--detailed-exitcode"]);
    plan.exits(5);
    assert!(
        plan.stdout
            .contains("The change window is closed: it opens next at"),
        "{}",
        plan.stdout
    );
    // With the deadline far off, the closed window is a plain pause.
    let text = std::fs::read_to_string(setup.path().join("workflow.yaml")).unwrap();
    std::fs::write(
        setup.path().join("workflow.yaml"),
        text.replace("deadline: 1h", "deadline: 90d"),
    )
    .unwrap();
    setup.rekey(&["apply", "workflow.yaml"]).exits(4);
}

#[test]
fn the_deadline_rule_rotates_a_key_the_next_run_would_find_overdue() {
    let account = Account::new();
    let users = seed(&account, "", 1);
    let setup = Setup::new(&account, "", "");
    let as_of =
        (time::OffsetDateTime::now_utc() + time::Duration::days(85) + time::Duration::hours(1))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
    let body = |schedule: &str| {
        let text = std::fs::read_to_string(setup.path().join("workflow.yaml")).unwrap();
        let text = text.replace("max_key_age: 1s", "max_key_age: 88d");
        format!("{schedule}{text}")
    };
    let workflow = setup.path().join("workflow.yaml");
    let original = body("");
    // Yearly, on 1 January: from 85 days on, the next run is months away.
    std::fs::write(&workflow, body("schedule: \"0 0 1 1 *\"\n")).unwrap();
    let plan = setup.rekey(&[
        "plan",
        "workflow.yaml",
        "--as-of",
        &as_of,
        "--detailed-exitcode",
        "--json",
    ]);
    plan.exits(2);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let user = &doc["users"][0];
    assert_eq!(user["user"], users[0].0.as_str());
    assert_eq!(user["decision"], "rotate", "{user}");
    let reason = user["reason"].as_str().unwrap();
    assert!(
        reason.contains("is 85d old: reaches 90d on") && reason.contains("before the next run on"),
        "{reason}"
    );
    assert!(
        doc["next_run"]
            .as_str()
            .unwrap()
            .ends_with("-01-01T00:00:00Z"),
        "{doc}"
    );
    std::fs::write(&workflow, original).unwrap();
    let plan = setup.rekey(&["plan", "workflow.yaml", "--as-of", &as_of, "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(
        doc["users"][0]["decision"], "unchanged",
        "no schedule: 85d < 88d"
    );
}

#[test]
fn bad_schedules_and_deadlines_are_errors_at_their_line_and_no_instant_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.yaml");
    let validate = |schedule: &str, deadline: &str| {
        std::fs::write(
            &path,
            format!("version: 1\nname: w\nschedule: \"{schedule}\"\nselect:\n  users: [a]\ntargets:\n  - id: t\n    ssm_parameter: {{ name: \"/x/${{user}}\" }}\npolicy:\n  deadline: {deadline}\n  window: {{ days: [tue], between: \"02:00-02:05\" }}\n"),
        )
        .unwrap();
        crate::support::Rekey::new()
            .args(["validate", path.to_str().unwrap()])
            .run()
    };
    let never = validate("0 3 31 2 *", "90d");
    never.exits(1);
    assert!(
        never.stderr.contains("w.yaml:3:11: error:") && never.stderr.contains("never runs"),
        "{}",
        never.stderr
    );
    let quartz = validate("0 3 ? * 5#2", "90d");
    quartz.exits(1);
    assert!(
        quartz.stderr.contains("day-of-month field `?`"),
        "{}",
        quartz.stderr
    );
    let long = validate("0 2 * * 2", "3000000d");
    long.exits(1);
    assert!(
        long.stderr.contains("`deadline: 3000000d` is longer than"),
        "{}",
        long.stderr
    );
    // A five-minute window: the suggestion falls inside it.
    let short = validate("0 6 * * 1", "90d");
    short.exits(0);
    assert!(
        short.stderr.contains("e.g. `2 2 * * 2`"),
        "{}",
        short.stderr
    );
    // The end of the calendar is no reason to panic.
    let plan = crate::support::Rekey::new()
        .aws(crate::emulator::emulator())
        .args(["plan", path.to_str().unwrap(), "--as-of", "9999-12-31"])
        .run();
    assert!(
        plan.code == 0 || plan.code == 1,
        "{} {}",
        plan.stdout,
        plan.stderr
    );
    assert!(!plan.stderr.contains("panicked"), "{}", plan.stderr);
}

#[test]
fn validate_warns_at_the_line_when_the_schedule_never_meets_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.yaml");
    std::fs::write(
        &path,
        "version: 1\nname: w\nschedule: \"0 6 * * 1\"\nselect:\n  users: [a]\ntargets:\n  - id: t\n    ssm_parameter: { name: \"/x/${user}\" }\npolicy:\n  window: { days: [tue, wed, thu], between: \"02:00-05:00\" }\n",
    )
    .unwrap();
    let run = crate::support::Rekey::new()
        .args(["validate", path.to_str().unwrap()])
        .run();
    run.exits(0);
    assert!(
        run.stderr
            .contains("w.yaml:3:11: warning: no run of `0 6 * * 1` falls inside `policy.window`")
            && run.stderr.contains("e.g. `10 2 * * 2,3,4`"),
        "{}",
        run.stderr
    );
}

/// The example pipeline's cron is its workflow's `schedule:`, and it falls
/// inside that workflow's change window.
#[test]
fn the_example_pipeline_runs_inside_its_workflows_window() {
    let root = crate::support::root();
    let text =
        std::fs::read_to_string(root.join("examples/github-actions/rotate-keys.yml")).unwrap();
    let pipeline: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let cron = pipeline["on"]["schedule"][0]["cron"].as_str().unwrap();
    let checked = rekey::workflow::check(&root.join("workflows/ci-deployers.yaml"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let workflow = &checked.workflow;
    let schedule = rekey::workflow::schedule::Schedule::parse(cron).unwrap();
    assert_eq!(
        workflow
            .schedule
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some(cron),
        "the workflow's `schedule:` is the pipeline's cron"
    );
    let window = workflow.policy.window.as_ref().expect("a window");
    // Every run in a year falls inside the window, not just one.
    let mut at = time::macros::datetime!(2027-01-01 00:00 UTC);
    for _ in 0..150 {
        at = schedule.next_after(at).unwrap();
        assert!(
            rekey::workflow::window::is_open(window, at),
            "{cron} runs at {at}, outside the window"
        );
    }
    assert!(
        text.contains("grep -q \"change window is closed\""),
        "only a soak pause is success"
    );
}
