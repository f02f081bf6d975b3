//! The S3 state against an in-memory bucket with S3's conditional writes and
//! clock.

use super::*;
use crate::apply::claims::ClaimError;
use crate::apply::journal::Begin;
use crate::providers::memory::MemoryObjects;

fn runner(bucket: &Arc<MemoryObjects>) -> S3State {
    S3State::new(
        bucket.clone(),
        S3Location {
            bucket: "b".into(),
            prefix: "p/".into(),
            lease: std::time::Duration::from_secs(8),
            ..Default::default()
        },
        "wf",
    )
}

/// `runner` is paused (no renewal) while S3's clock passes its lease.
fn pause(runner: &S3State, bucket: &MemoryObjects) {
    runner
        .held
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .renewer
        .abort();
    bucket.advance(9);
}

fn owner(host: &str) -> Owner {
    Owner {
        host: host.into(),
        pid: 1,
        user: "ci".into(),
        ci_job: None,
        started: "t".into(),
    }
}

fn line(rotation: &str, record: Record) -> String {
    serde_json::to_string(&Entry {
        time: "t".into(),
        rotation: rotation.into(),
        user: rotation.split('@').next().unwrap_or_default().into(),
        record,
        by: None,
    })
    .unwrap()
}

/// Runner A, holding the lease, with one rotation begun.
async fn leased_with_a_rotation(bucket: &Arc<MemoryObjects>) -> S3State {
    let a = runner(bucket);
    a.acquire(&owner("runner-a")).await.unwrap();
    a.append(vec![line("u@1", Record::Begin(Begin::default()))])
        .await
        .unwrap();
    a
}

#[tokio::test]
async fn a_held_lease_is_refused_with_its_owner_until_it_expires_by_s3s_clock() {
    let bucket = Arc::new(MemoryObjects::default());
    let a = leased_with_a_rotation(&bucket).await;
    let b = runner(&bucket);
    let Err(LockError::Leased { owner, expires_in }) = b.acquire(&owner_b()).await else {
        panic!("a second runner took a live lease")
    };
    assert!(
        owner.contains("runner-a") && expires_in == 8,
        "{owner} {expires_in}"
    );
    // A's renewals stop (it is paused); S3's clock passes the expiry.
    pause(&a, &bucket);
    b.acquire(&owner_b()).await.unwrap();
    assert_eq!(b.read().await.unwrap().len(), 1, "B reads what A wrote");
    // A wakes up: its next write is refused, and it writes nothing.
    let before = bucket.keys();
    let Err(JournalError::Fenced { by }) = a.append(vec![line("u@1", Record::Finished)]).await
    else {
        panic!("a fenced-out runner wrote")
    };
    assert!(by.contains("runner-b"), "{by}");
    assert_eq!(bucket.keys(), before);
    assert!(a.append(vec![line("u@1", Record::Finished)]).await.is_err());
    b.append(vec![line("u@1", Record::Finished)]).await.unwrap();
    assert_eq!(b.read().await.unwrap().len(), 2);
    // A lets go of nothing that is not its own.
    a.release().await;
    assert!(bucket.keys().contains(&"p/wf/lease.json".to_string()));
    b.release().await;
    assert!(!bucket.keys().contains(&"p/wf/lease.json".to_string()));
}

fn owner_b() -> Owner {
    owner("runner-b")
}

#[tokio::test]
async fn a_lost_answer_to_a_conditional_write_is_read_back_and_kept_once() {
    let bucket = Arc::new(MemoryObjects::default());
    let a = runner(&bucket);
    bucket.lose_next_answer();
    a.acquire(&owner("runner-a")).await.unwrap();
    bucket.lose_next_answer();
    a.append(vec![line("u@1", Record::Begin(Begin::default()))])
        .await
        .unwrap();
    bucket.lose_next_answer();
    a.append(vec![line("u@1", Record::Finished)]).await.unwrap();
    assert_eq!(a.read().await.unwrap().len(), 2, "each record once");
    let claims = a.claims();
    let claim = crate::apply::claims::claim("wf", "u@1", &a.location());
    bucket.lose_next_answer();
    claims.take("1", "u", &claim, false).await.unwrap();
    assert_eq!(claims.holder("1", "u").await.unwrap().rotation, "u@1");
}

#[tokio::test]
async fn a_claim_in_the_bucket_holds_the_user_for_every_workflow() {
    let bucket = Arc::new(MemoryObjects::default());
    let a = runner(&bucket);
    let other = S3State::new(
        bucket.clone(),
        S3Location {
            bucket: "b".into(),
            prefix: "elsewhere/".into(),
            lease: std::time::Duration::from_secs(8),
            ..Default::default()
        },
        "other",
    );
    let mine = crate::apply::claims::claim("wf", "u@1", &a.location());
    let theirs = crate::apply::claims::claim("other", "u@2", &other.location());
    a.claims().take("1", "u", &mine, false).await.unwrap();
    let Err(ClaimError::Held(holder)) = other.claims().take("1", "u", &theirs, false).await else {
        panic!("two workflows took one user")
    };
    assert_eq!(holder.workflow, "wf");
    other.claims().release("1", "u", "u@2").await;
    assert!(
        a.claims().holder("1", "u").await.is_some(),
        "only its holder lets go"
    );
    a.claims().release("1", "u", "u@1").await;
    other.claims().take("1", "u", &theirs, false).await.unwrap();
}

#[tokio::test]
async fn ended_rotations_are_compacted_and_what_is_in_progress_is_kept() {
    let bucket = Arc::new(MemoryObjects::default());
    for run in 0..COMPACT_AFTER + 2 {
        let a = runner(&bucket);
        a.acquire(&owner("runner-a")).await.unwrap();
        let id = format!("u{}@{run}", run % 3);
        a.append(vec![line(&id, Record::Begin(Begin::default()))])
            .await
            .unwrap();
        if run != 1 {
            a.append(vec![line(
                &id,
                Record::Interrupted {
                    step: "create".parse().unwrap(),
                },
            )])
            .await
            .unwrap();
            a.append(vec![line(&id, Record::Finished)]).await.unwrap();
        }
        a.release().await;
    }
    let a = runner(&bucket);
    a.acquire(&owner("runner-a")).await.unwrap();
    // Takeovers stay (they fence); records are compacted.
    let journal_objects = bucket
        .keys()
        .iter()
        .filter(|k| {
            k.starts_with("p/wf/journal/") && !bucket.body(k).unwrap().contains("\"takeover\"")
        })
        .count();
    assert!(
        journal_objects < COMPACT_AFTER && bucket.keys().contains(&"p/wf/snapshot.json".into()),
        "compacted: {:?}",
        bucket.keys()
    );
    let rotations = journal::rotations(&a.read().await.unwrap());
    let in_progress: Vec<&str> = rotations
        .iter()
        .filter(|r| r.in_progress())
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(in_progress, ["u1@1"]);
    // The latest ended rotation of each user stays, begin and end.
    let ended: Vec<&str> = rotations
        .iter()
        .filter(|r| !r.in_progress())
        .map(|r| r.id.as_str())
        .collect();
    assert!(
        ended.len() < 10
            && (COMPACT_AFTER - 1..=COMPACT_AFTER + 1)
                .map(|run| format!("u{}@{run}", run % 3))
                .all(|id| ended.contains(&id.as_str())),
        "{ended:?}"
    );
    // Compaction keeps fencing: the takeover object stays.
    assert!(bucket.keys().iter().any(|k| k.starts_with("p/wf/journal/")));
}

/// Regression: compaction deleted the takeover object that fenced out a
/// paused runner, and the runner, waking, wrote that number again.
#[tokio::test]
async fn compaction_never_reopens_a_number_a_fenced_runner_would_write() {
    let bucket = Arc::new(MemoryObjects::default());
    let a = leased_with_a_rotation(&bucket).await;
    pause(&a, &bucket);
    for run in 0..3 {
        let b = runner(&bucket);
        b.acquire(&owner("runner-b")).await.unwrap();
        for i in 0..COMPACT_AFTER {
            let id = format!("v{run}x{i}@1");
            b.append(vec![line(&id, Record::Begin(Begin::default()))])
                .await
                .unwrap();
            b.append(vec![line(&id, Record::Finished)]).await.unwrap();
        }
        b.release().await;
    }
    assert!(bucket.keys().contains(&"p/wf/snapshot.json".to_string()));
    let before = bucket.keys();
    let Err(JournalError::Fenced { .. }) = a.append(vec![line("u@1", Record::Finished)]).await
    else {
        panic!("the fenced-out runner wrote after compaction")
    };
    assert_eq!(bucket.keys(), before);
}

/// Regression: when the renewal noticed the takeover first, the message
/// said "another runner" instead of naming it (its takeover was more
/// than a few objects back).
#[tokio::test]
async fn a_runner_whose_renewal_found_the_lease_lost_names_who_took_it() {
    let bucket = Arc::new(MemoryObjects::default());
    let a = runner(&bucket);
    a.acquire(&owner("runner-a")).await.unwrap();
    pause(&a, &bucket);
    let b = runner(&bucket);
    b.acquire(&owner("runner-b")).await.unwrap();
    for i in 0..40 {
        b.append(vec![line(
            &format!("v{i}@1"),
            Record::Begin(Begin::default()),
        )])
        .await
        .unwrap();
    }
    // What the renewal does when it finds the lease is not its own.
    a.held
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .lost
        .store(true, Ordering::SeqCst);
    let Err(JournalError::Fenced { by }) = a.append(vec![line("u@1", Record::Finished)]).await
    else {
        panic!("a runner that lost its lease wrote")
    };
    assert!(by.contains("runner-b"), "{by}");
}

#[tokio::test]
async fn a_journal_object_missing_between_two_is_refused() {
    let bucket = Arc::new(MemoryObjects::default());
    let a = runner(&bucket);
    a.acquire(&owner("runner-a")).await.unwrap();
    for record in [Record::Begin(Begin::default()), Record::Finished] {
        a.append(vec![line("u@1", record)]).await.unwrap();
    }
    a.append(vec![line("w@1", Record::Begin(Begin::default()))])
        .await
        .unwrap();
    use crate::providers::ObjectStore;
    bucket
        .delete("p/wf/journal/0000000000000003.json", None)
        .await
        .unwrap();
    let Err(JournalError::Damaged { path, reason, .. }) = a.read().await else {
        panic!("a hole in the journal was read as if whole")
    };
    assert!(
        path.display()
            .to_string()
            .ends_with("0000000000000003.json"),
        "{path:?}"
    );
    assert!(reason.contains("missing"), "{reason}");
}
