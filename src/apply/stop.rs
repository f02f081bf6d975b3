//! Stopping on a signal. The first SIGINT (Ctrl-C) or SIGTERM asks apply
//! to stop: no new step starts, a step under way is let finish, and a long
//! wait (a hook, `key_unused`) is cut short and recorded as interrupted, to
//! run again on resume — never as a failed verification. A second signal
//! exits at once. Commands run in their own process group (see
//! `providers::exec`), so a Ctrl-C at the terminal reaches rekey, not them.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The signal the process received, 0 while none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    if RECEIVED.swap(signal, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + signal) };
    }
    let message = b"\nrekey: stopping: steps under way finish, waits are cut short; send the signal again to exit at once\n";
    // SAFETY: write is async-signal-safe; the buffer outlives the call.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
    }
}

/// Whether to stop, and on which signal.
#[derive(Debug)]
pub struct Stop {
    flag: &'static AtomicI32,
}

impl Stop {
    /// Stops on SIGINT and SIGTERM sent to this process.
    pub fn on_signals() -> Self {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only touches an atomic and async-signal-safe calls.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
        Self { flag: &RECEIVED }
    }

    /// Never stops (tests set it by hand with [`Stop::request`]).
    pub fn never() -> Self {
        Self {
            flag: Box::leak(Box::new(AtomicI32::new(0))),
        }
    }

    /// The signal that asked to stop, if one did.
    pub fn requested(&self) -> Option<i32> {
        Some(self.flag.load(Ordering::SeqCst)).filter(|s| *s != 0)
    }

    /// Asks to stop, as `signal` would.
    pub fn request(&self, signal: i32) {
        self.flag.store(signal, Ordering::SeqCst);
    }

    /// Resolves once a stop is asked for, with the signal.
    pub async fn wait(&self) -> i32 {
        loop {
            if let Some(signal) = self.requested() {
                return signal;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
