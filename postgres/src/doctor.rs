//! `hsm-host pg doctor`: whether the migrator role is the boundary `pg init` meant it to be,
//! and what it could still reach.

use postgres::Client;

use crate::Error;
use crate::server::Server;

/// What the doctor found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Checkup {
    /// Why the migrator role is no boundary: each a reason to refuse to migrate.
    pub refusals: Vec<String>,
    /// What a migration could still reach (installed extensions that open connections or
    /// read files), for the operator to judge.
    pub reachable: Vec<String>,
    /// The roles a migration acts as (the migrator and every role it is a member of).
    pub acts_as: Vec<String>,
}

/// Predefined roles whose rights cross the database's boundary.
const DANGEROUS_ROLES: &[&str] = &[
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_signal_backend",
    "pg_checkpoint",
];

/// Extensions through which SQL reaches beyond the database.
const REACHING_EXTENSIONS: &[&str] = &[
    "dblink",
    "postgres_fdw",
    "file_fdw",
    "adminpack",
    "plpython3u",
    "plperlu",
];

/// Checks the migrator role of `server`.
pub fn check(server: &mut Server) -> Result<Checkup, Error> {
    let migrator = server.names().migrator.clone();
    let owner = server.names().owner.clone();
    let client = server.client_mut();
    check_role(client, &migrator, &owner)
}

fn check_role(client: &mut Client, migrator: &str, owner: &str) -> Result<Checkup, Error> {
    let q = |e| Error::query("read the roles", e);
    let mut checkup = Checkup::default();
    let roles = client
        .query(
            "SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
                    r.rolreplication, r.rolbypassrls
               FROM pg_roles r WHERE pg_has_role($1, r.oid, 'MEMBER') ORDER BY 1",
            &[&migrator],
        )
        .map_err(q)?;
    for row in &roles {
        let name: String = row.get(0);
        let attributes = [
            (row.get::<_, bool>(1), "is a superuser"),
            (row.get(2), "may create roles (and grant itself any role)"),
            (row.get(3), "may create databases"),
            (row.get(4), "may replicate"),
            (row.get(5), "bypasses row security"),
        ];
        for (has, what) in attributes {
            if has {
                checkup
                    .refusals
                    .push(format!("migrations act as {name}, which {what}"));
            }
        }
        if DANGEROUS_ROLES.contains(&name.as_str()) {
            checkup.refusals.push(format!(
                "migrations act as {name}, which reads or writes the server's files, runs \
                 programs or reaches other sessions"
            ));
        }
        if name == owner {
            checkup.refusals.push(format!(
                "migrations act as {owner}, which owns the tracking tables"
            ));
        }
        checkup.acts_as.push(name);
    }
    let extensions = client
        .query(
            "SELECT extname::text FROM pg_extension WHERE extname = ANY($1) ORDER BY 1",
            &[&REACHING_EXTENSIONS],
        )
        .map_err(|e| Error::query("read the extensions", e))?;
    for row in extensions {
        let name: String = row.get(0);
        checkup.reachable.push(format!(
            "the {name} extension is installed: a migration with rights on its functions can \
             reach beyond this database through it"
        ));
    }
    Ok(checkup)
}
