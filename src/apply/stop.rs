//! Stopping on a signal. The first SIGINT (Ctrl-C) or SIGTERM asks apply
//! to stop: no new step starts, a step under way is let finish, and a long
//! wait (a hook, `key_unused`) is cut short and recorded as interrupted, to
//! run again on resume — never as a failed verification. A second signal
//! exits at once, ending every command still running (each with its
//! process group). Commands run in their own process group (see
//! `providers::exec`), so a Ctrl-C at the terminal reaches rekey, not them.

use std::sync::Arc;

use tokio::sync::watch;

/// Whether to stop, and on which signal (0 while none).
#[derive(Debug, Clone)]
pub struct Stop {
    signal: Arc<watch::Sender<i32>>,
}

impl Stop {
    /// Stops on SIGINT and SIGTERM sent to this process; a second one
    /// exits at once. Must be called inside the tokio runtime.
    pub fn on_signals() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let stop = Self::never();
        for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
            let Ok(mut stream) = signal(kind) else {
                continue;
            };
            let stop = stop.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    stop.received(kind.as_raw_value());
                }
            });
        }
        stop
    }

    /// The first signal asks to stop; a second one exits at once.
    fn received(&self, signal: i32) {
        if self.requested().is_some() {
            // No command outlives rekey: a deploy script would go on alone.
            crate::providers::exec::end_every_command();
            std::process::exit(128 + signal);
        }
        eprintln!(
            "\nrekey: stopping: steps under way finish, waits are cut short; send the signal again to exit at once"
        );
        self.request(signal);
    }

    /// Never stops (tests set it by hand with [`Stop::request`]).
    pub fn never() -> Self {
        Self {
            signal: Arc::new(watch::Sender::new(0)),
        }
    }

    /// The signal that asked to stop, if one did.
    pub fn requested(&self) -> Option<i32> {
        Some(*self.signal.borrow()).filter(|s| *s != 0)
    }

    /// Asks to stop, as `signal` would.
    pub fn request(&self, signal: i32) {
        self.signal.send_replace(signal);
    }

    /// Resolves once a stop is asked for, with the signal.
    pub async fn wait(&self) -> i32 {
        let mut receiver = self.signal.subscribe();
        match receiver.wait_for(|s| *s != 0).await {
            Ok(signal) => *signal,
            // The sender lives as long as `self`: never reached.
            Err(_) => std::future::pending().await,
        }
    }
}
