//! `policy:` defaults and bounds, and the change window.

use super::*;
use crate::workflow::schedule::Schedule;

impl Checker<'_> {
    pub(super) fn policy(&mut self, merged: &Merged) -> Option<Policy> {
        let doc = &merged.policy;
        let at = |field: &str| merged.policy_origins.get(field).cloned();
        let concurrency = doc.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency)
            && let Some(at) = at("concurrency")
        {
            let hint = format!(
                "rotate between 1 and {MAX_CONCURRENCY} users at once; IAM's rate limits make more no faster"
            );
            self.error(
                &at,
                Part::Value,
                format!("concurrency {concurrency} is out of range"),
                Some(hint),
            );
        }
        let account_concurrency = doc.account_concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&account_concurrency)
            && let Some(at) = at("account_concurrency")
        {
            self.error(
                &at,
                Part::Value,
                format!("account_concurrency {account_concurrency} is out of range"),
                Some(format!(
                    "work in between 1 and {MAX_CONCURRENCY} accounts at once"
                )),
            );
        }
        if let Some(at) = at("soak")
            && let Some(problem) = Problem::too_long(at, "soak", doc.soak, MAX_SOAK)
        {
            self.problems(vec![problem]);
        }
        if let Some(at) = at("deadline")
            && let Some(problem) =
                Problem::too_long(at, "deadline", doc.deadline, MAX_KEY_AGE_BOUND)
        {
            self.problems(vec![problem]);
        }
        let window = match (&doc.window, at("window")) {
            (Some(window), Some(at)) => self.window(window, &at),
            _ => None,
        };
        Some(Policy {
            soak: doc.soak.unwrap_or(DEFAULT_SOAK),
            on_verify_failure: doc.on_verify_failure.unwrap_or(OnVerifyFailure::Rollback),
            make_room: doc.make_room.unwrap_or(MakeRoom::Refuse),
            concurrency,
            deadline: doc.deadline.unwrap_or(DEFAULT_DEADLINE),
            account_concurrency,
            window,
        })
    }

    /// `schedule:` parsed; `policy.deadline` at least `max_key_age`; a
    /// warning when no scheduled run falls inside the window.
    pub(super) fn schedule(
        &mut self,
        merged: &Merged,
        select: &Selection,
        policy: Option<&Policy>,
    ) -> Option<Schedule> {
        if let (Some(policy), Some(at)) = (policy, merged.policy_origins.get("deadline"))
            && policy.deadline < select.max_key_age
        {
            let hint = format!(
                "a key is rotated once it is {} old (`select.max_key_age`), so the deadline must be that or later; the audit controls ask for 90d",
                select.max_key_age
            );
            self.error(
                at,
                Part::Value,
                format!(
                    "deadline {} is shorter than max_key_age {}",
                    policy.deadline, select.max_key_age
                ),
                Some(hint),
            );
        }
        let placed = merged.schedule.as_ref()?;
        let schedule = match Schedule::parse(&placed.item) {
            Ok(schedule) => schedule,
            Err(reason) => {
                let hint = "write it as a CI scheduler does, in UTC: `30 2 * * 2-4` is 02:30 on Tuesday to Thursday";
                self.error(
                    &placed.origin,
                    Part::Value,
                    format!("`{}` is not a cron schedule: {reason}", placed.item),
                    Some(hint.into()),
                );
                return None;
            }
        };
        if let Some(window) = policy.and_then(|p| p.window.as_ref())
            && !schedule.meets(window, crate::text::now_in_seconds())
        {
            let location = Location::resolve(self.sources, &placed.origin, Part::Value);
            let mut warning = Diagnostic::new(
                location,
                format!(
                    "no run of `{schedule}` falls inside `policy.window`: every scheduled apply would find the window closed and rotate nothing"
                ),
            );
            warning.warning = true;
            warning.hint = Some(format!(
                "run inside the window (times are UTC), e.g. `{}`",
                suggestion(window)
            ));
            self.warnings.push(warning);
        }
        Some(schedule)
    }

    pub(super) fn window(&mut self, doc: &WindowDoc, at: &Origin) -> Option<Window> {
        let between = doc
            .between
            .split_once('-')
            .and_then(|(a, b)| Some((clock(a)?, clock(b)?)));
        let Some((start_minute, end_minute)) = between.filter(|(a, b)| a != b) else {
            let hint = "write the window as `HH:MM-HH:MM` in 24-hour time, e.g. `02:00-05:00`";
            self.error(
                &at.key("between"),
                Part::Value,
                format!("`{}` is not a time range", doc.between),
                Some(hint.into()),
            );
            return None;
        };
        let zone = doc.timezone.as_deref().unwrap_or("UTC");
        let Some(utc_offset_minutes) = utc_offset(zone) else {
            let hint =
                "use `UTC` or a fixed offset such as `+02:00` (named zones are not supported yet)";
            self.error(
                &at.key("timezone"),
                Part::Value,
                format!("unknown timezone `{zone}`"),
                Some(hint.into()),
            );
            return None;
        };
        let mut days = doc.days.clone();
        days.sort();
        days.dedup();
        Some(Window {
            days,
            start_minute,
            end_minute,
            utc_offset_minutes,
        })
    }
}

/// `HH:MM` to minutes since midnight.
pub(super) fn clock(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// `UTC`, `Z` or `+HH:MM`/`-HH:MM` to minutes east of UTC.
pub(super) fn utc_offset(zone: &str) -> Option<i16> {
    if zone.eq_ignore_ascii_case("utc") || zone == "Z" {
        return Some(0);
    }
    let sign = match zone.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let minutes = clock(&zone[1..])? as i16;
    (minutes <= 14 * 60).then_some(sign * minutes)
}

/// A cron that runs early in `window`, in UTC: ten minutes after it opens
/// (or half-way through a shorter window), on its days.
fn suggestion(window: &Window) -> String {
    let length =
        (i32::from(window.end_minute) - i32::from(window.start_minute)).rem_euclid(24 * 60);
    let at = i32::from(window.start_minute) - i32::from(window.utc_offset_minutes)
        + (length / 2).min(10);
    let opens = at.rem_euclid(24 * 60);
    let shift = at.div_euclid(24 * 60);
    let days = if window.days.is_empty() {
        "*".to_string()
    } else {
        window
            .days
            .iter()
            .map(|d| ((d.number_from_sunday() as i32 + shift).rem_euclid(7)).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("{} {} * * {days}", opens % 60, opens / 60)
}
