//! Reading an AWS shared credentials file (`~/.aws/credentials` style): which
//! access key id a profile holds. Writing it comes with the target itself.

use std::path::Path;

use super::TargetState;
use crate::secret::looks_like_key_id;

/// The state of `profile` in the file at `path`: absent when the file or
/// the profile is missing; the key id when the profile has one.
pub fn read(path: &Path, profile: &str) -> std::io::Result<TargetState> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(TargetState::absent());
        }
        Err(error) => return Err(error),
    };
    Ok(profile_state(&text, profile))
}

/// The state of `profile` in credentials-file `text`.
pub fn profile_state(text: &str, profile: &str) -> TargetState {
    let mut in_profile = false;
    let mut state = TargetState::absent();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
            state.exists |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            if key.trim() == "aws_access_key_id" && looks_like_key_id(value) {
                state.key_id = Some(value.to_string());
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# shared by the CI runners
[default]
aws_access_key_id = AKIADEFAULT000000000
aws_secret_access_key = s3cr3t

[runner]   
; rotated by rekey
aws_access_key_id=AKIARUNNER0000000000
aws_secret_access_key=s3cr3t
";

    #[test]
    fn finds_the_profile_and_its_key_id() {
        let state = profile_state(FILE, "runner");
        assert!(state.exists);
        assert_eq!(state.key_id.as_deref(), Some("AKIARUNNER0000000000"));
    }

    #[test]
    fn a_missing_profile_is_absent() {
        assert_eq!(profile_state(FILE, "nobody"), TargetState::absent());
    }
}
