//! The terminal's progress bars: for migrations that report progress, and for a fleet's
//! targets. Drawn on stderr only when it is a terminal and the output is not `--json`; never in
//! the log file. Log lines for stderr are written around the fleet's bar ([`suspended`]), so
//! neither draws over the other.

use std::sync::Mutex;

use hsm_host::runtime::ProgressSink;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar at a time (migrations run one after another).
pub struct Bar {
    target: fn() -> ProgressDrawTarget,
    current: Mutex<Option<(String, ProgressBar)>>,
}

impl Bar {
    /// A bar drawn on stderr.
    pub fn stderr() -> Self {
        Self::on(ProgressDrawTarget::stderr)
    }

    /// A bar drawn where `target` says (tests draw on an in-memory terminal).
    pub fn on(target: fn() -> ProgressDrawTarget) -> Self {
        Self {
            target,
            current: Mutex::new(None),
        }
    }

    fn bar(&self, label: &str, total: u64) -> ProgressBar {
        let bar = if total == 0 {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::new(total)
        };
        bar.set_draw_target((self.target)());
        let template = if total == 0 {
            "{spinner} {msg} {pos} done ({elapsed})"
        } else {
            "{msg} [{bar:30}] {pos}/{len} ({percent}%, {eta} left)"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        bar
    }
}

impl ProgressSink for Bar {
    fn progress(&self, label: &str, done: u64, total: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let same = matches!(&*current, Some((l, _)) if l == label);
        if !same {
            if let Some((_, old)) = current.take() {
                old.finish_and_clear();
            }
            *current = Some((label.to_owned(), self.bar(label, total)));
        }
        if let Some((_, bar)) = &*current {
            if total != 0 && bar.length() != Some(total) {
                bar.set_length(total);
            }
            bar.set_position(done);
        }
    }

    fn finish(&self, label: &str) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(&*current, Some((l, _)) if l == label)
            && let Some((_, bar)) = current.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// The fleet's bar while it is drawn, for the log lines written around it.
static FLEET_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A fleet's bar on stderr: targets finished of all, failures in its message. Cleared when
/// dropped.
pub struct FleetBar(ProgressBar);

impl FleetBar {
    pub fn stderr(direction: &str, targets: u64) -> Self {
        Self::on(ProgressDrawTarget::stderr(), direction, targets)
    }

    fn on(target: ProgressDrawTarget, direction: &str, targets: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(targets), target);
        let template = "fleet {prefix} [{bar:30}] {pos}/{len} targets{msg} ({elapsed}, {eta} left)";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(direction.to_owned());
        *FLEET_BAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
        Self(bar)
    }

    /// Writes with the bar out of the way, then counts a finished target (and a failure).
    pub fn finished(&self, failures: usize, write: impl FnOnce()) {
        self.0.suspend(write);
        if failures > 0 {
            self.0.set_message(format!(", {failures} failed"));
        }
        self.0.inc(1);
    }
}

impl Drop for FleetBar {
    fn drop(&mut self) {
        FLEET_BAR.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.0.finish_and_clear();
    }
}

/// Runs `write` with the fleet's bar (if one is drawn) cleared from the terminal.
pub fn suspended<R>(write: impl FnOnce() -> R) -> R {
    let bar = FLEET_BAR.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;
    use std::sync::OnceLock;

    static TERM: OnceLock<InMemoryTerm> = OnceLock::new();

    fn term() -> ProgressDrawTarget {
        ProgressDrawTarget::term_like(Box::new(
            TERM.get_or_init(|| InMemoryTerm::new(4, 100)).clone(),
        ))
    }

    #[test]
    fn a_step_draws_one_bar_and_clears_it_when_done() {
        let bar = Bar::on(term);
        bar.progress("migration 3 (normalize)", 250, 1000);
        let screen = TERM.get().unwrap().contents();
        assert!(screen.contains("migration 3 (normalize)"), "{screen:?}");
        assert!(screen.contains("250/1000 (25%"), "{screen:?}");
        bar.progress("migration 3 (normalize)", 1000, 1000);
        assert!(TERM.get().unwrap().contents().contains("1000/1000 (100%"));
        bar.finish("migration 3 (normalize)");
        assert_eq!(TERM.get().unwrap().contents().trim(), "");
    }

    #[test]
    fn a_fleet_bar_counts_targets_and_failures_and_clears_when_dropped() {
        let term = InMemoryTerm::new(4, 120);
        let bar = FleetBar::on(
            ProgressDrawTarget::term_like(Box::new(term.clone())),
            "up",
            50,
        );
        bar.finished(0, || {});
        bar.finished(1, || {});
        let screen = term.contents();
        assert!(screen.contains("fleet up"), "{screen:?}");
        assert!(screen.contains("2/50 targets, 1 failed"), "{screen:?}");
        let mut wrote = false;
        suspended(|| wrote = true);
        assert!(wrote);
        drop(bar);
        assert_eq!(term.contents().trim(), "");
        assert!(FLEET_BAR.lock().unwrap().is_none());
    }
}
