//! One user's rotation: its steps in graph order, each recorded in the
//! journal with an intent before it acts and an outcome after, and each
//! idempotent, so that running it again after a crash finishes the job.
//!
//! Reconciling an interrupted step (intent, no outcome):
//! - `create`: a key that is staged and exists is adopted; any other key
//!   that appeared since the intent is an orphan (its secret is lost): it is
//!   deleted and a key created again.
//! - `distribute:<target>`: a target that already holds the new key is done;
//!   otherwise it is written again. What it held before comes from the
//!   first intent, so a rollback restores the real previous value.
//! - every other step is safe to repeat (deleting what is gone, disabling
//!   what is disabled, checking again).
//!
//! What a target does is its kind's business ([`crate::targets`], and
//! [`crate::hooks`] for hooks); here is the order, the records and the
//! reconciliation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use time::OffsetDateTime;

use super::StepError;
use super::claims::{self, ClaimStore};
use super::journal::{Begin, Done, Entry, Intent, Journal, Record, RotationRecord, Undo};
use super::snapshot::Snapshot;
use super::staging::Stage;
use super::stop::Stop;
use super::window;
use crate::hooks::{self, Verdict};
use crate::providers::{ErrorKind, KeyStatus, Provider};
use crate::secret::SecretString;
use crate::targets::{self, ActionError, Resolve, ResolvedTarget, TargetBefore};
use crate::text::{parse_rfc3339, rfc3339, short_id};
use crate::workflow::document::OnVerifyFailure;
use crate::workflow::graph::{MakeRoomStep, Phase, Step, StepGraph, StepId};
use crate::workflow::model::{Hook, Staging, Target, Workflow};
use crate::workflow::template::Values;

/// Everything the rotations of one apply share.
pub struct Runner<'a, P> {
    pub workflow: &'a Workflow,
    pub params: &'a BTreeMap<String, String>,
    pub account: &'a str,
    pub base_dir: &'a Path,
    /// This machine's state directory (file backups, staged files).
    pub state_dir: &'a Path,
    /// Where the state is (`apply::state`), as claims name it.
    pub location: &'a str,
    /// Whether runners elsewhere share the state: a new secret is then
    /// staged in SSM unless the workflow says where.
    pub shared: bool,
    pub provider: &'a P,
    /// Providers of the accounts targets live in besides the user's.
    pub elsewhere: &'a crate::plan::Elsewhere<'a, P>,
    pub journal: &'a Journal,
    /// Stop after this phase (`--until`).
    pub until: Option<Phase>,
    /// Test seam: `REKEY_CRASH_AT=<step>` or `create:before-stage` makes
    /// the process kill itself (SIGKILL) right after that point.
    pub crash_at: Option<String>,
    pub progress: &'a (dyn Fn(&str) + Sync),
    /// Asked to stop (a signal): no new step starts, waits are cut short.
    pub stop: &'a Stop,
    /// Per-user claims, shared by every workflow of the state's store.
    pub claims: &'a dyn ClaimStore,
    /// `--force`: take users whose claim another rotation holds.
    pub force: bool,
    /// Time spent per phase, over all users.
    pub timings: &'a Mutex<BTreeMap<Phase, StdDuration>>,
    /// One per rotation running: `policy.concurrency` over every account.
    pub slots: &'a tokio::sync::Semaphore,
}

/// A rotation, its own workflow (from its snapshot) and its steps,
/// compiled once.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub record: RotationRecord,
    pub workflow: Workflow,
    pub steps: Vec<Step>,
}

impl std::ops::Deref for Rotation {
    type Target = RotationRecord;

    fn deref(&self) -> &RotationRecord {
        &self.record
    }
}

/// How one rotation ended this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    Stopped {
        after: Phase,
    },
    Paused {
        until: String,
        reason: String,
    },
    RolledBack {
        reason: String,
    },
    Halted {
        reason: String,
    },
    Failed {
        step: String,
        error: String,
    },
    /// A signal stopped it before or during `step`; apply goes on from there.
    Interrupted {
        step: String,
        signal: i32,
    },
}

enum StepEnd {
    Done(Option<Done>),
    Wait {
        until: OffsetDateTime,
        reason: String,
    },
    /// A refresh or verification hook said no.
    Rejected(String),
    /// A signal cut a wait short.
    Interrupted(i32),
}

/// A step's intent left by an interrupted run: `Some` when the step was
/// under way, with what it recorded (if anything).
type Pending = Option<Option<Intent>>;

/// What `create` knows of the keys it made: the user's keys before, the
/// ids its create calls returned, and when it began.
#[derive(Debug, Default)]
struct Made {
    before: Vec<String>,
    created: Vec<String>,
    since: Option<OffsetDateTime>,
}

impl Made {
    /// The end of a create a crash interrupted, which no answer tells: the
    /// longest a create call may take, retries included.
    fn resumed_until(&self) -> Option<OffsetDateTime> {
        self.since.map(|since| since + time::Duration::minutes(2))
    }

    fn intent(&self) -> Intent {
        Intent::Create {
            keys_before: self.before.clone(),
            created: self.created.clone(),
            since: self.since.map(rfc3339),
        }
    }
}

impl<P: Provider> Runner<'_, P> {
    /// Starts a rotation: records its beginning and returns it.
    /// `planned` is the user's keys as the plan saw them (id, status): once
    /// the user is claimed they are read again, and a rotation whose plan
    /// went stale meanwhile (another rotation of the user ended between
    /// the plan and the claim) does not begin.
    pub async fn begin(
        &self,
        user: &str,
        arn: &str,
        old_key: &str,
        make_room: Option<&str>,
        planned: &[(String, KeyStatus)],
    ) -> Result<Rotation, StepError> {
        let now = rfc3339(OffsetDateTime::now_utc());
        let snapshot = Snapshot::take(self.workflow, self.params, user, self.account)
            .map_err(StepError::Snapshot)?;
        let begin = Begin {
            arn: arn.to_string(),
            old_key: old_key.to_string(),
            make_room: make_room.map(str::to_string),
            snapshot: Some(Box::new(snapshot)),
        };
        // The account too: a user name recurs across accounts.
        let id = format!("{user}@{}@{now}", self.account);
        self.claim(user, &id).await?;
        let mut live: Vec<(String, KeyStatus)> = match self.provider.access_keys(user).await {
            Ok(keys) => keys.into_iter().map(|k| (k.id, k.status)).collect(),
            Err(error) => {
                self.claims.release(self.account, user, &id).await;
                return Err(error.into());
            }
        };
        let mut planned = planned.to_vec();
        live.sort();
        planned.sort();
        if live != planned {
            self.claims.release(self.account, user, &id).await;
            return Err(StepError::ChangedSincePlan);
        }
        let record = RotationRecord {
            id,
            user: user.to_string(),
            started: now.clone(),
            begin: begin.clone(),
            ..RotationRecord::default()
        };
        self.record(&record, Record::Begin(begin)).await?;
        // Claimed above, before its first record.
        self.compile(record)
    }

    /// Claims `user` for rotation `id`, before it acts (see `claims`).
    async fn claim(&self, user: &str, id: &str) -> Result<(), StepError> {
        // A runner that lost its lease (paused, then taken over) must not
        // take a claim: it would hold a user no rotation ends.
        self.journal.verify_held().await?;
        let claim = claims::claim(&self.workflow.name, id, self.location);
        // A claim from this state, which this apply holds, by another
        // rotation is one a crash left behind (between the claim and the
        // first record, or the last record and the release): a rotation
        // in progress here would be resumed, not begun.
        let holder = match self.claims.take(self.account, user, &claim, false).await {
            Err(claims::ClaimError::Held(holder)) => holder,
            taken => return taken.map_err(StepError::from),
        };
        let stale = holder.is_from(self.location);
        if !(self.force || stale) {
            return Err(claims::ClaimError::Held(holder).into());
        }
        if self.force && !stale {
            (self.progress)(&format!(
                "{user}: WARNING: --force takes the user from {holder}; if that rotation is still running, the two will destroy each other's keys"
            ));
        }
        self.claims
            .take(self.account, user, &claim, true)
            .await
            .map_err(StepError::from)
    }

    /// A rotation the journal has, with its own workflow and its steps. A
    /// rotation of the first journal format has no snapshot: it acts from
    /// the workflow as it is. It must hold (or take back) its user's claim.
    pub async fn resume(&self, record: RotationRecord) -> Result<Rotation, StepError> {
        let rotation = self.compile(record)?;
        self.claim(&rotation.user, &rotation.id).await?;
        Ok(rotation)
    }

    /// A rotation with its own workflow and its steps.
    fn compile(&self, record: RotationRecord) -> Result<Rotation, StepError> {
        let workflow = match &record.begin.snapshot {
            Some(snapshot) => {
                if snapshot.account != self.account {
                    return Err(StepError::OtherAccount {
                        began: snapshot.account.clone(),
                        now: self.account.to_string(),
                    });
                }
                if let Some(name) = snapshot.missing(self.params).first() {
                    return Err(StepError::SensitiveParam(name.to_string()));
                }
                snapshot.workflow()
            }
            None => self.workflow.clone(),
        };
        let room = if record.begin.make_room.is_some() {
            MakeRoomStep::Yes
        } else {
            MakeRoomStep::No
        };
        let graph = StepGraph::compile(&workflow, &record.user, room)?;
        let steps = graph.steps().into_iter().cloned().collect();
        Ok(Rotation {
            record,
            workflow,
            steps,
        })
    }

    async fn record(&self, rotation: &RotationRecord, record: Record) -> Result<(), StepError> {
        let entry = Entry {
            time: rfc3339(OffsetDateTime::now_utc()),
            rotation: rotation.id.clone(),
            user: rotation.user.clone(),
            record,
        };
        self.journal.append(&entry).await.map_err(StepError::from)
    }

    async fn intent(
        &self,
        rotation: &RotationRecord,
        step: &StepId,
        intent: Option<Intent>,
    ) -> Result<(), StepError> {
        self.record(
            rotation,
            Record::Intent {
                step: step.clone(),
                intent,
            },
        )
        .await?;
        self.crash_point(&format!("intent:{step}"));
        Ok(())
    }

    fn crash_point(&self, point: &str) {
        if self.crash_at.as_deref() == Some(point) {
            // SAFETY: sending a signal to our own process has no memory effects.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    fn values<'v>(&'v self, rotation: &'v RotationRecord, new_key: Option<&'v str>) -> Values<'v> {
        Values {
            params: self.params,
            user: Some(&rotation.user),
            account: Some(self.account),
            new_key_id: new_key,
        }
    }

    /// The provider `target` is written through: its own account's when
    /// it names one.
    fn target_provider(&self, target: &Target) -> Result<&P, StepError> {
        crate::plan::target_provider(target, self.account, self.provider, self.elsewhere)
            .map_err(StepError::TargetAccount)
    }

    pub fn stage(&self, rotation: &Rotation) -> Result<Stage, StepError> {
        Ok(match &rotation.workflow.staging {
            Staging::StateFile => Stage::file(self.state_dir, &rotation.user),
            Staging::AccountStateFile => Stage::file(
                self.state_dir,
                &format!("{}-{}", self.account, rotation.user),
            ),
            Staging::SsmParameter { name, kms_key_id } => {
                let values = self.values(rotation, None);
                let resolve = self.resolve(&values, "staging");
                let kms = kms_key_id.as_ref().map(|k| resolve.expand(k)).transpose()?;
                Stage::ssm(resolve.expand(name)?, kms)
            }
        })
    }

    /// Runs (or resumes) one rotation as far as it can go now.
    pub async fn run(&self, mut rotation: Rotation) -> Outcome {
        if let Some(reason) = rotation.rolling_back.clone() {
            return self.roll_back(&rotation, reason).await;
        }
        let steps = std::mem::take(&mut rotation.steps);
        for step in &steps {
            let id = step.id();
            if rotation.done.contains_key(&id) {
                continue;
            }
            if let Some(signal) = self.stop.requested() {
                return Outcome::Interrupted {
                    step: id.to_string(),
                    signal,
                };
            }
            if let Some(until) = self.until.filter(|until| step.phase > *until) {
                return Outcome::Stopped { after: until };
            }
            if let Some(window) = &rotation.workflow.policy.window {
                let now = OffsetDateTime::now_utc();
                if !window::is_open(window, now) {
                    let until = rfc3339(window::next_open(window, now));
                    let reason = "the change window is closed".to_string();
                    return self.pause(&rotation, &id, until, reason).await;
                }
            }
            let pending: Pending = rotation
                .record
                .pending
                .take()
                .filter(|(s, _)| *s == id)
                .map(|(_, intent)| intent);
            let started = Instant::now();
            let result = self.step(&rotation, step, pending).await;
            *self
                .timings
                .lock()
                .expect("timings")
                .entry(step.phase)
                .or_default() += started.elapsed();
            match result {
                Ok(StepEnd::Done(done)) => {
                    let record = Record::Done {
                        step: id.clone(),
                        done: done.clone(),
                    };
                    if let Err(error) = self.record(&rotation, record).await {
                        return Outcome::Failed {
                            step: id.to_string(),
                            error: error.to_string(),
                        };
                    }
                    (self.progress)(&format!(
                        "{}: {id} done{}",
                        rotation.user,
                        summary(done.as_ref())
                    ));
                    rotation.record.done.insert(id.clone(), done);
                    rotation
                        .record
                        .done_at
                        .insert(id.clone(), rfc3339(OffsetDateTime::now_utc()));
                    self.crash_point(&id.to_string());
                }
                Ok(StepEnd::Wait { until, reason }) => {
                    return self.pause(&rotation, &id, rfc3339(until), reason).await;
                }
                Ok(StepEnd::Interrupted(signal)) => {
                    let _ = self
                        .record(&rotation, Record::Interrupted { step: id.clone() })
                        .await;
                    (self.progress)(&format!("{}: {id} interrupted", rotation.user));
                    return Outcome::Interrupted {
                        step: id.to_string(),
                        signal,
                    };
                }
                Ok(StepEnd::Rejected(reason)) => {
                    let _ = self
                        .record(
                            &rotation,
                            Record::Failed {
                                step: id.clone(),
                                error: reason.clone(),
                            },
                        )
                        .await;
                    (self.progress)(&format!("{}: {id} FAILED: {reason}", rotation.user));
                    return self.on_verify_failure(&rotation, reason).await;
                }
                Err(error) => {
                    let error = self.redact(&rotation, error.to_string()).await;
                    let _ = self
                        .record(
                            &rotation,
                            Record::Failed {
                                step: id.clone(),
                                error: error.clone(),
                            },
                        )
                        .await;
                    return Outcome::Failed {
                        step: id.to_string(),
                        error,
                    };
                }
            }
        }
        let _ = self.cleanup(&rotation);
        match self.record(&rotation, Record::Finished).await {
            Ok(()) => {
                self.claims
                    .release(self.account, &rotation.user, &rotation.id)
                    .await;
                Outcome::Finished
            }
            Err(error) => Outcome::Failed {
                step: "finish".into(),
                error: error.to_string(),
            },
        }
    }

    /// Records that the rotation waits at `step` until `until`, and says so.
    async fn pause(
        &self,
        rotation: &Rotation,
        step: &StepId,
        until: String,
        reason: String,
    ) -> Outcome {
        let record = Record::Paused {
            step: step.clone(),
            until: until.clone(),
            reason: reason.clone(),
        };
        let _ = self.record(rotation, record).await;
        Outcome::Paused { until, reason }
    }

    async fn step(
        &self,
        rotation: &Rotation,
        step: &Step,
        pending: Pending,
    ) -> Result<StepEnd, StepError> {
        let id = step.id();
        let user = rotation.user.as_str();
        let old_key = rotation.begin.old_key.clone();
        match step.phase {
            Phase::MakeRoom => {
                let inactive = rotation.begin.make_room.clone().unwrap_or_default();
                self.intent(rotation, &id, None).await?;
                self.journal.verify_held().await?;
                self.provider.delete_access_key(user, &inactive).await?;
                Ok(StepEnd::Done(Some(Done::Deleted { key: inactive })))
            }
            Phase::Create => self.create(rotation, &id, pending).await,
            Phase::Distribute => {
                let target = target(rotation, step)?;
                match self.distribute(rotation, &id, target, pending).await {
                    // A command target that fails did not take the new key:
                    // as a failed check, it rolls back or halts per policy,
                    // rather than leave two active keys and the secret staged.
                    Err(StepError::Action(ActionError::Command { what, message })) => {
                        Ok(StepEnd::Rejected(format!("{what}: {message}")))
                    }
                    other => other,
                }
            }
            Phase::Refresh | Phase::Verify | Phase::VerifyAfterDisable => {
                let hook = hook(rotation, step)?;
                self.intent(rotation, &id, None).await?;
                tokio::select! {
                    end = self.hook(rotation, hook) => end,
                    signal = self.stop.wait() => Ok(StepEnd::Interrupted(signal)),
                }
            }
            Phase::DisableOld => {
                self.new_key_active(rotation).await?;
                self.intent(rotation, &id, None).await?;
                self.journal.verify_held().await?;
                match self
                    .provider
                    .set_key_status(user, &old_key, KeyStatus::Inactive)
                    .await
                {
                    Ok(()) => {}
                    // Deleted outside rekey: there is nothing left to disable.
                    Err(error) if error.kind == ErrorKind::NotFound => (self.progress)(&format!(
                        "{user}: the old key {} is already gone (deleted outside rekey)",
                        short_id(&old_key)
                    )),
                    Err(error) => return Err(error.into()),
                }
                Ok(StepEnd::Done(Some(Done::Disabled { key: old_key })))
            }
            Phase::Soak => self.soak(rotation, &id, pending).await,
            Phase::DeleteOld => {
                self.new_key_active(rotation).await?;
                self.intent(rotation, &id, None).await?;
                self.journal.verify_held().await?;
                self.provider.delete_access_key(user, &old_key).await?;
                Ok(StepEnd::Done(Some(Done::Deleted { key: old_key })))
            }
            Phase::Unstage => {
                self.intent(rotation, &id, None).await?;
                self.journal.verify_held().await?;
                self.stage(rotation)?.clear(self.provider).await?;
                Ok(StepEnd::Done(None))
            }
        }
    }

    /// The old key waits, disabled, for `policy.soak`; the deadline is
    /// recorded once, so a resumed soak keeps it.
    async fn soak(
        &self,
        rotation: &Rotation,
        id: &StepId,
        pending: Pending,
    ) -> Result<StepEnd, StepError> {
        let recorded = match pending {
            Some(Some(Intent::Soak { until })) => Some(until),
            _ => None,
        };
        let until = match recorded {
            Some(until) => parse_rfc3339(&until).ok_or(StepError::BadDeadline(until))?,
            None => {
                let soak = rotation.workflow.policy.soak.as_secs() as i64;
                if soak == 0 {
                    return Ok(StepEnd::Done(None));
                }
                // Whole seconds, rounded up: readable, and never early.
                let now = OffsetDateTime::now_utc();
                let until =
                    now.replace_nanosecond(0).unwrap_or(now) + time::Duration::seconds(soak + 1);
                self.intent(
                    rotation,
                    id,
                    Some(Intent::Soak {
                        until: rfc3339(until),
                    }),
                )
                .await?;
                until
            }
        };
        if OffsetDateTime::now_utc() >= until {
            Ok(StepEnd::Done(None))
        } else {
            Ok(StepEnd::Wait {
                until,
                reason: format!(
                    "the old key {} soaks, disabled, for {}",
                    short_id(&rotation.begin.old_key),
                    rotation.workflow.policy.soak
                ),
            })
        }
    }

    async fn create(
        &self,
        rotation: &Rotation,
        id: &StepId,
        pending: Pending,
    ) -> Result<StepEnd, StepError> {
        let user = rotation.user.as_str();
        let stage = self.stage(rotation)?;
        if let Some(intent) = pending {
            let made = match intent {
                Some(Intent::Create {
                    keys_before,
                    created,
                    since,
                }) => Made {
                    before: keys_before,
                    created,
                    since: since.as_deref().and_then(parse_rfc3339),
                },
                _ => Made::default(),
            };
            let staged = stage.read(self.provider).await?.map(|(key_id, _)| key_id);
            let extra = self.new_keys(user, &made.before).await?;
            if let Some(staged) = staged.filter(|s| extra.iter().any(|k| &k.id == s)) {
                (self.progress)(&format!(
                    "{user}: create was interrupted after staging {}: adopting it",
                    short_id(&staged)
                ));
                self.delete_orphans(user, &made, &extra, &staged, made.resumed_until())
                    .await?;
                return Ok(StepEnd::Done(Some(Done::Created {
                    new_key: staged,
                    staged: stage.describe(),
                })));
            }
            self.delete_orphans(user, &made, &extra, "", made.resumed_until())
                .await?;
            stage.clear(self.provider).await?;
        }
        let keys = self.provider.access_keys(user).await?;
        let mut made = Made {
            before: keys.iter().map(|k| k.id.clone()).collect(),
            created: Vec::new(),
            // IAM's clock when the keys were listed: before the create.
            since: Some(
                self.provider
                    .server_time()
                    .unwrap_or_else(OffsetDateTime::now_utc),
            ),
        };
        self.intent(rotation, id, Some(made.intent())).await?;
        let key = match self.provider.create_access_key(user).await {
            Ok(key) => key,
            Err(error) => {
                // A create whose answer was lost may have made a key (and
                // filled the second slot): clear such an orphan, then once more.
                let extra = self.new_keys(user, &made.before).await?;
                if extra.is_empty() {
                    return Err(error.into());
                }
                self.delete_orphans(user, &made, &extra, "", self.provider.server_time())
                    .await?;
                self.provider.create_access_key(user).await?
            }
        };
        // The proof that this key is this rotation's, before anything else.
        made.created.push(key.id.clone());
        if let Err(error) = self.intent(rotation, id, Some(made.intent())).await {
            if matches!(
                error,
                StepError::Journal(super::journal::JournalError::Fenced { .. })
            ) {
                // Another runner took the rotation over while this create was
                // under way: nothing records this key and its secret will
                // never be staged, so nothing can use it. Deleting it is the
                // one way not to leave an orphan behind.
                return match self.provider.delete_access_key(user, &key.id).await {
                    Ok(()) => Err(StepError::FencedCreate {
                        key: key.id.clone(),
                        cause: error.to_string(),
                        deleted: true,
                    }),
                    Err(_) => Err(StepError::FencedCreate {
                        key: key.id.clone(),
                        cause: error.to_string(),
                        deleted: false,
                    }),
                };
            }
            return Err(error);
        }
        self.crash_point("create:before-stage");
        // Each call from here on is one more than the intent covers: a
        // runner that was paused since, and lost its lease, must not make it.
        self.journal.verify_held().await?;
        stage.write(self.provider, &key).await?;
        let extra = self.new_keys(user, &made.before).await?;
        self.delete_orphans(user, &made, &extra, &key.id, self.provider.server_time())
            .await?;
        Ok(StepEnd::Done(Some(Done::Created {
            new_key: key.id.clone(),
            staged: stage.describe(),
        })))
    }

    /// Keys of `user` that are not in `before`.
    async fn new_keys(
        &self,
        user: &str,
        before: &[String],
    ) -> Result<Vec<crate::providers::AccessKey>, StepError> {
        let keys = self.provider.access_keys(user).await?;
        Ok(keys
            .into_iter()
            .filter(|k| !before.contains(&k.id))
            .collect())
    }

    /// Deletes the keys of `extra` but `keep` that this rotation made and
    /// whose secret never reached staging, so nothing can ever use them: a
    /// key a create call returned to it, or — after an answer that was lost
    /// (IAM's two-key limit leaves room for at most one such key) — the one
    /// unknown key whose CreateDate falls between the create's start and the
    /// listing that found it, by IAM's own clock (its `Date` header), while
    /// this rotation holds the user's claim. Any other key is someone
    /// else's: the step stops, naming it.
    async fn delete_orphans(
        &self,
        user: &str,
        made: &Made,
        extra: &[crate::providers::AccessKey],
        keep: &str,
        until: Option<OffsetDateTime>,
    ) -> Result<(), StepError> {
        let others: Vec<&crate::providers::AccessKey> = extra
            .iter()
            .filter(|k| k.id != keep && !made.created.contains(&k.id))
            .collect();
        let lost_answer = match (made.since, others.as_slice()) {
            // The first journal format kept no proof: as it always did.
            (None, _) => others.iter().map(|k| k.id.clone()).collect(),
            (_, []) => Vec::new(),
            (Some(since), [only]) if within(only.created, since, until) => {
                vec![only.id.clone()]
            }
            (Some(_), others) => {
                return Err(StepError::NotOurs(
                    others.iter().map(|k| k.id.clone()).collect(),
                ));
            }
        };
        let orphans = extra
            .iter()
            .map(|k| k.id.clone())
            .filter(|k| k != keep && (made.created.contains(k) || lost_answer.contains(k)));
        for orphan in orphans {
            // A runner that lost its lease meanwhile must not judge keys:
            // the one that took over may have made one in this window.
            self.journal.verify_held().await?;
            (self.progress)(&format!(
                "{user}: deleting orphan key {} (created, but its secret never reached staging)",
                short_id(&orphan)
            ));
            self.provider.delete_access_key(user, &orphan).await?;
        }
        Ok(())
    }

    /// The old key is disabled or deleted only while the new one is active:
    /// someone may have deactivated (or deleted) it since it was checked,
    /// and the user would be left with no working key.
    async fn new_key_active(&self, rotation: &Rotation) -> Result<(), StepError> {
        let new_key = rotation.new_key().ok_or(StepError::NotCreated)?;
        let keys = self.provider.access_keys(&rotation.user).await?;
        if keys
            .iter()
            .any(|k| k.id == new_key && k.status == KeyStatus::Active)
        {
            Ok(())
        } else {
            Err(StepError::NewKeyNotActive(new_key.to_string()))
        }
    }

    /// The new key and its secret, from staging.
    async fn new_key(&self, rotation: &Rotation) -> Result<(String, SecretString), StepError> {
        let expected = rotation.new_key().ok_or(StepError::NotCreated)?.to_string();
        let stage = self.stage(rotation)?;
        match stage.read(self.provider).await? {
            Some((id, secret)) if id == expected => Ok((id, secret)),
            Some((id, _)) => Err(StepError::StagingChanged {
                found: id,
                expected,
            }),
            None => Err(StepError::SecretLost {
                key: expected,
                stage: stage.describe(),
            }),
        }
    }

    async fn distribute(
        &self,
        rotation: &Rotation,
        id: &StepId,
        target: &Target,
        pending: Pending,
    ) -> Result<StepEnd, StepError> {
        let (new_key, secret) = self.new_key(rotation).await?;
        let values = self.values(rotation, Some(&new_key));
        let resolved = self.resolve_target(target, &values)?;
        let recorded = pending
            .flatten()
            .and_then(|intent| self.before(target, intent));
        let write = targets::Write {
            provider: self.target_provider(target)?,
            rotation: &rotation.id,
            target: &target.id,
            user: &rotation.user,
            new_key: &new_key,
            secret: &secret,
            base_dir: self.base_dir,
            backup: self.backup_path(rotation, &target.id),
        };
        let intent = |before: TargetBefore| -> futures_util::future::BoxFuture<'_, _> {
            Box::pin(async move {
                self.intent(rotation, id, Some(Intent::Distribute(before)))
                    .await
                    .map_err(|e| ActionError::Record(e.to_string()))
            })
        };
        self.journal.verify_held().await?;
        let written = resolved.write(&write, recorded.as_ref(), &intent).await?;
        Ok(StepEnd::Done(
            written.version.map(|version| Done::Written { version }),
        ))
    }

    fn resolve<'v>(&'v self, values: &'v Values<'v>, what: &'v str) -> Resolve<'v> {
        Resolve {
            values,
            base_dir: self.base_dir,
            what,
        }
    }

    /// The target for this rotation's user, its templates expanded.
    fn resolve_target(
        &self,
        target: &Target,
        values: &Values<'_>,
    ) -> Result<ResolvedTarget, ActionError> {
        let what = format!("target `{}`", target.id);
        target.kind.resolve(&self.resolve(values, &what))
    }

    /// What a target held, from its distribute intent (either format).
    fn before(&self, target: &Target, intent: Intent) -> Option<TargetBefore> {
        match intent {
            Intent::Distribute(before) => Some(before),
            Intent::DistributeV1(data) => target.kind.before_from_v1(&data),
            Intent::Create { .. } | Intent::Soak { .. } => None,
        }
    }

    fn backup_path(&self, rotation: &RotationRecord, target: &str) -> PathBuf {
        let safe: String = rotation
            .id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.state_dir
            .join("backups")
            .join(format!("{safe}.{target}"))
    }

    async fn hook(&self, rotation: &Rotation, hook: &Hook) -> Result<StepEnd, StepError> {
        let (new_key, secret) = self.new_key(rotation).await?;
        let values = self.values(rotation, Some(&new_key));
        let what = format!("hook `{}`", hook.id);
        let resolved = hook.kind.resolve(&self.resolve(&values, &what))?;
        // Only commands print what they read.
        let also_hide = if resolved.runs_commands() {
            self.old_secrets(rotation, &values).await
        } else {
            Vec::new()
        };
        let run = hooks::Run {
            provider: self.provider,
            hook: &hook.id,
            user: &rotation.user,
            arn: &rotation.begin.arn,
            old_key: &rotation.begin.old_key,
            new_key: &new_key,
            secret: &secret,
            also_hide: &also_hide,
            base_dir: self.base_dir,
            moved: moved(rotation),
        };
        Ok(match resolved.run(&run).await? {
            Verdict::Passed(outcome) => StepEnd::Done(Some(Done::Checked(outcome))),
            Verdict::Rejected(reason) => StepEnd::Rejected(reason),
        })
    }

    /// `text` (an error an SDK or a command produced) with the rotation's
    /// secrets, new and old, replaced by `(sensitive)` in any encoding.
    async fn redact(&self, rotation: &Rotation, mut text: String) -> String {
        let new_key = rotation.new_key().map(str::to_string);
        let values = self.values(rotation, new_key.as_deref());
        let mut secrets = self.old_secrets(rotation, &values).await;
        if new_key.is_some()
            && let Ok((_, secret)) = self.new_key(rotation).await
        {
            secrets.push(secret);
        }
        for secret in &secrets {
            for form in crate::secret::disguises(crate::secret::ExposeSecret::expose_secret(secret))
            {
                text = text.replace(&form, "(sensitive)");
            }
        }
        text
    }

    /// The secrets the rotation's targets held before it wrote them (file
    /// backups, SSM and Secrets Manager previous versions): a hook that
    /// prints a target must not show even the old one. From the intents of
    /// earlier runs and of this one.
    async fn old_secrets(&self, rotation: &Rotation, values: &Values<'_>) -> Vec<SecretString> {
        let mut intents: BTreeMap<StepId, Intent> = rotation
            .intents
            .iter()
            .filter_map(|(step, intent)| Some((step.clone(), intent.clone()?)))
            .collect();
        intents.extend(self.journal.intents_of(&rotation.id));
        let mut secrets = Vec::new();
        for target in &rotation.workflow.targets {
            let step = StepId {
                phase: Phase::Distribute,
                item: Some(target.id.clone()),
            };
            let Some(before) = intents
                .get(&step)
                .cloned()
                .and_then(|intent| self.before(target, intent))
            else {
                continue;
            };
            let Ok(resolved) = self.resolve_target(target, values) else {
                continue;
            };
            let backup = self.backup_path(rotation, &target.id);
            let Ok(provider) = self.target_provider(target) else {
                continue;
            };
            secrets.extend(resolved.old_secrets(provider, &before, &backup).await);
        }
        secrets
    }

    /// A refresh or verification failed: roll back or halt, as policy says.
    async fn on_verify_failure(&self, rotation: &Rotation, reason: String) -> Outcome {
        if rotation.workflow.policy.on_verify_failure == OnVerifyFailure::Halt {
            let _ = self
                .record(
                    rotation,
                    Record::Halted {
                        reason: reason.clone(),
                    },
                )
                .await;
            return Outcome::Halted { reason };
        }
        self.roll_back(rotation, reason).await
    }

    /// Undoes the rotation: a phase of its own, each step journaled, so
    /// that a rollback interrupted or failed half-way is finished by the
    /// next apply (and never completed as a rotation over it).
    pub async fn roll_back(&self, rotation: &Rotation, reason: String) -> Outcome {
        if rotation.rolling_back.is_none()
            && let Err(error) = self
                .record(
                    rotation,
                    Record::RollingBack {
                        reason: reason.clone(),
                    },
                )
                .await
        {
            return Outcome::Failed {
                step: "rollback".into(),
                error: error.to_string(),
            };
        }
        match self.undo(rotation).await {
            Ok(()) => {
                let _ = self.cleanup(rotation);
                if self
                    .record(
                        rotation,
                        Record::RolledBack {
                            reason: reason.clone(),
                        },
                    )
                    .await
                    .is_ok()
                {
                    self.claims
                        .release(self.account, &rotation.user, &rotation.id)
                        .await;
                }
                Outcome::RolledBack { reason }
            }
            Err(StepError::Interrupted(signal)) => Outcome::Interrupted {
                step: "rollback".into(),
                signal,
            },
            Err(StepError::OldKeyGone(key)) => {
                let message = format!(
                    "{reason}; and the rotation cannot roll back: the old key {} was deleted outside rekey, so every target keeps the new key, which works. Fix what failed, then run apply: it goes on with the new key",
                    short_id(&key)
                );
                let _ = self
                    .record(
                        rotation,
                        Record::RollbackAbandoned {
                            reason: message.clone(),
                        },
                    )
                    .await;
                Outcome::Halted { reason: message }
            }
            Err(error) => {
                let message = format!("{reason}; then rollback failed: {error}");
                let _ = self
                    .record(
                        rotation,
                        Record::Halted {
                            reason: message.clone(),
                        },
                    )
                    .await;
                Outcome::Halted { reason: message }
            }
        }
    }

    /// Puts everything back, skipping what an earlier try already did: the
    /// old key active, every target as it was, the new key deleted,
    /// staging cleared. What each target held comes from the journal on
    /// disk, which knows every intent, this run's included.
    async fn undo(&self, rotation: &Rotation) -> Result<(), StepError> {
        let recorded = super::journal::rotations(&self.journal.entries_of(&rotation.id))
            .into_iter()
            .find(|r| r.id == rotation.id)
            .ok_or(StepError::NotInJournal)?;
        let user = recorded.user.as_str();
        let old_key = recorded.begin.old_key.as_str();
        let new_key = recorded.new_key();
        let steps = undo_steps(&recorded, &rotation.workflow);
        // Putting targets back on an old key that no longer exists would
        // break them all: before anything is restored, it must be there.
        let restored = recorded
            .undone
            .iter()
            .any(|u| matches!(u, Undo::Restore(_)));
        if !restored
            && !self
                .provider
                .access_keys(user)
                .await?
                .iter()
                .any(|k| k.id == old_key)
        {
            return Err(StepError::OldKeyGone(old_key.to_string()));
        }
        let values = self.values(rotation, new_key);
        for undo in steps {
            if recorded.undone.contains(&undo) {
                continue;
            }
            if let Some(signal) = self.stop.requested() {
                return Err(StepError::Interrupted(signal));
            }
            self.record(rotation, Record::UndoIntent { undo: undo.clone() })
                .await?;
            self.crash_point(&format!("intent:rollback:{undo}"));
            self.journal.verify_held().await?;
            let said = match &undo {
                Undo::EnableOld => {
                    self.provider
                        .set_key_status(user, old_key, KeyStatus::Active)
                        .await?;
                    format!("{} is active again", short_id(old_key))
                }
                Undo::Restore(id) => {
                    let target = rotation
                        .workflow
                        .targets
                        .iter()
                        .find(|t| &t.id == id)
                        .ok_or_else(|| StepError::NoRecord(id.clone()))?;
                    let step = StepId {
                        phase: Phase::Distribute,
                        item: Some(id.clone()),
                    };
                    let before = recorded
                        .intent(&step)
                        .cloned()
                        .and_then(|intent| self.before(target, intent))
                        .ok_or_else(|| StepError::NoRecord(id.clone()))?;
                    let resolved = self.resolve_target(target, &values)?;
                    let restore = targets::Restore {
                        provider: self.target_provider(target)?,
                        target: id,
                        user,
                        old_key,
                        new_key,
                        base_dir: self.base_dir,
                    };
                    resolved.restore(&restore, &before).await?;
                    format!("target `{id}` restored")
                }
                Undo::DeleteNew => {
                    let new_key = new_key.unwrap_or_default();
                    self.provider.delete_access_key(user, new_key).await?;
                    format!("new key {} deleted", short_id(new_key))
                }
                Undo::Discard => {
                    self.stage(rotation)?.clear(self.provider).await?;
                    "staged secret deleted".to_string()
                }
            };
            self.record(rotation, Record::Undone { undo: undo.clone() })
                .await?;
            (self.progress)(&format!("{user}: rollback: {said}"));
            self.crash_point(&format!("rollback:{undo}"));
        }
        Ok(())
    }

    /// Removes a finished rotation's file backups.
    fn cleanup(&self, rotation: &Rotation) -> std::io::Result<()> {
        for target in &rotation.workflow.targets {
            let backup = self.backup_path(rotation, &target.id);
            if backup.exists() {
                std::fs::remove_file(backup)?;
            }
        }
        Ok(())
    }
}

/// What undoing a rotation takes, in order: the old key active again if
/// `disable-old` began, every target whose write began put back (last
/// first), the new key deleted if it exists, staging cleared.
pub fn undo_steps(record: &RotationRecord, workflow: &Workflow) -> Vec<Undo> {
    let mut steps: Vec<Undo> = Vec::new();
    if record.intents.contains_key(&StepId::of(Phase::DisableOld)) {
        steps.push(Undo::EnableOld);
    }
    for target in workflow.targets.iter().rev() {
        let step = StepId {
            phase: Phase::Distribute,
            item: Some(target.id.clone()),
        };
        if record.intents.contains_key(&step) {
            steps.push(Undo::Restore(target.id.clone()));
        }
    }
    if record.new_key().is_some() {
        steps.push(Undo::DeleteNew);
    }
    steps.push(Undo::Discard);
    steps
}

/// Whether a key created at `created` (IAM's clock) appeared between
/// `since` and `until`, IAM's clock as its answers before and after said
/// (one-second resolution). Without IAM's clock, this machine's is used
/// with a minute's tolerance.
fn within(created: OffsetDateTime, since: OffsetDateTime, until: Option<OffsetDateTime>) -> bool {
    let (until, slack) = match until {
        Some(until) => (until, time::Duration::seconds(1)),
        None => (OffsetDateTime::now_utc(), time::Duration::minutes(1)),
    };
    created >= since - slack && created <= until + slack
}

fn target<'r>(rotation: &'r Rotation, step: &Step) -> Result<&'r Target, StepError> {
    rotation
        .workflow
        .targets
        .iter()
        .find(|t| Some(&t.id) == step.item.as_ref())
        .ok_or_else(|| StepError::Unknown(step.id()))
}

fn hook<'r>(rotation: &'r Rotation, step: &Step) -> Result<&'r Hook, StepError> {
    rotation
        .workflow
        .hooks
        .iter()
        .find(|h| Some(&h.id) == step.item.as_ref())
        .ok_or_else(|| StepError::Unknown(step.id()))
}

/// When the new key reached its last target or refresh hook: what
/// `key_unused` watches the old key after.
fn moved(rotation: &RotationRecord) -> Option<OffsetDateTime> {
    rotation
        .done_at
        .iter()
        .filter(|(step, _)| {
            matches!(
                step.phase,
                Phase::Create | Phase::Distribute | Phase::Refresh
            )
        })
        .filter_map(|(_, at)| parse_rfc3339(at))
        .max()
}

/// What a finished step left, for its progress line.
fn summary(done: Option<&Done>) -> String {
    let text = match done {
        Some(Done::Created { new_key, .. }) => Some(format!("new key {}", short_id(new_key))),
        Some(Done::Written { version }) => Some(format!("version {version}")),
        Some(Done::Deleted { key }) => Some(format!("deleted {}", short_id(key))),
        Some(Done::Disabled { key }) => Some(format!("disabled {}", short_id(key))),
        Some(Done::Checked(outcome)) => outcome.summary(),
        None => None,
    };
    text.map(|t| format!(" ({t})")).unwrap_or_default()
}
