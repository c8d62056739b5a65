//! Progress of long data migrations, rate-limited so a guest reporting every row stays cheap.

use std::time::{Duration, Instant};

/// How often a progress line is logged at most.
const INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Progress {
    label: String,
    last_shown: Option<Instant>,
}

impl Progress {
    pub(crate) fn new(label: String) -> Self {
        Self {
            label,
            last_shown: None,
        }
    }

    pub(crate) fn report(&mut self, done: u64, total: u64) {
        let finished = total != 0 && done >= total;
        let due = self.last_shown.is_none_or(|at| at.elapsed() >= INTERVAL);
        if !(due || finished) {
            return;
        }
        self.last_shown = Some(Instant::now());
        let label = &self.label;
        match done.saturating_mul(100).checked_div(total) {
            Some(percent) => {
                tracing::info!(target: "guest", "{label}: {done}/{total} ({percent}%)")
            }
            None => tracing::info!(target: "guest", "{label}: {done} done"),
        }
    }
}
