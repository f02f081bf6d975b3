//! Which users a workflow selects: names or globs, path prefix, tags,
//! excludes. IAM user names are unique regardless of case, so matching
//! ignores case.

use std::collections::BTreeMap;

use crate::providers::IamUser;

/// `*` matches any run of characters, `?` one character; case-insensitive.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let name: Vec<char> = name.to_lowercase().chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(c) if *c == '?' || *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    n = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// A workflow's `select`, with params expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub users: Vec<String>,
    pub path_prefix: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub exclude: Vec<String>,
}

impl Selector {
    /// Whether the name and path criteria admit `user` (tags are checked
    /// separately: they cost a call per user).
    pub fn admits(&self, user: &IamUser) -> bool {
        let named = self.users.is_empty() || self.users.iter().any(|p| glob_match(p, &user.name));
        let in_path = self
            .path_prefix
            .as_deref()
            .is_none_or(|prefix| user.path.starts_with(prefix));
        let excluded = self.exclude.iter().any(|p| glob_match(p, &user.name));
        named && in_path && !excluded
    }

    /// The exact names (no `*` or `?`) in `users` that no listed user has.
    pub fn unmatched_names(&self, listed: &[IamUser]) -> Vec<String> {
        self.users
            .iter()
            .filter(|p| !p.contains(['*', '?']))
            .filter(|name| !listed.iter().any(|u| u.name.eq_ignore_ascii_case(name)))
            .cloned()
            .collect()
    }

    pub fn needs_tags(&self) -> bool {
        !self.tags.is_empty()
    }

    pub fn admits_tags(&self, tags: &BTreeMap<String, String>) -> bool {
        self.tags
            .iter()
            .all(|(key, value)| tags.get(key) == Some(value))
    }
}

/// Whether `--user given` names the user `user` of `account`: `NAME`, or
/// `ACCOUNT/NAME`.
pub fn names_user(given: &str, account: Option<&str>, user: &str) -> bool {
    given == user || account.is_some_and(|a| given.split_once('/') == Some((a, user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shells_do() {
        assert!(glob_match("ci-*", "ci-deploy"));
        assert!(glob_match("CI-*", "ci-deploy"), "IAM names ignore case");
        assert!(glob_match("ci-?", "ci-1"));
        assert!(!glob_match("ci-?", "ci-12"));
        assert!(glob_match("*-deploy-*", "team-deploy-prod"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("ci-*", "xci-deploy"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn every_criterion_must_hold_and_excludes_win() {
        let selector = Selector {
            users: vec!["ci-*".into()],
            path_prefix: Some("/ci/".into()),
            exclude: vec!["ci-legacy".into()],
            ..Selector::default()
        };
        let user = |name: &str, path: &str| IamUser {
            name: name.into(),
            arn: String::new(),
            path: path.into(),
        };
        assert!(selector.admits(&user("ci-a", "/ci/")));
        assert!(selector.admits(&user("ci-a", "/ci/team/")));
        assert!(!selector.admits(&user("ci-a", "/")));
        assert!(!selector.admits(&user("app", "/ci/")));
        assert!(!selector.admits(&user("ci-legacy", "/ci/")));
    }
}
