//! Reading the credential report: whether one recent enough exists for what
//! plan must judge, and which users it shows cannot be due.

use time::OffsetDateTime;

use super::*;

pub(super) struct UsableReport {
    pub(super) report: crate::providers::CredentialReport,
    /// Keys created on or before this are due at `as_of`.
    pub(super) cutoff: OffsetDateTime,
    pub(super) max_key_age: crate::workflow::duration::Duration,
}

impl UsableReport {
    /// Whether the user must be read live: it is not in the report, or it
    /// has a key (active or not) created on or before the cutoff.
    pub(super) fn may_be_due(&self, user: &str) -> bool {
        self.report
            .users
            .get(user)
            .is_none_or(|u| u.keys.iter().any(|k| k.created <= self.cutoff))
    }

    /// A user the report shows is not due: unchanged, without a call.
    pub(super) fn unchanged(&self, user: IamUser, account: &str) -> UserPlan {
        let oldest = self
            .report
            .users
            .get(&user.name)
            .and_then(|u| u.keys.iter().map(|k| k.created).min());
        let reason = match oldest {
            None => "has no access key (credential report)".to_string(),
            Some(created) => format!(
                "every key is younger than {}: the oldest was created {} (credential report of {})",
                self.max_key_age,
                created.date(),
                rfc3339(self.report.generated)
            ),
        };
        UserPlan::new(account, &user.name, &user.arn, Decision::Unchanged, reason)
    }
}

/// Whether the report can decide which users are read, and what it says
/// of the users the workflow does not select. `max_key_age` is the age
/// from which a key is due this run (less than `select.max_key_age` when
/// the deadline comes before the next run).
pub(super) fn judge_report(
    report: Option<Result<crate::providers::CredentialReport, ProviderError>>,
    max_key_age: crate::workflow::duration::Duration,
    as_of: OffsetDateTime,
    selected: &[IamUser],
    path_prefix: Option<&str>,
) -> (Option<ReportUse>, Option<UsableReport>) {
    let cutoff = as_of - time::Duration::seconds(max_key_age.as_secs() as i64);
    let report = match report {
        None => return (None, None),
        Some(Err(error)) => {
            let note = format!(
                "the credential report could not be had ({error}): every selected user was read"
            );
            return (
                Some(ReportUse::unused(None, note, max_key_age, path_prefix)),
                None,
            );
        }
        Some(Ok(report)) => report,
    };
    let generated = Some(rfc3339(report.generated));
    let outside = report
        .users
        .iter()
        .filter(|(name, user)| {
            !selected.iter().any(|u| &u.name == *name)
                && path_prefix.is_none_or(|p| user.path.starts_with(p))
                && user.keys.iter().any(|k| k.active && k.created <= cutoff)
        })
        .count();
    if report.generated < cutoff {
        let note = format!(
            "the credential report ({}) is older than as_of - max_key_age ({}): a key created since could be due unseen, so every selected user was read",
            rfc3339(report.generated),
            rfc3339(cutoff)
        );
        // Too old to decide by, and to count by.
        return (
            Some(ReportUse::unused(generated, note, max_key_age, path_prefix)),
            None,
        );
    }
    let used = ReportUse {
        generated,
        used: true,
        note: None,
        read: 0,
        skipped: 0,
        outside: Some(outside),
        max_key_age: max_key_age.to_string(),
        path_prefix: path_prefix.map(str::to_string),
    };
    (
        Some(used),
        Some(UsableReport {
            report,
            cutoff,
            max_key_age,
        }),
    )
}

impl ReportUse {
    pub(super) fn unused(
        generated: Option<String>,
        note: String,
        max_key_age: crate::workflow::duration::Duration,
        path_prefix: Option<&str>,
    ) -> Self {
        ReportUse {
            generated,
            used: false,
            note: Some(note),
            read: 0,
            skipped: 0,
            outside: None,
            max_key_age: max_key_age.to_string(),
            path_prefix: path_prefix.map(str::to_string),
        }
    }
}
