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
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
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
