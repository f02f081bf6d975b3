//! What the tests share: running the built `rekey` binary the way a user
//! does ([`Rekey`]), a workflow and its folder ([`Setup`]) with users
//! seeded on the emulator ([`seed`]), and the invariants every rotation
//! and rollback must leave ([`assert_rotated`], [`assert_rolled_back`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::account::{Account, CANARY};
use crate::emulator::emulator;

/// The repository root (tests run with paths relative to it, as users do).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The per-user claims folder of this test run: shared by every test (as
/// by every state directory of one OS user), apart from the developer's.
pub fn claims_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"))
        .path()
}

/// One invocation of `rekey`, built up like a command line.
pub struct Rekey {
    args: Vec<OsString>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    removed: Vec<String>,
}

impl Rekey {
    pub fn new() -> Self {
        Self {
            args: Vec::new(),
            dir: root(),
            env: vec![(
                "REKEY_CLAIMS_DIR".to_string(),
                claims_dir().display().to_string(),
            )],
            removed: Vec::new(),
        }
    }

    /// Talk to AWS at `endpoint` with dummy credentials, ignoring the
    /// developer's own AWS config files and profile.
    pub fn aws(mut self, endpoint: &str) -> Self {
        for (name, value) in [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_CONFIG_FILE", "/nonexistent/rekey-tests/config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/rekey-tests/credentials",
            ),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            self.env.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// Sets one more environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Leaves these variables out of the environment.
    pub fn without_env(mut self, names: &[&str]) -> Self {
        self.env.retain(|(name, _)| !names.contains(&name.as_str()));
        self.removed.extend(names.iter().map(|n| n.to_string()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn run(self) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rekey"));
        for name in &self.removed {
            command.env_remove(name);
        }
        let output = command
            .args(&self.args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env_remove("AWS_PROFILE")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("rekey runs");
        Run {
            command: format!(
                "rekey {}",
                self.args
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }
}

/// What one invocation printed and how it exited.
pub struct Run {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn exits(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "`{}` exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        );
        self
    }
}

/// The `.yaml` files directly in `dir`, sorted, relative to the root.
pub fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("fixture directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| Path::new(dir).join(path.file_name().expect("a file name")))
        .collect();
    files.sort();
    files
}

/// Keys are due after a second, so a test waits that long once after
/// seeding, and a plan right after the rotation has nothing to do.
pub const MAX_KEY_AGE: &str = "1s";

const TARGETS: &str = "targets:
  - id: param
    ssm_parameter: { name: \"/{id}/${user}/aws\" }
  - id: profile
    credentials_file: { path: credentials, profile: \"${user}\" }
  - id: push
    exec: { command: [sh, -c, \"echo $REKEY_USER $AWS_ACCESS_KEY_ID >> pushed.log\"] }
    needs: [param]
";

/// A workflow and its directory (which holds the state directory too).
pub struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    pub fn new(account: &Account, subpath: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            "version: 1\nname: test\nselect:\n  path_prefix: {{path}}{subpath}\n  max_key_age: {MAX_KEY_AGE}\n{TARGETS}{extra}"
        );
        std::fs::write(
            dir.path().join("workflow.yaml"),
            body.replace("{path}", &account.path())
                .replace("{id}", &account.id),
        )
        .unwrap();
        std::fs::write(dir.path().join("credentials"), "# CI runners\n[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = keep-me\n").unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rekey ARGS` against `endpoint` (a proxy, say), with extra env.
    pub fn rekey_at(&self, endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut rekey = Rekey::new()
            .aws(endpoint)
            .current_dir(self.path())
            .args(args);
        for (name, value) in env {
            rekey = rekey.env(name, value);
        }
        rekey.run()
    }

    pub fn rekey(&self, args: &[&str]) -> Run {
        Rekey::new()
            .aws(emulator())
            .current_dir(self.path())
            .args(args)
            .run()
    }

    pub fn apply(&self) -> Run {
        self.rekey(&["apply", "workflow.yaml", "--auto-approve"])
    }

    /// `apply --until PHASE`.
    pub fn apply_until(&self, phase: &str) -> Run {
        self.rekey(&["apply", "workflow.yaml", "--auto-approve", "--until", phase])
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rekey"));
        command
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("REKEY_CLAIMS_DIR", crate::support::claims_dir())
            .env("AWS_ENDPOINT_URL", emulator())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    pub fn journal(&self) -> String {
        std::fs::read_to_string(self.state().join("journal.jsonl")).unwrap_or_default()
    }

    pub fn profile_key(&self, user: &str) -> Option<String> {
        self.profile_field(user, "aws_access_key_id")
    }

    pub fn profile_secret(&self, user: &str) -> Option<String> {
        self.profile_field(user, "aws_secret_access_key")
    }

    fn profile_field(&self, user: &str, field: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.path().join("credentials")).ok()?;
        let section = text.split(&format!("[{user}]")).nth(1)?;
        let section = section.split("\n[").next()?;
        section
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field} = ")))
            .map(str::to_string)
    }

    /// The state directory of the workflow (`name: test`).
    pub fn state(&self) -> PathBuf {
        self.path().join(".rekey/test")
    }
}

/// Seeds users under `{path}{subpath}`: one active key each, and for every
/// other one an inactive key too (which make-room deletes). Returns
/// (user, old active key).
pub fn seed(account: &Account, subpath: &str, count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let user = account.user(&format!("u{i}{}", subpath.replace('/', "")), subpath, &[]);
            if i % 2 == 1 {
                let (inactive, _) = account.key(&user);
                account.deactivate(&user, &inactive);
            }
            let (key, _) = account.key(&user);
            account.ssm_json(&format!("/{}/{user}/aws", account.id), &key);
            (user, key)
        })
        .collect()
}

/// Every invariant of a finished rotation: one key, active, new, held by
/// every target; staging empty; the journal says done.
pub fn assert_rotated(account: &Account, setup: &Setup, users: &[(String, String)]) {
    assert_rotated_in(account, setup, users, &setup.state());
}

/// [`assert_rotated`] with the state directory at `state`.
pub fn assert_rotated_in(
    account: &Account,
    setup: &Setup,
    users: &[(String, String)],
    state: &Path,
) {
    let issued_secrets = account.issued_secrets();
    for (user, old) in users {
        let keys = account.keys(user);
        assert_eq!(keys.len(), 1, "{user} has {keys:?}");
        let (key, active) = &keys[0];
        assert!(active, "{user}'s key is not active");
        assert_ne!(key, old, "{user} still has its old key");
        assert_eq!(
            account
                .param_key(&format!("/{}/{user}/aws", account.id))
                .as_ref(),
            Some(key),
            "{user}: the SSM target"
        );
        assert_eq!(
            setup.profile_key(user).as_ref(),
            Some(key),
            "{user}: the credentials file"
        );
        let issued = issued_secrets
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{user}: IAM has no secret for {key}"));
        assert_eq!(
            account
                .param_secret(&format!("/{}/{user}/aws", account.id))
                .as_ref(),
            Some(&issued),
            "{user}: the SSM target holds another secret than IAM issued"
        );
        assert_eq!(
            setup.profile_secret(user).as_ref(),
            Some(&issued),
            "{user}: the credentials file holds another secret than IAM issued"
        );
        let pushed = std::fs::read_to_string(setup.path().join("pushed.log")).unwrap_or_default();
        assert!(
            pushed.lines().any(|l| l == format!("{user} {key}")),
            "{user}: the command did not get the new key: {pushed}"
        );
    }
    let staged: Vec<PathBuf> = std::fs::read_dir(state.join("staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(staged.is_empty(), "staging is not empty: {staged:?}");
    let temporaries: Vec<String> = std::fs::read_dir(setup.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".rekey-"))
        .collect();
    assert!(
        temporaries.is_empty(),
        "temporary copies (which hold secrets) were left: {temporaries:?}"
    );
    let credentials = std::fs::read_to_string(setup.path().join("credentials")).unwrap();
    assert!(credentials.starts_with("# CI runners\n[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = keep-me\n"), "other profiles changed:\n{credentials}");
}

/// The key `create` recorded for each rotation still in progress, from the
/// journal (a finished rotation's user may rightly be rotated again).
pub fn created_keys(journal: &str) -> Vec<(String, String)> {
    let entries: Vec<serde_json::Value> = journal
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let finished: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["event"] == "finished")
        .map(|e| &e["rotation"])
        .collect();
    entries
        .iter()
        .filter(|e| !finished.contains(&&e["rotation"]))
        .filter(|e| e["event"] == "done" && e["step"] == "create")
        .filter_map(|e| {
            Some((
                e["user"].as_str()?.to_string(),
                e["done"]["created"]["new_key"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The rolled-back state: the old key active and alone, the parameter
/// holding it and its secret, the credentials file as it was, staging
/// empty.
pub fn assert_rolled_back(
    account: &Account,
    setup: &Setup,
    users: &[(String, String)],
    credentials: &[u8],
) {
    for (user, old) in users {
        assert_eq!(
            account.keys(user),
            [(old.clone(), true)],
            "{user}: not rolled back"
        );
        let param = format!("/{}/{user}/aws", account.id);
        assert_eq!(account.param_key(&param).as_ref(), Some(old), "{user}");
        assert_eq!(
            account.param_secret(&param).as_deref(),
            Some(CANARY),
            "{user}: the parameter lost the old secret"
        );
    }
    assert_eq!(
        std::fs::read(setup.path().join("credentials")).unwrap(),
        credentials,
        "the credentials file is not as it was"
    );
    let staged: Vec<PathBuf> = std::fs::read_dir(setup.state().join("staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(staged.is_empty(), "staging is not empty: {staged:?}");
}
