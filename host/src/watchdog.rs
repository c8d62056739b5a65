//! The deadline of one migration step for the SQL the host runs around the guest (schema
//! snapshots, foreign-key and trap checks) and for SQLite's own work that no progress handler
//! sees (compiling a statement over thousands of chained views): at the deadline the
//! connection is interrupted, and again every tick until the step ends.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::InterruptHandle;

/// How often an overdue step is interrupted again (an interrupt only stops what runs at the
/// moment it lands).
const REPEAT: Duration = Duration::from_millis(10);

/// Interrupts the connection from `deadline` on, until dropped.
pub(crate) struct Watchdog {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub(crate) fn start(handle: InterruptHandle, deadline: Instant) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hsm-deadline".into())
            .spawn(move || {
                loop {
                    let wait = deadline
                        .saturating_duration_since(Instant::now())
                        .max(REPEAT);
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                            handle.interrupt();
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })
            .expect("cannot start the deadline thread");
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    /// Returns only once the thread is gone: no interrupt lands after the step.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
