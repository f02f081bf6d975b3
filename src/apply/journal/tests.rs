//! The journal's records, replay, torn-record tolerance and first format.

use super::*;

fn entry(rotation: &str, record: Record) -> Entry {
    Entry {
        time: "t".into(),
        rotation: rotation.into(),
        user: "u".into(),
        record,
        by: None,
    }
}

fn step(text: &str) -> StepId {
    text.parse().unwrap()
}

fn intent(text: &str) -> Record {
    Record::Intent {
        step: step(text),
        intent: None,
    }
}

fn done(text: &str) -> Record {
    Record::Done {
        step: step(text),
        done: None,
    }
}

#[test]
/// Regression: a write that failed on a full disk left its first bytes,
/// and the next record was appended right after them
/// (`{"time":"…","rota{"time":…}`): every command then refused the
/// journal as damaged at that line, stranding every rotation.
fn a_record_torn_by_a_failed_write_in_the_middle_is_dropped_and_the_next_kept() {
    let first = serde_json::to_string(&entry("a", Record::Begin(Begin::default()))).unwrap();
    let next = serde_json::to_string(&entry("b", Record::Finished)).unwrap();
    let torn = &first[..first.len() / 2];
    let text = format!("{first}\n{torn}{next}\n{first}\n");
    let entries = parse(&text, Path::new("j")).unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.rotation.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "a"]
    );
    assert_eq!(
        without_torn_records(&text).as_deref(),
        Some(format!("{first}\n{next}\n{first}\n").as_str())
    );
    assert_eq!(without_torn_records(&format!("{first}\n{next}\n")), None);
    // What is not a record followed by one is still damage.
    let damaged = parse(&format!("{first}\nnot json at all\n"), Path::new("j"));
    assert!(
        matches!(damaged, Err(JournalError::Damaged { line: 2, .. })),
        "{damaged:?}"
    );
}

#[test]
fn a_torn_last_line_is_ignored_and_damage_elsewhere_refused() {
    let good = serde_json::to_string(&entry("r", Record::Begin(Begin::default()))).unwrap();
    let path = Path::new("j");
    assert_eq!(
        parse(&format!("{good}\n{{\"time\":\"t\",\"rot"), path)
            .unwrap()
            .len(),
        1
    );
    let damaged = parse(&format!("{good}\nnot json\n{good}\n"), path);
    assert!(
        matches!(damaged, Err(JournalError::Damaged { line: 2, .. })),
        "{damaged:?}"
    );
}

#[test]
fn replay_finds_done_steps_the_pending_one_and_the_end() {
    let entries = [
        entry("r", Record::Begin(Begin::default())),
        entry("r", intent("create")),
        entry("r", done("create")),
        entry("r", intent("distribute:a")),
    ];
    let records = rotations(&entries);
    assert_eq!(records.len(), 1);
    assert!(records[0].done.contains_key(&step("create")));
    assert_eq!(
        records[0].pending.as_ref().map(|(s, _)| s.to_string()),
        Some("distribute:a".into())
    );
    assert!(records[0].in_progress());
    let finished = rotations(&[entries.to_vec(), vec![entry("r", Record::Finished)]].concat());
    assert!(!finished[0].in_progress());
}

#[test]
fn records_are_typed_and_read_by_a_person() {
    let record = entry(
        "r",
        Record::Intent {
            step: step("distribute:param"),
            intent: Some(Intent::Distribute(TargetBefore::SsmParameter(
                crate::targets::Version {
                    existed: true,
                    version: Some("3".into()),
                },
            ))),
        },
    );
    let line = serde_json::to_string(&record).unwrap();
    assert_eq!(
        line,
        r#"{"time":"t","rotation":"r","user":"u","event":"intent","step":"distribute:param","intent":{"distribute":{"ssm_parameter":{"existed":true,"version":"3"}}}}"#
    );
    assert_eq!(
        serde_json::to_string(&parse_line(&line).unwrap()).unwrap(),
        line
    );
}

#[test]
fn the_first_format_is_read_into_typed_records() {
    let lines = [
        r#"{"time":"t0","rotation":"r","user":"u","event":"begin","data":{"arn":"arn:aws:iam::1:user/u","old_key":"AKIAOLD"}}"#,
        r#"{"time":"t1","rotation":"r","user":"u","event":"intent","step":"create","data":{"keys_before":"AKIAOLD,AKIAOTHER"}}"#,
        r#"{"time":"t2","rotation":"r","user":"u","event":"done","step":"create","data":{"new_key":"AKIANEW","staged":"file s"}}"#,
        r#"{"time":"t3","rotation":"r","user":"u","event":"intent","step":"distribute:p","data":{"previous_exists":"true","previous_version":"1"}}"#,
        r#"{"time":"t4","rotation":"r","user":"u","event":"paused","step":"soak","data":{"until":"2027-01-01T00:00:00Z","reason":"soak"}}"#,
    ];
    let entries = parse(&lines.join("\n"), Path::new("j")).unwrap();
    let record = &rotations(&entries)[0];
    assert_eq!(record.begin.old_key, "AKIAOLD");
    assert_eq!(record.begin.make_room, None);
    assert_eq!(
        record.intent(&step("create")),
        Some(&Intent::Create {
            keys_before: vec!["AKIAOLD".into(), "AKIAOTHER".into()],
            created: Vec::new(),
            since: None
        })
    );
    assert_eq!(record.new_key(), Some("AKIANEW"));
    let Some(Intent::DistributeV1(data)) = record.intent(&step("distribute:p")) else {
        panic!("{record:?}")
    };
    assert_eq!(data.get("previous_version").map(String::as_str), Some("1"));
}

async fn open_local(dir: &Path) -> (Journal, Vec<Entry>, super::super::state::State) {
    use super::super::state::{Owner, local::LocalState};
    let state: super::super::state::State = std::sync::Arc::new(LocalState::new(
        dir.to_path_buf(),
        super::super::claims::Claims::at(&dir.join("claims")),
    ));
    state.acquire(&Owner::this_process("now")).await.unwrap();
    let (journal, entries) = Journal::open(state.clone()).await.unwrap();
    (journal, entries, state)
}

/// Regression: the torn line was ended with a newline, so after one
/// recovery every later read found a damaged line in the middle.
#[tokio::test]
async fn a_torn_journal_is_whole_again_after_one_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::to_string(&entry("r", Record::Begin(Begin::default()))).unwrap();
    std::fs::write(
        dir.path().join(FILE_NAME),
        format!("{good}\n{{\"time\":\"t\",\"rot"),
    )
    .unwrap();
    let (journal, entries, state) = open_local(dir.path()).await;
    assert_eq!(entries.len(), 1);
    journal.append(&entry("r", Record::Finished)).await.unwrap();
    state.release().await;
    assert_eq!(read(dir.path()).unwrap().len(), 2);
    let (_, entries, _) = open_local(dir.path()).await;
    assert_eq!(entries.len(), 2);
}

#[tokio::test]
async fn records_are_synced_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (journal, entries, state) = open_local(dir.path()).await;
    assert!(entries.is_empty());
    journal
        .append(&entry("r", Record::Begin(Begin::default())))
        .await
        .unwrap();
    let mode = std::fs::metadata(dir.path().join(FILE_NAME))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    state.release().await;
    let (_, entries, _) = open_local(dir.path()).await;
    assert_eq!(entries.len(), 1);
}

#[test]
fn a_runner_names_its_ci_job() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(
        super::ci_job(env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/infra"),
            ("GITHUB_RUN_ID", "42"),
        ])),
        Some("https://github.com/acme/infra/actions/runs/42/attempts/1".into())
    );
    assert_eq!(
        super::ci_job(env(&[("CI_JOB_URL", "https://gitlab.example/x/-/jobs/7")])),
        Some("https://gitlab.example/x/-/jobs/7".into())
    );
    assert_eq!(
        super::ci_job(env(&[("REKEY_JOB", "nightly #3"), ("CI_JOB_URL", "u")])),
        Some("nightly #3".into())
    );
    assert_eq!(super::ci_job(env(&[])), None);
}
