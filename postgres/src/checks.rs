//! The checks after a run on PostgreSQL. Constraints need none: the server enforces every
//! one at each statement (or at commit, when deferred), so a step that breaks one fails and
//! rolls back. What can still be wrong is the storage: where the `amcheck` extension is
//! installed, every B-tree index of the application's schemas is verified
//! (`bt_index_check`).

use crate::schema::ident;
use crate::{Error, Server};

/// What `amcheck` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amcheck {
    /// The extension is not installed in this database.
    NotInstalled,
    /// It is installed where the host will not call it, and why.
    Skipped(String),
    /// Every index checked; the corrupt ones with the server's message.
    Checked {
        /// How many B-tree indexes were checked.
        indexes: usize,
        /// `(index, message)` for each corrupt one.
        corrupt: Vec<(String, String)>,
    },
}

/// Runs `bt_index_check` on every valid B-tree index outside the system schemas (a
/// partitioned table's index has no storage of its own: its partitions' indexes are checked).
///
/// The host's session may be a superuser's, and a function it calls runs with its rights: it
/// calls amcheck only when the extension's schema and functions belong to a superuser and no
/// role the migrations act as may create in that schema (or it could replace the function
/// with its own before the next run).
pub fn amcheck(server: &mut Server) -> Result<Amcheck, Error> {
    let app = server.app_role.clone();
    let migrator = server.names.migrator.clone();
    let client = server.client_mut();
    let found = client
        .query(
            "SELECT n.nspname::text,
                    (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = n.nspowner),
                    pg_catalog.has_schema_privilege($1, n.oid, 'CREATE')
                      OR pg_catalog.has_schema_privilege($2, n.oid, 'CREATE')
                      OR pg_catalog.pg_has_role($1, n.nspowner, 'USAGE')
                      OR pg_catalog.pg_has_role($2, n.nspowner, 'USAGE'),
                    (SELECT pg_catalog.bool_and(r.rolsuper)
                       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
                      WHERE p.pronamespace = n.oid AND p.proname = 'bt_index_check')
               FROM pg_catalog.pg_extension e
               JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
              WHERE e.extname = 'amcheck'",
            &[&migrator, &app],
        )
        .map_err(|e| Error::query("look for amcheck", e))?;
    let Some(row) = found.first() else {
        return Ok(Amcheck::NotInstalled);
    };
    let schema: String = row.get(0);
    let owner_is_superuser: Option<bool> = row.get(1);
    let reachable: bool = row.get(2);
    let functions_by_superuser: Option<bool> = row.get(3);
    if reachable || owner_is_superuser != Some(true) || functions_by_superuser != Some(true) {
        return Ok(Amcheck::Skipped(format!(
            "amcheck is installed in the schema {schema:?}, which the migrations' role can \
             change: hsm-host does not call functions there. Install it in a schema of its own: \
             CREATE SCHEMA amcheck; CREATE EXTENSION amcheck SCHEMA amcheck (after DROP \
             EXTENSION amcheck)"
        )));
    }
    let indexes = client
        .query(
            "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname)
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_catalog.pg_am a ON a.oid = c.relam
              WHERE a.amname = 'btree' AND c.relkind = 'i' AND i.indisvalid AND i.indisready
                AND c.relpersistence <> 't'
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%'
              ORDER BY 2",
            &[],
        )
        .map_err(|e| Error::query("list the indexes to check", e))?;
    let check = format!(
        "SELECT {}.bt_index_check($1::pg_catalog.oid::pg_catalog.regclass)",
        ident(&schema)
    );
    let mut corrupt = Vec::new();
    for index in &indexes {
        let oid: postgres::types::Oid = index.get(0);
        let name: String = index.get(1);
        match client.execute(&check, &[&oid]) {
            Ok(_) => {}
            Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                return Ok(Amcheck::Skipped(format!(
                    "amcheck is installed but this role may not run it ({}): GRANT EXECUTE ON \
                     FUNCTION {}.bt_index_check(regclass) TO the host's role",
                    crate::errors::describe(&e),
                    ident(&schema)
                )));
            }
            // Dropped since it was listed (another session): nothing to check.
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => {}
            Err(e) => corrupt.push((name, crate::errors::describe(&e))),
        }
    }
    Ok(Amcheck::Checked {
        indexes: indexes.len(),
        corrupt,
    })
}
