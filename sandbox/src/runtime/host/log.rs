//! `hsm:migration/log`: messages capped, escaped and budgeted; progress for the terminal.

use super::super::state::GuestState;
use crate::contract::log;
use crate::error::human_bytes;
use crate::text;

impl log::Host for GuestState {
    fn log(&mut self, level: log::Level, message: String) {
        // Each message is capped and escaped; past the migration's budget, one line says so.
        let granted = self.log_budget.take(message.len().min(text::MAX_MESSAGE));
        if granted == 0 {
            if !self.log_silenced {
                self.log_silenced = true;
                tracing::warn!(
                    target: "guest",
                    "{}: logged more than {} of messages; the rest are dropped",
                    self.label,
                    human_bytes(text::LOG_BUDGET as u64)
                );
            }
            return;
        }
        let message = text::neutralize(&message, granted);
        let label = &self.label;
        match level {
            log::Level::Trace => tracing::trace!(target: "guest", "{label}: {message}"),
            log::Level::Debug => tracing::debug!(target: "guest", "{label}: {message}"),
            log::Level::Info => tracing::info!(target: "guest", "{label}: {message}"),
            log::Level::Warn => tracing::warn!(target: "guest", "{label}: {message}"),
            log::Level::Error => tracing::error!(target: "guest", "{label}: {message}"),
        }
    }

    fn progress(&mut self, done: u64, total: u64) {
        self.progress.report(done, total);
    }
}
