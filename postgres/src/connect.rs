//! URLs, connections and secrets.

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
        let mut config = Config::from_str(url).map_err(|e| {
            Error::Usage(format!("cannot read the database URL {}: {e}", redact(url)))
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
        Ok(Self {
            shown: redact(url),
            config,
        })
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
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

/// `url` without its password.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            let tail = hide_password_parameter(tail);
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{}", hide_password_parameter(tail)),
    }
}

fn hide_password_parameter(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
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
    fn passwords_never_show() {
        assert_eq!(
            redact("postgresql://app:s3cret@db.example:5432/app"),
            "postgresql://app:***@db.example:5432/app"
        );
        assert_eq!(
            redact("postgres://db/app?user=x&password=s3cret"),
            "postgres://db/app?user=x&password=***"
        );
        assert_eq!(redact("postgresql://app@db/app"), "postgresql://app@db/app");
        assert!(is_server_url("postgres://x"));
        assert!(!is_server_url("./data/app.db"));
    }
}
