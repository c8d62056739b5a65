//! URLs, connections and secrets.

use std::os::unix::ffi::OsStrExt;
use std::str::FromStr;
use std::time::Duration;

use postgres::{Client, Config, NoTls};

use crate::Error;

/// Whether `database` names a PostgreSQL server rather than a SQLite file.
pub fn is_server_url(database: &str) -> bool {
    database.starts_with("postgresql://") || database.starts_with("postgres://")
}

/// A server URL, parsed; shown without its password.
#[derive(Clone)]
pub struct Target {
    config: Config,
    shown: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Target {
    /// Parses `url` (`postgresql://user:password@host:port/database?…`). Parts it leaves out
    /// come from the `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and `PGDATABASE` variables, as
    /// libpq's tools take them.
    pub fn parse(url: &str) -> Result<Self, Error> {
        // The URL's text is never shown: a password with an unescaped `/`, `?` or `@`, or
        // spelled `%70assword=`, would survive any rewriting of it. What is shown is made from
        // what was parsed.
        let mut config = Config::from_str(url).map_err(|e| {
            let scheme = url.split("://").next().unwrap_or("postgresql");
            Error::Usage(format!(
                "cannot read the database URL ({scheme}://…): {}",
                hsm_store::text::neutralize(&e.to_string(), 200)
            ))
        })?;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if config.get_hosts().is_empty() {
            config.host(&env("PGHOST").unwrap_or_else(|| "localhost".into()));
        }
        if config.get_ports().is_empty()
            && let Some(port) = env("PGPORT").and_then(|p| p.parse().ok())
        {
            config.port(port);
        }
        if config.get_user().is_none() {
            config.user(&env("PGUSER").unwrap_or_else(|| "postgres".into()));
        }
        if config.get_password().is_none()
            && let Some(password) = env("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_dbname().is_none() {
            let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").into());
            config.dbname(&db);
        }
        config.application_name("hsm-host");
        config.connect_timeout(Duration::from_secs(10));
        // The host's own session resolves every unqualified name in pg_catalog alone: a
        // function a migration planted in `public` (a better match for an untyped parameter,
        // or first in a search_path it set on the database) never runs as the host.
        config.options("-c search_path=pg_catalog");
        Ok(Self {
            shown: shown(&config),
            config,
        })
    }

    /// What makes two URLs the same database: its hosts, port and name (not the role,
    /// the password or the options).
    pub fn identity(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|host| match host {
                postgres::config::Host::Tcp(name) => match name.as_str() {
                    "127.0.0.1" | "::1" => "localhost".to_owned(),
                    other => other.to_ascii_lowercase(),
                },
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!(
            "{}:{}/{}",
            hosts.join(","),
            self.config.get_ports().first().copied().unwrap_or(5432),
            self.database()
        )
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// libpq's variables for the same role, server and database, for the client tools
    /// (`pg_dump`): the password travels in the environment, never on a command line.
    pub(crate) fn libpq_env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let mut env = Vec::new();
        if let Some(host) = self.config.get_hosts().first() {
            env.push((
                "PGHOST",
                match host {
                    postgres::config::Host::Tcp(name) => name.into(),
                    postgres::config::Host::Unix(path) => path.clone().into_os_string(),
                },
            ));
        }
        if let Some(port) = self.config.get_ports().first() {
            env.push(("PGPORT", port.to_string().into()));
        }
        if let Some(user) = self.config.get_user() {
            env.push(("PGUSER", user.into()));
        }
        if let Some(password) = self.config.get_password() {
            env.push((
                "PGPASSWORD",
                std::ffi::OsStr::from_bytes(password).to_owned(),
            ));
        }
        env.push(("PGDATABASE", self.database().into()));
        env
    }

    /// Connects as the URL's role.
    pub fn connect(&self) -> Result<Client, Error> {
        self.config.connect(NoTls).map_err(|e| Error::Connect {
            target: self.shown.clone(),
            reason: crate::errors::describe(&e),
        })
    }

    /// Connects to the same server and database as `role`, with `options` (`-c name=value`
    /// settings that outrank the role's and the database's own defaults).
    pub(crate) fn connect_as(
        &self,
        role: &str,
        password: &str,
        options: &str,
    ) -> Result<Client, Error> {
        let mut config = self.config.clone();
        config
            .user(role)
            .password(password)
            .options(options)
            .application_name("hsm-host migration");
        config.connect(NoTls).map_err(|e| Error::Connect {
            target: format!("{} as {role}", self.shown),
            reason: crate::errors::describe(&e),
        })
    }
}

/// `postgresql://user@host:port/database`, from what was parsed (never the password).
fn shown(config: &Config) -> String {
    let host = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config
        .get_ports()
        .first()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    let password = if config.get_password().is_some() {
        ":***"
    } else {
        ""
    };
    hsm_store::text::neutralize(
        &format!(
            "postgresql://{}{password}@{host}{port}/{}",
            config.get_user().unwrap_or_default(),
            config.get_dbname().unwrap_or_default()
        ),
        200,
    )
}

/// 32 random bytes as hex, from the kernel.
pub(crate) fn random_secret() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("the kernel's random source is readable");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_however_the_url_spells_them() {
        for url in [
            "postgresql://app:s3cret@db.example:5432/app",
            "postgresql://postgres:s3cret/x@localhost:5432/appdb",
            "postgresql://postgres:s3cret?x@localhost:5432/appdb",
            "postgres://db/app?user=x&password=s3cret",
            "postgres://db/app?user=x&passwor%64=s3cret",
            "postgres://db/app?%70assword=s3cret&port=5432",
        ] {
            match Target::parse(url) {
                Ok(target) => assert!(!target.to_string().contains("s3cret"), "{target}"),
                Err(error) => assert!(!error.to_string().contains("s3cret"), "{error}"),
            }
        }
        let shown = Target::parse("postgresql://app:s3cret@db.example:5433/app").unwrap();
        assert_eq!(
            shown.to_string(),
            "postgresql://app:***@db.example:5433/app"
        );
        assert!(is_server_url("postgres://x"));
        assert!(!is_server_url("./data/app.db"));
    }
}
