//! State in S3 (the emulator's, which honours `If-None-Match` and
//! `If-Match`): runners in fresh folders, as on two machines, share one
//! journal, lease and claims. A second runner is refused while the first
//! holds the lease and takes over once it expires; a soak one runner began
//! another finishes; a runner whose lease was taken over while it was
//! stopped writes nothing after waking; two workflows sharing a bucket
//! never rotate one user at once; S3 faults converge.

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::account::Account;
use crate::emulator::{emulator, fault_proxy};
use crate::support::{MAX_KEY_AGE, Rekey, Run, seed};

/// One runner: a fresh working folder with the workflow (nothing else is
/// shared with another runner but AWS), named as a machine would be.
struct Runner {
    dir: tempfile::TempDir,
    host: &'static str,
}

impl Runner {
    fn new(host: &'static str, workflow: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("workflow.yaml"), workflow).unwrap();
        Self { dir, host }
    }

    fn rekey_at(&self, endpoint: &str, args: &[&str]) -> Run {
        Rekey::new()
            .aws(endpoint)
            .current_dir(self.dir.path())
            .env("REKEY_HOSTNAME", self.host)
            .args(args)
            .run()
    }

    fn rekey(&self, args: &[&str]) -> Run {
        self.rekey_at(emulator(), args)
    }

    fn apply(&self) -> Run {
        self.rekey(&["apply", "workflow.yaml", "--auto-approve"])
    }

    /// `apply` in the background, through `endpoint`.
    fn spawn_at(&self, endpoint: &str) -> Child {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rekey"));
        command
            .args(["apply", "workflow.yaml", "--auto-approve"])
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("REKEY_HOSTNAME", self.host)
            .env("REKEY_CLAIMS_DIR", self.dir.path().join("claims"))
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    }
}

/// A workflow named `name` over the test's users, with its state in
/// `bucket`: an SSM parameter per user, and `extra`.
fn workflow(account: &Account, name: &str, bucket: &str, lease: &str, extra: &str) -> String {
    // Half the seeded users have an inactive key too: make room.
    let extra = extra.replace("policy:\n", "policy:\n  make_room: delete_inactive\n");
    format!(
        "version: 1\nname: {name}\nselect:\n  path_prefix: {path}\n  max_key_age: {MAX_KEY_AGE}\nstate:\n  s3: {{ bucket: {bucket}, prefix: teams/, lease: {lease} }}\ntargets:\n  - id: param\n    ssm_parameter: {{ name: \"/{id}/${{user}}/aws\" }}\n{extra}",
        path = account.path(),
        id = account.id,
    )
}

/// Every invariant of a finished rotation with shared state: one key,
/// active and new, whose secret (as IAM issued it) the parameter holds;
/// nothing staged; no secret in the bucket; nothing left leased.
fn assert_converged(account: &Account, bucket: &str, workflow: &str, users: &[(String, String)]) {
    let issued = account.issued_secrets();
    for (user, old) in users {
        let keys = account.keys(user);
        assert_eq!(keys.len(), 1, "{user} has {keys:?}");
        let (key, active) = &keys[0];
        assert!(*active && key != old, "{user}: {keys:?}");
        let parameter = format!("/{}/{user}/aws", account.id);
        assert_eq!(account.param_key(&parameter).as_ref(), Some(key), "{user}");
        assert_eq!(
            account.param_secret(&parameter).as_ref(),
            issued.get(key),
            "{user}: the parameter holds another secret than IAM issued"
        );
        assert_eq!(
            account.param(&format!("/rekey/staging/{workflow}/{user}")),
            None,
            "{user}: still staged"
        );
    }
    let objects = account.objects(bucket);
    for (key, body) in &objects {
        for secret in issued.values() {
            assert!(!body.contains(secret.as_str()), "a secret is in {key}");
        }
        assert!(
            !key.ends_with("lease.json"),
            "a lease was left behind: {key}"
        );
        assert!(
            !key.starts_with("rekey-claims/"),
            "a claim was left behind: {key}"
        );
    }
}

fn wait_for(what: &str, seconds: u64, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lease_of(account: &Account, bucket: &str, workflow: &str) -> Option<String> {
    account
        .objects(bucket)
        .into_iter()
        .find(|(key, _)| *key == format!("teams/{workflow}/lease.json"))
        .map(|(_, body)| body)
}

#[test]
fn a_second_runner_is_refused_then_takes_over_after_the_first_is_killed() {
    let account = Account::new();
    let bucket = account.bucket();
    let users = seed(&account, "", 3);
    let text = workflow(
        &account,
        "shared",
        &bucket,
        "3s",
        "  - id: slow\n    exec: { command: [sleep, \"3\"] }\npolicy:\n  soak: 0s\n  concurrency: 1\n",
    );
    let a = Runner::new("runner-a", &text);
    let b = Runner::new("runner-b", &text);
    account.age_keys();
    let mut first = a.spawn_at(emulator());
    wait_for("runner A's lease", 20, || {
        lease_of(&account, &bucket, "shared").is_some()
    });
    let refused = b.apply();
    refused.exits(1);
    assert!(
        refused.stderr.contains("holds the lease") && refused.stderr.contains("runner-a"),
        "the refusal names the owner: {}",
        refused.stderr
    );
    // Mid-rotation, A dies without a word: its lease stays until it expires.
    std::thread::sleep(Duration::from_millis(1500));
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(lease_of(&account, &bucket, "shared").is_some());
    std::thread::sleep(Duration::from_secs(4));
    let run = b.apply();
    run.exits(0);
    assert!(
        run.stdout.contains("in progress, interrupted during"),
        "B resumes the rotation A was killed in: {}",
        run.stdout
    );
    assert_converged(&account, &bucket, "shared", &users);
    let status = a.rekey(&["status", "workflow.yaml"]);
    assert_eq!(
        status.stdout.matches(": done").count(),
        3,
        "{}",
        status.stdout
    );
}

#[test]
fn a_soak_begun_by_one_runner_is_finished_by_another_after_its_folder_is_gone() {
    let account = Account::new();
    let bucket = account.bucket();
    let users = seed(&account, "", 2);
    let text = workflow(&account, "soaked", &bucket, "10s", "policy:\n  soak: 3s\n");
    let a = Runner::new("runner-a", &text);
    account.age_keys();
    let first = a.apply();
    first.exits(4);
    drop(a);
    let b = Runner::new("runner-b", &text);
    let early = b.apply();
    early.exits(4);
    std::thread::sleep(Duration::from_secs(4));
    let status = b.rekey(&["status", "workflow.yaml"]);
    assert_eq!(
        status.stdout.matches("paused at soak").count(),
        2,
        "{}",
        status.stdout
    );
    b.apply().exits(0);
    assert_converged(&account, &bucket, "soaked", &users);
}

#[test]
fn a_runner_whose_lease_was_taken_over_while_stopped_writes_nothing_after_waking() {
    let account = Account::new();
    let bucket = account.bucket();
    let users = seed(&account, "", 2);
    let text = workflow(
        &account,
        "fenced",
        &bucket,
        "2s",
        "hooks:\n  verify:\n    - id: slow\n      exec: { command: [sleep, \"2\"] }\npolicy:\n  soak: 0s\n  concurrency: 1\n",
    );
    let a = Runner::new("runner-a", &text);
    let b = Runner::new("runner-b", &text);
    let log = a.dir.path().join("calls-a.jsonl");
    let proxy = fault_proxy(&log, &[]);
    account.age_keys();
    let first = a.spawn_at(&proxy.endpoint);
    wait_for("runner A to begin its first rotation", 30, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("CreateAccessKey"))
    });
    // A is paused (a VM frozen, a laptop closed) with its lease live.
    unsafe { libc::kill(first.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(3));
    b.apply().exits(0);
    assert_converged(&account, &bucket, "fenced", &users);
    let objects_before = account.objects(&bucket);
    // What A sent before it was stopped has landed (the proxy logs a call
    // when it is answered): from here on, only what A does after waking.
    let calls_before = std::fs::read_to_string(&log).unwrap().lines().count();
    unsafe { libc::kill(first.id() as i32, libc::SIGCONT) };
    let first = first.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("another runner took over this workflow's state")
            && stdout.contains("runner-b"),
        "a clear message: {stdout}{stderr}"
    );
    let after: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .skip(calls_before)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let writes: Vec<&Value> = after
        .iter()
        .filter(|c| {
            c["service"] == "s3"
                && c["status"] == 200
                && (c["action"] == "PutObject" || c["action"] == "DeleteObject")
        })
        .collect();
    assert!(
        writes.is_empty(),
        "the fenced runner wrote state: {writes:?}"
    );
    let aws: Vec<&Value> = after.iter().filter(|c| c["service"] != "s3").collect();
    assert!(
        aws.len() <= 1,
        "at most the one AWS call whose intent was written: {aws:?}"
    );
    assert_eq!(account.objects(&bucket), objects_before);
    assert_converged(&account, &bucket, "fenced", &users);
}

#[test]
fn two_workflows_sharing_a_bucket_never_rotate_one_user_at_once() {
    let account = Account::new();
    let bucket = account.bucket();
    let users = seed(&account, "", 1);
    let user = &users[0].0;
    let x = Runner::new(
        "runner-x",
        &workflow(&account, "x", &bucket, "10s", "policy:\n  soak: 0s\n"),
    );
    let y = Runner::new(
        "runner-y",
        &workflow(&account, "y", &bucket, "10s", "policy:\n  soak: 0s\n"),
    );
    account.age_keys();
    x.rekey(&[
        "apply",
        "workflow.yaml",
        "--auto-approve",
        "--until",
        "distribute",
    ])
    .exits(0);
    let held = y.apply();
    // The user another workflow holds is left due: 5.
    held.exits(5);
    assert!(
        held.stdout.contains("held by workflow `x`") && held.stdout.contains("runner-x"),
        "the second workflow names the holder: {}",
        held.stdout
    );
    assert!(held.stdout.contains("Nothing to do."), "{}", held.stdout);
    x.apply().exits(0);
    let after_x = account.keys(user);
    account.age_keys();
    y.apply().exits(0);
    let after_y = account.keys(user);
    assert_ne!(after_x, after_y, "y rotates it on a later run");
    assert_converged(
        &account,
        &bucket,
        "y",
        &[(user.clone(), after_x[0].0.clone())],
    );
}

#[test]
fn s3_throttling_errors_and_lost_answers_converge() {
    let account = Account::new();
    let bucket = account.bucket();
    let users = seed(&account, "", 5);
    let text = workflow(
        &account,
        "faulty",
        &bucket,
        "2s",
        "policy:\n  soak: 0s\n  concurrency: 3\n",
    );
    let runner = Runner::new("runner-a", &text);
    let log = runner.dir.path().join("calls.jsonl");
    let proxy = fault_proxy(
        &log,
        &[
            "--seed",
            "11",
            "--only",
            "PutObject,GetObject,ListObjectsV2,DeleteObject",
            "--throttle",
            "0.10",
            "--error",
            "0.05",
            "--lose",
            "0.08",
        ],
    );
    account.age_keys();
    let mut runs = 0;
    loop {
        runs += 1;
        let run = runner.rekey_at(
            &proxy.endpoint,
            &["apply", "workflow.yaml", "--auto-approve"],
        );
        if run.code == 0 {
            break;
        }
        assert_eq!(
            run.code, 1,
            "only errors (resumable):\n{}{}",
            run.stdout, run.stderr
        );
        assert!(
            runs < 8,
            "no convergence after {runs} applies:\n{}{}",
            run.stdout,
            run.stderr
        );
        if run.stderr.contains("holds the lease") {
            // A lease whose release was lost: it expires.
            std::thread::sleep(Duration::from_secs(3));
        }
    }
    // The last run's release may itself have been lost: wait it out.
    std::thread::sleep(Duration::from_secs(3));
    if lease_of(&account, &bucket, "faulty").is_some() {
        runner
            .rekey(&["state", "unlock", "workflow.yaml", "--force"])
            .exits(0);
    }
    assert_converged(&account, &bucket, "faulty", &users);
    let calls: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let s3_faults = calls
        .iter()
        .filter(|c| c["service"] == "s3" && !c["fault"].is_null())
        .count();
    let lost_puts = calls
        .iter()
        .filter(|c| c["action"] == "PutObject" && c["fault"] == "lose")
        .count();
    eprintln!(
        "S3 FAULTS runs={runs} calls={} s3_faults={s3_faults} lost_puts={lost_puts}",
        calls.len()
    );
    assert!(
        s3_faults >= 5 && lost_puts >= 1,
        "faults were injected: {s3_faults}, {lost_puts}"
    );
}

#[test]
fn state_show_list_and_unlock_work_from_any_folder() {
    let account = Account::new();
    let bucket = account.bucket();
    seed(&account, "", 1);
    let text = workflow(
        &account,
        "inspect",
        &bucket,
        "30s",
        "policy:\n  soak: 30s\n",
    );
    let a = Runner::new("runner-a", &text);
    account.age_keys();
    a.apply().exits(4);
    let b = Runner::new("runner-b", &text);
    let show = b.rekey(&["state", "show", "workflow.yaml"]);
    show.exits(0);
    assert!(
        show.stdout
            .contains(&format!("s3://{bucket}/teams/inspect"))
            && show.stdout.contains("Lock: not held")
            && show.stdout.contains("paused at soak")
            && show.stdout.contains("held by this rotation"),
        "{}",
        show.stdout
    );
    let list = b.rekey(&["state", "list", "workflow.yaml"]);
    assert!(
        list.stdout
            .contains("inspect: 1 rotation(s) in progress; not held"),
        "{}",
        list.stdout
    );
    let unlock = b.rekey(&["state", "unlock", "workflow.yaml"]);
    unlock.exits(0);
    assert!(
        unlock.stdout.contains("No lock or lease is held"),
        "{}",
        unlock.stdout
    );
}

/// The example pipeline parses, and every rekey command line in it is a
/// real one: plan and status run against the emulator with its `--state`
/// (a bucket made for the test), apply's flags are apply's.
#[test]
fn the_example_ci_pipeline_names_real_rekey_command_lines() {
    let root = crate::support::root();
    let text =
        std::fs::read_to_string(root.join("examples/github-actions/rotate-keys.yml")).unwrap();
    let pipeline: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).expect("the pipeline is YAML");
    assert!(
        pipeline["on"]["schedule"][0]["cron"].is_string(),
        "scheduled"
    );
    assert_eq!(pipeline["permissions"]["id-token"], "write", "OIDC");
    let state = pipeline["env"]["REKEY_STATE"].as_str().unwrap().to_string();
    assert!(state.starts_with("s3://"), "{state}");
    let lines: Vec<String> = pipeline["jobs"]["rotate"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|step| step["run"].as_str())
        .flat_map(|run| {
            run.lines()
                .map(str::trim)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|line| line.starts_with("rekey "))
        .collect();
    let commands: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        commands,
        ["validate", "plan", "apply", "status", "report"],
        "{lines:?}"
    );
    let account = Account::new();
    let bucket = account.bucket();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("key-report.html");
    for line in &lines {
        // The shell's part ends the command line.
        let line = line
            .split(" || ")
            .next()
            .unwrap()
            .split(" | ")
            .next()
            .unwrap();
        let args: Vec<String> = line
            .split_whitespace()
            .skip(1)
            .map(|a| a.replace("\"$REKEY_STATE\"", &format!("s3://{bucket}/rotation")))
            .map(|a| a.replace("key-report.html", &out.display().to_string()))
            .collect();
        let command = &args[0];
        let help = Rekey::new().args([command.as_str(), "--help"]).run();
        help.exits(0);
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(
                help.stdout.contains(flag.as_str()),
                "`{flag}` is not a flag of {command}"
            );
        }
        let workflow = root.join(&args[1]);
        assert!(workflow.is_file(), "{} exists", workflow.display());
        if command != "apply" {
            let run = Rekey::new()
                .aws(emulator())
                .current_dir(&root)
                .args(&args)
                .run();
            assert!(
                run.code == 0
                    || (command == "plan" && run.code == 2)
                    || (command == "report" && run.code == 5),
                "{line}: {}{}",
                run.stdout,
                run.stderr
            );
        }
    }
}

/// Plan reads the state in S3 (rotations in progress, claims) and writes
/// nothing there either: every call it makes is a read.
#[test]
fn plan_with_state_in_s3_only_reads() {
    let account = Account::new();
    let bucket = account.bucket();
    seed(&account, "", 2);
    let runner = Runner::new(
        "runner-a",
        &workflow(
            &account,
            "readonly",
            &bucket,
            "30s",
            "policy:\n  soak: 30s\n",
        ),
    );
    account.age_keys();
    runner.apply().exits(4);
    let objects = account.objects(&bucket);
    let log = runner.dir.path().join("calls.jsonl");
    let proxy = fault_proxy(&log, &[]);
    let plan = runner.rekey_at(&proxy.endpoint, &["plan", "workflow.yaml"]);
    plan.exits(0);
    assert!(plan.stdout.contains("in progress"), "{}", plan.stdout);
    let calls: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(calls.iter().any(|c| c["service"] == "s3"), "{calls:?}");
    for call in &calls {
        let action = call["action"].as_str().unwrap();
        // GenerateCredentialReport refreshes IAM's report, nothing else.
        assert!(
            ["List", "Get", "Head"]
                .iter()
                .any(|read| action.starts_with(read))
                || action == "GenerateCredentialReport",
            "plan made a call that is not a read: {call}"
        );
    }
    assert_eq!(account.objects(&bucket), objects, "the bucket is unchanged");
}

/// A plan saved with its state in S3 is applied with that state or not at
/// all; a bucket that does not exist is named as such.
#[test]
fn a_saved_plan_keeps_its_state_and_a_missing_bucket_is_named() {
    let account = Account::new();
    let bucket = account.bucket();
    seed(&account, "", 1);
    let text = workflow(&account, "saved", &bucket, "30s", "policy:\n  soak: 0s\n");
    let local = text.replace(
        &format!("state:\n  s3: {{ bucket: {bucket}, prefix: teams/, lease: 30s }}\n"),
        "",
    );
    assert_ne!(local, text);
    let runner = Runner::new("runner-a", &local);
    account.age_keys();
    let state = format!("s3://{bucket}/teams");
    runner
        .rekey(&[
            "plan",
            "workflow.yaml",
            "--state",
            &state,
            "--out",
            "plan.json",
        ])
        .exits(0);
    let refused = runner.rekey(&["apply", "plan.json"]);
    refused.exits(1);
    assert!(
        refused.stderr.contains(&format!(
            "the plan was made with its state in {state}/saved"
        )),
        "{}",
        refused.stderr
    );
    runner
        .rekey(&["apply", "plan.json", "--state", &state])
        .exits(0);
    let missing = runner.rekey(&[
        "apply",
        "workflow.yaml",
        "--auto-approve",
        "--state",
        "s3://rekey-no-such-bucket/x",
    ]);
    missing.exits(1);
    assert!(
        missing.stderr.contains("the bucket does not exist"),
        "{}",
        missing.stderr
    );
}
