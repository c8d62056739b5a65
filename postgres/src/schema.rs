//! What `hsm-host pg init` makes, once, with a superuser's URL: the roles, the tracking schema
//! and the functions that alone write its rows from a migration's session.
//!
//! - `<schema>_owner_<db>` (NOLOGIN) owns the schema, its tables and functions; the host's
//!   role is made a member, the migrator never is.
//! - `<schema>_migrator_<db>` (LOGIN, no attributes, a password only the host reads from the
//!   schema) is the session every guest statement runs on; a member of the application's role
//!   (which owns the application's tables), nothing more.
//! - The tracking rows are written on the migrator's session, inside the migration's
//!   transaction, by SECURITY DEFINER functions that refuse without the step's secret, which
//!   the host registers on its own session before the step and never gives the guest. A
//!   deferred constraint trigger on the step's row fails any commit the host did not make.

use postgres::Client;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::connect::random_secret;

/// Version of what `init` makes (kept in the schema's settings).
pub const SCHEMA_VERSION: &str = "1";

/// The names of the schema and the roles for one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The tracking schema (`hsm`, or the tracking prefix).
    pub schema: String,
    /// The role owning the schema.
    pub owner: String,
    /// The role guest SQL logs in as.
    pub migrator: String,
}

impl Names {
    /// The names for `schema` in database `database` (roles are the cluster's, so they carry
    /// the database's name).
    pub fn new(schema: &str, database: &str) -> Self {
        let db = role_part(database);
        Self {
            schema: schema.to_owned(),
            owner: format!("{schema}_owner_{db}"),
            migrator: format!("{schema}_migrator_{db}"),
        }
    }
}

/// A database name as part of a role name: lowercase letters, digits and `_`, short enough
/// for PostgreSQL's 63 bytes, and told apart by a hash when anything was changed.
fn role_part(database: &str) -> String {
    let clean: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if clean == database {
        return clean;
    }
    let hash = hex::encode(&Sha256::digest(database.as_bytes())[..4]);
    format!("{clean}_{hash}")
}

/// `"name"`, quoted for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, quoted for SQL.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What `init` was asked for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The tracking schema.
    pub schema: String,
    /// The role that owns the application's tables (the migrator acts as it); `None`: the
    /// database's owner.
    pub app_role: Option<String>,
    /// The role the host will connect as; `None`: the role of the init URL.
    pub host_role: Option<String>,
}

/// What `init` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    /// The database.
    pub database: String,
    /// The tracking schema.
    pub schema: String,
    /// The application's role.
    pub app_role: String,
    /// The role the host connects as.
    pub host_role: String,
    /// The migrator role.
    pub migrator_role: String,
    /// The schema owner role.
    pub owner_role: String,
}

/// Makes (or brings up to date) the roles, schema, tables and functions, in one transaction.
pub fn init(client: &mut Client, options: &InitOptions) -> Result<InitReport, Error> {
    let row = client
        .query_one(
            "SELECT current_database()::text, session_user::text, r.rolsuper,
                    pg_get_userbyid(d.datdba)::text
               FROM pg_roles r, pg_database d
              WHERE r.rolname = session_user AND d.datname = current_database()",
            &[],
        )
        .map_err(|e| Error::query("read who is connected", e))?;
    let (database, session, superuser, db_owner): (String, String, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if !superuser {
        return Err(Error::Usage(format!(
            "pg init makes roles and SECURITY DEFINER functions, so it needs a superuser's URL; \
             {session} is not one"
        )));
    }
    let names = Names::new(&options.schema, &database);
    let app = options.app_role.clone().unwrap_or(db_owner);
    let host = options.host_role.clone().unwrap_or(session);
    let mut tx = client.transaction().map_err(|e| Error::query("begin", e))?;
    let role = |tx: &mut postgres::Transaction<'_>,
                name: &str|
     -> Result<Option<(bool, bool, bool)>, Error> {
        tx.query_opt(
            "SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = $1",
            &[&name],
        )
        .map(|row| row.map(|r| (r.get(0), r.get(1), r.get(2))))
        .map_err(|e| Error::query("read the roles", e))
    };
    match role(&mut tx, &app)? {
        Some((true, _, _)) | Some((_, true, _)) | Some((_, _, true)) => {
            return Err(Error::Usage(format!(
                "the application's role {app} is a superuser or may create roles or bypass row \
                 security; migrations act as that role, so it would be no boundary: pass \
                 --app-role with a role that owns the application's tables and nothing more \
                 (a database owned by a superuser needs one: CREATE ROLE app NOLOGIN; ALTER \
                 DATABASE … OWNER TO app)"
            )));
        }
        Some(_) => {}
        None => exec(&mut tx, &format!("CREATE ROLE {} NOLOGIN", ident(&app)))?,
    }
    if role(&mut tx, &host)?.is_none() {
        return Err(Error::Usage(format!(
            "the host role {host} does not exist: create it (LOGIN, with a password) first"
        )));
    }
    let reaches_host: bool = tx
        .query_one("SELECT pg_has_role($1, $2, 'MEMBER')", &[&app, &host])
        .map(|row| row.get(0))
        .map_err(|e| Error::query("read the roles", e))?;
    if reaches_host {
        return Err(Error::Usage(format!(
            "migrations act as {app}, which is (or is a member of) the host role {host}: they \
             could then write the tracking tables; connect the host as another role \
             (--host-role) than the one that owns the application's tables"
        )));
    }
    let password = random_secret();
    let attributes = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT LOGIN";
    let migrator = ident(&names.migrator);
    let owner = ident(&names.owner);
    let schema = ident(&names.schema);
    if role(&mut tx, &names.migrator)?.is_none() {
        exec(&mut tx, &format!("CREATE ROLE {migrator} {attributes}"))?;
    }
    exec(
        &mut tx,
        &format!(
            "ALTER ROLE {migrator} {attributes} PASSWORD {}",
            literal(&password)
        ),
    )?;
    if role(&mut tx, &names.owner)?.is_none() {
        exec(&mut tx, &format!("CREATE ROLE {owner} NOLOGIN"))?;
    }
    let app_q = ident(&app);
    let host_q = ident(&host);
    let script = format!(
        "GRANT {app_q} TO {migrator};
         GRANT {owner} TO {host_q};
         GRANT CONNECT ON DATABASE {db} TO {migrator};
         GRANT CREATE ON DATABASE {db} TO {owner};
         GRANT USAGE, CREATE ON SCHEMA public TO {app_q};
         CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner};
         GRANT {migrator} TO {host_q};
         SET LOCAL ROLE {owner};
         {objects}
         RESET ROLE;
         {guarded}
         REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
         GRANT USAGE ON SCHEMA {schema} TO {migrator}, {app_q};
         REVOKE ALL ON FUNCTION {schema}.begin_step(text), {schema}.finish_step(text, text, text, text, text), {schema}.check_step() FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION {schema}.begin_step(text), {schema}.finish_step(text, text, text, text, text) TO {migrator}, {app_q};
         REVOKE ALL ON FUNCTION {schema}.guarded_state() FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION {schema}.guarded_state() TO {migrator}, {app_q}, {owner};",
        db = ident(&database),
        objects = objects(&names.schema),
        guarded = guarded_state(&names, &app),
    );
    tx.batch_execute(&script)
        .map_err(|e| Error::query("make the hsm schema", e))?;
    for (key, value) in [
        ("schema_version", SCHEMA_VERSION),
        ("migrator_role", names.migrator.as_str()),
        ("migrator_password", password.as_str()),
        ("app_role", app.as_str()),
        ("owner_role", names.owner.as_str()),
    ] {
        tx.execute(
            &format!(
                "INSERT INTO {schema}.settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            &[&key, &value],
        )
        .map_err(|e| Error::query("record the settings", e))?;
    }
    tx.commit().map_err(|e| Error::query("commit", e))?;
    Ok(InitReport {
        database,
        schema: names.schema.clone(),
        app_role: app,
        host_role: host,
        migrator_role: names.migrator,
        owner_role: names.owner,
    })
}

fn exec(tx: &mut postgres::Transaction<'_>, sql: &str) -> Result<(), Error> {
    tx.batch_execute(sql)
        .map_err(|e| Error::query("make the roles", e))
}

/// `guarded_state()`: a digest of what a migration must not change because it would reach the
/// sessions and runs after it: every role's and database's session defaults, the migrator's,
/// owner's and application role's login row (password, expiry, connection limit), the
/// database's connection settings and privileges (who may connect), and the deferrable triggers (with their functions' code)
/// and deferrable exclusion constraints, whose code would run at COMMIT, after the host's
/// checks. It reads `pg_authid`, so the superuser running `init` owns it (SECURITY DEFINER,
/// no arguments, a fixed search_path); it returns only a digest.
fn guarded_state(names: &Names, app: &str) -> String {
    let s = ident(&names.schema);
    let roles = [names.migrator.as_str(), names.owner.as_str(), app]
        .map(literal)
        .join(", ");
    format!(
        r#"CREATE OR REPLACE FUNCTION {s}.guarded_state() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
SELECT encode(sha256(convert_to(concat_ws('|',
  (SELECT string_agg(d.setdatabase::text || '/' || d.setrole::text || '=' ||
                     array_to_string(d.setconfig, ','), ';' ORDER BY d.setdatabase, d.setrole)
     FROM pg_db_role_setting d),
  (SELECT string_agg(a.rolname || ':' || coalesce(a.rolpassword, '') || ':' ||
                     coalesce(a.rolvaliduntil::text, '') || ':' || a.rolconnlimit::text || ':' ||
                     a.rolcanlogin::text, ';' ORDER BY a.rolname)
     FROM pg_authid a WHERE a.rolname IN ({roles})),
  (SELECT b.datconnlimit::text || ':' || b.datallowconn::text || ':' ||
          b.datistemplate::text || ':' || coalesce(b.datacl::text, '')
     FROM pg_database b WHERE b.datname = current_database()),
  (SELECT string_agg(t.oid::text || ':' || t.tgfoid::text || ':' || md5(p.prosrc), ';'
                     ORDER BY t.oid)
     FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE t.tgdeferrable AND NOT t.tgisinternal),
  (SELECT string_agg(c.oid::text, ';' ORDER BY c.oid)
     FROM pg_constraint c WHERE c.condeferrable AND c.contype = 'x')
), 'UTF8')), 'hex')
$f$;"#
    )
}

/// The tables and functions of the tracking schema (run as its owner).
fn objects(schema: &str) -> String {
    let s = ident(schema);
    format!(
        r#"
CREATE TABLE IF NOT EXISTS {s}.migrations (
  version bigint PRIMARY KEY,
  name text NOT NULL,
  description text,
  applied_at text NOT NULL,
  rolled_back_at text,
  backup_path text,
  status text NOT NULL DEFAULT 'applied',
  error_message text
);
ALTER TABLE {s}.migrations ADD COLUMN IF NOT EXISTS checksum text;
CREATE TABLE IF NOT EXISTS {s}.migration_history (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  version bigint NOT NULL,
  direction text NOT NULL,
  status text NOT NULL,
  backup_path text,
  error_message text,
  started_at text NOT NULL,
  completed_at text
);
CREATE TABLE IF NOT EXISTS {s}.settings (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.step_keys (
  key_hash bytea PRIMARY KEY,
  version bigint NOT NULL,
  direction text NOT NULL,
  history_id bigint,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.steps (
  xid text NOT NULL,
  key_hash bytea NOT NULL,
  finished boolean NOT NULL DEFAULT false,
  PRIMARY KEY (xid, key_hash)
);
CREATE OR REPLACE FUNCTION {s}.begin_step(secret text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  h bytea := sha256(convert_to(secret, 'UTF8'));
BEGIN
  IF NOT EXISTS (SELECT 1 FROM {s}.step_keys WHERE key_hash = h) THEN
    RAISE EXCEPTION 'refused: only hsm-host opens a migration step' USING ERRCODE = '42501';
  END IF;
  INSERT INTO {s}.steps (xid, key_hash) VALUES (pg_current_xact_id()::text, h);
END
$f$;
CREATE OR REPLACE FUNCTION {s}.finish_step(secret text, p_name text, p_description text,
                                           p_checksum text, p_now text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  h bytea := sha256(convert_to(secret, 'UTF8'));
  k {s}.step_keys%ROWTYPE;
BEGIN
  SELECT * INTO k FROM {s}.step_keys WHERE key_hash = h;
  IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM {s}.steps
                               WHERE xid = pg_current_xact_id()::text AND key_hash = h
                                 AND NOT finished) THEN
    RAISE EXCEPTION 'refused: only hsm-host records a migration' USING ERRCODE = '42501';
  END IF;
  IF k.direction = 'up' THEN
    INSERT INTO {s}.migrations (version, name, description, applied_at, rolled_back_at,
                                backup_path, status, error_message, checksum)
    VALUES (k.version, p_name, p_description, p_now, NULL, NULL, 'applied', NULL, p_checksum)
    ON CONFLICT (version) DO UPDATE SET
      name = excluded.name, description = excluded.description,
      applied_at = excluded.applied_at, rolled_back_at = NULL, backup_path = NULL,
      status = 'applied', error_message = NULL, checksum = excluded.checksum;
  ELSE
    UPDATE {s}.migrations SET status = 'rolled_back', rolled_back_at = p_now
     WHERE version = k.version;
  END IF;
  UPDATE {s}.migration_history SET status = 'success', completed_at = p_now
   WHERE id = k.history_id;
  UPDATE {s}.steps SET finished = true
   WHERE xid = pg_current_xact_id()::text AND key_hash = h;
END
$f$;
CREATE OR REPLACE FUNCTION {s}.check_step() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
  IF EXISTS (SELECT 1 FROM {s}.steps WHERE xid = NEW.xid AND key_hash = NEW.key_hash
                                       AND NOT finished) THEN
    RAISE EXCEPTION 'refused: a commit hsm-host did not make (the migration had not finished)'
      USING ERRCODE = '42501';
  END IF;
  DELETE FROM {s}.steps WHERE xid = NEW.xid AND key_hash = NEW.key_hash;
  RETURN NULL;
END
$f$;
DROP TRIGGER IF EXISTS step_finished ON {s}.steps;
CREATE CONSTRAINT TRIGGER step_finished AFTER INSERT ON {s}.steps
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {s}.check_step();
"#
    )
}
