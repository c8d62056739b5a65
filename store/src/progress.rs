//! Progress of long data migrations (`log.progress`): to the log, rate-limited so a guest
//! reporting every row stays cheap, and to the program's progress sink when it installed one
//! (the binary draws a bar on a terminal).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How often a progress line is logged at most.
const INTERVAL: Duration = Duration::from_secs(1);
/// How often the sink hears of progress at most.
const SINK_INTERVAL: Duration = Duration::from_millis(100);

/// Receives `(label, done, total)` as migrations report progress (`total` 0: unknown), and
/// `(label, total, total)` or an explicit finish when a step ends.
pub trait ProgressSink: Send + Sync {
    /// A step reported progress.
    fn progress(&self, label: &str, done: u64, total: u64);
    /// The step that reported progress ended (finished or failed).
    fn finish(&self, label: &str);
}

static SINK: OnceLock<Arc<dyn ProgressSink>> = OnceLock::new();

/// Installs the process's progress sink (once; later calls are ignored). Without one, progress
/// goes to the log only.
pub fn set_progress_sink(sink: Arc<dyn ProgressSink>) {
    let _ = SINK.set(sink);
}

/// One guest's progress reports (`log.progress`), rate-limited to the log and the sink.
pub struct Progress {
    label: String,
    last_shown: Option<Instant>,
    last_sent: Option<Instant>,
    reported: bool,
}

impl Progress {
    /// Progress of the step called `label`.
    pub fn new(label: String) -> Self {
        Self {
            label,
            last_shown: None,
            last_sent: None,
            reported: false,
        }
    }

    /// `done` of `total` (0: unknown).
    pub fn report(&mut self, done: u64, total: u64) {
        let finished = total != 0 && done >= total;
        if let Some(sink) = SINK.get()
            && (finished
                || self
                    .last_sent
                    .is_none_or(|at| at.elapsed() >= SINK_INTERVAL))
        {
            self.last_sent = Some(Instant::now());
            self.reported = true;
            sink.progress(&self.label, done, total);
        }
        let due = self.last_shown.is_none_or(|at| at.elapsed() >= INTERVAL);
        if !(due || finished) {
            return;
        }
        self.last_shown = Some(Instant::now());
        let label = &self.label;
        // With a sink drawing it, the line is for the log file (debug), not the terminal.
        let line = match done.saturating_mul(100).checked_div(total) {
            Some(percent) => format!("{label}: {done}/{total} ({percent}%)"),
            None => format!("{label}: {done} done"),
        };
        if SINK.get().is_some() {
            tracing::debug!(target: "guest", "{line}");
        } else {
            tracing::info!(target: "guest", "{line}");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.reported
            && let Some(sink) = SINK.get()
        {
            sink.finish(&self.label);
        }
    }
}

/// Progress of the host's own work of many parts (loading and compiling components, copying a
/// large database), for the sink only: the log has its own lines for it.
pub struct HostProgress {
    label: String,
    total: u64,
    done: AtomicU64,
}

impl HostProgress {
    /// Progress of the host's own work called `label`, out of `total`.
    pub fn new(label: String, total: usize) -> Self {
        Self {
            label,
            total: total as u64,
            done: AtomicU64::new(0),
        }
    }

    /// One more part done (from any thread).
    pub fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(sink) = SINK.get() {
            sink.progress(&self.label, done, self.total);
        }
    }

    /// `done` parts done so far.
    pub fn set(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
        if let Some(sink) = SINK.get() {
            sink.progress(&self.label, done, self.total);
        }
    }
}

impl Drop for HostProgress {
    fn drop(&mut self) {
        if self.done.load(Ordering::Relaxed) > 0
            && let Some(sink) = SINK.get()
        {
            sink.finish(&self.label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl ProgressSink for Recorder {
        fn progress(&self, label: &str, done: u64, total: u64) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{label} {done}/{total}"));
        }
        fn finish(&self, label: &str) {
            self.0.lock().unwrap().push(format!("{label} finished"));
        }
    }

    #[test]
    fn the_sink_hears_each_part_and_the_end() {
        let recorder = Arc::new(Recorder::default());
        set_progress_sink(recorder.clone());
        {
            let progress = HostProgress::new("loading 3 components".into(), 3);
            for _ in 0..3 {
                progress.tick();
            }
        }
        {
            let mut step = Progress::new("migration 8 (bulk)".into());
            step.report(10, 100);
            step.report(100, 100);
        }
        let heard = recorder.0.lock().unwrap().clone();
        assert_eq!(
            heard,
            [
                "loading 3 components 1/3",
                "loading 3 components 2/3",
                "loading 3 components 3/3",
                "loading 3 components finished",
                "migration 8 (bulk) 10/100",
                "migration 8 (bulk) 100/100",
                "migration 8 (bulk) finished",
            ]
        );
    }
}
