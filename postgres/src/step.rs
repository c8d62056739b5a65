//! One migration step on PostgreSQL: its `running` row and secret on the host's session, its
//! own session as the migrator role with the transaction open, and its end: recorded through
//! the gated function and committed, or rolled back and recorded failed.

use std::sync::Arc;
use std::time::Instant;

use hsm_store::plan::Direction;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::connect::random_secret;
use crate::guest::{GuestSession, Shared, lock};
use crate::schema::ident;
use crate::server::Server;

/// The server's wait for one lock, in milliseconds, before the step fails and runs again.
const LOCK_TIMEOUT_MS: u128 = 2_000;

impl Server {
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
        let history_id = self.record_running(version, direction)?;
        let secret = random_secret();
        let key_hash = self.register_key(&secret, version, direction, Some(history_id))?;
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
        let options = self.session_options(deadline);
        step.defaults = self.guarded_state()?;
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
        step.watchdog = Some(
            Watchdog::on(&mut client, deadline, &self.target)
                .map_err(|e| Error::query("read the session's backend", e))?,
        );
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
        self.record(shared, &step.secret, &step.defaults, recorded, true)?;
        lock(&shared.client)
            .batch_execute("COMMIT")
            .map_err(|e| crate::errors::to_sql_error(&e).message)
    }

    /// Records the step on its own session, inside its transaction, once the guest is done:
    /// checks the transaction is still the host's and that no session default changed, gives
    /// what the migrator itself owns to the application's role, and calls the gated function.
    pub(crate) fn record(
        &self,
        shared: &Shared,
        secret: &str,
        state_before: &str,
        recorded: &Recorded<'_>,
        fire_deferred: bool,
    ) -> Result<(), String> {
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
        // Every cursor closes unread: a WITH HOLD cursor's query would otherwise run to its
        // end at COMMIT, after the checks below.
        client
            .batch_execute("CLOSE ALL; RESET ALL; RESET ROLE")
            .map_err(describe)?;
        client
            .execute(
                &format!("SELECT {s}.finish_step($1, $2, $3, $4, $5)"),
                &[
                    &secret,
                    &recorded.name,
                    &recorded.description,
                    &recorded.checksum,
                    &now,
                ],
            )
            .map_err(describe)?;
        // Deferred triggers run now, before the checks below, not at COMMIT after them (a
        // trigger made or changed by this migration is refused by the state check). A dry
        // run's next step must start with the constraints' own modes: it fires them once, at
        // its end (see `Rehearsal`).
        if fire_deferred {
            client
                .batch_execute("SET CONSTRAINTS ALL IMMEDIATE; CLOSE ALL; RESET ALL; RESET ROLE")
                .map_err(describe)?;
        }
        let state: String = client
            .query_one(&format!("SELECT {s}.guarded_state()"), &[])
            .map_err(describe)?
            .get(0);
        if state != state_before {
            return Err(
                "it changed what would reach the migrations and runs after it: a role's or the \
                 database's session defaults (ALTER ROLE/DATABASE … SET), the migrator's \
                 password or login, the database's connection limits, or a deferrable trigger \
                 or exclusion constraint (their code runs at COMMIT, after hsm-host's checks: \
                 make them NOT DEFERRABLE); those are the operator's to change"
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
        Ok(())
    }

    /// The digest of what a migration must not change (see `schema::guarded_state`), on
    /// the host's session.
    pub(crate) fn guarded_state(&mut self) -> Result<String, Error> {
        Ok(self
            .client
            .query_one(&format!("SELECT {}.guarded_state()", self.schema()), &[])
            .map_err(|e| Error::query("read the guarded state", e))?
            .get(0))
    }

    /// Registers a step's secret on the host's session; its hash.
    pub(crate) fn register_key(
        &mut self,
        secret: &str,
        version: u64,
        direction: Direction,
        history_id: Option<i64>,
    ) -> Result<Vec<u8>, Error> {
        let key_hash = Sha256::digest(secret.as_bytes()).to_vec();
        self.client
            .execute(
                &format!(
                    "INSERT INTO {}.step_keys (key_hash, version, direction, history_id)
                     VALUES ($1, $2, $3, $4)",
                    self.schema()
                ),
                &[
                    &key_hash,
                    &(version as i64),
                    &direction.as_str(),
                    &history_id,
                ],
            )
            .map_err(|e| Error::query("register the step", e))?;
        Ok(key_hash)
    }

    /// The connection options of a migrator session that must end by `deadline`.
    pub(crate) fn session_options(&self, deadline: Instant) -> String {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let ms = remaining.as_millis().max(1);
        // The deadline is the host's (a cancel request at it); these are the server's second
        // line. A short lock_timeout keeps a waiting ALTER from queueing the application's
        // queries behind it: the step runs again (see the host's retries).
        let mut options = format!(
            "-c statement_timeout={ms} -c lock_timeout={} \
             -c idle_in_transaction_session_timeout={ms} -c search_path=public",
            ms.min(LOCK_TIMEOUT_MS)
        );
        if self.version >= 140_000 {
            // A host killed mid-statement: the server notices within a second and rolls back.
            options.push_str(" -c client_connection_check_interval=1000");
        }
        options
    }

    /// Rolls a step back (its session closes) and records the attempt failed with `message`.
    pub fn fail_step(&mut self, step: Step, message: &str) {
        if let Some(shared) = &step.shared {
            let _ = lock(&shared.client).batch_execute("ROLLBACK");
        }
        self.record_failed(step.history_id, message);
        self.forget_key(&step);
    }

    /// Writes an attempt's `running` history row on the host's session (committed); its id.
    pub(crate) fn record_running(
        &mut self,
        version: u64,
        direction: Direction,
    ) -> Result<i64, Error> {
        let now = hsm_store::time::now_iso();
        Ok(self
            .client
            .query_one(
                &format!(
                    "INSERT INTO {}.migration_history (version, direction, status, started_at)
                     VALUES ($1, $2, 'running', $3) RETURNING id",
                    self.schema()
                ),
                &[&(version as i64), &direction.as_str(), &now],
            )
            .map_err(|e| Error::query("record the attempt", e))?
            .get(0))
    }

    /// Marks attempt `history_id` failed with `message`.
    pub(crate) fn record_failed(&mut self, history_id: i64, message: &str) {
        let now = hsm_store::time::now_iso();
        if let Err(e) = self.client.execute(
            &format!(
                "UPDATE {}.migration_history SET status = 'failed', error_message = $1,
                        completed_at = $2 WHERE id = $3",
                self.schema()
            ),
            &[&message, &now, &history_id],
        ) {
            tracing::error!(
                "cannot record the failed attempt: {}",
                crate::errors::describe(&e)
            );
        }
    }

    /// Records a migration that ran outside a transaction, on the host's session: its
    /// `migrations` row and its attempt's success, in one transaction.
    pub(crate) fn record_outside(
        &mut self,
        version: u64,
        direction: Direction,
        history_id: i64,
        recorded: &Recorded<'_>,
    ) -> Result<(), Error> {
        let s = self.schema();
        let now = hsm_store::time::now_iso();
        let version = version as i64;
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::query("begin", e))?;
        let row = match direction {
            Direction::Up => tx.execute(
                &format!(
                    "INSERT INTO {s}.migrations (version, name, description, applied_at,
                                                 status, checksum)
                     VALUES ($1, $2, $3, $4, 'applied', $5)
                     ON CONFLICT (version) DO UPDATE SET
                       name = excluded.name, description = excluded.description,
                       applied_at = excluded.applied_at, rolled_back_at = NULL,
                       backup_path = NULL, status = 'applied', error_message = NULL,
                       checksum = excluded.checksum"
                ),
                &[
                    &version,
                    &recorded.name,
                    &recorded.description,
                    &now,
                    &recorded.checksum,
                ],
            ),
            Direction::Down => tx.execute(
                &format!(
                    "UPDATE {s}.migrations SET status = 'rolled_back', rolled_back_at = $2
                      WHERE version = $1"
                ),
                &[&version, &now],
            ),
        };
        row.and_then(|_| {
            tx.execute(
                &format!(
                    "UPDATE {s}.migration_history SET status = 'success', completed_at = $1
                      WHERE id = $2"
                ),
                &[&now, &history_id],
            )
        })
        .map_err(|e| Error::query("record the migration", e))?;
        tx.commit().map_err(|e| Error::query("commit", e))
    }

    fn forget_key(&mut self, step: &Step) {
        self.forget_keys(std::slice::from_ref(&step.key_hash));
    }

    /// Removes registered secrets (the step is over).
    pub(crate) fn forget_keys(&mut self, keys: &[Vec<u8>]) {
        for key in keys {
            let _ = self.client.execute(
                &format!(
                    "DELETE FROM {}.step_keys WHERE key_hash = $1",
                    self.schema()
                ),
                &[key],
            );
        }
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
pub(crate) struct Watchdog {
    stop: std::sync::mpsc::Sender<()>,
}

/// How long a cancelled statement has to return before its session is ended.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Watchdog {
    /// Cancels the session's statement at `deadline`; if the session is still busy
    /// [`CANCEL_GRACE`] later (a migration that catches the cancel, and turned the server's
    /// own timeouts off), ends its backend from a session of the host's.
    /// [`Watchdog::arm`] on `client`'s session (its backend read first).
    pub(crate) fn on(
        client: &mut postgres::Client,
        deadline: Instant,
        host: &crate::connect::Target,
    ) -> Result<Self, postgres::Error> {
        let backend: i32 = client
            .query_one("SELECT pg_catalog.pg_backend_pid()", &[])?
            .get(0);
        Ok(Self::arm(
            client.cancel_token(),
            deadline,
            host.clone(),
            backend,
        ))
    }

    fn arm(
        token: postgres::CancelToken,
        deadline: Instant,
        host: crate::connect::Target,
        backend: i32,
    ) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let timed_out = |wait| {
                matches!(
                    stopped.recv_timeout(wait),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                )
            };
            if !timed_out(deadline.saturating_duration_since(Instant::now())) {
                return;
            }
            let _ = token.cancel_query(postgres::NoTls);
            if !timed_out(CANCEL_GRACE) {
                return;
            }
            tracing::warn!(
                "the migration kept its session busy past its deadline and the cancel; \
                 hsm-host ends that session (backend {backend})"
            );
            if let Ok(mut client) = host.connect() {
                let _ = client.execute("SELECT pg_catalog.pg_terminate_backend($1)", &[&backend]);
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
