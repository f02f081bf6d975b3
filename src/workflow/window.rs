//! Change windows (`policy.window`): whether an instant is inside one, and
//! when the next opens. Plan, validate and apply all judge by these.

use time::{Duration, OffsetDateTime, UtcOffset, Weekday as TimeWeekday};

use crate::workflow::document::Weekday;
use crate::workflow::model::Window;

fn weekday(day: TimeWeekday) -> Weekday {
    match day {
        TimeWeekday::Monday => Weekday::Mon,
        TimeWeekday::Tuesday => Weekday::Tue,
        TimeWeekday::Wednesday => Weekday::Wed,
        TimeWeekday::Thursday => Weekday::Thu,
        TimeWeekday::Friday => Weekday::Fri,
        TimeWeekday::Saturday => Weekday::Sat,
        TimeWeekday::Sunday => Weekday::Sun,
    }
}

fn allowed(window: &Window, day: TimeWeekday) -> bool {
    window.days.is_empty() || window.days.contains(&weekday(day))
}

fn offset(window: &Window) -> UtcOffset {
    UtcOffset::from_whole_seconds(i32::from(window.utc_offset_minutes) * 60)
        .unwrap_or(UtcOffset::UTC)
}

/// Whether `now` is inside the window. A window that crosses midnight
/// belongs to the day it opens on.
pub fn is_open(window: &Window, now: OffsetDateTime) -> bool {
    let offset = offset(window);
    let local = now.to_offset(offset);
    let minute = u16::from(local.hour()) * 60 + u16::from(local.minute());
    let (start, end) = (window.start_minute, window.end_minute);
    if start < end {
        allowed(window, local.weekday()) && (start..end).contains(&minute)
    } else {
        (minute >= start && allowed(window, local.weekday()))
            || (minute < end && allowed(window, local.weekday().previous()))
    }
}

/// The next instant after `now` at which the window opens.
pub fn next_open(window: &Window, now: OffsetDateTime) -> OffsetDateTime {
    let offset = offset(window);
    let local = now.to_offset(offset);
    for days in 0..=8 {
        // Near the end of the calendar there is no later opening.
        let Some(date) = local.date().checked_add(Duration::days(days)) else {
            break;
        };
        let Some(opens) = date
            .midnight()
            .assume_offset(offset)
            .checked_add(Duration::minutes(i64::from(window.start_minute)))
        else {
            break;
        };
        if opens > now && allowed(window, date.weekday()) {
            return opens;
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn window(days: &[Weekday], start: u16, end: u16, offset: i16) -> Window {
        Window {
            days: days.to_vec(),
            start_minute: start,
            end_minute: end,
            utc_offset_minutes: offset,
        }
    }

    #[test]
    fn opens_on_its_days_between_its_times() {
        let w = window(&[Weekday::Tue], 120, 300, 0);
        assert!(
            is_open(&w, datetime!(2026-12-01 02:30 UTC)),
            "a Tuesday at 02:30"
        );
        assert!(
            !is_open(&w, datetime!(2026-12-01 05:00 UTC)),
            "the end is excluded"
        );
        assert!(!is_open(&w, datetime!(2026-12-02 02:30 UTC)), "a Wednesday");
        assert_eq!(
            next_open(&w, datetime!(2026-12-01 06:00 UTC)),
            datetime!(2026-12-08 02:00 UTC)
        );
    }

    #[test]
    fn a_window_across_midnight_belongs_to_its_first_day_and_offsets_apply() {
        let w = window(&[Weekday::Fri], 22 * 60, 120, 120);
        assert!(
            is_open(&w, datetime!(2026-12-04 21:30 UTC)),
            "Friday 23:30 at +02:00"
        );
        assert!(
            is_open(&w, datetime!(2026-12-04 23:30 UTC)),
            "Saturday 01:30 at +02:00 still counts as Friday's"
        );
        assert!(
            !is_open(&w, datetime!(2026-12-05 21:30 UTC)),
            "Saturday night is not Friday's"
        );
    }
}
