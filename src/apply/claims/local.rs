//! Claims in a folder per OS user, shared by every state directory of the
//! machine (see the parent module for where): `<account>/<user>.json`,
//! 0600, created exclusively.

use super::*;

/// The claims folder.
#[derive(Debug, Clone)]
pub struct Claims {
    dir: PathBuf,
}

impl Claims {
    /// The OS user's claims folder (see the module doc).
    pub fn for_this_user() -> Self {
        let dir = std::env::var_os("REKEY_CLAIMS_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("rekey/claims"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/rekey/claims"))
            })
            .unwrap_or_else(|| std::env::temp_dir().join("rekey-claims"));
        Self { dir }
    }

    /// Claims kept in `dir` (tests).
    pub fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, account: &str, user: &str) -> PathBuf {
        // IAM user names are letters, digits and `+=,.@_-`: safe as file names.
        self.dir.join(account).join(format!("{user}.json"))
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> ClaimError {
        let path = path.to_path_buf();
        move |source| ClaimError::Io {
            path: path.clone(),
            source,
        }
    }

    /// Who holds `user`, if anyone.
    pub fn holder(&self, account: &str, user: &str) -> Option<Claim> {
        let text = std::fs::read_to_string(self.path(account, user)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Takes `user` for `claim`'s rotation: done if that rotation already
    /// holds it; refused, naming the holder, if another does. `force`
    /// takes it from another holder.
    pub fn take(
        &self,
        account: &str,
        user: &str,
        claim: &Claim,
        force: bool,
    ) -> Result<(), ClaimError> {
        let path = self.path(account, user);
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(self.io(dir))?;
        let text = serde_json::to_string(claim).expect("plain data");
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut file) => {
                    return file
                        .write_all(text.as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(self.io(&path));
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    match self.holder(account, user) {
                        Some(holder) if holder.rotation == claim.rotation => return Ok(()),
                        Some(holder) if !force => {
                            return Err(ClaimError::Held(Box::new(holder)));
                        }
                        // Forced, or a claim torn by a crash while it was
                        // written (its rotation never began): remove it.
                        _ => std::fs::remove_file(&path).map_err(self.io(&path))?,
                    }
                }
                Err(error) => return Err(self.io(&path)(error)),
            }
        }
    }

    /// Gives `user` up, if `rotation` holds it.
    pub fn release(&self, account: &str, user: &str, rotation: &str) {
        if self
            .holder(account, user)
            .is_some_and(|h| h.rotation == rotation)
        {
            let _ = std::fs::remove_file(self.path(account, user));
        }
    }
}

impl ClaimStore for Claims {
    fn holder<'a>(&'a self, account: &'a str, user: &'a str) -> BoxFuture<'a, Option<Claim>> {
        let holder = Claims::holder(self, account, user);
        Box::pin(async move { holder })
    }

    fn take<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        claim: &'a Claim,
        force: bool,
    ) -> BoxFuture<'a, Result<(), ClaimError>> {
        let taken = Claims::take(self, account, user, claim, force);
        Box::pin(async move { taken })
    }

    fn release<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        rotation: &'a str,
    ) -> BoxFuture<'a, ()> {
        Claims::release(self, account, user, rotation);
        Box::pin(async {})
    }

    fn claimed<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Option<BTreeSet<String>>> {
        let users = match std::fs::read_dir(self.dir.join(account)) {
            Ok(entries) => Some(
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_suffix(".json").map(str::to_string)
                    })
                    .collect(),
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(BTreeSet::new()),
            Err(_) => None,
        };
        Box::pin(async move { users })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rotation_holds_a_user_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::at(dir.path());
        let mine = claim("a", "u@1", "st1");
        let theirs = claim("b", "u@2", "st2");
        claims.take("111", "u", &mine, false).unwrap();
        claims.take("111", "u", &mine, false).unwrap();
        let Err(ClaimError::Held(holder)) = claims.take("111", "u", &theirs, false) else {
            panic!("a second rotation took the user")
        };
        assert_eq!(holder.rotation, "u@1");
        claims.take("222", "u", &theirs, false).unwrap();
        claims.release("111", "u", "u@2");
        assert!(
            claims.holder("111", "u").is_some(),
            "only the holder lets go"
        );
        claims.release("111", "u", "u@1");
        claims.take("111", "u", &theirs, false).unwrap();
        claims.take("111", "u", &mine, true).unwrap();
        assert_eq!(claims.holder("111", "u").unwrap().rotation, "u@1");
    }
}
