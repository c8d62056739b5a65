//! What a guest may consume: wall-clock time per call (epoch interruption in wasm, SQLite's
//! progress handler in SQL) and memory (a resource limiter on every store).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::InterruptHandle;
use wasmtime::{Engine, ResourceLimiter};

use crate::error::human_bytes;

/// How often the engine's epoch advances; the granularity of the time limit.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Per-call resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one `up` or `down` call may take, SQL included.
    pub timeout: Duration,
    /// Most linear memory one migration may have, in bytes: its `up`/`down` instance and its
    /// SQL-function instance together.
    pub max_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5 * 60),
            max_memory: 256 << 20,
        }
    }
}

/// The time limit as an operator reads it: `5 min`, `2 s`, `250 ms`.
pub fn describe_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_millis() != 0 || secs == 0 {
        format!("{} ms", duration.as_millis())
    } else if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// One migration's memory budget, shared by its stores (the instance running `up`/`down` and
/// the one computing its SQL functions): together they get `--max-memory`, not each.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    max: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            used: AtomicUsize::new(0),
        })
    }
}

/// Caps one store's memories, tables and instances against its migration's budget,
/// remembering why it refused.
pub(crate) struct GuestLimiter {
    budget: Arc<MemoryBudget>,
    /// Bytes of the budget this store's memories hold; given back when the store is dropped.
    held: usize,
    /// Set when the guest hit the memory limit: the message the operator sees.
    pub(crate) exceeded: Option<String>,
}

impl GuestLimiter {
    pub(crate) fn new(budget: Arc<MemoryBudget>) -> Self {
        Self {
            budget,
            held: 0,
            exceeded: None,
        }
    }
}

impl Drop for GuestLimiter {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::Relaxed);
    }
}

/// Components of Rust guests have a handful of each; anything more is not a migration.
const MAX_TABLE_ELEMENTS: usize = 100_000;
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 64;

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        let max = self.budget.max;
        let granted = self
            .budget
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(more).filter(|total| *total <= max)
            });
        let in_use = match granted {
            Ok(_) => {
                self.held += more;
                return Ok(true);
            }
            Err(in_use) => in_use,
        };
        let message = format!(
            "it exceeded its memory limit of {} (it asked for {}); raise it with --max-memory",
            human_bytes(max as u64),
            human_bytes(in_use.saturating_sub(current).saturating_add(desired) as u64)
        );
        self.exceeded = Some(message.clone());
        // An error here traps the guest at once: it cannot catch and retry.
        Err(wasmtime::Error::msg(message))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired <= MAX_TABLE_ELEMENTS {
            return Ok(true);
        }
        let message = format!("it exceeded the limit of {MAX_TABLE_ELEMENTS} table elements");
        self.exceeded = Some(message.clone());
        Err(wasmtime::Error::msg(message))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Advances the engine's epoch every [`TICK`] until dropped, so a guest past its deadline
/// traps at its next function entry or loop back-edge; and interrupts the database connections
/// whose migration step is past its deadline (see [`EpochTicker::interrupt_from`]).
pub(crate) struct EpochTicker {
    /// Dropping it wakes the thread at once (a sleeping thread would hold up exit by a tick).
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    watches: Arc<Mutex<Watches>>,
}

#[derive(Default)]
struct Watches {
    next: u64,
    /// Each watched connection, with the deadline after which it is interrupted every tick.
    active: Vec<(u64, Instant, InterruptHandle)>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let watches = Arc::new(Mutex::new(Watches::default()));
        let watched = Arc::clone(&watches);
        let thread = std::thread::Builder::new()
            .name("hsm-epoch".into())
            .spawn(move || {
                // The epoch follows the clock, not the wake-ups: each sleep overshoots its
                // tick a little (1.7% was measured on a busy machine), which over a 5-minute
                // deadline let a guest run 5 s past it.
                let started = Instant::now();
                let mut ticked: u128 = 0;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    let now = Instant::now();
                    let due = now.duration_since(started).as_nanos() / TICK.as_nanos();
                    while ticked < due {
                        engine.increment_epoch();
                        ticked += 1;
                    }
                    let watches = watched.lock().unwrap_or_else(|p| p.into_inner());
                    for (_, deadline, handle) in &watches.active {
                        if now >= *deadline {
                            handle.interrupt();
                        }
                    }
                }
            })
            .expect("cannot start the epoch thread");
        Self {
            stop: Some(stop),
            thread: Some(thread),
            watches,
        }
    }

    /// Interrupts the connection of `handle` from `deadline` on, every tick (an interrupt
    /// stops only what runs when it lands), until the returned watch is dropped. This bounds
    /// what the epoch cannot: SQLite compiling a statement, and the host's own SQL around a
    /// guest call (snapshots, checks).
    pub(crate) fn interrupt_from(&self, handle: InterruptHandle, deadline: Instant) -> Watch {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let id = watches.next;
        watches.next += 1;
        watches.active.push((id, deadline, handle));
        Watch {
            watches: Arc::clone(&self.watches),
            id,
        }
    }
}

/// A connection being watched; dropped, no interrupt lands on it any more.
pub struct Watch {
    watches: Arc<Mutex<Watches>>,
    id: u64,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Under the lock the ticker holds while interrupting: once removed, never again.
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        watches.active.retain(|(id, _, _)| *id != self.id);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Epoch ticks in `timeout`, at least one.
pub(crate) fn ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos() / TICK.as_nanos()).max(1) as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(describe_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(describe_duration(Duration::from_secs(2)), "2 s");
        assert_eq!(describe_duration(Duration::from_millis(250)), "250 ms");
    }
}
