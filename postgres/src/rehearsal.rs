//! Dry runs on PostgreSQL: every step of the run on one migrator session, in one transaction
//! the host rolls back at the end. PostgreSQL's DDL is transactional, so what a dry run shows
//! is what the run would do, and nothing of it stays. Between steps the session is reset
//! (settings, role, temp objects, prepared statements, cursors, LISTENs, advisory locks), so
//! one author's state does not reach the next even here.

use std::sync::Arc;
use std::time::Instant;

use hsm_sandbox::sql::ServerSql;
use hsm_store::plan::Direction;

use crate::Error;
use crate::connect::random_secret;
use crate::guest::{GuestSession, Shared, lock};
use crate::schema::ident;
use crate::server::Server;
use crate::step::{Recorded, Watchdog};

/// A dry run's session and the secrets of its steps.
pub struct Rehearsal {
    shared: Arc<Shared>,
    keys: Vec<Vec<u8>>,
    /// The running step's secret and the session defaults before it.
    current: Option<(String, String)>,
    watchdog: Option<Watchdog>,
}

impl Server {
    /// Opens a dry run's session, its transaction open, to end by `deadline` at the latest.
    pub fn open_rehearsal(&mut self, deadline: Instant) -> Result<Rehearsal, Error> {
        let options = self.session_options(deadline);
        let mut client =
            self.target
                .connect_as(&self.names.migrator, &self.migrator_password, &options)?;
        let xid: String = client
            .batch_execute("BEGIN")
            .and_then(|()| {
                client.query_one(
                    "SELECT pg_catalog.pg_current_xact_id()::pg_catalog.text",
                    &[],
                )
            })
            .map_err(|e| Error::query("open the dry run's transaction", e))?
            .get(0);
        Ok(Rehearsal {
            shared: Arc::new(Shared::new(client, xid, deadline, String::new())),
            keys: Vec::new(),
            current: None,
            watchdog: None,
        })
    }

    /// Begins step `version` of the dry run: the session reset and acting as the application's
    /// role, the step begun with a fresh secret. Returns the guest's handle on the session.
    pub fn rehearse_step(
        &mut self,
        rehearsal: &mut Rehearsal,
        version: u64,
        direction: Direction,
        label: &str,
        deadline: Instant,
    ) -> Result<Box<dyn ServerSql>, Error> {
        let secret = random_secret();
        rehearsal
            .keys
            .push(self.register_key(&secret, version, direction, None)?);
        let defaults = self.guarded_state()?;
        let ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1);
        {
            let mut client = lock(&rehearsal.shared.client);
            client
                .batch_execute(&format!(
                    "RESET ALL; RESET ROLE; DISCARD TEMP; DEALLOCATE ALL; CLOSE ALL; UNLISTEN *;
                     SELECT pg_catalog.pg_advisory_unlock_all();
                     SET statement_timeout = {ms}; SET LOCAL ROLE {}",
                    ident(&self.app_role)
                ))
                .map_err(|e| Error::query("reset the dry run's session", e))?;
            client
                .execute(
                    &format!("SELECT {}.begin_step($1)", self.schema()),
                    &[&secret],
                )
                .map_err(|e| Error::query("begin the step", e))?;
            rehearsal.watchdog = Some(
                Watchdog::on(&mut client, deadline, &self.target)
                    .map_err(|e| Error::query("read the session's backend", e))?,
            );
        }
        rehearsal.shared.next_step(deadline, label.to_owned());
        rehearsal.current = Some((secret, defaults));
        Ok(Box::new(GuestSession(Arc::clone(&rehearsal.shared))))
    }

    /// Ends a dry run's step whose guest returned ok, as a run would record it (inside the
    /// transaction that is rolled back).
    pub fn end_rehearsed_step(
        &mut self,
        rehearsal: &mut Rehearsal,
        recorded: &Recorded<'_>,
    ) -> Result<(), String> {
        rehearsal.watchdog = None;
        let (secret, defaults) = rehearsal.current.take().expect("a step was begun");
        self.record(&rehearsal.shared, &secret, &defaults, recorded, false)
    }

    /// Checks the dry run's deferred constraints (a deferred foreign key, say) as its COMMIT
    /// would: what the run would fail with at its last step's commit.
    pub fn check_rehearsal(
        &mut self,
        rehearsal: &mut Rehearsal,
        deadline: Instant,
    ) -> Result<(), String> {
        let mut client = lock(&rehearsal.shared.client);
        // The triggers that fire here are bounded like a step.
        rehearsal.watchdog = Some(
            Watchdog::on(&mut client, deadline, &self.target)
                .map_err(|e| crate::errors::to_sql_error(&e).message)?,
        );
        client
            .batch_execute("SET CONSTRAINTS ALL IMMEDIATE")
            .map_err(|e| crate::errors::to_sql_error(&e).message)
    }

    /// Rolls the dry run back and forgets its secrets.
    pub fn close_rehearsal(&mut self, rehearsal: Rehearsal) {
        let _ = lock(&rehearsal.shared.client).batch_execute("ROLLBACK");
        self.forget_keys(&rehearsal.keys);
    }
}
