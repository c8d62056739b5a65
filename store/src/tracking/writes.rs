//! The tracking rows hsm-host writes: each attempt's history row, the `migrations` row of an
//! applied, rolled-back or adopted migration, interrupted attempts marked, and checksums
//! accepted by `repair`. Each runs inside the transaction its caller holds.

use rusqlite::{Connection, params};

use super::{Attempt, HistoryStatus, INTERRUPTED, Tracking};
use crate::error::{Result, SqliteContext};

/// The tracking rows hsm-host writes. A trait of the store's, which hsm-host does not
/// re-export: a program using hsm-host reads the tracking tables; only the migrator writes
/// them, each write inside the transaction it holds.
pub trait TrackingWrites {
    /// Writes the history row of a finished attempt: `success`, or `failed` with the error.
    /// A success is written inside the migration's own transaction (one commit per
    /// migration); a failure after its rollback.
    fn record_attempt(
        &self,
        conn: &Connection,
        attempt: &Attempt,
        error: Option<&str>,
        now: &str,
    ) -> Result<()>;

    /// Marks a migration applied; re-applying a rolled-back one resets its row.
    fn record_applied(&self, conn: &Connection, applied: &Applied<'_>, now: &str) -> Result<()>;

    /// Marks a migration rolled back.
    fn record_rolled_back(
        &self,
        conn: &Connection,
        version: u64,
        backup_path: Option<&str>,
        now: &str,
    ) -> Result<()>;

    /// Records attempts whose process died as failed, says so in the log, and returns their
    /// versions: `left`, the one the lock file held (unless its row was committed before the
    /// process died), and rows an older tool or release left `running`. Only call it holding
    /// the migration lock (or on a private database): then no live process is running them.
    fn recover_interrupted(&self, conn: &Connection, left: Option<&Attempt>) -> Result<Vec<u64>>;

    /// Accepts a component file as it is now for an applied migration (`hsm-host repair`).
    fn set_checksum(&self, conn: &Connection, version: u64, checksum: &str) -> Result<()>;

    /// The history row of a migration recorded without running.
    fn record_adopted(&self, conn: &Connection, version: u64, now: &str) -> Result<()>;
}

impl TrackingWrites for Tracking {
    fn record_attempt(
        &self,
        conn: &Connection,
        attempt: &Attempt,
        error: Option<&str>,
        now: &str,
    ) -> Result<()> {
        let status = match error {
            Some(_) => HistoryStatus::Failed,
            None => HistoryStatus::Success,
        };
        conn.prepare_cached(&format!(
            "INSERT INTO main.\"{}\" (version, direction, status, backup_path, error_message,
                                     started_at, completed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            self.history
        ))
        .and_then(|mut insert| {
            insert.execute(params![
                attempt.version,
                attempt.direction.as_str(),
                status.as_str(),
                attempt.backup_path,
                error,
                attempt.started_at,
                now
            ])
        })
        .context(format!(
            "cannot record the attempt at migration {}",
            attempt.version
        ))?;
        Ok(())
    }

    fn record_applied(&self, conn: &Connection, applied: &Applied<'_>, now: &str) -> Result<()> {
        conn.execute(
            &format!(
                "INSERT INTO main.\"{}\" (version, name, description, applied_at, rolled_back_at,
                                         backup_path, status, error_message, checksum)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, 'applied', NULL, ?6)
                 ON CONFLICT (version) DO UPDATE SET
                   name = excluded.name, description = excluded.description,
                   applied_at = excluded.applied_at, rolled_back_at = NULL,
                   backup_path = excluded.backup_path, status = 'applied', error_message = NULL,
                   checksum = excluded.checksum",
                self.migrations
            ),
            params![
                applied.version,
                applied.name,
                applied.description,
                now,
                applied.backup_path,
                applied.checksum
            ],
        )
        .context(format!(
            "cannot record migration {} as applied",
            applied.version
        ))?;
        Ok(())
    }

    fn record_rolled_back(
        &self,
        conn: &Connection,
        version: u64,
        backup_path: Option<&str>,
        now: &str,
    ) -> Result<()> {
        conn.execute(
            &format!(
                "UPDATE main.\"{}\" SET status = 'rolled_back', rolled_back_at = ?1,
                        backup_path = coalesce(?2, backup_path)
                 WHERE version = ?3",
                self.migrations
            ),
            params![now, backup_path, version],
        )
        .context(format!("cannot record migration {version} as rolled back"))?;
        Ok(())
    }

    fn recover_interrupted(&self, conn: &Connection, left: Option<&Attempt>) -> Result<Vec<u64>> {
        let now = crate::time::now_iso();
        let mut versions = self.mark_interrupted(conn, &now)?;
        if let Some(attempt) = left
            && !self.has_attempt(conn, attempt)?
        {
            self.record_attempt(conn, attempt, Some(INTERRUPTED), &now)?;
            versions.push(attempt.version);
        }
        for version in &versions {
            tracing::warn!(
                "migration {version} was interrupted: the process ended during the migration; \
                 SQLite rolled it back, and its history row is now marked failed"
            );
        }
        Ok(versions)
    }

    fn set_checksum(&self, conn: &Connection, version: u64, checksum: &str) -> Result<()> {
        conn.execute(
            &format!(
                "UPDATE main.\"{}\" SET checksum = ?1 WHERE version = ?2",
                self.migrations
            ),
            params![checksum, version],
        )
        .context(format!("cannot update the checksum of migration {version}"))?;
        Ok(())
    }

    fn record_adopted(&self, conn: &Connection, version: u64, now: &str) -> Result<()> {
        conn.execute(
            &format!(
                "INSERT INTO main.\"{}\" (version, direction, status, started_at, completed_at)
                 VALUES (?1, 'up', ?2, ?3, ?3)",
                self.history
            ),
            params![version, HistoryStatus::Adopted.as_str(), now],
        )
        .context(format!("cannot record migration {version} as adopted"))?;
        Ok(())
    }
}

/// What the `migrations` row of a newly applied migration says.
pub struct Applied<'a> {
    /// The migration's version.
    pub version: u64,
    /// Its name.
    pub name: &'a str,
    /// Its description.
    pub description: &'a str,
    /// The backup taken before the run.
    pub backup_path: Option<&'a str>,
    /// The sha256 of the component that applied it.
    pub checksum: &'a str,
}

impl Tracking {
    /// Marks every `running` history row `failed` as interrupted and returns their versions.
    /// Whether `attempt` has its history row: it committed before its process died.
    fn has_attempt(&self, conn: &Connection, attempt: &Attempt) -> Result<bool> {
        conn.query_row(
            &format!(
                "SELECT count(*) > 0 FROM main.\"{}\"
                 WHERE version = ?1 AND direction = ?2 AND started_at = ?3",
                self.history
            ),
            params![
                attempt.version,
                attempt.direction.as_str(),
                attempt.started_at
            ],
            |row| row.get(0),
        )
        .context("cannot look for an interrupted attempt's history row")
    }

    fn mark_interrupted(&self, conn: &Connection, now: &str) -> Result<Vec<u64>> {
        let versions: Vec<u64> = conn
            .prepare(&format!(
                "SELECT version FROM main.\"{}\" WHERE status = 'running' ORDER BY id",
                self.history
            ))
            .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
            .context("cannot look for interrupted migrations")?;
        if !versions.is_empty() {
            conn.execute(
                &format!(
                    "UPDATE main.\"{}\" SET status = 'failed', error_message = ?1,
                            completed_at = ?2
                     WHERE status = 'running'",
                    self.history
                ),
                params![INTERRUPTED, now],
            )
            .context("cannot mark interrupted migrations")?;
        }
        Ok(versions)
    }
}
