//! Accountability: what a run leaves due. Rotating what it can is not
//! enough for a scheduled job to go green: a blocked user (two active keys,
//! a claim another workflow holds, a target holding the inactive key), a
//! name in `select.users` that no user has, and a key that reaches the
//! deadline before the change window opens are each listed, and any that
//! no exemption covers makes the run exit 5.

use time::OffsetDateTime;

use super::exemptions::Exemptions;
use super::{Decision, Left, Plan, WindowView};
use crate::text::{parse_rfc3339, rfc3339};
use crate::workflow::model::Window;
use crate::workflow::window;

impl WindowView {
    /// The window as it stands at `at`.
    pub fn at(window: &Window, at: OffsetDateTime) -> Self {
        WindowView {
            open: window::is_open(window, at),
            next_open: rfc3339(window::next_open(window, at)),
        }
    }

    /// When it opens, if it is closed.
    pub fn closed_until(&self) -> Option<OffsetDateTime> {
        (!self.open)
            .then(|| parse_rfc3339(&self.next_open))
            .flatten()
    }
}

impl Plan {
    /// Fills [`Plan::left`] from the decisions, the window and the
    /// exemptions, judged at `as_of`.
    pub fn account_for(&mut self, exemptions: &Exemptions, as_of: OffsetDateTime) {
        let mut left = Vec::new();
        let closed_until = self.window.as_ref().and_then(WindowView::closed_until);
        for user in &self.users {
            let why = match user.decision {
                Decision::Blocked => format!("blocked: {}", user.reason),
                Decision::Rotate | Decision::InProgress => {
                    let reaches = user.deadline.as_deref().and_then(parse_rfc3339);
                    let deadline = self.deadline.as_deref().unwrap_or("90d");
                    match (reaches, closed_until) {
                        (Some(reaches), Some(opens)) if reaches <= as_of => format!(
                            "its key passed the {deadline} deadline on {}, and the change window is closed until {}",
                            reaches.date(),
                            rfc3339(opens)
                        ),
                        (Some(reaches), Some(opens)) if reaches <= opens => format!(
                            "its key reaches the {deadline} deadline on {}, before the change window opens on {}",
                            reaches.date(),
                            rfc3339(opens)
                        ),
                        _ => continue,
                    }
                }
                Decision::Unchanged => continue,
            };
            left.push(judged(exemptions, &user.account, &user.user, why, as_of));
        }
        for name in &self.unmatched {
            let why = format!(
                "`{name}` in `select.users` names no IAM user: a typo, or a user deleted or moved (its keys, if it has any elsewhere, are not rotated)"
            );
            left.push(judged(exemptions, &self.account, name, why, as_of));
        }
        self.left = left;
    }

    /// Whether something left counts: apply exits 5.
    pub fn leaves_due(&self) -> bool {
        self.left.iter().any(|l| l.counts)
    }
}

/// `why` left, as the exemptions judge it.
pub fn judged(
    exemptions: &Exemptions,
    account: &str,
    user: &str,
    why: String,
    as_of: OffsetDateTime,
) -> Left {
    let standing = exemptions.find(account, user, as_of);
    Left {
        account: account.to_string(),
        user: user.to_string(),
        why,
        exemption: standing.map(|s| s.describe()),
        counts: standing.is_none_or(|s| s.counts()),
    }
}
