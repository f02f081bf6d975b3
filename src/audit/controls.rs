//! The controls a key is judged by, and their numbers in each benchmark.
//!
//! The numbers are data: a new version of the CIS AWS Foundations
//! Benchmark is one more entry in [`CONTROLS`]. Only numbers checked
//! against the published benchmarks are listed.

use time::OffsetDateTime;

use super::{KeyEntry, Verdict};
use crate::providers::KeyStatus;

/// One control: its id (Security Hub's where it has one), what it asks,
/// and its number in each CIS version.
pub struct Control {
    pub id: &'static str,
    pub title: &'static str,
    /// `(number, versions)`, e.g. `("1.14", "v1.4-v3.0")`.
    pub cis: &'static [(&'static str, &'static str)],
}

/// The three controls of an access key. IAM.3 is also AWS Config's
/// `access-keys-rotated`.
pub const CONTROLS: &[Control] = &[
    Control {
        id: "IAM.3",
        title: "access keys rotated within the deadline (90 days)",
        cis: &[("1.14", "v1.4-v3.0"), ("1.13", "v5.0"), ("2.12", "v7.0")],
    },
    Control {
        id: "IAM.22",
        title: "credentials unused for 45 days or more are removed",
        cis: &[("1.12", "v1.4-v3.0"), ("2.11", "v7.0")],
    },
    Control {
        id: "CIS-one-active-key",
        title: "only one active access key per user",
        cis: &[("1.13", "v1.4-v3.0")],
    },
];

/// IAM.22's and CIS's threshold.
pub const UNUSED_DAYS: i64 = 45;

impl Control {
    /// `1.14 (v1.4-v3.0)`, one per version.
    pub fn cis_numbers(&self) -> Vec<String> {
        self.cis
            .iter()
            .map(|(number, versions)| format!("{number} ({versions})"))
            .collect()
    }
}

/// What the three controls say of `key`, whose user has `active_keys`
/// active keys, at `as_of` with `deadline_days`.
pub fn judge(
    key: &KeyEntry,
    active_keys: usize,
    deadline_days: i64,
    as_of: OffsetDateTime,
) -> Vec<Verdict> {
    let active = key.status == KeyStatus::Active;
    let days = |since: OffsetDateTime| ((as_of - since).whole_seconds().max(0)) / 86_400;
    let verdict = |control: &Control, failed: bool, reason: String| Verdict {
        control: control.id.to_string(),
        cis: control.cis_numbers(),
        result: if failed { "FAILED" } else { "PASSED" }.to_string(),
        reason,
    };
    let inactive = || "inactive: it cannot be used".to_string();
    let rotated = &CONTROLS[0];
    let age = days(key.created_at);
    let rotation = if !active {
        verdict(rotated, false, inactive())
    } else if age >= deadline_days {
        verdict(
            rotated,
            true,
            format!("{age} days old, at or past the {deadline_days}-day deadline"),
        )
    } else {
        verdict(
            rotated,
            false,
            format!("{age} days old, under {deadline_days}"),
        )
    };
    let unused = &CONTROLS[1];
    let last = key.last_used_at;
    let idle = days(last.unwrap_or(key.created_at));
    let use_ = if !active {
        verdict(unused, false, inactive())
    } else if idle >= UNUSED_DAYS {
        let since = match last {
            Some(at) => format!("last used {}", at.date()),
            None => format!("never used since it was created {}", key.created_at.date()),
        };
        verdict(
            unused,
            true,
            format!("{since}: {idle} days without use (limit {UNUSED_DAYS})"),
        )
    } else {
        let since = match last {
            Some(at) => format!("used {}", at.date()),
            None => "new, not used yet".to_string(),
        };
        let ago = if idle == 1 {
            "1 day ago".to_string()
        } else {
            format!("{idle} days ago")
        };
        verdict(unused, false, format!("{since}, {ago}"))
    };
    let single = &CONTROLS[2];
    let one = if active && active_keys > 1 {
        verdict(
            single,
            true,
            format!("{} has {active_keys} active keys", key.user),
        )
    } else {
        verdict(single, false, format!("{active_keys} active key(s)"))
    };
    vec![rotation, use_, one]
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-06 12:00 UTC);

    fn key(days_old: i64, used_days_ago: Option<i64>, status: KeyStatus) -> KeyEntry {
        let created = NOW - time::Duration::days(days_old);
        KeyEntry::new(
            "u",
            "AKIAEXAMPLE000000001",
            status,
            created,
            used_days_ago.map(|d| NOW - time::Duration::days(d)),
        )
    }

    fn results(key: &KeyEntry, active: usize) -> Vec<String> {
        judge(key, active, 90, NOW)
            .into_iter()
            .map(|v| v.result)
            .collect()
    }

    #[test]
    fn each_control_fails_on_its_own_rule() {
        assert_eq!(
            results(&key(10, Some(1), KeyStatus::Active), 1),
            ["PASSED"; 3]
        );
        assert_eq!(
            results(&key(120, Some(1), KeyStatus::Active), 1),
            ["FAILED", "PASSED", "PASSED"]
        );
        assert_eq!(
            results(&key(89, None, KeyStatus::Active), 1),
            ["PASSED", "FAILED", "PASSED"],
            "never used in 89 days"
        );
        assert_eq!(
            results(&key(50, Some(44), KeyStatus::Active), 2),
            ["PASSED", "PASSED", "FAILED"]
        );
        assert_eq!(
            results(&key(300, None, KeyStatus::Inactive), 2),
            ["PASSED"; 3],
            "an inactive key is no risk"
        );
    }

    #[test]
    fn the_numbers_come_from_the_table() {
        let verdicts = judge(&key(120, Some(1), KeyStatus::Active), 1, 90, NOW);
        assert_eq!(verdicts[0].control, "IAM.3");
        assert_eq!(
            verdicts[0].cis,
            ["1.14 (v1.4-v3.0)", "1.13 (v5.0)", "2.12 (v7.0)"]
        );
        assert!(
            verdicts[0].reason.contains("120 days old"),
            "{}",
            verdicts[0].reason
        );
    }
}
