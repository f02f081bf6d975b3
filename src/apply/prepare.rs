//! What apply works from: the workflow or a saved plan read, its params bound,
//! and where its state lives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::journal::{self, RotationRecord};
use super::*;
use crate::plan::Plan;
use crate::workflow::Workflow;
use crate::workflow::{self, Checked};
use std::sync::Arc;

use super::claims::Claims;
use super::state::local::LocalState;
use super::state::s3::S3State;
use super::state::{DEFAULT_LEASE, S3Location, State, normalize_prefix};
use crate::providers::ObjectStores;

/// What apply works from: a workflow, or a plan saved from one.
pub struct Prepared {
    pub workflow_path: PathBuf,
    pub checked: Checked,
    pub saved: Option<Plan>,
    pub vars: Vec<(String, String)>,
    pub params: BTreeMap<String, String>,
    /// Values of sensitive params: never written anywhere.
    pub sensitive: crate::secret::Sensitive,
}

impl Prepared {
    /// The folder the workflow's relative paths start from.
    pub fn base_dir(&self) -> &Path {
        workflow_dir(&self.workflow_path)
    }
}

pub use crate::workflow::source::workflow_dir;

/// The state directory: `--state-dir`, or `.rekey/<workflow name>` next
/// to the workflow, so that two workflows in one folder never share one.
pub fn state_dir(chosen: Option<&Path>, workflow: &Path, name: &str) -> PathBuf {
    chosen.map_or_else(
        || {
            workflow_dir(workflow)
                .join(".rekey")
                .join(crate::text::file_name_for(name))
        },
        Path::to_path_buf,
    )
}

/// Rotations in progress in the state directory of the previous layout
/// (`.rekey` itself, shared by every workflow of the folder), which has
/// no record of which workflow began them: (the directory, their users).
pub fn previous_layout(workflow: &Path) -> Option<(PathBuf, Vec<String>)> {
    let dir = workflow_dir(workflow).join(".rekey");
    let entries = journal::read(&dir).ok()?;
    let users: Vec<String> = journal::rotations(&entries)
        .into_iter()
        .filter(RotationRecord::in_progress)
        .map(|r| r.user)
        .collect();
    (!users.is_empty()).then_some((dir, users))
}

/// Reads `target` (a workflow, or a plan saved by `rekey plan --out`) and
/// binds its params; a saved plan keeps its own vars.
pub fn prepare(target: &Path, vars: Vec<(String, String)>) -> Result<Prepared, ApplyError> {
    let saved = saved_plan(target)?;
    let workflow_path = saved
        .as_ref()
        .map_or_else(|| target.to_path_buf(), |p| PathBuf::from(&p.workflow.path));
    let checked = workflow::check(&workflow_path).map_err(ApplyError::Invalid)?;
    if let Some(saved) = &saved
        && checked.sources.sha256() != saved.workflow.sha256
    {
        return Err(ApplyError::WorkflowChanged(workflow_path));
    }
    let vars: Vec<(String, String)> = match &saved {
        // A saved plan keeps its vars, but never a sensitive one's value:
        // that one comes from --var again; no other --var is taken.
        Some(plan) => {
            if let Some((name, _)) = vars.iter().find(|(name, _)| {
                !checked
                    .workflow
                    .params
                    .get(name)
                    .is_some_and(|p| p.sensitive)
            }) {
                return Err(ApplyError::SavedPlanFixes(format!("--var {name}")));
            }
            let sensitive = |name: &str| {
                checked
                    .workflow
                    .params
                    .get(name)
                    .is_some_and(|p| p.sensitive)
            };
            let mut kept: Vec<(String, String)> = plan
                .vars
                .iter()
                .filter(|(name, _)| !sensitive(name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (name, _) in plan.vars.iter().filter(|(name, _)| sensitive(name)) {
                match vars.iter().find(|(given, _)| given == name) {
                    Some(given) => kept.push(given.clone()),
                    None => return Err(ApplyError::SensitiveOfSavedPlan(name.clone())),
                }
            }
            kept
        }
        None => vars,
    };
    let params = workflow::params::bind(&checked.workflow, &vars)?;
    let sensitive = checked.workflow.sensitive(&params);
    Ok(Prepared {
        workflow_path,
        checked,
        saved,
        vars,
        params,
        sensitive,
    })
}

/// Reads a plan saved by `rekey plan --out`, if `target` is one.
fn saved_plan(target: &Path) -> Result<Option<Plan>, ApplyError> {
    if target.extension().is_none_or(|e| e != "json") {
        return Ok(None);
    }
    let text = std::fs::read_to_string(target)
        .map_err(|e| ApplyError::SavedPlan(format!("cannot read {}: {e}", target.display())))?;
    match serde_json::from_str::<Plan>(&text) {
        Ok(plan) if plan.format_version == crate::plan::FORMAT_VERSION => Ok(Some(plan)),
        Ok(plan) => Err(ApplyError::SavedPlan(format!(
            "{} is a version {} plan; this rekey reads version {}",
            target.display(),
            plan.format_version,
            crate::plan::FORMAT_VERSION
        ))),
        Err(error) => Err(ApplyError::SavedPlan(format!(
            "{} is not a plan saved by `rekey plan --out`: {error}",
            target.display()
        ))),
    }
}

/// Where the command line asked the state to live: `--state-dir` (this
/// machine's state directory) and `--state` (`s3://BUCKET/PREFIX`).
#[derive(Debug, Clone, Default)]
pub struct StateChoice {
    pub state_dir: Option<PathBuf>,
    pub state: Option<String>,
}

impl StateChoice {
    /// With `--state`, staging defaults as for the workflow's own `state:`.
    pub fn adjust(&self, workflow: &mut Workflow) {
        if self.state.is_some() {
            workflow.stage_for_shared_state();
        }
    }

    /// The state directory of the workflow at `path`.
    fn dir(&self, path: &Path, workflow: &Workflow) -> PathBuf {
        state_dir(self.state_dir.as_deref(), path, &workflow.name)
    }

    /// Rotations of the previous layout (one `.rekey` for every workflow of
    /// a folder) still in progress, as the error that names them; never
    /// with `--state-dir`.
    pub fn previous_layout(&self, path: &Path) -> Option<ApplyError> {
        if self.state_dir.is_some() {
            return None;
        }
        previous_layout(path).map(|(dir, users)| ApplyError::PreviousLayout { dir, users })
    }

    /// The state of the workflow at `path` (or of its neighbour `name`):
    /// this machine's state directory (always: file backups live there),
    /// and where the journal, lock and claims are: `--state`, the
    /// workflow's `state:`, or that directory. Without `--state-dir`,
    /// rotations of the previous layout still in progress are an error
    /// naming them, when the state is local.
    pub fn open(
        &self,
        path: &Path,
        workflow: &Workflow,
        stores: &dyn ObjectStores,
        name: Option<&str>,
    ) -> Result<(PathBuf, State), ApplyError> {
        let name_given = name.is_some();
        let name = name.map_or_else(
            || crate::text::file_name_for(&workflow.name),
            str::to_string,
        );
        let dir = match name.as_str() {
            own if own == crate::text::file_name_for(&workflow.name) => self.dir(path, workflow),
            other => workflow_dir(path).join(".rekey").join(other),
        };
        let state: State = match self.location(workflow)? {
            Some(location) => {
                let store = stores.object_store(
                    &location.bucket,
                    location.region.as_deref(),
                    location.kms_key_id.as_deref(),
                );
                // In S3, names that had to change get a hash: never shared.
                let s3_name = match name_given {
                    true => name.clone(),
                    false => crate::text::distinct_name_for(&workflow.name),
                };
                Arc::new(S3State::new(store, location, &s3_name))
            }
            None => {
                if let Some(error) = self.previous_layout(path) {
                    return Err(error);
                }
                Arc::new(LocalState::new(dir.clone(), Claims::for_this_user()))
            }
        };
        Ok((dir, state))
    }

    /// Where in S3 the state is, if it is: `--state` (the bucket's
    /// settings still from the workflow), or the workflow's `state:`.
    fn location(&self, workflow: &Workflow) -> Result<Option<S3Location>, ApplyError> {
        let from_workflow = workflow.state.as_ref().map(|s3| S3Location {
            bucket: s3.bucket.clone(),
            prefix: normalize_prefix(s3.prefix.as_deref().unwrap_or_default()),
            region: s3.region.clone(),
            kms_key_id: s3.kms_key_id.clone(),
            lease: s3.lease.unwrap_or(DEFAULT_LEASE),
        });
        let Some(text) = &self.state else {
            return Ok(from_workflow);
        };
        let mut chosen = S3Location::parse(text).map_err(ApplyError::SavedPlan)?;
        if let Some(from) = &from_workflow {
            chosen.lease = from.lease;
            if from.bucket == chosen.bucket {
                chosen.region = from.region.clone();
                chosen.kms_key_id = from.kms_key_id.clone();
            }
        }
        Ok(Some(chosen))
    }

    /// The state of the workflow at `path`, to read: rotations of the
    /// previous layout are the caller's to mention, not an error.
    pub fn to_read(
        &self,
        path: &Path,
        workflow: &Workflow,
        stores: &dyn ObjectStores,
    ) -> Result<State, ApplyError> {
        match self.open(path, workflow, stores, None) {
            Err(ApplyError::PreviousLayout { .. }) => Ok(Arc::new(LocalState::new(
                self.dir(path, workflow),
                Claims::for_this_user(),
            ))),
            other => other.map(|(_, state)| state),
        }
    }

    /// Rotations of `workflow` in progress in its local state directory
    /// while its state is shared: apply refuses to go on until they are
    /// finished there.
    pub fn local_in_progress(
        &self,
        path: &Path,
        workflow: &Workflow,
        state: &State,
    ) -> Option<String> {
        if !state.shared() {
            return None;
        }
        let dir = self.dir(path, workflow);
        let users: Vec<String> = journal::rotations(&journal::read(&dir).ok()?)
            .into_iter()
            .filter(|r| r.in_progress() && r.belongs_to(&workflow.name))
            .map(|r| r.user)
            .collect();
        (!users.is_empty()).then(|| {
            format!(
                "rotations of {} are in progress in the local state directory {}, which the state in {} knows nothing of: finish them there first (run apply without --state, or without the workflow's `state:`), then switch",
                users.join(", "),
                dir.display(),
                state.location()
            )
        })
    }

    /// The state plan reads (never locks) and its rotations in progress,
    /// read once before planning; `note` is told of rotations of the
    /// previous layout, or left in the local state directory.
    pub async fn read_for_plan(
        &self,
        path: &Path,
        workflow: &Workflow,
        stores: &dyn ObjectStores,
        note: &dyn Fn(&str),
    ) -> Result<(State, Vec<RotationRecord>), ApplyError> {
        if let Some(previous) = self.previous_layout(path) {
            note(&previous.to_string());
        }
        let state = self.to_read(path, workflow, stores)?;
        if let Some(message) = self.local_in_progress(path, workflow, &state) {
            note(&message);
        }
        let entries = state.read().await?;
        let in_progress = journal::rotations(&entries)
            .into_iter()
            .filter(RotationRecord::in_progress)
            .collect();
        Ok((state, in_progress))
    }

    /// What apply and abort start from: the workflow (or saved plan) read
    /// and its params bound, its state locked and its journal read,
    /// narrowed to `users` and `accounts` when any are named.
    pub async fn open_session(
        &self,
        stores: &dyn ObjectStores,
        target: &Path,
        vars: &[(String, String)],
        users: &[String],
        accounts: &[String],
    ) -> Result<(Prepared, Session), ApplyError> {
        let mut prepared = prepare(target, vars.to_vec())?;
        self.adjust(&mut prepared.checked.workflow);
        let (dir, state) = self.open(
            &prepared.workflow_path,
            &prepared.checked.workflow,
            stores,
            None,
        )?;
        // Rotations begun with the local state directory are finished there:
        // the shared state knows nothing of them.
        if let Some(message) =
            self.local_in_progress(&prepared.workflow_path, &prepared.checked.workflow, &state)
        {
            return Err(ApplyError::SavedPlan(message));
        }
        if let Some(saved) = &prepared.saved {
            let now = state.shared().then(|| state.location());
            if saved.state != now {
                return Err(ApplyError::SavedPlan(format!(
                    "the plan was made with its state in {}, and this apply's state is in {}: apply it with the same state (`--state`, or the workflow's `state:`)",
                    saved.state.as_deref().unwrap_or("a local state directory"),
                    now.as_deref().unwrap_or("a local state directory"),
                )));
            }
        }
        let mut session = Session::open(&prepared, dir, state).await?;
        let narrowed = session
            .only(&prepared, users)
            .and_then(|()| session.only_accounts(&prepared, accounts));
        if let Err(error) = narrowed {
            session.close().await;
            return Err(error);
        }
        Ok((prepared, session))
    }
}
