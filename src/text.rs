//! How ids and instants are written down: short access key ids for people
//! (`AKIA…WXYZ`) and RFC 3339 times for records and messages. Plan, apply
//! and render all write them, so they live below all three.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `AKIA…WXYZ`: enough to recognise a key, short enough to read.
pub fn short_id(id: &str) -> String {
    if id.len() <= 8 || !id.is_char_boundary(4) || !id.is_char_boundary(id.len() - 4) {
        return id.to_string();
    }
    format!("{}…{}", &id[..4], &id[id.len() - 4..])
}

pub fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339)
        .expect("a time within the years 0-9999")
}

pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// An RFC 3339 time without its fraction of a second, for reading.
pub fn to_seconds(time: &str) -> String {
    match time.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => time.to_string(),
    }
}

/// Now, in whole seconds: what plans and locks show.
pub fn now_in_seconds() -> OffsetDateTime {
    let now = now();
    now.replace_nanosecond(0).unwrap_or(now)
}

thread_local! {
    /// A virtual clock for this thread: its instant when it was set, and
    /// tokio's (paused) instant then.
    static VIRTUAL: std::cell::Cell<Option<(OffsetDateTime, tokio::time::Instant)>> =
        const { std::cell::Cell::new(None) };
}

/// The current instant: the one seam through which the engine reads the
/// time of day. Normally the system clock; on a thread that set a virtual
/// clock ([`set_virtual_clock`]), that clock, which moves with tokio's
/// (paused) time, so a simulation decides when soaks end and leases
/// expire without waiting.
pub fn now() -> OffsetDateTime {
    match VIRTUAL.with(std::cell::Cell::get) {
        Some((start, at)) => {
            let elapsed = tokio::time::Instant::now().saturating_duration_since(at);
            start + elapsed
        }
        None => OffsetDateTime::now_utc(),
    }
}

/// Makes [`now`] on this thread read `start`, moving on with tokio's time
/// (call it inside a runtime, best a paused current-thread one); `None`
/// gives the system clock back.
pub fn set_virtual_clock(start: Option<OffsetDateTime>) {
    VIRTUAL.with(|clock| clock.set(start.map(|s| (s, tokio::time::Instant::now()))));
}

/// This machine's name, as records and refusals name it.
pub fn hostname() -> String {
    std::env::var("REKEY_HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// A workflow name as a folder, object or parameter name: letters, digits,
/// `.`, `_`, `-`.
pub fn file_name_for(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match safe.trim_matches('.') {
        "" => "workflow".to_string(),
        _ => safe,
    }
}

/// [`file_name_for`], made distinct: a name that had to change gets a
/// short hash of itself, so `team/prod a` and `team_prod_a` never share
/// state in S3 or a staging parameter.
pub fn distinct_name_for(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let safe = file_name_for(name);
    if safe == name {
        return safe;
    }
    let hash = Sha256::digest(name.as_bytes());
    format!(
        "{safe}-{:02x}{:02x}{:02x}{:02x}",
        hash[0], hash[1], hash[2], hash[3]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_had_to_change_stay_distinct() {
        assert_eq!(distinct_name_for("team-prod_a.1"), "team-prod_a.1");
        let a = distinct_name_for("team/prod a");
        assert!(
            a.starts_with("team_prod_a-") && a.len() == "team_prod_a-".len() + 8,
            "{a}"
        );
        assert_ne!(a, distinct_name_for("team_prod_a"));
        assert_ne!(a, distinct_name_for("team prod/a"));
    }
}
