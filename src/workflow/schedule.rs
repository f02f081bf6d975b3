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

impl Schedule {
    /// Reads `minute hour day-of-month month day-of-week` (names such as
    /// `mon` and `jan`, ranges, lists and steps allowed). A sixth field
    /// (seconds) is refused: no CI scheduler reads one.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields = text.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "a schedule has five fields (minute hour day-of-month month day-of-week), this one has {fields}"
            ));
        }
        let cron = croner::Cron::from_str(text.trim()).map_err(|error| error.to_string())?;
        Ok(Schedule {
            text: text.trim().to_string(),
            cron,
        })
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let from = chrono::DateTime::<chrono::Utc>::from_timestamp(after.unix_timestamp(), 0)?;
        let next = self.cron.find_next_occurrence(&from, false).ok()?;
        OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
    }

    /// Whether some run falls inside `window` (searched from `from`).
    pub fn meets(&self, window: &Window, from: OffsetDateTime) -> bool {
        let end = from + time::Duration::days(HORIZON_DAYS);
        let mut at = from;
        // Each step either lands in the window or jumps past it to the
        // next run, so the count stays small for sparse schedules; a
        // schedule every minute reaches any weekly window within a week.
        for _ in 0..20_000 {
            let Some(run) = self.next_after(at) else {
                return false;
            };
            if run > end {
                return false;
            }
            if window::is_open(window, run) {
                return true;
            }
            at = run;
        }
        false
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
    fn only_five_fields_are_read() {
        assert!(
            Schedule::parse("0 0 6 * * 1")
                .unwrap_err()
                .contains("five fields")
        );
        assert!(Schedule::parse("0 6 * *").unwrap_err().contains("has 4"));
        assert!(Schedule::parse("61 6 * * 1").is_err());
        assert!(Schedule::parse("0 6 * * funday").is_err());
    }
}
