//! The AWS emulator (moto's server) and the recording proxy, as child
//! processes of the test binary.
//!
//! Each is started once, on first use, with its standard input piped: when
//! the test binary exits for any reason, the pipe closes and the child stops
//! itself, so nothing is left running. Set REKEY_TEST_ENDPOINT to use an
//! emulator that is already running instead.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use crate::support::root;

/// A child process that serves HTTP until its stdin closes.
pub struct Server {
    pub endpoint: String,
    _stdin: Option<ChildStdin>,
    _child: Option<Child>,
}

impl Server {
    /// Starts `command`, which prints `listening on URL` when ready.
    pub fn start(command: &mut Command) -> Server {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("a first line");
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "{command:?} did not start: {line:?} (run `scripts/emulator install` first?)"
                )
            })
            .to_string();
        Server {
            endpoint,
            _stdin: child.stdin.take(),
            _child: Some(child),
        }
    }
}

/// The shared emulator, started on first use.
pub fn emulator() -> &'static str {
    static EMULATOR: OnceLock<Server> = OnceLock::new();
    &EMULATOR
        .get_or_init(|| match std::env::var("REKEY_TEST_ENDPOINT") {
            Ok(endpoint) => Server {
                endpoint,
                _stdin: None,
                _child: None,
            },
            Err(_) => Server::start(Command::new(root().join("scripts/emulator")).arg("serve")),
        })
        .endpoint
}

/// A proxy in front of the emulator that logs every call (one JSON line
/// each) to `log`, optionally adding latency.
pub fn recording_proxy(log: &Path, latency_ms: u32) -> Server {
    fault_proxy(log, &["--latency-ms", &latency_ms.to_string()])
}

/// A proxy that logs every call and injects the faults `options` name
/// (scripts/aws-proxy.py: --throttle, --error, --drop, --lose, --stall,
/// --stall-ms, --only, --seed).
pub fn fault_proxy(log: &Path, options: &[&str]) -> Server {
    Server::start(
        Command::new("python3")
            .arg(root().join("scripts/aws-proxy.py"))
            .args(["--upstream", emulator(), "--log"])
            .arg(log)
            .args(options),
    )
}
