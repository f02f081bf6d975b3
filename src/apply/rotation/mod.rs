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
//!
//! `create`, `distribute`, the rollback and redaction are submodules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use time::OffsetDateTime;

use super::StepError;
use super::claims::{self, ClaimStore};
use super::journal::{Begin, Done, Entry, Intent, Journal, Record, RotationRecord, Undo};
use super::snapshot::Snapshot;
use super::staging::Stage;
use super::stop::Stop;
use crate::hooks::{self, Verdict};
use crate::providers::{ErrorKind, KeyStatus, Provider};
use crate::secret::SecretString;
use crate::targets::{self, ActionError, Resolve, ResolvedTarget, TargetBefore};
use crate::text::{parse_rfc3339, rfc3339, short_id};
use crate::workflow::document::OnVerifyFailure;
use crate::workflow::graph::{MakeRoomStep, Phase, Step, StepGraph, StepId};
use crate::workflow::model::{Hook, Staging, Target, Workflow};
use crate::workflow::template::Values;
use crate::workflow::window;

mod create;
mod distribute;
mod redact;
mod rollback;

pub use rollback::undo_steps;

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
pub enum RotationOutcome {
    Finished,
    Stopped {
        after: Phase,
    },
    Paused {
        until: String,
        reason: String,
        /// The phase it waits at.
        at: Phase,
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

impl RotationOutcome {
    /// Whether the old key is no longer active when the run ends this way.
    pub fn retired_old_key(&self) -> bool {
        match self {
            RotationOutcome::Finished => true,
            RotationOutcome::Stopped { after } => *after >= Phase::DisableOld,
            RotationOutcome::Paused { at, .. } => *at > Phase::DisableOld,
            _ => false,
        }
    }
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
    /// What `create`'s intent recorded (nothing, from a first-format
    /// journal's intent without it).
    fn from_intent(intent: Option<Intent>) -> Self {
        match intent {
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
        }
    }

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
        let now = rfc3339(crate::text::now());
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
            time: rfc3339(crate::text::now()),
            rotation: rotation.id.clone(),
            user: rotation.user.clone(),
            record,
            by: Some(super::journal::Runner::this()),
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
    pub async fn run(&self, mut rotation: Rotation) -> RotationOutcome {
        if let Some(reason) = rotation.rolling_back.clone() {
            return self.roll_back(&rotation, reason).await;
        }
        let steps = std::mem::take(&mut rotation.steps);
        for step in &steps {
            let id = step.id();
            if rotation.done.contains_key(&id) {
                continue;
            }
            if let Some(stopped) = self.gate(&rotation, step).await {
                return stopped;
            }
            let pending: Pending = rotation
                .record
                .pending
                .take()
                .filter(|(s, _)| *s == id)
                .map(|(_, intent)| intent);
            let started = tokio::time::Instant::now();
            let result = self.step(&rotation, step, pending).await;
            *self
                .timings
                .lock()
                .expect("timings")
                .entry(step.phase)
                .or_default() += started.elapsed();
            if let Some(ended) = self.settle(&mut rotation, &id, result).await {
                return ended;
            }
        }
        self.finish(&rotation).await
    }

    /// Whether `step` may start now: not when a signal asked to stop, when
    /// it lies past `--until`, or while the change window is closed (the
    /// rotation pauses until it opens).
    async fn gate(&self, rotation: &Rotation, step: &Step) -> Option<RotationOutcome> {
        let id = step.id();
        if let Some(signal) = self.stop.requested() {
            return Some(RotationOutcome::Interrupted {
                step: id.to_string(),
                signal,
            });
        }
        if let Some(until) = self.until.filter(|until| step.phase > *until) {
            return Some(RotationOutcome::Stopped { after: until });
        }
        let window = rotation.workflow.policy.window.as_ref()?;
        let now = crate::text::now();
        if window::is_open(window, now) {
            return None;
        }
        let until = rfc3339(window::next_open(window, now));
        let reason = "the change window is closed".to_string();
        Some(self.pause(rotation, &id, until, reason).await)
    }

    /// Records how step `id` ended. `None`: it is done and the rotation
    /// goes on; otherwise how the rotation ends this time (paused,
    /// interrupted, rolling back after a rejection, failed).
    async fn settle(
        &self,
        rotation: &mut Rotation,
        id: &StepId,
        result: Result<StepEnd, StepError>,
    ) -> Option<RotationOutcome> {
        let failed = |error: String| RotationOutcome::Failed {
            step: id.to_string(),
            error,
        };
        match result {
            Ok(StepEnd::Done(done)) => {
                let record = Record::Done {
                    step: id.clone(),
                    done: done.clone(),
                };
                if let Err(error) = self.record(rotation, record).await {
                    return Some(failed(error.to_string()));
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
                    .insert(id.clone(), rfc3339(crate::text::now()));
                self.crash_point(&id.to_string());
                None
            }
            Ok(StepEnd::Wait { until, reason }) => {
                Some(self.pause(rotation, id, rfc3339(until), reason).await)
            }
            Ok(StepEnd::Interrupted(signal)) => {
                let record = Record::Interrupted { step: id.clone() };
                if let Err(error) = self.record(rotation, record).await {
                    let what = format!("interrupted by signal {signal}");
                    return Some(failed(unrecorded(&what, &error)));
                }
                (self.progress)(&format!("{}: {id} interrupted", rotation.user));
                Some(RotationOutcome::Interrupted {
                    step: id.to_string(),
                    signal,
                })
            }
            Ok(StepEnd::Rejected(reason)) => {
                let record = Record::Failed {
                    step: id.clone(),
                    error: reason.clone(),
                };
                (self.progress)(&format!("{}: {id} FAILED: {reason}", rotation.user));
                // Without its record no rollback can be journaled either.
                if let Err(error) = self.record(rotation, record).await {
                    return Some(failed(unrecorded(&reason, &error)));
                }
                Some(self.on_verify_failure(rotation, reason).await)
            }
            Err(error) => {
                let error = self.redact(rotation, error.to_string()).await;
                let record = Record::Failed {
                    step: id.clone(),
                    error: error.clone(),
                };
                Some(failed(match self.record(rotation, record).await {
                    Ok(()) => error,
                    Err(unwritten) => unrecorded(&error, &unwritten),
                }))
            }
        }
    }

    /// Every step done: the backups go, the rotation is recorded finished
    /// and its user's claim released.
    async fn finish(&self, rotation: &Rotation) -> RotationOutcome {
        let _ = self.cleanup(rotation);
        match self.record(rotation, Record::Finished).await {
            Ok(()) => {
                self.claims
                    .release(self.account, &rotation.user, &rotation.id)
                    .await;
                RotationOutcome::Finished
            }
            Err(error) => RotationOutcome::Failed {
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
    ) -> RotationOutcome {
        let record = Record::Paused {
            step: step.clone(),
            until: until.clone(),
            reason: reason.clone(),
        };
        match self.record(rotation, record).await {
            Ok(()) => RotationOutcome::Paused {
                until,
                reason,
                at: step.phase,
            },
            Err(error) => RotationOutcome::Failed {
                step: step.to_string(),
                error: unrecorded(&format!("paused until {until} ({reason})"), &error),
            },
        }
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
                let now = crate::text::now();
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
        if crate::text::now() >= until {
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

/// How a rotation ended this time, when the journal could not record it:
/// a failure that says both, never a silent loss of the record.
fn unrecorded(what: &str, error: &StepError) -> String {
    format!("{what}; and the journal could not record it: {error}")
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
