//! The hard stop under a migration's deadline. At the deadline the host interrupts SQLite, which
//! ends any statement that is running; but SQLite does not look at the interrupt while it
//! *compiles* a statement, and some statements take minutes to compile (thousands of chained
//! CTEs or views) and recurse as deep as they are long. So a step runs on a thread of its own
//! with a large stack (the recursion fits), and if it has not ended [`GRACE`] after its
//! deadline, the process ends: the step's transaction was never committed, so SQLite discards
//! it, the backup taken before is untouched, and the next run records the attempt as
//! interrupted (as after `kill -9`). Nothing else can stop a thread inside SQLite.

use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// How long after its deadline a step may still take before the process ends.
pub const GRACE: Duration = Duration::from_millis(1500);

/// The stack of a step's thread. Only what SQLite's recursion touches is ever mapped; the
/// longest SQL a guest may send (4 MiB) compiles to a recursion far shallower than this.
const STEP_STACK: usize = 1 << 30;

/// Exit code of a hard stop: a migration failed.
pub const EXIT_CODE: i32 = 1;

/// What a program embedding hsm-host does with the last word before a hard stop ends the
/// process (the CLI prints it as JSON under `--json` and flushes its log file).
pub type HardStopHook = Arc<dyn Fn(&str) + Send + Sync>;

static HOOK: OnceLock<HardStopHook> = OnceLock::new();

/// Installs the process's hard-stop hook (once; later calls are ignored).
pub fn set_hard_stop_hook(hook: HardStopHook) {
    let _ = HOOK.set(hook);
}

/// Runs `step` on a thread with a large stack; ends the process if it is still running
/// [`GRACE`] after `deadline`. `what` names the step in the last message.
pub fn within<R: Send>(deadline: Instant, what: &str, step: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| {
        let (done, finished) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("hsm-step".into())
            .stack_size(STEP_STACK)
            .spawn_scoped(scope, move || {
                let result = step();
                drop(done);
                result
            })
            .expect("cannot start a migration step's thread");
        let limit = deadline + GRACE;
        // The sender is dropped when the step ends, however it ends (a panic too).
        if let Err(mpsc::RecvTimeoutError::Timeout) =
            finished.recv_timeout(limit.saturating_duration_since(Instant::now()))
        {
            end_process(what);
        }
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn end_process(what: &str) -> ! {
    let message = format!(
        "{what} was still running {} s after its time limit: SQLite cannot be interrupted while \
         it compiles a statement, so hsm-host ends here; the migration's transaction was not \
         committed and the database is as it was before it (the next run records the attempt \
         as interrupted)",
        GRACE.as_secs_f32()
    );
    tracing::error!("{message}");
    if let Some(hook) = HOOK.get() {
        hook(&message);
    }
    std::process::exit(EXIT_CODE)
}
