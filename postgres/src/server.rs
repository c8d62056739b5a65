//! The host's side of a PostgreSQL database: its own session (the URL's role), the tracking
//! rows it reads and the attempts it records, the advisory lock, and each migration step's
//! session as the migrator role.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm_store::plan::Direction;
use hsm_store::tracking::{
    HistoryDirection, HistoryRow, HistoryStatus, INTERRUPTED, MigrationRow, RowStatus,
};
use postgres::Client;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::connect::{Target, random_secret};
use crate::guest::{GuestSession, Shared, lock};
use crate::schema::{Names, ident};

/// An open PostgreSQL database the host migrates.
pub struct Server {
    target: Target,
    client: Client,
    names: Names,
    migrator_password: String,
    app_role: String,
    locked: bool,
    /// `server_version_num`: settings newer servers have are asked for only there.
    version: i32,
}

/// Every role's and database's session defaults, as one text: a migration's `ALTER ROLE …
/// SET` or `ALTER DATABASE … SET` would reach the sessions of the migrations after it.
const SESSION_DEFAULTS: &str = "SELECT coalesce(pg_catalog.string_agg(s.setdatabase::pg_catalog.text \
    OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) s.setrole::pg_catalog.text \
    OPERATOR(pg_catalog.||) '=' OPERATOR(pg_catalog.||) \
    pg_catalog.array_to_string(s.setconfig, ','), ';' ORDER BY s.setdatabase, s.setrole), '') \
    FROM pg_catalog.pg_db_role_setting s";

/// The server's wait for one lock, in milliseconds, before the step fails and runs again.
const LOCK_TIMEOUT_MS: u128 = 2_000;

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

    fn schema(&self) -> String {
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
        let versions: Vec<u64> = rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect();
        for version in &versions {
            tracing::warn!(
                "migration {version} was interrupted: the process ended during the migration; \
                 PostgreSQL rolled it back, and its history row is now marked failed"
            );
        }
        Ok(versions)
    }

    /// Opens migration `version`'s step: its `running` history row and its secret on the
    /// host's session (committed), then a session of its own as the migrator role, with the
    /// transaction open, the application's role set and the step begun with the secret.
    pub fn open_step(
        &mut self,
        version: u64,
        direction: Direction,
        label: &str,
        deadline: Instant,
    ) -> Result<Step, Error> {
        let s = self.schema();
        let now = hsm_store::time::now_iso();
        let history_id: i64 = self
            .client
            .query_one(
                &format!(
                    "INSERT INTO {s}.migration_history (version, direction, status, started_at)
                     VALUES ($1, $2, 'running', $3) RETURNING id"
                ),
                &[&(version as i64), &direction.as_str(), &now],
            )
            .map_err(|e| Error::query("record the attempt", e))?
            .get(0);
        let secret = random_secret();
        let key_hash = Sha256::digest(secret.as_bytes()).to_vec();
        self.client
            .execute(
                &format!(
                    "INSERT INTO {s}.step_keys (key_hash, version, direction, history_id)
                     VALUES ($1, $2, $3, $4)"
                ),
                &[
                    &key_hash,
                    &(version as i64),
                    &direction.as_str(),
                    &history_id,
                ],
            )
            .map_err(|e| Error::query("register the step", e))?;
        let step = Step {
            shared: None,
            secret,
            key_hash,
            history_id,
            watchdog: None,
            defaults: String::new(),
        };
        // A session that could not open leaves the attempt recorded failed, not running.
        let keys = step.clone_keys();
        self.start_step(step, label, deadline).inspect_err(|error| {
            self.fail_step(keys, &error.to_string());
        })
    }

    fn start_step(
        &mut self,
        mut step: Step,
        label: &str,
        deadline: Instant,
    ) -> Result<Step, Error> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let ms = remaining.as_millis().max(1);
        // The deadline is the host's (a cancel request at it); these are the server's second
        // line. A short lock_timeout keeps a waiting ALTER from queueing the application's
        // queries behind it: the step runs again (see the host's retries).
        let mut options = format!(
            "-c statement_timeout={ms} -c lock_timeout={} \
             -c idle_in_transaction_session_timeout={ms} -c search_path=\"$user\",public",
            ms.min(LOCK_TIMEOUT_MS)
        );
        if self.version >= 140_000 {
            // A host killed mid-statement: the server notices within a second and rolls back.
            options.push_str(" -c client_connection_check_interval=1000");
        }
        step.defaults = self
            .client
            .query_one(SESSION_DEFAULTS, &[])
            .map_err(|e| Error::query("read the session defaults", e))?
            .get(0);
        let mut client =
            self.target
                .connect_as(&self.names.migrator, &self.migrator_password, &options)?;
        let s = self.schema();
        client
            .batch_execute(&format!("BEGIN; SET LOCAL ROLE {}", ident(&self.app_role)))
            .map_err(|e| Error::query("open the migration's transaction", e))?;
        client
            .execute(&format!("SELECT {s}.begin_step($1)"), &[&step.secret])
            .map_err(|e| Error::query("begin the step", e))?;
        let xid: String = client
            .query_one(
                "SELECT pg_catalog.pg_current_xact_id()::pg_catalog.text",
                &[],
            )
            .map_err(|e| Error::query("read the transaction id", e))?
            .get(0);
        step.watchdog = Some(Watchdog::arm(client.cancel_token(), deadline));
        step.shared = Some(Arc::new(Shared::new(
            client,
            xid,
            deadline,
            label.to_owned(),
        )));
        Ok(step)
    }

    /// Ends a step whose guest returned ok: checks the transaction is still the host's,
    /// gives what the migration made to the application's role, records it through the
    /// gated function, and commits. On any failure the step is rolled back and recorded
    /// failed.
    pub fn finish_step(&mut self, step: Step, recorded: &Recorded<'_>) -> Result<(), String> {
        let result = self.commit_step(&step, recorded);
        match result {
            Ok(()) => {
                self.forget_key(&step);
                Ok(())
            }
            Err(message) => {
                self.fail_step(step, &message);
                Err(message)
            }
        }
    }

    fn commit_step(&mut self, step: &Step, recorded: &Recorded<'_>) -> Result<(), String> {
        let shared = step.shared.as_ref().expect("started");
        if let Some(reason) = lock(&shared.ended).clone() {
            return Err(format!(
                "it ended hsm-host's transaction: {reason}; hsm-host stopped it there"
            ));
        }
        let s = self.schema();
        let mut client = lock(&shared.client);
        let now = hsm_store::time::now_iso();
        let describe = |e: postgres::Error| crate::errors::to_sql_error(&e).message;
        // The guest's settings end here: a statement_timeout of 1 ms or a search_path of its
        // own must not steer the host's statements below.
        client
            .batch_execute("RESET ALL; RESET ROLE")
            .map_err(describe)?;
        let defaults: String = client
            .query_one(SESSION_DEFAULTS, &[])
            .map_err(describe)?
            .get(0);
        if defaults != step.defaults {
            return Err(
                "it changed the session defaults of a role or of the database (ALTER ROLE/\
                 DATABASE … SET), which would reach the sessions of the migrations after it; \
                 the operator sets those, not a migration"
                    .into(),
            );
        }
        client
            .batch_execute(&format!(
                "REASSIGN OWNED BY {} TO {}",
                ident(&self.names.migrator),
                ident(&self.app_role)
            ))
            .map_err(describe)?;
        client
            .execute(
                &format!("SELECT {s}.finish_step($1, $2, $3, $4, $5)"),
                &[
                    &step.secret,
                    &recorded.name,
                    &recorded.description,
                    &recorded.checksum,
                    &now,
                ],
            )
            .map_err(describe)?;
        client.batch_execute("COMMIT").map_err(describe)
    }

    /// Rolls a step back (its session closes) and records the attempt failed with `message`.
    pub fn fail_step(&mut self, step: Step, message: &str) {
        if let Some(shared) = &step.shared {
            let _ = lock(&shared.client).batch_execute("ROLLBACK");
        }
        let now = hsm_store::time::now_iso();
        if let Err(e) = self.client.execute(
            &format!(
                "UPDATE {}.migration_history SET status = 'failed', error_message = $1,
                        completed_at = $2 WHERE id = $3",
                self.schema()
            ),
            &[&message, &now, &step.history_id],
        ) {
            tracing::error!(
                "cannot record the failed attempt: {}",
                crate::errors::describe(&e)
            );
        }
        self.forget_key(&step);
    }

    fn forget_key(&mut self, step: &Step) {
        let _ = self.client.execute(
            &format!(
                "DELETE FROM {}.step_keys WHERE key_hash = $1",
                self.schema()
            ),
            &[&step.key_hash],
        );
    }
}

/// What the `migrations` row of a step says.
pub struct Recorded<'a> {
    /// The migration's name.
    pub name: &'a str,
    /// Its description.
    pub description: &'a str,
    /// The sha256 of its component.
    pub checksum: &'a str,
}

/// One migration step's session, open.
pub struct Step {
    shared: Option<Arc<Shared>>,
    secret: String,
    key_hash: Vec<u8>,
    history_id: i64,
    watchdog: Option<Watchdog>,
    /// The session defaults before the step (see [`SESSION_DEFAULTS`]).
    defaults: String,
}

impl Step {
    /// The step's keys without its session (to record its failure).
    fn clone_keys(&self) -> Step {
        Step {
            shared: None,
            secret: self.secret.clone(),
            key_hash: self.key_hash.clone(),
            history_id: self.history_id,
            watchdog: None,
            defaults: String::new(),
        }
    }

    /// The guest's handle on the session, for [`hsm_sandbox::runtime::MigrationComponent::run_on_server`].
    pub fn guest(&self) -> Box<dyn hsm_sandbox::sql::ServerSql> {
        Box::new(GuestSession(Arc::clone(
            self.shared.as_ref().expect("started"),
        )))
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.watchdog.take();
    }
}

/// Cancels the step's running statement at its deadline (the server's `statement_timeout`
/// is the second line).
struct Watchdog {
    stop: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    fn arm(token: postgres::CancelToken, deadline: Instant) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let wait = deadline.saturating_duration_since(Instant::now());
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                let _ = token.cancel_query(postgres::NoTls);
            }
        });
        Self { stop }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}
