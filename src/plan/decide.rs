//! What to do with one user, from its keys and what the targets hold.
//!
//! Pure functions, so every rule is a unit test. A user holds at most two
//! access keys; rotation needs a free slot, which the plan either finds,
//! makes (deleting an inactive key no target holds, if policy allows), or
//! cannot make, and then says why and what to do.

use time::OffsetDateTime;

use crate::providers::{AccessKey, KeyStatus};
use crate::text::short_id;
use crate::workflow::document::MakeRoom;
use crate::workflow::duration::Duration;

/// The judgement for one user: rotate, leave unchanged, or blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Rotate {
        /// The active key being replaced.
        old_key: String,
        /// An inactive key to delete first, to free a slot.
        make_room: Option<String>,
        reason: String,
    },
    Unchanged {
        reason: String,
    },
    Blocked {
        reason: String,
        fix: String,
    },
}

/// What makes a key due. A key is due when it is at least `max_age` old,
/// or when it would reach `deadline` by the next chance to rotate it: the
/// first scheduled run inside the change window (a run outside it cannot
/// act); without one, the later of the next run and the window's next
/// opening; with only one of the two, that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueRule {
    pub max_age: Duration,
    pub deadline: Duration,
    pub next_chance: Option<NextChance>,
}

/// The next instant after this one at which a rotation can happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextChance {
    pub at: OffsetDateTime,
    /// `the next run` or `the window opens next`.
    pub what: &'static str,
}

impl DueRule {
    /// From the workflow's `max_key_age`, `deadline`, `schedule` and
    /// window, judged at `as_of`.
    pub fn of(workflow: &crate::workflow::model::Workflow, as_of: OffsetDateTime) -> DueRule {
        let run = workflow
            .schedule
            .as_ref()
            .and_then(|s| s.next_after(as_of))
            .map(|at| NextChance {
                at,
                what: "the next run",
            });
        let opens = workflow.policy.window.as_ref().map(|w| NextChance {
            at: crate::workflow::window::next_open(w, as_of),
            what: "the window opens next",
        });
        // With both, the next chance is the first run inside the window
        // (a run outside it cannot act); failing that, the later of the two.
        let in_window = workflow
            .schedule
            .as_ref()
            .zip(workflow.policy.window.as_ref())
            .and_then(|(s, w)| s.first_run_in(w, as_of))
            .map(|at| NextChance {
                at,
                what: "the next run inside the window",
            });
        let next_chance = match (in_window, run, opens) {
            (Some(first), _, _) => Some(first),
            (None, Some(run), Some(opens)) => Some(if opens.at > run.at { opens } else { run }),
            (None, one, other) => one.or(other),
        };
        DueRule {
            max_age: workflow.select.max_key_age,
            deadline: workflow.policy.deadline,
            next_chance,
        }
    }

    /// The age at `as_of` from which a key is due by either rule.
    pub fn due_age(&self, as_of: OffsetDateTime) -> Duration {
        let by_age = self.max_age.as_secs();
        let by_deadline = self.next_chance.map_or(by_age, |next| {
            let wait = (next.at - as_of).whole_seconds().max(0) as u64;
            self.deadline.as_secs().saturating_sub(wait)
        });
        Duration::from_secs(by_age.min(by_deadline))
    }

    /// When a key created at `created` reaches the deadline.
    pub fn reaches_deadline(&self, created: OffsetDateTime) -> OffsetDateTime {
        created
            .checked_add(time::Duration::seconds(self.deadline.as_secs() as i64))
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
    }

    /// Why a key created at `created` is due at `as_of`, or `None`.
    fn why_due(&self, id: &str, created: OffsetDateTime, as_of: OffsetDateTime) -> Option<String> {
        let age = age_days(created, as_of);
        let old = (as_of - created).whole_seconds() >= self.max_age.as_secs() as i64;
        if old && self.max_age.as_secs() == 0 {
            return Some(format!(
                "key {} is {age}d old (max_key_age 0d: always rotate)",
                short_id(id)
            ));
        }
        if old {
            return Some(format!(
                "key {} is {age}d old (max {})",
                short_id(id),
                self.max_age
            ));
        }
        let next = self.next_chance?;
        let reaches = self.reaches_deadline(created);
        (reaches <= next.at).then(|| {
            format!(
                "key {} is {age}d old: reaches {} on {}, before {} on {}",
                short_id(id),
                self.deadline,
                reaches.date(),
                next.what,
                next.at.date()
            )
        })
    }
}

/// Age in whole days at `as_of` (never negative).
pub fn age_days(created: OffsetDateTime, as_of: OffsetDateTime) -> i64 {
    ((as_of - created).whole_seconds().max(0)) / 86_400
}

/// Decides from the keys alone. A `Rotate` may still be blocked later if a
/// target holds the inactive key it would delete (see [`held_inactive_key`]).
pub fn by_keys(
    keys: &[AccessKey],
    as_of: OffsetDateTime,
    rule: &DueRule,
    make_room: MakeRoom,
) -> Judgement {
    let active: Vec<&AccessKey> = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
        .collect();
    let inactive: Vec<&AccessKey> = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Inactive)
        .collect();
    let Some(oldest) = active.iter().min_by_key(|k| (k.created, &k.id)) else {
        let reason = if keys.is_empty() {
            "has no access key"
        } else {
            "has no active access key"
        };
        return Judgement::Unchanged {
            reason: reason.into(),
        };
    };
    let Some(reason) = rule.why_due(&oldest.id, oldest.created, as_of) else {
        let max_age = rule.max_age;
        let due_on = oldest.created + time::Duration::seconds(max_age.as_secs() as i64);
        let reason = format!(
            "key {} is {}d old; due at {max_age} on {}",
            short_id(&oldest.id),
            age_days(oldest.created, as_of),
            due_on.date()
        );
        return Judgement::Unchanged { reason };
    };
    match (active.len(), inactive.first()) {
        (2.., _) => Judgement::Blocked {
            reason: format!("two active keys ({}, {}): there is no slot for a new one", short_id(&active[0].id), short_id(&active[1].id)),
            fix: "deactivate the key that no application uses (aws iam update-access-key --status Inactive), then plan again".into(),
        },
        (_, Some(inactive)) => match make_room {
            MakeRoom::DeleteInactive => Judgement::Rotate { old_key: oldest.id.clone(), make_room: Some(inactive.id.clone()), reason },
            MakeRoom::Refuse => Judgement::Blocked {
                reason: format!("both key slots are used: {} is active and {} inactive", short_id(&oldest.id), short_id(&inactive.id)),
                fix: "delete the inactive key, or set `policy.make_room: delete_inactive` to let rekey delete it".into(),
            },
        },
        _ => Judgement::Rotate { old_key: oldest.id.clone(), make_room: None, reason },
    }
}

/// Blocks a rotation whose make-room step would delete a key that a target
/// still holds: some application may be configured with it.
pub fn held_inactive_key(verdict: Judgement, holders: &[(String, Option<String>)]) -> Judgement {
    let Judgement::Rotate {
        make_room: Some(inactive),
        ..
    } = &verdict
    else {
        return verdict;
    };
    let held_by: Vec<&str> = holders
        .iter()
        .filter(|(_, key)| key.as_deref() == Some(inactive))
        .map(|(target, _)| target.as_str())
        .collect();
    if held_by.is_empty() {
        return verdict;
    }
    Judgement::Blocked {
        reason: format!("the inactive key {} is still held by {}: deleting it to make room could break what reads it", short_id(inactive), held_by.iter().map(|t| format!("target `{t}`")).collect::<Vec<_>>().join(", ")),
        fix: "find out why that target holds an inactive key, then delete the key yourself and plan again".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn key(id: &str, status: KeyStatus, days_old: i64) -> AccessKey {
        AccessKey {
            id: id.into(),
            status,
            created: NOW - time::Duration::days(days_old),
        }
    }

    fn by_age(max_days: u64) -> DueRule {
        DueRule {
            max_age: Duration::from_days(max_days),
            deadline: Duration::from_days(90),
            next_chance: None,
        }
    }

    fn verdict(keys: &[AccessKey], make_room: MakeRoom) -> Judgement {
        by_keys(keys, NOW, &by_age(90), make_room)
    }

    #[test]
    fn a_key_that_would_pass_the_deadline_before_the_next_run_is_due_now() {
        let weekly = |days: i64| DueRule {
            max_age: Duration::from_days(85),
            deadline: Duration::from_days(90),
            next_chance: Some(NextChance {
                at: NOW + time::Duration::days(days),
                what: "the next run",
            }),
        };
        let keys = [key("AKIAYOUNG00000000001", KeyStatus::Active, 84)];
        let Judgement::Rotate { reason, .. } = by_keys(&keys, NOW, &weekly(7), MakeRoom::Refuse)
        else {
            panic!("84d old, 90d reached in 6 days, next run in 7: due")
        };
        assert_eq!(
            reason,
            "key AKIA…0001 is 84d old: reaches 90d on 2026-12-05, before the next run on 2026-12-06"
        );
        assert!(
            matches!(
                by_keys(&keys, NOW, &weekly(5), MakeRoom::Refuse),
                Judgement::Unchanged { .. }
            ),
            "the next run comes before the deadline"
        );
        assert_eq!(weekly(7).due_age(NOW), Duration::from_days(83));
        assert_eq!(
            weekly(1).due_age(NOW),
            Duration::from_days(85),
            "max_key_age rules"
        );
    }

    #[test]
    fn a_young_key_is_left_alone_with_its_due_date() {
        let Judgement::Unchanged { reason } = verdict(
            &[key("AKIAYOUNG00000000001", KeyStatus::Active, 12)],
            MakeRoom::Refuse,
        ) else {
            panic!()
        };
        assert_eq!(reason, "key AKIA…0001 is 12d old; due at 90d on 2027-02-15");
    }

    #[test]
    fn an_old_key_with_a_free_slot_rotates() {
        let v = verdict(
            &[key("AKIAOLD0000000000001", KeyStatus::Active, 120)],
            MakeRoom::Refuse,
        );
        assert!(
            matches!(v, Judgement::Rotate { ref old_key, make_room: None, .. } if old_key == "AKIAOLD0000000000001"),
            "{v:?}"
        );
    }

    #[test]
    fn zero_max_age_always_rotates() {
        let v = by_keys(
            &[key("AKIANEW0000000000001", KeyStatus::Active, 0)],
            NOW,
            &by_age(0),
            MakeRoom::Refuse,
        );
        assert!(matches!(v, Judgement::Rotate { .. }), "{v:?}");
    }

    #[test]
    fn two_active_keys_block_with_a_fix() {
        let v = verdict(
            &[
                key("AKIAA000000000000001", KeyStatus::Active, 200),
                key("AKIAB000000000000002", KeyStatus::Active, 100),
            ],
            MakeRoom::DeleteInactive,
        );
        assert!(
            matches!(v, Judgement::Blocked { ref reason, .. } if reason.starts_with("two active keys")),
            "{v:?}"
        );
    }

    #[test]
    fn an_inactive_key_is_deleted_only_when_policy_allows() {
        let keys = [
            key("AKIAA000000000000001", KeyStatus::Active, 200),
            key("AKIAI000000000000002", KeyStatus::Inactive, 300),
        ];
        assert!(
            matches!(verdict(&keys, MakeRoom::DeleteInactive), Judgement::Rotate { make_room: Some(ref k), .. } if k == "AKIAI000000000000002")
        );
        assert!(
            matches!(verdict(&keys, MakeRoom::Refuse), Judgement::Blocked { ref fix, .. } if fix.contains("make_room"))
        );
    }

    #[test]
    fn an_inactive_key_a_target_holds_is_not_deleted() {
        let keys = [
            key("AKIAA000000000000001", KeyStatus::Active, 200),
            key("AKIAI000000000000002", KeyStatus::Inactive, 300),
        ];
        let holders = [("app".to_string(), Some("AKIAI000000000000002".to_string()))];
        let v = held_inactive_key(verdict(&keys, MakeRoom::DeleteInactive), &holders);
        assert!(
            matches!(v, Judgement::Blocked { ref reason, .. } if reason.contains("target `app`")),
            "{v:?}"
        );
    }

    #[test]
    fn users_without_active_keys_are_left_alone() {
        assert!(matches!(
            verdict(&[], MakeRoom::Refuse),
            Judgement::Unchanged { .. }
        ));
        assert!(matches!(
            verdict(
                &[key("AKIAI000000000000002", KeyStatus::Inactive, 300)],
                MakeRoom::Refuse
            ),
            Judgement::Unchanged { .. }
        ));
    }
}
