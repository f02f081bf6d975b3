//! Where a workflow reaches: `state.s3` and `accounts:` (ids, the
//! Organization, roles, external ids), and what an account id, an OU id
//! and a role look like.

use super::*;

impl Checker<'_> {
    /// `state.s3`: a bucket name S3 accepts, a lease of at least 2s.
    pub(super) fn state(&mut self, merged: &Merged) -> Option<crate::workflow::model::S3Settings> {
        let state = merged.state.as_ref()?;
        let at = state.origin.key("s3");
        let Some(s3) = &state.item.s3 else {
            self.error(
                &state.origin,
                Part::Key,
                "`state` needs `s3`",
                Some("write `state: { s3: { bucket: NAME } }`, or remove `state` to keep it in a local folder".into()),
            );
            return None;
        };
        let Some(bucket) = &s3.bucket else {
            self.error(
                &at,
                Part::Key,
                "`state.s3` needs `bucket`",
                Some("name the bucket that holds the state: `bucket: NAME`".into()),
            );
            return None;
        };
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            self.error(
                &at.key("bucket"),
                Part::Value,
                format!("`{bucket}` is not an S3 bucket name"),
                Some("3 to 63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit".into()),
            );
        }
        if let Some(lease) = s3.lease
            && lease.to_std() < std::time::Duration::from_secs(2)
        {
            self.error(
                &at.key("lease"),
                Part::Value,
                "the lease must last at least 2s",
                Some("it is renewed every quarter of its lifetime; `2m` (the default) suits most runs".into()),
            );
        }
        Some(crate::workflow::model::S3Settings {
            bucket: bucket.clone(),
            prefix: s3.prefix.clone(),
            region: s3.region.clone(),
            kms_key_id: s3.kms_key_id.clone(),
            lease: s3.lease.map(|l| l.to_std()),
        })
    }

    /// `accounts`: the pin (`allowed`) and the fan-out (`ids`,
    /// `organization`, `exclude`, `role`, `external_id`).
    pub(super) fn accounts(&mut self, merged: &Merged) -> (Vec<String>, Option<Fleet>) {
        let Some(accounts) = &merged.accounts else {
            return (Vec::new(), None);
        };
        let doc = &accounts.item;
        let at = &accounts.origin;
        let fans_out = !doc.ids.is_empty() || doc.organization.is_some();
        if doc.allowed.is_empty() && !fans_out {
            self.error(
                at,
                Part::Key,
                "`accounts` names no account",
                Some("list `allowed` (the accounts the workflow may run in), or `ids` or `organization` (the accounts it rotates in), or remove `accounts`".into()),
            );
        }
        for list in ["allowed", "ids", "exclude"] {
            let ids = match list {
                "allowed" => &doc.allowed,
                "ids" => &doc.ids,
                _ => &doc.exclude,
            };
            for (i, id) in ids.iter().enumerate() {
                if !is_account_id(id) {
                    self.error(
                        &at.key(list).index(i),
                        Part::Value,
                        format!("`{id}` is not an AWS account id"),
                        Some("an account id is 12 digits, quoted: \"123456789012\"".into()),
                    );
                }
            }
        }
        if let Some(organization) = &doc.organization {
            if organization.ous.as_ref().is_some_and(Vec::is_empty) {
                self.error(
                    &at.key("organization").key("ous"),
                    Part::Value,
                    "`ous` lists no OU",
                    Some("name the OUs to rotate in, or remove `ous` to rotate in the whole Organization".into()),
                );
            }
            for (i, ou) in organization.ous.iter().flatten().enumerate() {
                if !is_ou_id(ou) {
                    self.error(
                        &at.key("organization").key("ous").index(i),
                        Part::Value,
                        format!("`{ou}` is not an OU id"),
                        Some("an OU id looks like `ou-abcd-12345678`, the root's like `r-abcd` (`aws organizations list-organizational-units-for-parent`)".into()),
                    );
                }
            }
        }
        if !fans_out {
            for field in ["exclude", "role", "external_id"] {
                let set = match field {
                    "exclude" => !doc.exclude.is_empty(),
                    "role" => doc.role.is_some(),
                    _ => doc.external_id.is_some(),
                };
                if set {
                    self.error(
                        &at.key(field),
                        Part::Key,
                        format!("`accounts.{field}` without `ids` or `organization`"),
                        Some("it applies to the accounts a workflow fans out to: add `ids` or `organization`, or remove it".into()),
                    );
                }
            }
            return (doc.allowed.clone(), None);
        }
        let Some(role) = &doc.role else {
            self.error(
                at,
                Part::Key,
                "`accounts.role` is missing: rekey reaches each account by assuming a role there",
                Some("add `role: RekeyRotation` (a role name), or an ARN template such as `arn:aws:iam::${account}:role/RekeyRotation`".into()),
            );
            return (doc.allowed.clone(), None);
        };
        let text = role.as_str();
        if !role_is_valid(&text.replace("${account}", "123456789012")) {
            self.error(
                &at.key("role"),
                Part::Value,
                format!("`{text}` is neither a role name nor a role ARN"),
                Some("write the role's name (`RekeyRotation`, or with its path `team/RekeyRotation`) or `arn:aws:iam::${account}:role/NAME`".into()),
            );
        } else if text.starts_with("arn:") && !text.contains("${account}") {
            self.error(
                &at.key("role"),
                Part::Value,
                "`accounts.role` is an ARN without `${account}`: every account would assume the same role",
                Some("write `arn:aws:iam::${account}:role/NAME`, or just the role's name".into()),
            );
        }
        let fleet = Fleet {
            ids: doc.ids.clone(),
            organization: doc.organization.as_ref().map(|o| Organization {
                ous: o.ous.clone().unwrap_or_default(),
                tags: o.tags.clone(),
            }),
            exclude: doc.exclude.clone(),
            role: role.clone(),
            external_id: doc.external_id.clone(),
        };
        (doc.allowed.clone(), Some(fleet))
    }
}

/// Whether `id` is an AWS account id: 12 digits.
pub fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.chars().all(|c| c.is_ascii_digit())
}

/// Whether `id` is an OU id (`ou-abcd-12345678`) or a root's (`r-abcd`).
pub(super) fn is_ou_id(id: &str) -> bool {
    let lower = |s: &str, min: usize| {
        (min..=32).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    };
    match id.strip_prefix("ou-").map(|rest| rest.split_once('-')) {
        Some(Some((root, ou))) => lower(root, 4) && lower(ou, 8),
        Some(None) => false,
        None => id.strip_prefix("r-").is_some_and(|root| lower(root, 4)),
    }
}

/// Whether a role, written as a name (with its path) or an ARN, once
/// `${account}` is filled in, is one that can be assumed. A role still
/// naming a param is judged when the param is known.
pub fn role_is_valid(role: &str) -> bool {
    if role.contains("${") {
        return true;
    }
    let name_ok = |name: &str| {
        let parts: Vec<&str> = name.split('/').collect();
        parts.iter().all(|p| {
            !p.is_empty()
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        }) && parts.last().is_some_and(|n| n.len() <= 64)
    };
    match role.strip_prefix("arn:") {
        Some(rest) => {
            let fields: Vec<&str> = rest.splitn(5, ':').collect();
            matches!(fields.as_slice(), [partition, "iam", "", account, resource]
                if partition.starts_with("aws")
                    && is_account_id(account)
                    && resource.strip_prefix("role/").is_some_and(name_ok))
        }
        None => name_ok(role),
    }
}
