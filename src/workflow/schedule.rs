//! `schedule:`: the cron (UTC) a workflow runs on, as GitHub Actions,
//! GitLab and cron(8) read five fields, and when it fires next. Plan uses
//! it to see a key that would pass `policy.deadline` before the next run;
//! validate, to warn when the schedule never falls inside the window.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use super::model::Window;
use super::window;

/// A parsed five-field cron expression, judged in UTC.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How far ahead [`Schedule::meets`] looks for a run inside a window: long
/// enough for a yearly schedule to fall on each weekday.
const HORIZON_DAYS: i64 = 8 * 366;

/// The five fields, in order, as messages name them.
const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

impl Schedule {
    /// Reads `minute hour day-of-month month day-of-week` (names such as
    /// `mon` and `jan`, ranges, lists and steps allowed). A sixth field
    /// (seconds) is refused: no CI scheduler reads one.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "a schedule has five fields (minute hour day-of-month month day-of-week), this one has {}",
                fields.len()
            ));
        }
        for (i, field) in fields.iter().enumerate() {
            // What every CI scheduler reads: numbers, names, `*`, ranges,
            // steps and lists; not Quartz's `?`, `L`, `W` or `#`.
            let named = i >= 3;
            let atom = |a: &str| {
                a == "*"
                    || (!a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
                    || (named && a.len() == 3 && a.bytes().all(|b| b.is_ascii_alphabetic()))
            };
            let plain = field.split([',', '-', '/']).all(atom);
            let alone: Vec<&str> = (0..5).map(|j| if j == i { *field } else { "*" }).collect();
            let alone = croner::Cron::from_str(&alone.join(" "));
            if !plain || alone.is_err() {
                return Err(format!(
                    "its {} field `{field}` is not one a CI scheduler reads",
                    FIELDS[i]
                ));
            }
        }
        let cron = croner::Cron::from_str(&fields.join(" ")).map_err(|error| error.to_string())?;
        let schedule = Schedule {
            text: fields.join(" "),
            cron,
        };
        let now = crate::text::now_in_seconds();
        if schedule
            .next_after(now)
            .is_none_or(|next| (next - now).whole_days() > HORIZON_DAYS)
        {
            return Err("it never runs (a day that no month has, such as 31 February?)".into());
        }
        Ok(schedule)
    }

    /// The first run after `after` that falls inside `window`, if one does
    /// within the horizon.
    pub fn first_run_in(&self, window: &Window, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let end = after
            .checked_add(time::Duration::days(HORIZON_DAYS))
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc());
        let mut at = after;
        // Each step either lands in the window or jumps past it to the
        // next run, so the count stays small for sparse schedules; a
        // schedule every minute reaches any weekly window within a week.
        for _ in 0..20_000 {
            let run = self.next_after(at).filter(|run| *run <= end)?;
            if window::is_open(window, run) {
                return Some(run);
            }
            at = run;
        }
        None
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let from = chrono::DateTime::<chrono::Utc>::from_timestamp(after.unix_timestamp(), 0)?;
        let next = self.cron.find_next_occurrence(&from, false).ok()?;
        OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
    }

    /// Whether some run falls inside `window` (searched from `from`).
    pub fn meets(&self, window: &Window, from: OffsetDateTime) -> bool {
        self.first_run_in(window, from).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::document::Weekday;
    use time::macros::datetime;

    fn tue_to_thu_2_to_5() -> Window {
        Window {
            days: vec![Weekday::Tue, Weekday::Wed, Weekday::Thu],
            start_minute: 120,
            end_minute: 300,
            utc_offset_minutes: 0,
        }
    }

    #[test]
    fn the_next_run_is_strictly_after_the_instant() {
        let monday_six = Schedule::parse("0 6 * * 1").unwrap();
        assert_eq!(
            monday_six.next_after(datetime!(2026-12-07 06:00 UTC)),
            Some(datetime!(2026-12-14 06:00 UTC))
        );
        assert_eq!(
            monday_six.next_after(datetime!(2026-12-06 23:00 UTC)),
            Some(datetime!(2026-12-07 06:00 UTC))
        );
        assert!(
            Schedule::parse("0 0 1 jul,DEC sun").is_ok(),
            "names of months and days"
        );
        let names = Schedule::parse("30 2 * * tue-thu").unwrap();
        assert_eq!(
            names.next_after(datetime!(2026-12-04 00:00 UTC)),
            Some(datetime!(2026-12-08 02:30 UTC))
        );
    }

    #[test]
    fn a_schedule_meets_a_window_only_if_a_run_falls_inside_it() {
        let window = tue_to_thu_2_to_5();
        let from = datetime!(2026-12-06 00:00 UTC);
        assert!(!Schedule::parse("0 6 * * 1").unwrap().meets(&window, from));
        assert!(
            !Schedule::parse("0 5 * * 2").unwrap().meets(&window, from),
            "05:00 is the end, excluded"
        );
        assert!(
            Schedule::parse("30 2 * * 2-4")
                .unwrap()
                .meets(&window, from)
        );
        assert!(Schedule::parse("* * * * *").unwrap().meets(&window, from));
        // The 13th falls on a Wednesday some month.
        assert!(Schedule::parse("0 3 13 * *").unwrap().meets(&window, from));
    }

    #[test]
    fn the_first_run_that_can_act_is_the_first_inside_the_window() {
        let tuesday_evening = Window {
            days: vec![Weekday::Tue],
            start_minute: 21 * 60,
            end_minute: 23 * 60,
            utc_offset_minutes: 0,
        };
        let nightly = Schedule::parse("30 22 * * *").unwrap();
        assert_eq!(
            nightly.first_run_in(&tuesday_evening, datetime!(2026-12-07 12:00 UTC)),
            Some(datetime!(2026-12-08 22:30 UTC)),
            "not the window's opening at 21:00, and not Monday's run"
        );
        assert_eq!(
            Schedule::parse("0 6 * * 1")
                .unwrap()
                .first_run_in(&tuesday_evening, datetime!(2026-12-07 12:00 UTC)),
            None
        );
    }

    #[test]
    fn only_five_fields_are_read() {
        assert!(
            Schedule::parse("0 0 6 * * 1")
                .unwrap_err()
                .contains("five fields")
        );
        assert!(Schedule::parse("0 6 * *").unwrap_err().contains("has 4"));
        assert!(
            Schedule::parse("61 6 * * 1")
                .unwrap_err()
                .contains("minute field `61`")
        );
        assert!(
            Schedule::parse("0 6 * * funday")
                .unwrap_err()
                .contains("day-of-week")
        );
        for quartz in [
            "0 6 ? * 1",
            "0 6 L * *",
            "0 6 * * 5#2",
            "0 6 15W * *",
            "1, 6 * * *",
        ] {
            assert!(Schedule::parse(quartz).is_err(), "{quartz} was accepted");
        }
        assert!(
            Schedule::parse("0 3 31 2 *")
                .unwrap_err()
                .contains("never runs")
        );
    }
}
