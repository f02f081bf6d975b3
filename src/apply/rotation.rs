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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use time::OffsetDateTime;

use super::journal::{Entry, Event, Journal, RotationRecord};
use super::staging::Stage;
use super::window;
use crate::graph::{MakeRoomStep, Phase, Step, StepGraph};
use crate::plan::decide::short_id;
use crate::plan::rfc3339;
use crate::providers::exec::{self, EnvValue};
use crate::providers::{
    Iam, IamWriter, KeyStatus, ParameterSpec, ParameterStore, RunCommand, SecretStore,
    TargetReader, files,
};
use crate::secret::{ExposeSecret, SecretString, format_value};
use crate::workflow::Duration;
use crate::workflow::document::{OnVerifyFailure, SecretFormat};
use crate::workflow::model::{HookKind, Staging, Target, TargetKind, Workflow};
use crate::workflow::template::{Template, Values};

type Data = BTreeMap<String, String>;

/// What the provider must do for apply.
pub trait Provider:
    Iam + IamWriter + TargetReader + ParameterStore + SecretStore + RunCommand
{
}
impl<T: Iam + IamWriter + TargetReader + ParameterStore + SecretStore + RunCommand> Provider for T {}

/// Everything the rotations of one apply share.
pub struct Runner<'a, P> {
    pub workflow: &'a Workflow,
    pub params: &'a BTreeMap<String, String>,
    pub account: &'a str,
    pub base_dir: &'a Path,
    pub state_dir: &'a Path,
    pub provider: &'a P,
    pub journal: &'a Mutex<Journal>,
    /// Stop after this phase (`--until`).
    pub until: Option<Phase>,
    /// Test seam: `REKEY_CRASH_AT=<step>` or `create:before-stage` makes
    /// the process kill itself (SIGKILL) right after that point.
    pub crash_at: Option<String>,
    pub progress: &'a (dyn Fn(&str) + Sync),
    /// Time spent per phase, over all users.
    pub timings: &'a Mutex<BTreeMap<Phase, StdDuration>>,
}

/// How one rotation ended this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    Stopped { after: Phase },
    Paused { until: String, reason: String },
    RolledBack { reason: String },
    Halted { reason: String },
    Failed { step: String, error: String },
}

enum StepEnd {
    Done(Data),
    Wait {
        until: OffsetDateTime,
        reason: String,
    },
    /// A refresh or verification hook said no.
    Rejected(String),
}

impl<P: Provider> Runner<'_, P> {
    /// Starts a rotation: records its beginning and returns its record.
    pub fn begin(
        &self,
        user: &str,
        arn: &str,
        old_key: &str,
        make_room: Option<&str>,
    ) -> Result<RotationRecord, String> {
        let now = rfc3339(OffsetDateTime::now_utc());
        let mut data = Data::from([
            ("arn".to_string(), arn.to_string()),
            ("old_key".to_string(), old_key.to_string()),
        ]);
        if let Some(inactive) = make_room {
            data.insert("make_room".into(), inactive.into());
        }
        let record = RotationRecord {
            id: format!("{user}@{now}"),
            user: user.to_string(),
            started: now.clone(),
            begin: data.clone(),
            ..RotationRecord::default()
        };
        self.record(&record, Event::Begin, None, data)?;
        Ok(record)
    }

    fn record(
        &self,
        rotation: &RotationRecord,
        event: Event,
        step: Option<&str>,
        data: Data,
    ) -> Result<(), String> {
        let entry = Entry {
            time: rfc3339(OffsetDateTime::now_utc()),
            rotation: rotation.id.clone(),
            user: rotation.user.clone(),
            event,
            step: step.map(str::to_string),
            data,
        };
        self.journal
            .lock()
            .expect("journal lock")
            .append(&entry)
            .map_err(|e| e.to_string())
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

    fn expand(&self, template: &Template, values: &Values) -> Result<String, String> {
        template.expand(values)
    }

    pub fn stage(&self, rotation: &RotationRecord) -> Result<Stage, String> {
        Ok(match &self.workflow.staging {
            Staging::StateFile => Stage::file(self.state_dir, &rotation.user),
            Staging::SsmParameter { name, kms_key_id } => {
                let values = self.values(rotation, None);
                let kms = kms_key_id
                    .as_ref()
                    .map(|k| self.expand(k, &values))
                    .transpose()?;
                Stage::ssm(self.expand(name, &values)?, kms)
            }
        })
    }

    /// Runs (or resumes) one rotation as far as it can go now.
    pub async fn run(&self, mut rotation: RotationRecord) -> Outcome {
        let make_room = rotation.begin.get("make_room").cloned();
        let room = if make_room.is_some() {
            MakeRoomStep::Yes
        } else {
            MakeRoomStep::No
        };
        let graph = match StepGraph::compile(self.workflow, &rotation.user, room) {
            Ok(graph) => graph,
            Err(error) => {
                return Outcome::Failed {
                    step: "compile".into(),
                    error: error.to_string(),
                };
            }
        };
        let steps: Vec<Step> = graph.steps().into_iter().cloned().collect();
        for step in steps {
            let id = step.to_string();
            if rotation.done.contains_key(&id) {
                continue;
            }
            if let Some(until) = self.until.filter(|until| step.phase > *until) {
                return Outcome::Stopped { after: until };
            }
            if let Some(window) = &self.workflow.policy.window {
                let now = OffsetDateTime::now_utc();
                if !window::is_open(window, now) {
                    let until = rfc3339(window::next_open(window, now));
                    let reason = "the change window is closed".to_string();
                    return self.pause(&rotation, &id, until, reason);
                }
            }
            let pending = rotation
                .pending
                .take()
                .filter(|(s, _)| *s == id)
                .map(|(_, data)| data);
            let started = Instant::now();
            let result = self.step(&rotation, &step, pending).await;
            *self
                .timings
                .lock()
                .expect("timings")
                .entry(step.phase)
                .or_default() += started.elapsed();
            match result {
                Ok(StepEnd::Done(data)) => {
                    if let Err(error) = self.record(&rotation, Event::Done, Some(&id), data.clone())
                    {
                        return Outcome::Failed { step: id, error };
                    }
                    (self.progress)(&format!(
                        "{}: {id} done{}",
                        rotation.user,
                        describe_outputs(&data)
                    ));
                    rotation.done.insert(id.clone(), data);
                    rotation
                        .done_at
                        .insert(id.clone(), rfc3339(OffsetDateTime::now_utc()));
                    self.crash_point(&id);
                }
                Ok(StepEnd::Wait { until, reason }) => {
                    let until = rfc3339(until);
                    return self.pause(&rotation, &id, until, reason);
                }
                Ok(StepEnd::Rejected(reason)) => {
                    let _ = self.record(
                        &rotation,
                        Event::Failed,
                        Some(&id),
                        Data::from([("error".into(), reason.clone())]),
                    );
                    (self.progress)(&format!("{}: {id} FAILED: {reason}", rotation.user));
                    return self.on_verify_failure(&rotation, reason).await;
                }
                Err(error) => {
                    let _ = self.record(
                        &rotation,
                        Event::Failed,
                        Some(&id),
                        Data::from([("error".into(), error.clone())]),
                    );
                    return Outcome::Failed { step: id, error };
                }
            }
        }
        let _ = self.cleanup(&rotation);
        match self.record(&rotation, Event::Finished, None, Data::new()) {
            Ok(()) => Outcome::Finished,
            Err(error) => Outcome::Failed {
                step: "finish".into(),
                error,
            },
        }
    }

    /// Records that the rotation waits at `step` until `until`, and says so.
    fn pause(
        &self,
        rotation: &RotationRecord,
        step: &str,
        until: String,
        reason: String,
    ) -> Outcome {
        let data = Data::from([
            ("until".into(), until.clone()),
            ("reason".into(), reason.clone()),
        ]);
        let _ = self.record(rotation, Event::Paused, Some(step), data);
        Outcome::Paused { until, reason }
    }

    async fn intent(
        &self,
        rotation: &RotationRecord,
        step: &str,
        data: Data,
    ) -> Result<(), String> {
        self.record(rotation, Event::Intent, Some(step), data)
    }

    async fn step(
        &self,
        rotation: &RotationRecord,
        step: &Step,
        pending: Option<Data>,
    ) -> Result<StepEnd, String> {
        let id = step.to_string();
        let user = rotation.user.as_str();
        let old_key = rotation.begin.get("old_key").cloned().unwrap_or_default();
        match step.phase {
            Phase::MakeRoom => {
                let inactive = rotation.begin.get("make_room").cloned().unwrap_or_default();
                self.intent(rotation, &id, Data::new()).await?;
                self.provider
                    .delete_access_key(user, &inactive)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(StepEnd::Done(Data::from([("deleted".into(), inactive)])))
            }
            Phase::Create => self.create(rotation, &id, pending).await,
            Phase::Distribute => {
                let target = self
                    .workflow
                    .targets
                    .iter()
                    .find(|t| Some(&t.id) == step.item.as_ref())
                    .ok_or("unknown target")?;
                self.distribute(rotation, &id, target, pending).await
            }
            Phase::Refresh | Phase::Verify | Phase::VerifyAfterDisable => {
                let hook = self
                    .workflow
                    .hooks
                    .iter()
                    .find(|h| Some(&h.id) == step.item.as_ref())
                    .ok_or("unknown hook")?;
                self.intent(rotation, &id, Data::new()).await?;
                self.hook(rotation, &hook.id, &hook.kind).await
            }
            Phase::DisableOld => {
                self.intent(rotation, &id, Data::new()).await?;
                self.provider
                    .set_key_status(user, &old_key, KeyStatus::Inactive)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(StepEnd::Done(Data::from([("disabled".into(), old_key)])))
            }
            Phase::Soak => {
                let until = match pending.as_ref().and_then(|p| p.get("until")) {
                    Some(until) => {
                        OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
                            .map_err(|e| e.to_string())?
                    }
                    None => {
                        let soak = self.workflow.policy.soak.as_secs() as i64;
                        if soak == 0 {
                            return Ok(StepEnd::Done(Data::new()));
                        }
                        // Whole seconds, rounded up: readable, and never early.
                        let now = OffsetDateTime::now_utc();
                        let until = now.replace_nanosecond(0).unwrap_or(now)
                            + time::Duration::seconds(soak + 1);
                        self.intent(
                            rotation,
                            &id,
                            Data::from([("until".into(), rfc3339(until))]),
                        )
                        .await?;
                        until
                    }
                };
                if OffsetDateTime::now_utc() >= until {
                    Ok(StepEnd::Done(Data::new()))
                } else {
                    Ok(StepEnd::Wait {
                        until,
                        reason: format!(
                            "the old key {} soaks, disabled, for {}",
                            short_id(&old_key),
                            self.workflow.policy.soak
                        ),
                    })
                }
            }
            Phase::DeleteOld => {
                self.intent(rotation, &id, Data::new()).await?;
                self.provider
                    .delete_access_key(user, &old_key)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(StepEnd::Done(Data::from([("deleted".into(), old_key)])))
            }
            Phase::Unstage => {
                self.intent(rotation, &id, Data::new()).await?;
                self.stage(rotation)?.clear(self.provider).await?;
                Ok(StepEnd::Done(Data::new()))
            }
        }
    }

    async fn create(
        &self,
        rotation: &RotationRecord,
        id: &str,
        pending: Option<Data>,
    ) -> Result<StepEnd, String> {
        let user = rotation.user.as_str();
        let stage = self.stage(rotation)?;
        if let Some(intent) = pending {
            let before = key_list(intent.get("keys_before"));
            let staged = stage.read(self.provider).await?.map(|(key_id, _)| key_id);
            let extra = self.new_keys(user, &before).await?;
            if let Some(staged) = staged.filter(|s| extra.contains(s)) {
                (self.progress)(&format!(
                    "{user}: create was interrupted after staging {}: adopting it",
                    short_id(&staged)
                ));
                self.delete_orphans(user, &extra, &staged).await?;
                return Ok(StepEnd::Done(Data::from([("new_key".into(), staged)])));
            }
            self.delete_orphans(user, &extra, "").await?;
            stage.clear(self.provider).await?;
        }
        let keys = self
            .provider
            .access_keys(user)
            .await
            .map_err(|e| e.to_string())?;
        let before: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        self.intent(
            rotation,
            id,
            Data::from([("keys_before".into(), before.join(","))]),
        )
        .await?;
        let key = match self.provider.create_access_key(user).await {
            Ok(key) => key,
            Err(error) => {
                // A create whose answer was lost may have made a key (and
                // filled the second slot): clear such orphans, then once more.
                let extra = self.new_keys(user, &before).await?;
                if extra.is_empty() {
                    return Err(error.to_string());
                }
                self.delete_orphans(user, &extra, "").await?;
                self.provider
                    .create_access_key(user)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        self.crash_point("create:before-stage");
        stage.write(self.provider, &key).await?;
        let extra = self.new_keys(user, &before).await?;
        self.delete_orphans(user, &extra, &key.id).await?;
        Ok(StepEnd::Done(Data::from([
            ("new_key".into(), key.id.clone()),
            ("staged".into(), stage.describe()),
        ])))
    }

    /// Keys of `user` that are not in `before`.
    async fn new_keys(&self, user: &str, before: &[String]) -> Result<Vec<String>, String> {
        let keys = self
            .provider
            .access_keys(user)
            .await
            .map_err(|e| e.to_string())?;
        Ok(keys
            .into_iter()
            .map(|k| k.id)
            .filter(|k| !before.contains(k))
            .collect())
    }

    /// Deletes every key of `extra` but `keep`: keys a create made whose
    /// secret never reached staging, so nothing can ever use them.
    async fn delete_orphans(&self, user: &str, extra: &[String], keep: &str) -> Result<(), String> {
        for orphan in extra.iter().filter(|k| *k != keep) {
            (self.progress)(&format!(
                "{user}: deleting orphan key {} (created, but its secret never reached staging)",
                short_id(orphan)
            ));
            self.provider
                .delete_access_key(user, orphan)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The new key and its secret, from staging.
    async fn new_key(&self, rotation: &RotationRecord) -> Result<(String, SecretString), String> {
        let expected = rotation
            .done
            .get(Phase::Create.name())
            .and_then(|d| d.get("new_key"))
            .cloned()
            .ok_or("the new key is not created yet")?;
        match self.stage(rotation)?.read(self.provider).await? {
            Some((id, secret)) if id == expected => Ok((id, secret)),
            Some((id, _)) => Err(format!(
                "staging holds {}, not the new key {}: someone changed it; inspect it before going on",
                short_id(&id),
                short_id(&expected)
            )),
            None => Err(format!(
                "the new key {} is no longer staged ({}): its secret is lost; delete the key and run apply again",
                short_id(&expected),
                self.stage(rotation)?.describe()
            )),
        }
    }

    async fn distribute(
        &self,
        rotation: &RotationRecord,
        id: &str,
        target: &Target,
        pending: Option<Data>,
    ) -> Result<StepEnd, String> {
        let (new_key, secret_value) = self.new_key(rotation).await?;
        let values = self.values(rotation, Some(&new_key));
        match &target.kind {
            TargetKind::SsmParameter(ssm) => {
                let spec = ParameterSpec {
                    name: self.expand(&ssm.name, &values)?,
                    secure: ssm.format != SecretFormat::IdOnly,
                    kms_key_id: ssm
                        .kms_key_id
                        .as_ref()
                        .map(|k| self.expand(k, &values))
                        .transpose()?,
                    tags: ssm
                        .tags
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), self.expand(v, &values)?)))
                        .collect::<Result<_, String>>()?,
                };
                let state = self
                    .provider
                    .ssm_parameter(&spec.name, ssm.format)
                    .await
                    .map_err(|e| e.to_string())?;
                if state.key_id.as_deref() == Some(new_key.as_str()) {
                    return Ok(StepEnd::Done(Data::from([(
                        "version".into(),
                        state.version.unwrap_or_default(),
                    )])));
                }
                if pending.is_none() {
                    let mut before =
                        Data::from([("previous_exists".into(), state.exists.to_string())]);
                    before.extend(state.version.map(|v| ("previous_version".to_string(), v)));
                    self.intent(rotation, id, before).await?;
                }
                let version = self
                    .provider
                    .put_parameter(
                        &spec,
                        &format_value(ssm.format, &new_key, &secret_value, None),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(StepEnd::Done(Data::from([("version".into(), version)])))
            }
            TargetKind::CredentialsFile(_) | TargetKind::EnvFile(_) | TargetKind::Template(_) => {
                let local = crate::plan::local_file(
                    &target.kind,
                    &values,
                    self.base_dir,
                    &format!("target `{}`", target.id),
                )
                .map_err(|e| e.to_string())?
                .expect("a file kind");
                let path = &local.path;
                let (text, mode) = match std::fs::read_to_string(path) {
                    Ok(text) => (Some(text), files::mode_of(path).unwrap_or(0o600)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0o600),
                    Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
                };
                if text
                    .as_deref()
                    .and_then(|t| local.file.held_key(t))
                    .as_deref()
                    == Some(new_key.as_str())
                {
                    return Ok(StepEnd::Done(Data::new()));
                }
                if let Some(text) = &text {
                    local
                        .file
                        .check(text)
                        .map_err(|e| format!("target `{}`: {}: {e}", target.id, path.display()))?;
                }
                if pending.is_none() {
                    let backup = self.backup_path(rotation, &target.id);
                    if let Some(text) = &text {
                        files::write_atomically(&backup, text.as_bytes(), 0o600)
                            .map_err(|e| format!("cannot back up {}: {e}", path.display()))?;
                    }
                    let before = Data::from([
                        ("previous_exists".into(), text.is_some().to_string()),
                        ("backup".into(), backup.display().to_string()),
                    ]);
                    self.intent(rotation, id, before).await?;
                }
                let new_text =
                    local
                        .file
                        .render(text.as_deref().unwrap_or_default(), &new_key, &secret_value);
                files::write_atomically(
                    path,
                    new_text.expose_secret().as_bytes(),
                    local.mode.unwrap_or(mode),
                )
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(StepEnd::Done(Data::new()))
            }
            TargetKind::Exec(exec) => {
                self.intent(rotation, id, Data::new()).await?;
                let env = credentials_env(&rotation.user, &new_key, &secret_value);
                let what = format!("target `{}`", target.id);
                self.run_command(&what, &exec.command, &values, &env, exec.timeout)
                    .await?;
                Ok(StepEnd::Done(Data::new()))
            }
            TargetKind::SecretsManager(secret) => {
                let secret_id = self.expand(&secret.secret_id, &values)?;
                let current = self
                    .provider
                    .current_secret(&secret_id)
                    .await
                    .map_err(|e| e.to_string())?;
                let current_key = current
                    .as_ref()
                    .and_then(|(_, value)| crate::secret::key_id_in(value, secret.format));
                if current_key.as_deref() == Some(new_key.as_str()) {
                    let version = current.map(|(version, _)| version).unwrap_or_default();
                    return Ok(StepEnd::Done(Data::from([("version".into(), version)])));
                }
                if pending.is_none() {
                    let mut before =
                        Data::from([("previous_exists".into(), current.is_some().to_string())]);
                    before.extend(
                        current
                            .as_ref()
                            .map(|(version, _)| ("previous_version".to_string(), version.clone())),
                    );
                    self.intent(rotation, id, before).await?;
                }
                let value = format_value(secret.format, &new_key, &secret_value, None);
                // The same token on a resumed write names the same version.
                let token = request_token(&rotation.id, &target.id);
                let version = match &current {
                    None => {
                        let kms = secret
                            .kms_key_id
                            .as_ref()
                            .map(|k| self.expand(k, &values))
                            .transpose()?;
                        self.provider
                            .create_secret(&secret_id, &value, kms.as_deref(), &token)
                            .await
                            .map_err(|e| e.to_string())?
                    }
                    Some((current_version, _)) => {
                        let version = self
                            .provider
                            .put_pending(&secret_id, &value, &token)
                            .await
                            .map_err(|e| e.to_string())?;
                        self.provider
                            .make_current(&secret_id, &version, Some(current_version))
                            .await
                            .map_err(|e| e.to_string())?;
                        self.provider
                            .clear_pending(&secret_id, &version)
                            .await
                            .map_err(|e| e.to_string())?;
                        version
                    }
                };
                Ok(StepEnd::Done(Data::from([("version".into(), version)])))
            }
        }
    }

    /// Runs a target's command (or its rollback) in the workflow's
    /// directory; anything but exit 0 is an error naming `what`.
    async fn run_command(
        &self,
        what: &str,
        command: &[Template],
        values: &Values<'_>,
        env: &[(&str, EnvValue<'_>)],
        timeout: Option<Duration>,
    ) -> Result<(), String> {
        let argv: Vec<String> = command
            .iter()
            .map(|t| self.expand(t, values))
            .collect::<Result<_, _>>()?;
        let finished = exec::run(
            &argv,
            self.base_dir,
            env,
            timeout.unwrap_or(Duration::from_secs(60)),
        )
        .await
        .map_err(|e| format!("{what}: {e}"))?;
        match finished.code {
            Some(0) => Ok(()),
            code => Err(format!(
                "{what}: `{}` exited {}: {}",
                argv.join(" "),
                exit_text(code),
                finished.output
            )),
        }
    }

    fn backup_path(&self, rotation: &RotationRecord, target: &str) -> std::path::PathBuf {
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

    async fn hook(
        &self,
        rotation: &RotationRecord,
        id: &str,
        kind: &HookKind,
    ) -> Result<StepEnd, String> {
        let (new_key, secret) = self.new_key(rotation).await?;
        let values = self.values(rotation, Some(&new_key));
        match kind {
            HookKind::Exec(hook) => {
                let argv: Vec<String> = hook
                    .command
                    .iter()
                    .map(|t| self.expand(t, &values))
                    .collect::<Result<_, _>>()?;
                let mut env = vec![
                    ("REKEY_USER", EnvValue::Plain(rotation.user.clone())),
                    ("REKEY_NEW_ACCESS_KEY_ID", EnvValue::Plain(new_key.clone())),
                ];
                if hook.with_credentials {
                    env = credentials_env(&rotation.user, &new_key, &secret);
                }
                let expected = hook.expect_exit.unwrap_or(0);
                match exec::run(
                    &argv,
                    self.base_dir,
                    &env,
                    hook.timeout.unwrap_or(Duration::from_secs(60)),
                )
                .await
                {
                    Ok(finished) if finished.code == Some(expected) => {
                        Ok(StepEnd::Done(Data::new()))
                    }
                    Ok(finished) => Ok(StepEnd::Rejected(format!(
                        "hook `{id}`: `{}` exited {} (expected {expected}): {}",
                        argv.join(" "),
                        exit_text(finished.code),
                        finished.output
                    ))),
                    Err(error) => Ok(StepEnd::Rejected(format!("hook `{id}`: {error}"))),
                }
            }
            HookKind::StsIdentity(sts) => {
                let arn = rotation.begin.get("arn").cloned().unwrap_or_default();
                let timeout = sts.timeout.unwrap_or(Duration::from_secs(60)).to_std();
                let started = Instant::now();
                let mut wait = StdDuration::from_millis(250);
                loop {
                    let answer = self.provider.identity_of(&new_key, &secret).await;
                    let last = match answer {
                        Ok(seen) if seen == arn => {
                            return Ok(StepEnd::Done(Data::from([(
                                "authenticated_after_ms".into(),
                                started.elapsed().as_millis().to_string(),
                            )])));
                        }
                        Ok(seen) => format!("it answered as {seen}"),
                        Err(error) => error.to_string(),
                    };
                    if started.elapsed() + wait > timeout {
                        return Ok(StepEnd::Rejected(format!(
                            "hook `{id}`: the new key {} did not authenticate as {arn} within {}; last: {last}",
                            short_id(&new_key),
                            Duration::from_secs(timeout.as_secs())
                        )));
                    }
                    tokio::time::sleep(wait).await;
                    // Capped at a second: the check ends within a second of the key working.
                    wait = (wait * 3 / 2).min(StdDuration::from_secs(1));
                }
            }
            HookKind::Http(http) => {
                let check = crate::providers::http::Check {
                    method: http
                        .method
                        .unwrap_or(crate::workflow::document::HttpMethod::Get),
                    url: self.expand(&http.url, &values)?,
                    headers: http
                        .headers
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), self.expand(v, &values)?)))
                        .collect::<Result<_, String>>()?,
                    expect_status: http.expect_status.unwrap_or(200),
                    body_contains: http.body_contains.clone(),
                    timeout: http.timeout.unwrap_or(Duration::from_secs(30)).to_std(),
                    retries: http.retries.unwrap_or(2),
                };
                match crate::providers::http::check(&check).await {
                    Ok(()) => Ok(StepEnd::Done(Data::new())),
                    Err(error) => Ok(StepEnd::Rejected(format!("hook `{id}`: {error}"))),
                }
            }
            HookKind::KeyUnused(unused) => self.key_unused(rotation, id, unused.quiet_for).await,
            HookKind::SsmCommand(ssm) => self.ssm_command(id, ssm, &values).await,
        }
    }

    /// Runs shell commands on instances through SSM and waits for every
    /// invocation to end.
    async fn ssm_command(
        &self,
        id: &str,
        ssm: &crate::workflow::document::SsmCommandHook,
        values: &Values<'_>,
    ) -> Result<StepEnd, String> {
        let commands: Vec<String> = ssm
            .commands
            .iter()
            .map(|t| self.expand(t, values))
            .collect::<Result<_, _>>()?;
        let instance_ids: Vec<String> = ssm
            .instance_ids
            .iter()
            .map(|t| self.expand(t, values))
            .collect::<Result<_, _>>()?;
        let tags: BTreeMap<String, String> = ssm
            .instance_tags
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.expand(v, values)?)))
            .collect::<Result<_, String>>()?;
        let timeout = ssm.timeout.unwrap_or(Duration::from_secs(300));
        let sent = self
            .provider
            .send_shell_command(
                &commands,
                &instance_ids,
                &tags,
                timeout.as_secs().clamp(30, 172_800) as i32,
            )
            .await;
        let (command_id, mut instances) = match sent {
            Ok(sent) => sent,
            Err(error) => return Ok(StepEnd::Rejected(format!("hook `{id}`: {error}"))),
        };
        if instances.is_empty() {
            instances = self
                .provider
                .command_instances(&command_id)
                .await
                .map_err(|e| e.to_string())?;
        }
        if instances.is_empty() {
            return Ok(StepEnd::Rejected(format!(
                "hook `{id}`: the command reached no instance"
            )));
        }
        let started = Instant::now();
        let mut wait = StdDuration::from_millis(500);
        loop {
            let mut invocations = Vec::new();
            for instance in &instances {
                let invocation = self
                    .provider
                    .invocation(&command_id, instance)
                    .await
                    .map_err(|e| e.to_string())?;
                invocations.push(invocation.unwrap_or(crate::providers::Invocation {
                    instance: instance.clone(),
                    status: "Pending".into(),
                    response_code: None,
                    output: String::new(),
                }));
            }
            if let Some(verdict) = judge_invocations(id, &invocations) {
                return Ok(match verdict {
                    Ok(()) => StepEnd::Done(Data::from([
                        ("command_id".into(), command_id),
                        ("instances".into(), instances.len().to_string()),
                    ])),
                    Err(reason) => StepEnd::Rejected(reason),
                });
            }
            if started.elapsed() >= timeout.to_std() {
                let waiting: Vec<String> = invocations
                    .iter()
                    .filter(|i| !i.finished())
                    .map(|i| format!("{} ({})", i.instance, i.status))
                    .collect();
                return Ok(StepEnd::Rejected(format!(
                    "hook `{id}`: still running after {timeout}: {}",
                    waiting.join(", ")
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 3 / 2).min(StdDuration::from_secs(5));
        }
    }

    /// Watches the old key for `quiet_for`: any use IAM records after the
    /// refresh phase ended means an application still has it.
    async fn key_unused(
        &self,
        rotation: &RotationRecord,
        id: &str,
        quiet_for: Duration,
    ) -> Result<StepEnd, String> {
        let old_key = rotation.begin.get("old_key").cloned().unwrap_or_default();
        let moved = rotation
            .done_at
            .iter()
            .filter(|(step, _)| {
                step.starts_with("create")
                    || step.starts_with("distribute:")
                    || step.starts_with("refresh:")
            })
            .filter_map(|(_, at)| {
                OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
            })
            .max()
            .ok_or("the new key was not distributed yet")?;
        let watch = quiet_for.to_std();
        let interval = (watch / 10).clamp(StdDuration::from_secs(1), StdDuration::from_secs(30));
        let started = Instant::now();
        let mut checks = 0;
        loop {
            checks += 1;
            let used = self
                .provider
                .key_last_used(&old_key)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(date) = used.date.filter(|date| *date > moved) {
                let service = used.service.unwrap_or_else(|| "an unknown service".into());
                let region = used.region.map(|r| format!(" in {r}")).unwrap_or_default();
                return Ok(StepEnd::Rejected(format!(
                    "hook `{id}`: the old key {} was used by {service}{region} at {}, after refresh ended at {}: something still uses it",
                    short_id(&old_key),
                    rfc3339(date),
                    rfc3339(moved)
                )));
            }
            if started.elapsed() >= watch {
                return Ok(StepEnd::Done(Data::from([(
                    "checks".into(),
                    checks.to_string(),
                )])));
            }
            tokio::time::sleep(
                interval
                    .min(watch.saturating_sub(started.elapsed()))
                    .max(StdDuration::from_millis(100)),
            )
            .await;
        }
    }

    /// A refresh or verification failed: roll back or halt, as policy says.
    async fn on_verify_failure(&self, rotation: &RotationRecord, reason: String) -> Outcome {
        if self.workflow.policy.on_verify_failure == OnVerifyFailure::Halt {
            let _ = self.record(
                rotation,
                Event::Halted,
                None,
                Data::from([("reason".into(), reason.clone())]),
            );
            return Outcome::Halted { reason };
        }
        // The journal on disk knows every intent, this run's included.
        let recorded = super::journal::read(self.state_dir)
            .map_err(|e| e.to_string())
            .and_then(|entries| {
                super::journal::rotations(&entries)
                    .into_iter()
                    .find(|r| r.id == rotation.id)
                    .ok_or_else(|| "the rotation is not in the journal".to_string())
            });
        let result = match recorded {
            Ok(recorded) => self.rollback(&recorded).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => {
                let _ = self.cleanup(rotation);
                let _ = self.record(
                    rotation,
                    Event::RolledBack,
                    None,
                    Data::from([("reason".into(), reason.clone())]),
                );
                Outcome::RolledBack { reason }
            }
            Err(error) => {
                let message = format!("{reason}; then rollback failed: {error}");
                let _ = self.record(
                    rotation,
                    Event::Halted,
                    None,
                    Data::from([("reason".into(), message.clone())]),
                );
                Outcome::Halted { reason: message }
            }
        }
    }

    /// Puts everything back: the old key active, every target as it was,
    /// the new key deleted, staging cleared.
    async fn rollback(&self, rotation: &RotationRecord) -> Result<(), String> {
        let user = rotation.user.as_str();
        let old_key = rotation.begin.get("old_key").cloned().unwrap_or_default();
        let new_key = rotation
            .done
            .get(Phase::Create.name())
            .and_then(|d| d.get("new_key"))
            .cloned();
        if rotation.intents.contains_key(Phase::DisableOld.name()) {
            self.provider
                .set_key_status(user, &old_key, KeyStatus::Active)
                .await
                .map_err(|e| e.to_string())?;
            (self.progress)(&format!(
                "{user}: rollback: {} is active again",
                short_id(&old_key)
            ));
        }
        let values = self.values(rotation, new_key.as_deref());
        for target in self.workflow.targets.iter().rev() {
            let step = format!("{}:{}", Phase::Distribute.name(), target.id);
            let Some(before) = rotation.intents.get(&step) else {
                continue;
            };
            let existed = before.get("previous_exists").is_some_and(|e| e == "true");
            match &target.kind {
                TargetKind::SsmParameter(ssm) => {
                    let name = self.expand(&ssm.name, &values)?;
                    if existed {
                        let version = before.get("previous_version").cloned().unwrap_or_default();
                        let value = self
                            .provider
                            .parameter_value(&name, Some(&version))
                            .await
                            .map_err(|e| e.to_string())?
                            .ok_or_else(|| format!("version {version} of {name} is gone"))?;
                        let spec = ParameterSpec {
                            name: name.clone(),
                            secure: ssm.format != SecretFormat::IdOnly,
                            kms_key_id: ssm
                                .kms_key_id
                                .as_ref()
                                .map(|k| self.expand(k, &values))
                                .transpose()?,
                            tags: BTreeMap::new(),
                        };
                        self.provider
                            .put_parameter(&spec, &value)
                            .await
                            .map_err(|e| e.to_string())?;
                    } else {
                        self.provider
                            .delete_parameter(&name)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
                TargetKind::CredentialsFile(_)
                | TargetKind::EnvFile(_)
                | TargetKind::Template(_) => {
                    let local =
                        crate::plan::local_file(&target.kind, &values, self.base_dir, &target.id)
                            .map_err(|e| e.to_string())?
                            .expect("a file kind");
                    let path = &local.path;
                    if existed {
                        let backup = std::path::PathBuf::from(
                            before.get("backup").cloned().unwrap_or_default(),
                        );
                        let original = std::fs::read(&backup).map_err(|e| {
                            format!("cannot read the backup {}: {e}", backup.display())
                        })?;
                        let mode = files::mode_of(path).unwrap_or(0o600);
                        files::write_atomically(path, &original, mode)
                            .map_err(|e| e.to_string())?;
                    } else if let Err(error) = std::fs::remove_file(path)
                        && error.kind() != std::io::ErrorKind::NotFound
                    {
                        return Err(format!("cannot remove {}: {error}", path.display()));
                    }
                }
                TargetKind::Exec(exec) => {
                    if let Some(command) = &exec.rollback {
                        let env = [
                            ("REKEY_USER", EnvValue::Plain(user.to_string())),
                            ("REKEY_OLD_ACCESS_KEY_ID", EnvValue::Plain(old_key.clone())),
                            (
                                "REKEY_NEW_ACCESS_KEY_ID",
                                EnvValue::Plain(new_key.clone().unwrap_or_default()),
                            ),
                        ];
                        let what = format!("rollback of target `{}`", target.id);
                        self.run_command(&what, command, &values, &env, exec.timeout)
                            .await?;
                    }
                }
                TargetKind::SecretsManager(secret) => {
                    let secret_id = self.expand(&secret.secret_id, &values)?;
                    if existed {
                        let previous = before.get("previous_version").cloned().unwrap_or_default();
                        let current = self
                            .provider
                            .current_secret(&secret_id)
                            .await
                            .map_err(|e| e.to_string())?
                            .map(|(version, _)| version);
                        self.provider
                            .make_current(&secret_id, &previous, current.as_deref())
                            .await
                            .map_err(|e| e.to_string())?;
                    } else {
                        self.provider
                            .delete_secret(&secret_id)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
            (self.progress)(&format!(
                "{user}: rollback: target `{}` restored",
                target.id
            ));
        }
        if let Some(new_key) = &new_key {
            self.provider
                .delete_access_key(user, new_key)
                .await
                .map_err(|e| e.to_string())?;
            (self.progress)(&format!(
                "{user}: rollback: new key {} deleted",
                short_id(new_key)
            ));
        }
        self.stage(rotation)?.clear(self.provider).await
    }

    /// Removes a finished rotation's file backups.
    fn cleanup(&self, rotation: &RotationRecord) -> std::io::Result<()> {
        for target in &self.workflow.targets {
            let backup = self.backup_path(rotation, &target.id);
            if backup.exists() {
                std::fs::remove_file(backup)?;
            }
        }
        Ok(())
    }
}

/// The key ids of a comma-separated journal field.
fn key_list(field: Option<&String>) -> Vec<String> {
    field
        .map(|k| {
            k.split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The verdict on a command's invocations: `None` while any runs; an
/// error naming the first instance that failed, with its output.
fn judge_invocations(
    hook: &str,
    invocations: &[crate::providers::Invocation],
) -> Option<Result<(), String>> {
    if let Some(failed) = invocations.iter().find(|i| i.finished() && !i.succeeded()) {
        let code = failed
            .response_code
            .map(|c| format!(", exit {c}"))
            .unwrap_or_default();
        let output = if failed.output.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", failed.output.trim())
        };
        return Some(Err(format!(
            "hook `{hook}`: instance {} {}{code}{output}",
            failed.instance, failed.status
        )));
    }
    invocations
        .iter()
        .all(crate::providers::Invocation::finished)
        .then_some(Ok(()))
}

/// A Secrets Manager ClientRequestToken (32 to 64 characters) that is the
/// same for the same rotation and target, so a resumed write is idempotent.
fn request_token(rotation: &str, target: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{rotation}\0{target}"));
    format!("{digest:x}")[..40].to_string()
}

fn credentials_env<'s>(
    user: &str,
    key_id: &str,
    secret: &'s SecretString,
) -> Vec<(&'static str, EnvValue<'s>)> {
    vec![
        ("REKEY_USER", EnvValue::Plain(user.to_string())),
        ("AWS_ACCESS_KEY_ID", EnvValue::Plain(key_id.to_string())),
        ("AWS_SECRET_ACCESS_KEY", EnvValue::Secret(secret)),
    ]
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "by a signal".to_string(), |c| c.to_string())
}

fn describe_outputs(data: &Data) -> String {
    let mut parts = Vec::new();
    if let Some(key) = data.get("new_key") {
        parts.push(format!("new key {}", short_id(key)));
    }
    if let Some(version) = data.get("version") {
        parts.push(format!("version {version}"));
    }
    if let Some(key) = data.get("deleted") {
        parts.push(format!("deleted {}", short_id(key)));
    }
    if let Some(key) = data.get("disabled") {
        parts.push(format!("disabled {}", short_id(key)));
    }
    if let Some(ms) = data.get("authenticated_after_ms") {
        parts.push(format!("authenticated after {ms} ms"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Invocation;

    fn invocation(instance: &str, status: &str, code: Option<i32>, output: &str) -> Invocation {
        Invocation {
            instance: instance.into(),
            status: status.into(),
            response_code: code,
            output: output.into(),
        }
    }

    #[test]
    fn a_command_passes_when_every_instance_succeeds_and_fails_on_the_first_failure() {
        assert_eq!(
            judge_invocations(
                "restart",
                &[
                    invocation("i-1", "Success", Some(0), ""),
                    invocation("i-2", "InProgress", None, "")
                ]
            ),
            None
        );
        assert_eq!(
            judge_invocations(
                "restart",
                &[
                    invocation("i-1", "Success", Some(0), ""),
                    invocation("i-2", "Success", Some(0), "")
                ]
            ),
            Some(Ok(()))
        );
        let failed = judge_invocations(
            "restart",
            &[
                invocation("i-1", "Success", Some(0), ""),
                invocation("i-2", "Failed", Some(1), "app: unit not found\n"),
            ],
        );
        assert_eq!(
            failed,
            Some(Err(
                "hook `restart`: instance i-2 Failed, exit 1: app: unit not found".into()
            ))
        );
    }
}
