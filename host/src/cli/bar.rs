//! The terminal's progress bar for migrations that report progress: drawn on stderr only when
//! it is a terminal and the output is not `--json`; never in the log file.

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
}
