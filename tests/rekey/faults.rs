//! Faults: apply keeps every invariant when AWS throttles, errors, drops
//! connections, loses answers or stalls, and when its journal or disk is
//! damaged. Faults come from the seeded proxy (scripts/aws-proxy.py).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::account::Account;
use crate::emulator::fault_proxy;
use crate::support::{Setup, assert_rotated, assert_rotated_in, seed};

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

/// A small disk of its own (tmpfs), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts one of `bytes`, when this process may (root); otherwise
    /// `None`, or a failure when REKEY_REQUIRE_TMPFS is set (as in CI).
    fn mount(bytes: usize) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            assert!(
                std::env::var_os("REKEY_REQUIRE_TMPFS").is_none(),
                "cannot mount a tmpfs, and REKEY_REQUIRE_TMPFS is set"
            );
            eprintln!("skipped: this test mounts a tmpfs, which needs root");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Keeps the disk full until the returned flag is set: whatever
    /// frees a page (a rotation deleting its staged secret) is taken again
    /// at once, so only what the files' last pages have left can be written.
    fn keep_full(
        &self,
    ) -> (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    ) {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = [0u8; 4096];
        while filler.write_all(&chunk).is_ok() {}
        let stop = done.clone();
        let keeper = std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                while filler.write_all(&chunk).is_ok() {}
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        (done, keeper)
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Regression: a disk that filled and then freed damaged the journal for
/// good. The records that failed with ENOSPC left their first bytes, the
/// next record (of a rotation that was waiting in a hook meanwhile) was
/// appended right after them, and from then on apply, plan, status and
/// abort all refused the journal as damaged, stranding every rotation with
/// two active keys and its secret in staging.
#[test]
fn a_disk_that_fills_and_frees_leaves_a_journal_every_command_reads() {
    let Some(disk) = SmallDisk::mount(256 * 1024) else {
        return;
    };
    let account = Account::new();
    // Enough rotations that their records after the disk fills cannot all
    // fit in what the journal's last page has left.
    let users = seed(&account, "", 12);
    let first = &users[0].0;
    // Every verification waits for a gate file; the first user's its own.
    let hook = format!(
        "      exec: {{ command: [sh, -c, 'touch \"started-$REKEY_USER\"; gate=go; [ \"$REKEY_USER\" = {first} ] && gate=go-first; while [ ! -f \"$gate\" ]; do sleep 0.05; done; touch \"passed-$REKEY_USER\"'] }}\n"
    );
    let setup = Setup::new(
        &account,
        "",
        &format!(
            "hooks:\n  verify:\n    - id: wait\n{hook}policy:\n  soak: 0s\n  make_room: delete_inactive\n  concurrency: 12\n"
        ),
    );
    account.age_keys();
    let state = disk.path().join("state");
    let state_arg = state.to_str().unwrap();
    let apply = setup
        .command(&[
            "apply",
            "workflow.yaml",
            "--auto-approve",
            "--state-dir",
            state_arg,
        ])
        .spawn()
        .unwrap();
    let started = |user: &str| setup.path().join(format!("started-{user}")).exists();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !users.iter().all(|(user, _)| started(user)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hooks never all started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The disk fills; the other rotations go on, and their records fail.
    let (full, keeper) = disk.keep_full();
    std::fs::write(setup.path().join("go"), "").unwrap();
    let passed = |user: &str| setup.path().join(format!("passed-{user}")).exists();
    while !users[1..].iter().all(|(user, _)| passed(user)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hooks never all passed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Their next records are tried (and fail) right after their hooks end.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // The disk frees; the first rotation's next records are written.
    full.store(true, std::sync::atomic::Ordering::SeqCst);
    keeper.join().unwrap();
    disk.free();
    std::fs::write(setup.path().join("go-first"), "").unwrap();
    let ended = apply.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&ended.stdout);
    assert!(
        stdout.contains("No space left on device"),
        "records failed on the full disk: {stdout}"
    );
    assert_eq!(
        ended.status.code(),
        Some(1),
        "the rotations that could not record failed"
    );
    // Every command reads the journal, and the next apply converges.
    let status = setup.rekey(&["status", "workflow.yaml", "--state-dir", state_arg]);
    status.exits(0);
    let plan = setup.rekey(&["plan", "workflow.yaml", "--state-dir", state_arg]);
    plan.exits(0);
    let again = setup.rekey(&[
        "apply",
        "workflow.yaml",
        "--auto-approve",
        "--state-dir",
        state_arg,
    ]);
    again.exits(0);
    assert_rotated_in(&account, &setup, &users, &state);
}
