//! Migrations that run outside a transaction: `CREATE INDEX CONCURRENTLY`, `DROP INDEX
//! CONCURRENTLY`, `REINDEX … CONCURRENTLY`, which PostgreSQL refuses inside one. A migration
//! asks for it with its tool's no-transaction marker and holds exactly one such statement
//! (nothing else can then be half-done). It runs on a migrator session of its own, as the
//! application's role; its tracking rows are written on the host's session once it succeeded.
//! A `CREATE INDEX CONCURRENTLY` that fails leaves an INVALID index behind: the next attempt
//! reports it and drops it first.

use std::time::Instant;

use hsm_store::plan::Direction;

use crate::schema::ident;
use crate::server::Server;
use crate::split;
use crate::step::{Recorded, Watchdog};

/// The statement of a migration that runs outside a transaction, or why it may not.
pub fn outside_statement(sql: &str) -> Result<String, String> {
    let all = split::statements(sql);
    let [statement] = all.as_slice() else {
        return Err(format!(
            "asks to run outside a transaction, so it must hold exactly one CREATE INDEX \
             CONCURRENTLY, DROP INDEX CONCURRENTLY or REINDEX … CONCURRENTLY statement (it \
             holds {}): what else it does belongs in a migration of its own, which runs in a \
             transaction",
            all.len()
        ));
    };
    if let Some(reason) = split::refusal(statement.text) {
        return Err(reason);
    }
    // The words before the index's name (REINDEX takes an option list in parentheses).
    let words: Vec<String> = statement
        .text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .take(10)
        .map(str::to_ascii_lowercase)
        .collect();
    let concurrent = matches!(
        split::first_word(statement.text).as_str(),
        "create" | "drop" | "reindex"
    ) && words.iter().any(|w| w == "index")
        && words.iter().any(|w| w == "concurrently");
    if !concurrent {
        return Err(
            "asks to run outside a transaction, which hsm-host does only for CREATE INDEX \
             CONCURRENTLY, DROP INDEX CONCURRENTLY and REINDEX … CONCURRENTLY: remove the \
             marker, and it runs in a transaction like any other"
                .into(),
        );
    }
    Ok(statement.text.to_owned())
}

/// The index a `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name` makes.
fn created_index(statement: &str) -> Option<String> {
    let tokens: Vec<&str> = statement.split_whitespace().collect();
    let at = tokens
        .iter()
        .position(|t| t.eq_ignore_ascii_case("concurrently"))?;
    let mut rest = tokens[at + 1..].iter();
    let mut name = rest.next()?;
    if name.eq_ignore_ascii_case("if") {
        rest.next(); // NOT
        rest.next(); // EXISTS
        name = rest.next()?;
    }
    (!name.eq_ignore_ascii_case("on")).then(|| name.to_string())
}

impl Server {
    /// Runs `statement` (see [`outside_statement`]) for migration `version` outside a
    /// transaction, then records it. Errors are the operator's message.
    pub fn run_outside_transaction(
        &mut self,
        version: u64,
        direction: Direction,
        statement: &str,
        deadline: Instant,
        recorded: &Recorded<'_>,
    ) -> Result<(), String> {
        let describe = |e: crate::Error| e.to_string();
        let history_id = self.record_running(version, direction).map_err(describe)?;
        let outcome = self.run_outside(statement, deadline);
        let outcome = outcome.and_then(|()| {
            self.record_outside(version, direction, history_id, recorded)
                .map_err(describe)
        });
        if let Err(message) = &outcome {
            self.record_failed(history_id, message);
        }
        outcome
    }

    fn run_outside(&mut self, statement: &str, deadline: Instant) -> Result<(), String> {
        let describe = |e: postgres::Error| crate::errors::to_sql_error(&e).message;
        let options = self.session_options(deadline);
        let mut client = self
            .target
            .connect_as(&self.names.migrator, &self.migrator_password, &options)
            .map_err(|e| e.to_string())?;
        client
            .batch_execute(&format!("SET ROLE {}", ident(&self.app_role)))
            .map_err(describe)?;
        if let Some(index) = created_index(statement) {
            let invalid: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                                     WHERE i.indexrelid OPERATOR(pg_catalog.=)
                                           pg_catalog.to_regclass($1)
                                       AND NOT i.indisvalid)",
                    &[&index],
                )
                .map_err(describe)?
                .get(0);
            if invalid {
                tracing::warn!(
                    "the index {index} an earlier attempt left INVALID is dropped before \
                     it is made again"
                );
                client
                    .batch_execute(&format!("DROP INDEX CONCURRENTLY {index}"))
                    .map_err(describe)?;
            }
        }
        let backend: i32 = client
            .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
            .map_err(describe)?
            .get(0);
        let _watchdog = Watchdog::arm(
            client.cancel_token(),
            deadline,
            self.target.clone(),
            backend,
        );
        client.execute(statement, &[]).map_err(|e| {
            let mut message = describe(e);
            if created_index(statement).is_some() {
                message.push_str(
                    "; the index may be left INVALID: hsm-host drops it when the migration \
                     runs again",
                );
            }
            message
        })?;
        client
            .batch_execute(&format!(
                "RESET ROLE; REASSIGN OWNED BY {} TO {}",
                ident(&self.names.migrator),
                ident(&self.app_role)
            ))
            .map_err(describe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_concurrent_index_statement_runs_outside_a_transaction() {
        assert!(
            outside_statement("-- no-transaction\nCREATE INDEX CONCURRENTLY a ON t (x);").is_ok()
        );
        assert!(outside_statement("DROP INDEX CONCURRENTLY IF EXISTS a").is_ok());
        assert!(outside_statement("REINDEX (VERBOSE) INDEX CONCURRENTLY a").is_ok());
        assert!(
            outside_statement("CREATE TABLE a (x int); CREATE INDEX CONCURRENTLY a ON t (x)")
                .is_err()
        );
        assert!(outside_statement("CREATE TABLE a (x int)").is_err());
        assert!(outside_statement("COMMIT").is_err());
        assert_eq!(
            created_index(
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email)"
            ),
            Some("users_email".into())
        );
        assert_eq!(
            created_index("CREATE INDEX CONCURRENTLY ON users (email)"),
            None
        );
    }
}
