//! A rotation's snapshot: everything it will act on, resolved for its user
//! when it begins and kept in its `begin` record. Resume, rollback and
//! `status` act from the snapshot only, so editing the workflow changes the
//! next rotation, never one in progress: a rollback restores the file the
//! rotation wrote, not the one the workflow names today.
//!
//! Templates are bound for the user (params, `${user}`, `${account}`);
//! `${new_key.id}` stays, to be filled in from `create`'s outcome, and so do
//! references to params marked `sensitive: true`, whose values never reach
//! the journal: a resumed rotation needs them given again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::workflow::document::DocKind;
use crate::workflow::model::{Hook, Policy, Selection, Staging, Target, Workflow};
use crate::workflow::source::DocPath;
use crate::workflow::template::Template;
use crate::workflow::vocabulary::Templates;

/// What one rotation acts on, resolved when it began.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// The workflow's `name:`: the rotation belongs to it.
    pub workflow: String,
    /// The account the rotation began in: it never continues in another.
    pub account: String,
    pub staging: Staging,
    pub targets: Vec<Target>,
    pub hooks: Vec<Hook>,
    pub policy: Policy,
    /// Sensitive params the templates still name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
}

impl Snapshot {
    /// Binds `workflow` for `user` in `account`: every param but the
    /// sensitive ones is filled in.
    pub fn take(
        workflow: &Workflow,
        params: &BTreeMap<String, String>,
        user: &str,
        account: &str,
    ) -> Result<Self, String> {
        let sensitive: Vec<String> = workflow
            .params
            .iter()
            .filter(|(_, p)| p.sensitive)
            .map(|(name, _)| name.clone())
            .collect();
        let plain: BTreeMap<String, String> = params
            .iter()
            .filter(|(name, _)| !sensitive.contains(name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let bind = |template: &mut Template| -> Result<(), String> {
            *template = template.bind(&plain, user, account)?;
            Ok(())
        };
        let mut targets = workflow.targets.clone();
        for target in &mut targets {
            each_template(&mut target.kind, &bind)?;
        }
        let mut hooks = workflow.hooks.clone();
        for hook in &mut hooks {
            each_template(&mut hook.kind, &bind)?;
        }
        let mut staging = workflow.staging.clone();
        if let Staging::SsmParameter { name, kms_key_id } = &mut staging {
            bind(name)?;
            if let Some(kms) = kms_key_id {
                bind(kms)?;
            }
        }
        let mut named: Vec<String> = Vec::new();
        let mut collect = |template: &mut Template| -> Result<(), String> {
            named.extend(template.params());
            Ok(())
        };
        for target in &mut targets {
            each_template(&mut target.kind, &mut collect)?;
        }
        for hook in &mut hooks {
            each_template(&mut hook.kind, &mut collect)?;
        }
        named.sort();
        named.dedup();
        Ok(Snapshot {
            workflow: workflow.name.clone(),
            account: account.to_string(),
            staging,
            targets,
            hooks,
            policy: workflow.policy.clone(),
            sensitive: named,
        })
    }

    /// The rotation's own workflow: its targets, hooks, staging and
    /// policy as they were when it began.
    pub fn workflow(&self) -> Workflow {
        Workflow {
            name: self.workflow.clone(),
            description: None,
            kind: DocKind::Workflow,
            params: BTreeMap::new(),
            select: Selection::default(),
            staging: self.staging.clone(),
            targets: self.targets.clone(),
            hooks: self.hooks.clone(),
            schedule: None,
            policy: self.policy.clone(),
            accounts_allowed: Vec::new(),
            fleet: None,
            state: None,
        }
    }

    /// The sensitive params this rotation needs that `params` lacks.
    pub fn missing<'a>(&'a self, params: &BTreeMap<String, String>) -> Vec<&'a str> {
        self.sensitive
            .iter()
            .filter(|name| !params.contains_key(*name))
            .map(String::as_str)
            .collect()
    }
}

fn each_template<T: Templates>(
    item: &mut T,
    mut f: impl FnMut(&mut Template) -> Result<(), String>,
) -> Result<(), String> {
    let mut templates = Vec::new();
    item.templates_mut(&DocPath::root(), &mut templates);
    for (_, template) in templates {
        f(template)?;
    }
    Ok(())
}
