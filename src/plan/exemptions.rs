//! Exemptions: the checked-in file (`--exemptions FILE`) that says which
//! users may keep an old key, why, and until when. An exempt user is still
//! reported, but does not make a run exit 5 nor a report fail; an
//! exemption past its expiry date exempts nothing and is itself a failure.
//!
//! ```yaml
//! exemptions:
//!   - user: break-glass-*          # a name or a glob (* and ?)
//!     account: "123456789012"      # optional: every account
//!     reason: Emergency access, reviewed quarterly (SEC-1234)
//!     expires: 2027-03-31
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::{Date, OffsetDateTime};

use super::select::glob_match;
use crate::workflow::diagnostic::{Diagnostic, Location};
use crate::workflow::source::{DocPath, FileId, SourceFile, Sources};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptionsDoc {
    exemptions: Vec<ExemptionDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptionDoc {
    user: String,
    #[serde(default)]
    account: Option<String>,
    reason: String,
    expires: String,
}

/// One exemption, as the file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// A user name or glob.
    pub user: String,
    /// `None`: every account.
    pub account: Option<String>,
    pub reason: String,
    /// The last day it holds (UTC).
    pub expires: Date,
    /// Where it is written, `FILE:LINE`.
    pub at: String,
}

/// How an exemption bears on one user at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing<'a> {
    /// It holds: the user is reported, not counted.
    Exempt(&'a Exemption),
    /// It expired: it exempts nothing, and is a failure of its own.
    Expired(&'a Exemption),
}

impl Standing<'_> {
    /// Whether the user still counts (an expired exemption does).
    pub fn counts(&self) -> bool {
        matches!(self, Standing::Expired(_))
    }

    /// How reports say it: `exempt until 2027-03-31: REASON (FILE:LINE)`.
    pub fn describe(&self) -> String {
        match self {
            Standing::Exempt(e) => format!("exempt until {}: {} ({})", e.expires, e.reason, e.at),
            Standing::Expired(e) => format!(
                "exemption expired (its last day was {}): {} ({}); renew it or rotate the key",
                e.expires, e.reason, e.at
            ),
        }
    }
}

/// The exemptions of one file (empty without `--exemptions`).
#[derive(Debug, Clone, Default)]
pub struct Exemptions {
    pub file: Option<PathBuf>,
    pub entries: Vec<Exemption>,
    /// Entries that hold but look wider or longer than an auditor would
    /// accept, as `FILE:LINE: warning: …` lines.
    pub warnings: Vec<String>,
}

impl Exemptions {
    /// Reads `path`; a problem is reported as `FILE:LINE:COL: error: …`
    /// (with the line and a hint), or `error: …` when it cannot be read.
    pub fn load(path: &Path) -> Result<Exemptions, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "error: cannot read the exemptions file {}: {e}",
                path.display()
            )
        })?;
        let mut sources = Sources::default();
        let file = sources.add(SourceFile::new(path.to_path_buf(), text.clone()));
        let at = |doc_path: &DocPath, message: String, hint: &str| {
            let pos = sources.get(file).positions.value(doc_path);
            Diagnostic::new(Location::at(&sources, file, pos), message)
                .with_hint(hint)
                .to_string()
        };
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message);
            format!(
                "{}:{line}:{column}: error: the exemptions file cannot be read: {message}",
                path.display()
            )
        })?;
        let doc: ExemptionsDoc = serde_path_to_error::deserialize(value).map_err(|error| {
            let mut doc_path = DocPath::root();
            for segment in error.path().iter() {
                doc_path = match segment {
                    serde_path_to_error::Segment::Seq { index } => doc_path.index(*index),
                    serde_path_to_error::Segment::Map { key } => doc_path.key(key.as_str()),
                    _ => continue,
                };
            }
            let message = error
                .inner()
                .to_string()
                .replace("struct ExemptionsDoc", "a mapping with `exemptions:`")
                .replace(
                    "struct ExemptionDoc",
                    "an entry with `user`, `reason` and `expires`",
                );
            at(&doc_path, message, FORMAT_HINT)
        })?;
        let mut entries: Vec<Exemption> = Vec::new();
        let mut problems = Vec::new();
        for (i, entry) in doc.exemptions.into_iter().enumerate() {
            let here = DocPath::root().key("exemptions").index(i);
            match check(entry, &here, file, &sources) {
                Ok(exemption) => {
                    // The first match wins, so a second entry for the same
                    // users (a renewal below the old one) would do nothing.
                    let first = entries
                        .iter()
                        .find(|e| e.user == exemption.user && e.account == exemption.account);
                    if let Some(first) = first {
                        problems.push(at(
                            &here.key("user"),
                            format!(
                                "a second exemption for `{}` (the first is at {})",
                                exemption.user, first.at
                            ),
                            "keep one entry per user and account: change its `expires` to renew it",
                        ));
                    }
                    entries.push(exemption);
                }
                Err((field, message, hint)) => problems.push(at(&here.key(field), message, hint)),
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let a_year_on = crate::text::now_in_seconds().date() + time::Duration::days(366);
        let warnings = entries
            .iter()
            .flat_map(|e| {
                let every = (e.user.chars().all(|c| c == '*') && e.account.is_none())
                    .then(|| format!("{}: warning: `{}` in every account exempts every user", e.at, e.user));
                let long = (e.expires > a_year_on).then(|| {
                    format!(
                        "{}: warning: `{}` is exempt until {}, more than a year away: review exemptions at least yearly",
                        e.at, e.user, e.expires
                    )
                });
                every.into_iter().chain(long)
            })
            .collect();
        Ok(Exemptions {
            file: Some(path.to_path_buf()),
            entries,
            warnings,
        })
    }

    /// The exemption that names `user` of `account` (the first written).
    pub fn find(&self, account: &str, user: &str, as_of: OffsetDateTime) -> Option<Standing<'_>> {
        let exemption = self.entries.iter().find(|e| {
            glob_match(&e.user, user) && e.account.as_deref().is_none_or(|a| a == account)
        })?;
        Some(if as_of.date() > exemption.expires {
            Standing::Expired(exemption)
        } else {
            Standing::Exempt(exemption)
        })
    }
}

const FORMAT_HINT: &str = "each entry has `user` (a name or glob), `reason` and `expires` (YYYY-MM-DD), and optionally `account` (12 digits)";

type Refusal = (&'static str, String, &'static str);

fn check(
    entry: ExemptionDoc,
    here: &DocPath,
    file: FileId,
    sources: &Sources,
) -> Result<Exemption, Refusal> {
    let date = time::macros::format_description!("[year]-[month]-[day]");
    let expires = Date::parse(entry.expires.trim(), &date).map_err(|_| {
        (
            "expires",
            format!("`{}` is not a date", entry.expires),
            "write the last day the exemption holds as YYYY-MM-DD",
        )
    })?;
    if let Some(account) = &entry.account
        && !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err((
            "account",
            format!("`{account}` is not an AWS account id"),
            "an account id is 12 digits; quote it so that YAML keeps leading zeros",
        ));
    }
    if entry.reason.trim().is_empty() {
        return Err((
            "reason",
            "an exemption needs a reason".into(),
            "say why the key may stay, and where it was approved",
        ));
    }
    if entry.user.trim().is_empty() {
        return Err((
            "user",
            "an exemption needs a user".into(),
            "a user name, or a glob such as `break-glass-*`",
        ));
    }
    let line = sources.get(file).positions.value(here).line;
    Ok(Exemption {
        user: entry.user,
        account: entry.account,
        reason: entry.reason.trim().to_string(),
        expires,
        at: format!("{}:{line}", sources.path(file).display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn load(text: &str) -> Result<Exemptions, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exemptions.yaml");
        std::fs::write(&path, text).unwrap();
        Exemptions::load(&path)
    }

    #[test]
    fn an_exemption_holds_through_its_last_day_and_then_counts() {
        let exemptions = load(
            "exemptions:\n  - user: break-glass-*\n    account: \"111111111111\"\n    reason: reviewed quarterly\n    expires: 2027-03-31\n",
        )
        .unwrap();
        let on = |t| exemptions.find("111111111111", "break-glass-1", t);
        assert!(matches!(
            on(datetime!(2027-03-31 23:59 UTC)),
            Some(Standing::Exempt(_))
        ));
        let expired = on(datetime!(2027-04-01 00:00 UTC)).unwrap();
        assert!(expired.counts());
        assert!(
            expired.describe().contains("its last day was 2027-03-31"),
            "{}",
            expired.describe()
        );
        assert!(
            exemptions
                .find(
                    "222222222222",
                    "break-glass-1",
                    datetime!(2027-01-01 0:00 UTC)
                )
                .is_none()
        );
        assert!(
            exemptions
                .find("111111111111", "ci-deploy", datetime!(2027-01-01 0:00 UTC))
                .is_none()
        );
        assert!(
            exemptions.entries[0].at.ends_with("exemptions.yaml:2"),
            "{}",
            exemptions.entries[0].at
        );
    }

    #[test]
    fn an_exemption_of_everyone_or_for_years_is_warned_of() {
        let exemptions = load(
            "exemptions:\n  - user: \"*\"\n    reason: r\n    expires: 2099-01-01\n  - user: ci-1\n    reason: r\n    expires: 2020-01-01\n",
        )
        .unwrap();
        assert_eq!(exemptions.warnings.len(), 2, "{:?}", exemptions.warnings);
        assert!(
            exemptions.warnings[0]
                .ends_with("exemptions.yaml:2: warning: `*` in every account exempts every user")
        );
        assert!(exemptions.warnings[1].contains("more than a year away"));
    }

    #[test]
    fn a_bad_entry_is_refused_at_its_line() {
        let error =
            load("exemptions:\n  - user: a\n    reason: r\n    expires: next year\n").unwrap_err();
        assert!(
            error.contains("exemptions.yaml:4:14: error: `next year` is not a date"),
            "{error}"
        );
        let error = load(
            "exemptions:\n  - user: a\n    reason: r\n    expires: 2027-01-01\n    acount: \"1\"\n",
        )
        .unwrap_err();
        assert!(error.contains(":5:") && error.contains("acount"), "{error}");
        let error = load("exemptions:\n  - user: a\n    account: \"12\"\n    reason: r\n    expires: 2027-01-01\n").unwrap_err();
        assert!(
            error.contains(":3:") && error.contains("not an AWS account id"),
            "{error}"
        );
        let error = load("exemptions:\n  - user: a\n    reason: r\n    expires: 2027-01-01\n  - user: a\n    reason: renewed\n    expires: 2028-01-01\n").unwrap_err();
        assert!(
            error.contains(":5:") && error.contains("a second exemption for `a`"),
            "{error}"
        );
        let error = load("exemptions:\n  - user: a\n    user: b\n").unwrap_err();
        assert!(
            error.contains("exemptions.yaml:2:5: error:")
                && error.contains("duplicate entry with key \"user\""),
            "{error}"
        );
        let error = load("- user: a\n").unwrap_err();
        assert!(error.contains("a mapping with `exemptions:`"), "{error}");
    }
}
