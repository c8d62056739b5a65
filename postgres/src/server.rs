//! The host's side of a PostgreSQL database: its own session (the URL's role), the tracking
//! rows it reads, interrupted attempts, and the advisory lock. Each migration step's session
//! is `step.rs`.

use std::time::{Duration, Instant};

use hsm_store::tracking::{
    HistoryDirection, HistoryRow, HistoryStatus, INTERRUPTED, MigrationRow, RowStatus,
};
use postgres::Client;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::connect::Target;
use crate::schema::{Names, ident};

/// An open PostgreSQL database the host migrates.
pub struct Server {
    pub(crate) target: Target,
    pub(crate) client: Client,
    pub(crate) names: Names,
    pub(crate) migrator_password: String,
    pub(crate) app_role: String,
    locked: bool,
    /// `server_version_num`: settings newer servers have are asked for only there.
    pub(crate) version: i32,
}

/// How often a waiting `up` asks for the lock again.
const LOCK_POLL: Duration = Duration::from_millis(200);

impl Server {
    /// Connects as the URL's role and reads what `pg init` recorded in `schema`.
    ///
    /// # Errors
    /// [`Error::Connect`]; [`Error::NotInitialized`] when `pg init` has not run (or the
    /// role cannot read the schema).
    pub fn open(target: &Target, schema: &str) -> Result<Self, Error> {
        let mut client = target.connect()?;
        let names = Names::new(schema, target.database());
        let s = ident(schema);
        let settings = client
            .query(&format!("SELECT key, value FROM {s}.settings"), &[])
            .map_err(|e| Error::NotInitialized {
                target: target.to_string(),
                schema: schema.to_owned(),
                reason: crate::errors::describe(&e),
            })?;
        let setting = |key: &str| {
            settings
                .iter()
                .find(|row| row.get::<_, String>(0) == key)
                .map(|row| row.get::<_, String>(1))
                .ok_or_else(|| Error::NotInitialized {
                    target: target.to_string(),
                    schema: schema.to_owned(),
                    reason: format!("its settings have no {key}"),
                })
        };
        let migrator_password = setting("migrator_password")?;
        let app_role = setting("app_role")?;
        let names = Names {
            migrator: setting("migrator_role")?,
            owner: setting("owner_role")?,
            ..names
        };
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .map_err(|e| Error::query("read the server's version", e))?
            .get(0);
        Ok(Self {
            target: target.clone(),
            client,
            names,
            migrator_password,
            app_role,
            locked: false,
            version,
        })
    }

    /// The URL, without its password.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The schema and role names.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The role the application's tables belong to (migrations act as it).
    pub fn app_role(&self) -> &str {
        &self.app_role
    }

    pub(crate) fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    pub(crate) fn schema(&self) -> String {
        ident(&self.names.schema)
    }

    /// Takes the migration lock: a session advisory lock, asked for again every 200 ms until
    /// `wait` has passed (a blocking `pg_advisory_lock` would deadlock with another session's
    /// `CREATE INDEX CONCURRENTLY`). Held until this server is dropped.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process holds it for all of `wait`.
    pub fn lock(&mut self, wait: Duration) -> Result<(), Error> {
        let key = self.lock_key();
        let until = Instant::now() + wait;
        loop {
            let got: bool = self
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .map_err(|e| Error::query("take the migration lock", e))?
                .get(0);
            if got {
                self.locked = true;
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(Error::Locked {
                    target: self.target.to_string(),
                });
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// The advisory lock's key: the schema's name, hashed, so two schemas of one database
    /// migrate independently.
    fn lock_key(&self) -> i64 {
        let digest = Sha256::digest(format!("hsm-host:{}", self.names.schema).as_bytes());
        i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    /// Every `migrations` row, by version.
    pub fn migrations(&mut self) -> Result<Vec<MigrationRow>, Error> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT version, name, description, applied_at, rolled_back_at, backup_path,
                            status, error_message, checksum
                       FROM {}.migrations ORDER BY version",
                    self.schema()
                ),
                &[],
            )
            .map_err(|e| Error::query("read the migrations table", e))?;
        rows.iter()
            .map(|row| {
                Ok(MigrationRow {
                    version: row.get::<_, i64>(0) as u64,
                    name: row.get(1),
                    description: row.get(2),
                    applied_at: row.get(3),
                    rolled_back_at: row.get(4),
                    backup_path: row.get(5),
                    status: RowStatus::from_column(row.get(6)),
                    error_message: row.get(7),
                    checksum: row.get(8),
                })
            })
            .collect()
    }

    /// The newest `limit` history rows, newest first.
    pub fn history(&mut self, limit: i64) -> Result<Vec<HistoryRow>, Error> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT id, version, direction, status, backup_path, error_message,
                            started_at, completed_at
                       FROM {}.migration_history ORDER BY id DESC LIMIT $1",
                    self.schema()
                ),
                &[&limit],
            )
            .map_err(|e| Error::query("read the history table", e))?;
        rows.iter()
            .map(|row| {
                Ok(HistoryRow {
                    id: row.get(0),
                    version: row.get::<_, i64>(1) as u64,
                    direction: HistoryDirection::from_column(row.get(2)),
                    status: HistoryStatus::from_column(row.get(3)),
                    backup_path: row.get(4),
                    error_message: row.get(5),
                    started_at: row.get(6),
                    completed_at: row.get(7),
                })
            })
            .collect()
    }

    /// Marks attempts left `running` by a process that died as failed; their versions. Only
    /// under the lock (no live process is running them then).
    pub fn recover_interrupted(&mut self) -> Result<Vec<u64>, Error> {
        assert!(self.locked, "recover_interrupted runs under the lock");
        let now = hsm_store::time::now_iso();
        let rows = self
            .client
            .query(
                &format!(
                    "UPDATE {s}.migration_history SET status = 'failed', error_message = $1,
                            completed_at = $2
                      WHERE status = 'running' RETURNING version",
                    s = self.schema()
                ),
                &[&INTERRUPTED, &now],
            )
            .map_err(|e| Error::query("record interrupted attempts", e))?;
        let _ = self
            .client
            .execute(&format!("DELETE FROM {}.step_keys", self.schema()), &[]);
        // Under the lock no run of ours has a migrator session: one still there belongs to a
        // process that died while its migration kept the server busy. It is ended (its
        // transaction rolls back), or it would hold its locks and its half-done work.
        let ended: i64 = self
            .client
            .query_one(
                "SELECT pg_catalog.count(pg_catalog.pg_terminate_backend(a.pid))
                   FROM pg_catalog.pg_stat_activity a
                  WHERE a.usename OPERATOR(pg_catalog.=) $1::pg_catalog.name
                    AND a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()",
                &[&self.names.migrator],
            )
            .map_err(|e| Error::query("end a dead run's migrator sessions", e))?
            .get(0);
        if ended > 0 {
            tracing::warn!(
                "{ended} migrator session(s) of an earlier run were still running (their process \
                 had died); hsm-host ended them and PostgreSQL rolled their work back"
            );
        }
        let versions: Vec<u64> = rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect();
        for version in &versions {
            tracing::warn!(
                "migration {version} was interrupted: the process ended during the migration; \
                 PostgreSQL rolled it back, and its history row is now marked failed"
            );
        }
        Ok(versions)
    }
}

impl Server {
    /// Records migrations as applied without running them (`baseline`), each with an
    /// `adopted` history row, in one transaction on the host's session. Versions already
    /// recorded are the caller's to leave out.
    pub fn record_adopted(
        &mut self,
        migrations: &[(u64, crate::Recorded<'_>)],
    ) -> Result<(), Error> {
        let s = self.schema();
        let now = hsm_store::time::now_iso();
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::query("begin", e))?;
        for (version, recorded) in migrations {
            let version = *version as i64;
            tx.execute(
                &format!(
                    "INSERT INTO {s}.migrations (version, name, description, applied_at, status,
                                                 checksum)
                     VALUES ($1, $2, $3, $4, 'applied', $5)"
                ),
                &[
                    &version,
                    &recorded.name,
                    &recorded.description,
                    &now,
                    &recorded.checksum,
                ],
            )
            .and_then(|_| {
                tx.execute(
                    &format!(
                        "INSERT INTO {s}.migration_history (version, direction, status,
                                                            started_at, completed_at)
                         VALUES ($1, 'up', 'adopted', $2, $2)"
                    ),
                    &[&version, &now],
                )
            })
            .map_err(|e| Error::query("record the baseline", e))?;
        }
        tx.commit()
            .map_err(|e| Error::query("commit the baseline", e))
    }
}

impl Server {
    /// Sets the recorded checksum of applied migrations (`repair`), in one transaction.
    pub fn set_checksums(&mut self, checksums: &[(u64, String)]) -> Result<(), Error> {
        let s = self.schema();
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::query("begin", e))?;
        for (version, checksum) in checksums {
            tx.execute(
                &format!(
                    "UPDATE {s}.migrations SET checksum = $1
                      WHERE version = $2 AND status = 'applied'"
                ),
                &[checksum, &(*version as i64)],
            )
            .map_err(|e| Error::query("record the accepted checksum", e))?;
        }
        tx.commit()
            .map_err(|e| Error::query("commit the repair", e))
    }
}

impl Server {
    /// The columns of `table` in the `public` schema, where the other tools keep their
    /// history (none when there is no such table).
    pub fn public_columns(&mut self, table: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .client
            .query(
                "SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)
                    AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
                  ORDER BY a.attnum",
                &[&format!("public.{}", ident(table))],
            )
            .map_err(|e| Error::query("read another tool's history table", e))?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    /// Each row of `sql` (read only, on the host's session) as text: numbers in decimal,
    /// booleans as 1 or 0, NULL as `None`.
    pub fn texts(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, Error> {
        let rows = self
            .client
            .query(sql, &[])
            .map_err(|e| Error::query("read another tool's history", e))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        let read: crate::values::Read = row
                            .try_get(i)
                            .map_err(|e| Error::query("read another tool's history", e))?;
                        Ok(read.into_text())
                    })
                    .collect()
            })
            .collect()
    }
}
