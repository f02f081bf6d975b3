//! Running the built `rekey` binary the way a user does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

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
