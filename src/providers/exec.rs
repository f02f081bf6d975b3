//! Running a target's or hook's command: no shell, a timeout, credentials
//! only in the environment (never in argv), and output captured with every
//! secret replaced by `(sensitive)` before anyone sees it.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncReadExt;

use crate::secret::{ExposeSecret, SecretString};

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The last lines of stdout and stderr, redacted.
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("`{0}` was not found (is it installed, and on PATH or relative to the workflow?)")]
    NotFound(String),
    #[error("`{0}` did not finish within {1}; it was killed")]
    TimedOut(String, crate::workflow::duration::Duration),
    #[error("cannot run `{0}`: {1}")]
    Io(String, String),
}

/// An environment variable for the command; secret values are redacted from
/// its output.
pub enum EnvValue<'a> {
    Plain(String),
    Secret(&'a SecretString),
    /// A secret the environment holds itself (a role's session).
    Owned(SecretString),
}

const OUTPUT_LINES: usize = 20;
/// What is kept of a command's output, at most (the journal keeps it).
const OUTPUT_BYTES: usize = 4096;
/// What is read of each stream before its end is known: memory stays
/// bounded whatever a command prints.
const STREAM_WINDOW: usize = 64 * 1024;

/// The end of a stream (the last [`STREAM_WINDOW`] bytes), read to its
/// close. A window that had to drop its start also drops its first, cut
/// line, which could hold the end of a secret no longer recognisable.
async fn tail_of<R: tokio::io::AsyncRead + Unpin>(stream: &mut R) -> String {
    let mut window: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut cut = false;
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                window.extend(&buffer[..n]);
                while window.len() > STREAM_WINDOW {
                    window.pop_front();
                    cut = true;
                }
            }
        }
    }
    let bytes: Vec<u8> = window.into_iter().collect();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match (cut, text.split_once('\n')) {
        (true, Some((_, rest))) => rest.to_string(),
        (true, None) => String::new(),
        (false, _) => text,
    }
}

/// Variables through which a command could find credentials other than
/// those rekey gives it.
const OTHER_CREDENTIALS: &[&str] = &[
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// What a command's environment is, as its `credentials` say: variables to
/// set and variables to remove from what rekey inherited.
pub struct Environment<'s> {
    pub set: Vec<(&'static str, EnvValue<'s>)>,
    pub remove: Vec<&'static str>,
}

impl<'s> Environment<'s> {
    /// `REKEY_USER` and `REKEY_NEW_ACCESS_KEY_ID`, with `credentials`:
    /// the new key's (and nothing that could shadow it), the operator's as
    /// rekey got them, or none at all.
    /// The same, asking `provider` for the operator's credentials when
    /// they are not rekey's own environment's (in another account, the
    /// role's).
    pub async fn of<P: super::RunCommand>(
        credentials: crate::workflow::vocabulary::Credentials,
        provider: &P,
        user: &str,
        key_id: &str,
        secret: &'s SecretString,
    ) -> Result<Self, super::ProviderError> {
        let operator = match credentials {
            crate::workflow::vocabulary::Credentials::Operator => {
                provider.operator_credentials().await?
            }
            _ => None,
        };
        Ok(Self::new(credentials, user, key_id, secret, operator))
    }

    pub fn new(
        credentials: crate::workflow::vocabulary::Credentials,
        user: &str,
        key_id: &str,
        secret: &'s SecretString,
        operator: Option<super::OperatorCredentials>,
    ) -> Self {
        use crate::workflow::vocabulary::Credentials;
        let mut set = vec![
            ("REKEY_USER", EnvValue::Plain(user.to_string())),
            (
                "REKEY_NEW_ACCESS_KEY_ID",
                EnvValue::Plain(key_id.to_string()),
            ),
        ];
        let mut remove = Vec::new();
        match credentials {
            Credentials::New => {
                set.push(("AWS_ACCESS_KEY_ID", EnvValue::Plain(key_id.to_string())));
                set.push(("AWS_SECRET_ACCESS_KEY", EnvValue::Secret(secret)));
                remove.extend(OTHER_CREDENTIALS);
            }
            Credentials::Operator => {
                // In another account: the role rekey assumed there.
                if let Some(operator) = operator {
                    set.push((
                        "AWS_ACCESS_KEY_ID",
                        EnvValue::Plain(operator.access_key_id.clone()),
                    ));
                    set.push((
                        "AWS_SECRET_ACCESS_KEY",
                        EnvValue::Owned(operator.secret_access_key),
                    ));
                    set.push(("AWS_SESSION_TOKEN", EnvValue::Owned(operator.session_token)));
                    remove.extend(
                        OTHER_CREDENTIALS
                            .iter()
                            .filter(|v| **v != "AWS_SESSION_TOKEN"),
                    );
                }
            }
            Credentials::None => {
                remove.extend(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
                remove.extend(OTHER_CREDENTIALS);
            }
        }
        Self { set, remove }
    }

    /// No AWS credentials, and these variables.
    pub fn without_credentials(set: Vec<(&'static str, EnvValue<'s>)>) -> Self {
        let mut remove = vec!["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];
        remove.extend(OTHER_CREDENTIALS);
        Self { set, remove }
    }
}

/// An exit code for messages; `None` means a signal ended the command.
pub fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "by a signal".to_string(), |c| c.to_string())
}

pub async fn run(
    argv: &[String],
    dir: &Path,
    environment: &Environment<'_>,
    hide: &[&SecretString],
    timeout: crate::workflow::duration::Duration,
) -> Result<Finished, ExecError> {
    let env = &environment.set;
    let program = argv.first().cloned().unwrap_or_default();
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at the terminal reaches rekey,
        // which decides, not the command.
        .process_group(0)
        .kill_on_drop(true);
    for name in &environment.remove {
        command.env_remove(name);
    }
    for (name, value) in env {
        match value {
            EnvValue::Plain(text) => command.env(name, text),
            EnvValue::Secret(secret) => command.env(name, secret.expose_secret()),
            EnvValue::Owned(secret) => command.env(name, secret.expose_secret()),
        };
    }
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ExecError::NotFound(program.clone()),
        _ => ExecError::Io(program.clone(), e.to_string()),
    })?;
    // Whatever cuts the wait short (a timeout, a stop), the whole group
    // goes: `sh -c` leaves its children behind otherwise.
    let mut group = Group::started(child.id());
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let collect = async {
        let (out, err) = tokio::join!(tail_of(&mut stdout), tail_of(&mut stderr));
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = tokio::time::timeout(timeout.to_std(), collect)
        .await
        .map_err(|_| ExecError::TimedOut(program.clone(), timeout))?;
    group.ended();
    let status = status.map_err(|e| ExecError::Io(program.clone(), e.to_string()))?;
    let mut output = out;
    output.push_str(&err);
    let secrets = env
        .iter()
        .filter_map(|(_, value)| match value {
            EnvValue::Secret(secret) => Some(*secret),
            EnvValue::Owned(secret) => Some(secret),
            EnvValue::Plain(_) => None,
        })
        .chain(hide.iter().copied());
    for secret in secrets {
        for form in crate::secret::disguises(secret.expose_secret()) {
            output = output.replace(&form, "(sensitive)");
        }
    }
    let lines: Vec<&str> = output.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(OUTPUT_LINES)..].join("\n");
    if tail.len() > OUTPUT_BYTES {
        let mut cut = tail.len() - OUTPUT_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    Ok(Finished {
        code: status.code(),
        output: tail,
    })
}

/// The process groups of the commands running now: a second signal ends
/// them all before rekey exits at once (a command may be a deploy script).
static RUNNING: std::sync::Mutex<std::collections::BTreeSet<libc::pid_t>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Where running commands are written down (a folder of this machine's
/// state directory), so that the next apply can end those a rekey killed
/// (SIGKILL) left running.
static RECORDED_IN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Ends every command still running, each with its whole process group:
/// for a rekey about to exit without waiting for them.
pub fn end_every_command() {
    for pgid in RUNNING.lock().expect("running commands").iter() {
        kill_group(*pgid);
    }
}

/// From now on, records each command while it runs in `dir`.
pub fn record_commands_in(dir: &Path) {
    let _ = RECORDED_IN.set(dir.to_path_buf());
}

/// Ends the commands recorded in `dir` that a rekey no longer running
/// left behind (it was killed), each with its process group, matched by
/// process id and start time so that a reused id is never hit. Returns a
/// line for each one ended.
pub fn end_left_behind(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ended = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let fields: Vec<u64> = text
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let [owner, owner_start, pgid, pgid_start] = fields[..] else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        let (Ok(owner), Ok(pgid)) = (libc::pid_t::try_from(owner), libc::pid_t::try_from(pgid))
        else {
            continue;
        };
        if start_time(owner) == Some(owner_start) {
            // Its rekey still runs (another apply on this machine): its own.
            continue;
        }
        // The group's own leader, or, once it has exited, members still in
        // its group: while any is, no new process can get that id, so they
        // are the killed rekey's.
        let leader = start_time(pgid);
        if leader == Some(pgid_start) || (leader.is_none() && group_has_members(pgid)) {
            kill_group(pgid);
            ended.push(format!(
                "ended process group {pgid}, a command a killed rekey left running"
            ));
        }
        let _ = std::fs::remove_file(&path);
    }
    ended
}

/// Whether any running process is in process group `pgid`.
fn group_has_members(pgid: libc::pid_t) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // After the command name: state, ppid, pgrp.
        stat.rsplit_once(") ").is_some_and(|(_, rest)| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
    })
}

/// When process `pid` started (clock ticks since boot, `/proc/PID/stat`
/// field 22), if it runs.
fn start_time(pid: libc::pid_t) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it are plain.
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: signalling a process group we created has no memory effects.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// A command's process group, killed when this is dropped while armed:
/// when the wait for the command was cut short.
struct Group {
    pgid: Option<libc::pid_t>,
    /// Where it is written down while it runs.
    record: Option<PathBuf>,
}

impl Group {
    fn started(pid: Option<u32>) -> Self {
        let pgid = pid.and_then(|p| libc::pid_t::try_from(p).ok());
        let mut record = None;
        if let Some(pgid) = pgid {
            RUNNING.lock().expect("running commands").insert(pgid);
            let me = libc::pid_t::try_from(std::process::id()).unwrap_or_default();
            if let (Some(dir), Some(own), Some(its)) =
                (RECORDED_IN.get(), start_time(me), start_time(pgid))
                && std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .is_ok()
            {
                let path = dir.join(pgid.to_string());
                if std::fs::write(&path, format!("{me} {own} {pgid} {its}\n")).is_ok() {
                    record = Some(path);
                }
            }
        }
        Group { pgid, record }
    }

    fn forget(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            RUNNING.lock().expect("running commands").remove(&pgid);
        }
        if let Some(path) = self.record.take() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The command ended by itself: nothing to kill.
    fn ended(&mut self) {
        self.forget();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            kill_group(pgid);
        }
        self.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_the_command_was_not_given_is_hidden_too_in_any_encoding_and_output_is_bounded() {
        let secret = SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string());
        let script = "s=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY; echo raw $s; printf %s \"$s\" | base64; echo url wJalrXUtnFEMI%2FK7MDENG%2BbPxRfiCYEXAMPLEKEY; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo end; exit 1";
        let finished = runtime()
            .block_on(run(
                &["sh".into(), "-c".into(), script.into()],
                Path::new("."),
                &Environment::without_credentials(Vec::new()),
                &[&secret],
                crate::workflow::duration::Duration::from_secs(10),
            ))
            .unwrap();
        assert!(
            finished.output.len() <= OUTPUT_BYTES + 4,
            "{}",
            finished.output.len()
        );
        assert!(
            finished.output.ends_with("end"),
            "{}",
            &finished.output[finished.output.len().saturating_sub(40)..]
        );
        let small = runtime()
            .block_on(run(
                &["sh".into(), "-c".into(), "s=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY; echo raw $s; printf %s \"$s\" | base64; echo url wJalrXUtnFEMI%2FK7MDENG%2BbPxRfiCYEXAMPLEKEY".into()],
                Path::new("."),
                &Environment::without_credentials(Vec::new()),
                &[&secret],
                crate::workflow::duration::Duration::from_secs(10),
            ))
            .unwrap();
        assert!(!small.output.contains("wJalrXUtnFEMI"), "{}", small.output);
        assert!(
            !small.output.contains("d0phbHJYVXRuRkVNSS9LN01ERU5H"),
            "{}",
            small.output
        );
        assert!(
            small.output.matches("(sensitive)").count() >= 3,
            "{}",
            small.output
        );
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn secrets_reach_the_environment_but_not_the_output() {
        let secret = SecretString::from("s3cr3t-canary".to_string());
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            "echo key=$AWS_SECRET_ACCESS_KEY; exit 3".to_string(),
        ];
        let env = Environment {
            set: vec![("AWS_SECRET_ACCESS_KEY", EnvValue::Secret(&secret))],
            remove: Vec::new(),
        };
        let finished = runtime()
            .block_on(run(
                &argv,
                Path::new("."),
                &env,
                &[],
                crate::workflow::duration::Duration::from_secs(10),
            ))
            .unwrap();
        assert_eq!(
            finished,
            Finished {
                code: Some(3),
                output: "key=(sensitive)".into()
            }
        );
    }

    #[test]
    fn a_missing_program_and_a_hung_one_are_clear_errors() {
        let missing = runtime().block_on(run(
            &["./no-such-program".into()],
            Path::new("."),
            &Environment::without_credentials(Vec::new()),
            &[],
            crate::workflow::duration::Duration::from_secs(5),
        ));
        assert_eq!(
            missing,
            Err(ExecError::NotFound("./no-such-program".into()))
        );
        let hung = runtime().block_on(run(
            &["sleep".into(), "10".into()],
            Path::new("."),
            &Environment::without_credentials(Vec::new()),
            &[],
            crate::workflow::duration::Duration::from_secs(1),
        ));
        assert!(matches!(hung, Err(ExecError::TimedOut(..))), "{hung:?}");
    }
}
