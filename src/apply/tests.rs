//! The apply use case against an account in memory: no emulator, no
//! process. Rotations converge with every target holding the secret IAM
//! issued; a call that fails at any step is finished by the next apply; a
//! failed verification puts every target back; a journal of the first
//! format is resumed.
//!
//! Longer than 800 lines: one scenario per test over one in-memory world
//! (`World`), which every test builds the same way.

use std::path::{Path, PathBuf};

use super::rotation::RotationOutcome;
use super::stop::Stop;
use super::*;
use crate::plan::{Decision, Plan};
use crate::providers::memory::Memory;
use crate::providers::{IamWriter, KeyStatus};
use crate::workflow::graph::Phase;

const WORKFLOW: &str = "version: 1
name: unit
select:
  path_prefix: /app/
  max_key_age: 1d
targets:
  - id: param
    ssm_parameter: { name: \"/app/${user}\" }
  - id: profile
    credentials_file: { path: credentials }
policy:
  soak: 0s
hooks:
  verify:
    - id: works
      sts_identity: { timeout: 2s }
";

const FILE_BEFORE: &str = "# shared by the team\n[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = keep-me\n\n[app-1]\naws_access_key_id = AKIAOLD0000000000001\naws_secret_access_key = secret-of-AKIAOLD0000000000001\n";

struct World {
    dir: tempfile::TempDir,
    account: Memory,
    /// State in a bucket in memory instead of the state directory.
    bucket: Option<std::sync::Arc<crate::providers::memory::MemoryObjects>>,
}

impl World {
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("workflow.yaml"),
            format!("{WORKFLOW}{extra}"),
        )
        .unwrap();
        std::fs::write(dir.path().join("credentials"), FILE_BEFORE).unwrap();
        let account = Memory::default();
        account.user(
            "app-1",
            "/app/",
            &[("AKIAOLD0000000000001", KeyStatus::Active, 120)],
        );
        account.parameter(
            "/app/app-1",
            r#"{"AccessKeyId": "AKIAOLD0000000000001", "SecretAccessKey": "secret-of-AKIAOLD0000000000001"}"#,
        );
        Self {
            dir,
            account,
            bucket: None,
        }
    }

    /// The same, with its state in a bucket (in memory).
    fn shared(extra: &str) -> Self {
        Self {
            bucket: Some(Default::default()),
            ..Self::new(extra)
        }
    }

    /// The backend a runner opens: the state directory, or the bucket.
    fn backend(&self, name: &str) -> super::state::State {
        match &self.bucket {
            Some(bucket) => std::sync::Arc::new(super::state::s3::S3State::new(
                bucket.clone(),
                super::state::S3Location {
                    bucket: "memory".into(),
                    prefix: "teams/".into(),
                    lease: std::time::Duration::from_secs(8),
                    ..Default::default()
                },
                name,
            )),
            None => std::sync::Arc::new(super::state::local::LocalState::new(
                self.state_dir(),
                claims::Claims::at(&self.dir.path().join("claims")),
            )),
        }
    }

    fn workflow(&self) -> PathBuf {
        self.dir.path().join("workflow.yaml")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join(".rekey")
    }

    /// One apply; `fail` names a call that fails once after planning.
    fn apply(&self, fail: Option<&'static str>) -> Report {
        self.run(fail, None, &Stop::never())
    }

    /// One apply up to `until`, as `stop` says.
    /// The workflow's state opened and a plan made against the account.
    async fn open_and_plan(&self, prepared: &Prepared) -> (Session, Plan) {
        let backend = self.backend(&prepared.checked.workflow.name);
        let session = Session::open(prepared, self.state_dir(), backend)
            .await
            .unwrap();
        let plan = session
            .plan(prepared, &self.account, None, 4)
            .await
            .unwrap();
        (session, plan)
    }

    /// An apply whose call `action` fails ends failed at that step, and
    /// the next apply finishes the rotation with every invariant.
    fn fails_at_then_finishes(&self, action: &'static str) {
        let first = self.apply(Some(action));
        assert!(
            matches!(outcome(&first), RotationOutcome::Failed { .. }),
            "{action}: {first:?}"
        );
        assert_eq!(first.ending(), Ending::Failed);
        let second = self.apply(None);
        assert_eq!(
            outcome(&second),
            &RotationOutcome::Finished,
            "{action}: {second:?}"
        );
        self.assert_rotated();
    }

    fn run(&self, fail: Option<&'static str>, until: Option<Phase>, stop: &Stop) -> Report {
        let mut prepared = prepare(&self.workflow(), Vec::new()).unwrap();
        if self.bucket.is_some() {
            prepared.checked.workflow.stage_for_shared_state();
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let (session, plan) = self.open_and_plan(&prepared).await;
                if let Some(action) = fail {
                    self.account.fail_once(action);
                }
                self.execute(&prepared, session, &plan, until, stop).await
            })
    }

    /// Carries out `plan` in `session`, then lets the state go.
    async fn execute(
        &self,
        prepared: &Prepared,
        session: Session,
        plan: &Plan,
        until: Option<Phase>,
        stop: &Stop,
    ) -> Report {
        let report = session
            .execute(prepared, plan, &self.account, until, stop, &|_| {})
            .await;
        session.close().await;
        report
    }

    fn file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("credentials")).unwrap()
    }

    /// One active key, and every target holds it with the secret IAM
    /// issued; staging is empty; the other profile is untouched.
    fn assert_rotated(&self) {
        let keys = self.account.keys_of("app-1");
        assert_eq!(keys.len(), 1, "{keys:?}");
        let (id, status, secret) = &keys[0];
        assert_eq!(*status, KeyStatus::Active);
        assert_ne!(id, "AKIAOLD0000000000001");
        let parameter = self.account.parameter_now("/app/app-1").unwrap();
        assert!(
            parameter.contains(id.as_str()) && parameter.contains(secret.as_str()),
            "{parameter}"
        );
        let file = self.file();
        assert!(
            file.contains(&format!(
                "[app-1]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"
            )),
            "{file}"
        );
        assert!(file.starts_with("# shared by the team\n[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = keep-me\n"));
        assert_staging_empty(&self.state_dir());
    }

    /// The old key active and alone; every target as it was.
    fn assert_rolled_back(&self) {
        let keys = self.account.keys_of("app-1");
        assert_eq!(
            keys,
            [(
                "AKIAOLD0000000000001".to_string(),
                KeyStatus::Active,
                "secret-of-AKIAOLD0000000000001".to_string()
            )]
        );
        let parameter = self.account.parameter_now("/app/app-1").unwrap();
        assert!(
            parameter.contains("AKIAOLD0000000000001")
                && parameter.contains("secret-of-AKIAOLD0000000000001"),
            "{parameter}"
        );
        assert_eq!(self.file(), FILE_BEFORE);
        assert_staging_empty(&self.state_dir());
    }
}

fn assert_staging_empty(state_dir: &Path) {
    let staged: Vec<_> = std::fs::read_dir(state_dir.join("staging"))
        .unwrap()
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
}

fn outcome(report: &Report) -> &RotationOutcome {
    &report.outcomes[0].1
}

#[test]
fn a_rotation_converges_with_the_secret_iam_issued_in_every_target() {
    let world = World::new("");
    let report = world.apply(None);
    assert_eq!(outcome(&report), &RotationOutcome::Finished, "{report:?}");
    assert_eq!(report.ending(), Ending::Done);
    world.assert_rotated();
    let again = world.apply(None);
    assert!(again.outcomes.is_empty(), "{again:?}");
}

#[test]
fn a_call_that_fails_at_any_step_is_finished_by_the_next_apply() {
    for action in [
        "iam:ListAccessKeys",
        "iam:CreateAccessKey",
        "ssm:PutParameter",
        "iam:UpdateAccessKey",
        "iam:DeleteAccessKey",
    ] {
        let world = World::new("");
        world.fails_at_then_finishes(action);
    }
}

#[test]
fn an_sdk_error_that_quotes_the_secret_is_redacted() {
    let world = World::new("");
    world.account.echo_values_in_errors();
    let first = world.apply(Some("ssm:PutParameter"));
    let RotationOutcome::Failed { error, .. } = outcome(&first) else {
        panic!("{first:?}")
    };
    assert!(error.contains("(sensitive)"), "{error}");
    let (_, _, secret) = world
        .account
        .keys_of("app-1")
        .into_iter()
        .find(|(id, ..)| id != "AKIAOLD0000000000001")
        .unwrap();
    let journal = std::fs::read_to_string(world.state_dir().join("journal.jsonl")).unwrap();
    for (what, text) in [("error", error), ("journal", &journal)] {
        assert!(
            !text.contains(&secret),
            "the secret reached the {what}: {text}"
        );
    }
    assert_eq!(outcome(&world.apply(None)), &RotationOutcome::Finished);
    world.assert_rotated();
}

#[test]
fn a_rotation_stopped_after_each_phase_resumes_with_the_key_it_created() {
    for until in [Phase::Create, Phase::Distribute, Phase::Verify] {
        let world = World::new("");
        let report = world.run(None, Some(until), &Stop::never());
        assert_eq!(outcome(&report), &RotationOutcome::Stopped { after: until });
        let created: Vec<String> = world
            .account
            .keys_of("app-1")
            .into_iter()
            .map(|(id, ..)| id)
            .filter(|id| id != "AKIAOLD0000000000001")
            .collect();
        assert_eq!(created.len(), 1, "{until}: {created:?}");
        assert_eq!(outcome(&world.apply(None)), &RotationOutcome::Finished);
        world.assert_rotated();
        assert_eq!(
            world.account.keys_of("app-1")[0].0,
            created[0],
            "{until}: the resumed run finished the key the first one created"
        );
    }
}

#[test]
fn a_failed_verification_puts_every_target_back() {
    let world = World::new(
        "    - id: health\n      exec: { command: [sh, -c, \"exit 7\"] }\n      needs: [works]\n",
    );
    let report = world.apply(None);
    let RotationOutcome::RolledBack { reason } = outcome(&report) else {
        panic!("{report:?}")
    };
    assert!(reason.contains("hook `health`"), "{reason}");
    assert_eq!(report.ending(), Ending::VerifyFailed);
    world.assert_rolled_back();
}

#[test]
fn a_failed_restore_halts_and_says_why() {
    let world = World::new(
        "    - id: health\n      exec: { command: [sh, -c, \"exit 7\"] }\n      needs: [works]\n",
    );
    // The verification fails before disable-old: the rollback's first
    // call is the new key's deletion, which fails here.
    let report = world.run(Some("iam:DeleteAccessKey"), None, &Stop::never());
    let RotationOutcome::Halted { reason } = outcome(&report) else {
        panic!("{report:?}")
    };
    assert!(
        reason.contains("then rollback failed: iam:DeleteAccessKey"),
        "{reason}"
    );
    // The next apply finishes the rollback; it never completes the rotation.
    let report = world.apply(None);
    assert!(
        matches!(outcome(&report), RotationOutcome::RolledBack { .. }),
        "{report:?}"
    );
    world.assert_rolled_back();
}

#[test]
fn a_signal_stops_before_the_next_step_and_the_next_apply_goes_on() {
    let world = World::new("");
    let stop = Stop::never();
    stop.request(libc::SIGTERM);
    let report = world.run(None, None, &stop);
    // A rotation not begun when the signal came is not begun: no claim,
    // no snapshot of the workflow as it was.
    assert!(report.outcomes.is_empty(), "{report:?}");
    assert_eq!(report.ending(), Ending::Signalled(libc::SIGTERM));
    assert_eq!(world.account.keys_of("app-1").len(), 1, "nothing began");
    let journal =
        std::fs::read_to_string(world.state_dir().join("journal.jsonl")).unwrap_or_default();
    assert!(!journal.contains("\"begin\""), "{journal}");
    assert_eq!(outcome(&world.apply(None)), &RotationOutcome::Finished);
    world.assert_rotated();
}

#[test]
fn an_edited_workflow_changes_the_next_rotation_not_the_one_in_progress() {
    let world = World::new("");
    let report = world.run(None, Some(Phase::Create), &Stop::never());
    assert_eq!(
        outcome(&report),
        &RotationOutcome::Stopped {
            after: Phase::Create
        }
    );
    // The parameter is renamed in the workflow: the rotation in progress
    // still writes the one it began with.
    let text = std::fs::read_to_string(world.workflow())
        .unwrap()
        .replace("/app/${user}", "/elsewhere/${user}");
    std::fs::write(world.workflow(), text).unwrap();
    assert_eq!(outcome(&world.apply(None)), &RotationOutcome::Finished);
    world.assert_rotated();
    assert_eq!(world.account.parameter_now("/elsewhere/app-1"), None);
}

/// A journal the previous version wrote, cut after the profile's intent:
/// the parameter holds the new key, the profile still the old one.
#[test]
fn a_rotation_begun_by_the_previous_version_is_finished() {
    let world = World::new("");
    let new_key = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(world.account.create_access_key("app-1"))
        .unwrap();
    let new_secret = crate::secret::ExposeSecret::expose_secret(&new_key.secret).to_string();
    let staging = world.state_dir().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(
        staging.join("app-1.json"),
        format!(
            r#"{{"AccessKeyId": "{}", "SecretAccessKey": "{new_secret}"}}"#,
            new_key.id
        ),
    )
    .unwrap();
    world.account.parameter(
        "/app/app-1",
        &format!(
            r#"{{"AccessKeyId": "{}", "SecretAccessKey": "{new_secret}"}}"#,
            new_key.id
        ),
    );
    let backup = world.state_dir().join("backups/app-1_r.profile");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    std::fs::write(&backup, FILE_BEFORE).unwrap();
    let journal = [
        format!(
            r#"{{"time":"2026-11-30T04:53:49.0Z","rotation":"app-1@r","user":"app-1","event":"begin","data":{{"arn":"{}","old_key":"AKIAOLD0000000000001"}}}}"#,
            world.account.arn("app-1")
        ),
        r#"{"time":"2026-11-30T04:53:49.1Z","rotation":"app-1@r","user":"app-1","event":"intent","step":"create","data":{"keys_before":"AKIAOLD0000000000001"}}"#.to_string(),
        format!(
            r#"{{"time":"2026-11-30T04:53:49.2Z","rotation":"app-1@r","user":"app-1","event":"done","step":"create","data":{{"new_key":"{}","staged":"file s"}}}}"#,
            new_key.id
        ),
        r#"{"time":"2026-11-30T04:53:49.3Z","rotation":"app-1@r","user":"app-1","event":"intent","step":"distribute:param","data":{"previous_exists":"true","previous_version":"1"}}"#.to_string(),
        r#"{"time":"2026-11-30T04:53:49.4Z","rotation":"app-1@r","user":"app-1","event":"done","step":"distribute:param","data":{"version":"2"}}"#.to_string(),
        format!(
            r#"{{"time":"2026-11-30T04:53:49.5Z","rotation":"app-1@r","user":"app-1","event":"intent","step":"distribute:profile","data":{{"backup":"{}","previous_exists":"true"}}}}"#,
            backup.display()
        ),
    ];
    std::fs::write(
        world.state_dir().join(journal::FILE_NAME),
        journal.join("\n") + "\n",
    )
    .unwrap();
    let report = world.apply(None);
    assert_eq!(outcome(&report), &RotationOutcome::Finished, "{report:?}");
    world.assert_rotated();
    assert_eq!(world.account.keys_of("app-1")[0].0, new_key.id);
}

#[test]
fn a_rollback_puts_back_the_parameters_type_and_kms_key() {
    for (secure, kms) in [(false, None), (true, Some("alias/team-key"))] {
        let world = World::new(
            "    - id: health\n      exec: { command: [sh, -c, \"exit 7\"] }\n      needs: [works]\n",
        );
        world.account.parameter_as(
            "/app/app-1",
            r#"{"AccessKeyId": "AKIAOLD0000000000001", "SecretAccessKey": "secret-of-AKIAOLD0000000000001"}"#,
            secure,
            kms,
        );
        let report = world.apply(None);
        assert!(
            matches!(outcome(&report), RotationOutcome::RolledBack { .. }),
            "{report:?}"
        );
        world.assert_rolled_back();
        assert_eq!(
            world.account.parameter_kind("/app/app-1"),
            Some((secure, kms.map(str::to_string))),
            "the parameter's type and KMS key are as they were"
        );
    }
}

/// Regression: with the old key deleted outside rekey, every later apply
/// failed at disable-old and every rollback at enable-old, for good.
#[test]
fn an_old_key_deleted_outside_rekey_neither_blocks_the_rotation_nor_is_rolled_back_to() {
    let world = World::new(
        "    - id: health\n      exec: { command: [sh, -c, \"test ! -e broken\"] }\n      needs: [works]\n",
    );
    let report = world.run(None, Some(Phase::Distribute), &Stop::never());
    assert_eq!(
        outcome(&report),
        &RotationOutcome::Stopped {
            after: Phase::Distribute
        }
    );
    std::fs::write(world.dir.path().join("broken"), "").unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(
            world
                .account
                .delete_access_key("app-1", "AKIAOLD0000000000001"),
        )
        .unwrap();
    let report = world.apply(None);
    let RotationOutcome::Halted { reason } = outcome(&report) else {
        panic!("{report:?}")
    };
    assert!(reason.contains("cannot roll back"), "{reason}");
    let new_key = world.account.keys_of("app-1")[0].0.clone();
    assert!(
        world
            .account
            .parameter_now("/app/app-1")
            .unwrap()
            .contains(&new_key),
        "the targets keep the new key"
    );
    std::fs::remove_file(world.dir.path().join("broken")).unwrap();
    assert_eq!(outcome(&world.apply(None)), &RotationOutcome::Finished);
    world.assert_rotated();
}

/// A key that appeared on the user long after an interrupted create began
/// is not its lost answer: it may be someone else's, and is not deleted.
#[test]
fn an_interrupted_create_never_deletes_a_key_it_cannot_prove_is_its_own() {
    let world = World::new("");
    std::fs::create_dir_all(world.state_dir()).unwrap();
    let journal = [
        format!(
            r#"{{"time":"2026-01-01T00:00:00Z","rotation":"app-1@r","user":"app-1","event":"begin","arn":"{}","old_key":"AKIAOLD0000000000001"}}"#,
            world.account.arn("app-1")
        ),
        r#"{"time":"2026-01-01T00:00:00Z","rotation":"app-1@r","user":"app-1","event":"intent","step":"create","intent":{"create":{"keys_before":["AKIAOLD0000000000001"],"since":"2026-01-01T00:00:00Z"}}}"#.to_string(),
    ];
    std::fs::write(
        world.state_dir().join(journal::FILE_NAME),
        journal.join("\n") + "\n",
    )
    .unwrap();
    let theirs = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(world.account.create_access_key("app-1"))
        .unwrap();
    let report = world.apply(None);
    let RotationOutcome::Failed { step, error } = outcome(&report) else {
        panic!("{report:?}")
    };
    assert_eq!(step, "create");
    assert!(
        error.contains(&theirs.id) && error.contains("will not delete"),
        "{error}"
    );
    assert!(
        world
            .account
            .keys_of("app-1")
            .iter()
            .any(|(id, ..)| *id == theirs.id),
        "someone else's key is kept"
    );
}

/// Regression: with the new key deactivated by someone mid-rotation, apply
/// disabled and deleted the old one too, leaving no working key.
#[test]
fn the_old_key_is_left_alone_while_the_new_one_is_not_active() {
    let world = World::new("");
    world.run(None, Some(Phase::Verify), &Stop::never());
    let new_key = world
        .account
        .keys_of("app-1")
        .into_iter()
        .find(|(id, ..)| id != "AKIAOLD0000000000001")
        .unwrap()
        .0;
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(
            world
                .account
                .set_key_status("app-1", &new_key, KeyStatus::Inactive),
        )
        .unwrap();
    let report = world.apply(None);
    let RotationOutcome::Failed { step, error } = outcome(&report) else {
        panic!("{report:?}")
    };
    assert_eq!(step, "disable-old");
    assert!(error.contains("is not active"), "{error}");
    assert!(
        world
            .account
            .keys_of("app-1")
            .iter()
            .any(|(id, status, _)| id == "AKIAOLD0000000000001" && *status == KeyStatus::Active),
        "the old key stays active"
    );
}

/// Regression: a kill between taking the claim and the first record left a
/// claim that blocked the user for good.
#[test]
fn a_claim_a_crash_left_in_this_state_directory_is_taken_back() {
    let world = World::new("");
    let claims = claims::Claims::at(&world.dir.path().join("claims"));
    let stale = claims::claim(
        "unit",
        "app-1@crashed",
        &std::path::absolute(world.state_dir())
            .unwrap()
            .display()
            .to_string(),
    );
    claims
        .take(crate::providers::memory::ACCOUNT, "app-1", &stale, false)
        .unwrap();
    assert_eq!(outcome(&world.apply(None)), &RotationOutcome::Finished);
    world.assert_rotated();
    assert!(
        claims
            .holder(crate::providers::memory::ACCOUNT, "app-1")
            .is_none(),
        "released at the end"
    );
}

/// Regression: a symlinked state directory's target was chmodded, and one
/// others could write was used as it was.
#[test]
fn a_state_directory_that_is_a_link_or_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new("");
    let prepared = prepare(&world.workflow(), Vec::new()).unwrap();
    let elsewhere = world.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let link = world.dir.path().join("linked");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let open_at = |dir: PathBuf| {
        let state = std::sync::Arc::new(super::state::local::LocalState::new(
            dir.clone(),
            claims::Claims::at(&world.dir.path().join("claims")),
        ));
        runtime.block_on(Session::open(&prepared, dir, state))
    };
    let Err(error) = open_at(link) else {
        panic!("a symlinked state directory was used")
    };
    assert!(error.to_string().contains("not a folder"), "{error}");
    let open = world.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let Err(error) = open_at(open) else {
        panic!("a state directory others may write was used")
    };
    assert!(error.to_string().contains("others may write"), "{error}");
}

/// State in a bucket: each apply is another runner (a fresh backend with
/// its own lease), so a rotation one began and a call cut short is
/// finished by another, with the secret staged in SSM, never in the bucket.
#[test]
fn with_state_in_a_bucket_another_runner_finishes_what_one_began() {
    for action in [
        "iam:CreateAccessKey",
        "ssm:PutParameter",
        "iam:UpdateAccessKey",
        "iam:DeleteAccessKey",
    ] {
        let world = World::shared("");
        world.fails_at_then_finishes(action);
        assert_eq!(
            world.account.parameter_now("/rekey/staging/unit/app-1"),
            None,
            "{action}: staged in SSM, and cleared"
        );
        let (_, _, secret) = world.account.keys_of("app-1").remove(0);
        let bucket = world.bucket.as_ref().unwrap();
        assert!(
            bucket
                .keys()
                .iter()
                .any(|k| k.starts_with("teams/unit/journal/")),
            "{:?}",
            bucket.keys()
        );
        assert!(
            !bucket.keys().iter().any(|k| k.contains("lease")),
            "released: {:?}",
            bucket.keys()
        );
        for key in bucket.keys() {
            let body = bucket.body(&key).unwrap();
            assert!(!body.contains(&secret), "the secret is in {key}: {body}");
        }
        assert!(
            !std::fs::read_dir(world.state_dir())
                .unwrap()
                .any(|e| e.unwrap().file_name() == "journal.jsonl"),
            "no local journal"
        );
    }
}

#[test]
fn with_state_in_a_bucket_a_stopped_rotation_resumes_with_the_key_it_created() {
    for until in [Phase::Create, Phase::Distribute, Phase::Verify] {
        let world = World::shared("");
        let report = world.run(None, Some(until), &Stop::never());
        assert_eq!(outcome(&report), &RotationOutcome::Stopped { after: until });
        let created = world.account.keys_of("app-1").last().unwrap().0.clone();
        assert_eq!(outcome(&world.apply(None)), &RotationOutcome::Finished);
        world.assert_rotated();
        assert_eq!(world.account.keys_of("app-1")[0].0, created, "{until}");
    }
}

/// 10 users under /fleet/: `due` of them hold a 120-day-old key, the rest
/// a 10-day-old one; `outsider` holds an old key and is excluded.
fn fleet(due: usize) -> (tempfile::TempDir, Memory, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.yaml");
    std::fs::write(
        &path,
        "version: 1\nname: fleet\nselect:\n  path_prefix: /fleet/\n  exclude: [outsider]\n  max_key_age: 90d\ntargets:\n  - id: param\n    ssm_parameter: { name: \"/fleet/${user}\" }\n",
    )
    .unwrap();
    let account = Memory::default();
    for i in 0..10 {
        let age = if i < due { 120 } else { 10 };
        let id = format!("AKIAFLEET{i:011}");
        account.user(
            &format!("u{i}"),
            "/fleet/",
            &[(&id, KeyStatus::Active, age)],
        );
    }
    account.user(
        "outsider",
        "/fleet/",
        &[("AKIAOUTSIDER00000000", KeyStatus::Active, 200)],
    );
    account.user(
        "elsewhere",
        "/other/",
        &[("AKIAELSEWHERE0000000", KeyStatus::Active, 200)],
    );
    (dir, account, path)
}

fn plan_fleet(account: &Memory, path: &Path, report: bool) -> crate::plan::Plan {
    let checked = crate::workflow::check(path).unwrap();
    let request = crate::plan::PlanRequest {
        workflow: &checked.workflow,
        workflow_path: path,
        workflow_sha256: checked.sources.sha256(),
        vars: Vec::new(),
        as_of: crate::providers::memory::REFERENCE,
        parallelism: 4,
        users: Vec::new(),
        accounts: Vec::new(),
        credential_report: report,
    };
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(crate::plan::plan(&request, account))
        .unwrap()
}

#[test]
fn a_recent_credential_report_spares_the_reads_of_users_that_are_not_due() {
    let (_dir, account, path) = fleet(2);
    let plan = plan_fleet(&account, &path, true);
    assert_eq!(
        account.calls()["iam:ListAccessKeys"],
        2,
        "only the due users are read"
    );
    assert_eq!((plan.summary.rotate, plan.summary.unchanged), (2, 8));
    let report = plan.credential_report.as_ref().unwrap();
    assert!(report.used && report.note.is_none(), "{report:?}");
    assert_eq!((report.read, report.skipped), (2, 8));
    assert_eq!(
        report.outside,
        Some(1),
        "the excluded user, not the one elsewhere"
    );
    let text = crate::render::plan::human(&plan, crate::render::style::Style::plain(), false);
    assert!(
        text.contains("1 user outside this workflow holds keys older than 90d (IAM credential report, under /fleet/)"),
        "{text}"
    );
    let spared = plan.users.iter().find(|u| u.user == "u5").unwrap();
    assert!(
        spared.reason.contains("credential report"),
        "{}",
        spared.reason
    );
    // The same decisions as reading every user.
    let (_dir, every, path) = fleet(2);
    let full = plan_fleet(&every, &path, false);
    assert_eq!(every.calls()["iam:ListAccessKeys"], 10);
    let decisions = |p: &crate::plan::Plan| -> Vec<(String, Decision)> {
        p.users
            .iter()
            .map(|u| (u.user.clone(), u.decision))
            .collect()
    };
    assert_eq!(decisions(&plan), decisions(&full));
    assert!(full.credential_report.is_none());
}

#[test]
fn an_old_or_missing_credential_report_reads_every_user_and_says_why() {
    let (_dir, account, path) = fleet(3);
    account.report_made_at(crate::providers::memory::REFERENCE - time::Duration::days(91));
    let plan = plan_fleet(&account, &path, true);
    assert_eq!(account.calls()["iam:ListAccessKeys"], 10);
    let report = plan.credential_report.as_ref().unwrap();
    assert!(
        !report.used && report.note.as_ref().unwrap().contains("older than"),
        "{report:?}"
    );
    assert_eq!(plan.summary.rotate, 3);
    let (_dir, account, path) = fleet(3);
    account.fail_once("iam:GenerateCredentialReport");
    let plan = plan_fleet(&account, &path, true);
    assert_eq!(account.calls()["iam:ListAccessKeys"], 10);
    let note = plan.credential_report.unwrap().note.unwrap();
    assert!(note.contains("could not be had"), "{note}");
    assert_eq!(plan.summary.rotate, 3);
}

/// Regression: a rotation planned while another workflow held the user
/// began once the claim was free, from keys that had changed meanwhile,
/// and left two active keys. The keys are read again once claimed.
#[test]
fn a_rotation_whose_plan_went_stale_before_its_claim_does_not_begin() {
    let world = World::new("");
    let prepared = prepare(&world.workflow(), Vec::new()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(async {
        let (session, plan) = world.open_and_plan(&prepared).await;
        // Meanwhile another rotation of app-1 ends: a new key, the old gone.
        let other = world.account.create_access_key("app-1").await.unwrap();
        world
            .account
            .delete_access_key("app-1", "AKIAOLD0000000000001")
            .await
            .unwrap();
        let report = world
            .execute(&prepared, session, &plan, None, &Stop::never())
            .await;
        (report, other.id)
    });
    let (report, other) = report;
    let RotationOutcome::Failed { step, error } = outcome(&report) else {
        panic!("{report:?}")
    };
    assert_eq!(step, "begin");
    assert!(error.contains("changed since the plan"), "{error}");
    let keys: Vec<String> = world
        .account
        .keys_of("app-1")
        .into_iter()
        .map(|k| k.0)
        .collect();
    assert_eq!(keys, [other], "nothing was done");
    // The next apply plans afresh: the new key is young, nothing is due.
    assert!(world.apply(None).outcomes.is_empty());
}

/// The engine reads the time of day through one seam (`text::now`): on a
/// virtual clock that moves with tokio's paused time, a seven-day soak
/// ends when the clock says so, without a real wait.
#[test]
fn a_virtual_clock_decides_when_a_soak_ends() {
    let world = World::new("");
    std::fs::write(world.workflow(), WORKFLOW.replace("soak: 0s", "soak: 7d")).unwrap();
    let prepared = prepare(&world.workflow(), Vec::new()).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(async {
            let start = time::macros::datetime!(2031-05-06 07:00 UTC);
            crate::text::set_virtual_clock(Some(start));
            assert_eq!(crate::text::now(), start);
            let apply = || async {
                let (session, plan) = world.open_and_plan(&prepared).await;
                world
                    .execute(&prepared, session, &plan, None, &Stop::never())
                    .await
            };
            let first = apply().await;
            let RotationOutcome::Paused { until, .. } = outcome(&first) else {
                panic!("{first:?}")
            };
            assert!(
                until.starts_with("2031-05-13T07:00"),
                "seven days on the virtual clock: {until}"
            );
            tokio::time::advance(std::time::Duration::from_secs(3 * 86_400)).await;
            let early = apply().await;
            assert!(
                matches!(outcome(&early), RotationOutcome::Paused { .. }),
                "{early:?}"
            );
            tokio::time::advance(std::time::Duration::from_secs(4 * 86_400 + 5)).await;
            let done = apply().await;
            assert_eq!(outcome(&done), &RotationOutcome::Finished, "{done:?}");
            crate::text::set_virtual_clock(None);
        });
    world.assert_rotated();
}
