//! Directories for several databases at once, as gobuffalo/pop and Ory's popx lay them out:
//! `<version>_<name>[.<dialect>][.autocommit].(up|down).sql`, one file per dialect of a
//! version (`.sqlite3.`, `.postgres.`, `.mysql.`, `.cockroach.`), or none for every dialect.
//! For SQLite, a version's `sqlite3` (or `sqlite`) file wins over its dialect-less one; the
//! others are not SQLite's. Versions are compared as text, and are often 20 digits long.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::parts::{Layout, Parts, SetError, error};
use super::versions::clean_name;
use crate::tool::Tool;

/// A file of such a directory, as its name says.
struct PopFile {
    version: String,
    name: String,
    /// `None`: for every dialect.
    dialect: Option<String>,
    autocommit: bool,
    up: bool,
}

/// Dialects as pop names them, with their other spellings.
fn canonical(dialect: &str) -> Option<&'static str> {
    Some(match dialect {
        "sqlite3" | "sqlite" => "sqlite3",
        "postgres" | "postgresql" | "pg" => "postgres",
        "cockroach" | "cockroachdb" | "crdb" => "cockroach",
        "mysql" | "mariadb" => "mysql",
        _ => return None,
    })
}

/// `^(\d+)_([^.]+)(\.[a-z0-9]+)?(|\.autocommit)\.(up|down)\.sql$`, as popx reads names.
fn parse(file_name: &str) -> Option<PopFile> {
    let stem = file_name.strip_suffix(".sql")?;
    let (rest, up) = match (stem.strip_suffix(".up"), stem.strip_suffix(".down")) {
        (Some(rest), _) => (rest, true),
        (_, Some(rest)) => (rest, false),
        _ => return None,
    };
    let (rest, autocommit) = match rest.strip_suffix(".autocommit") {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    let (id, dialect) = match rest.split_once('.') {
        Some((id, dialect)) => (id, Some(dialect)),
        None => (rest, None),
    };
    let (version, name) = id.split_once('_')?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !version.bytes().all(|b| b.is_ascii_digit()) || version.is_empty() {
        return None;
    }
    if dialect.is_some_and(|d| !plain(d)) {
        return None;
    }
    Some(PopFile {
        version: version.to_owned(),
        name: name.to_owned(),
        dialect: dialect.map(str::to_owned),
        autocommit,
        up,
    })
}

/// The number of a pop version: itself when SQLite can hold it; a 20-digit time stamp of this
/// century (`20191100000001000003`: year, month, day, time, a counter) without its leading
/// `20`, which keeps the order of such versions and changes no number as the set grows.
pub(crate) fn number(version: &str) -> Result<u64, String> {
    if let Ok(n) = version.parse::<i64>() {
        return Ok(n as u64);
    }
    match version.strip_prefix("20") {
        Some(rest) if version.len() == 20 => rest.parse().map_err(|e| format!("{e}")),
        _ => Err(format!(
            "version `{version}` is longer than SQLite's integers and is not a 20-digit time \
             stamp of this century (20YYMMDDhhmmss and a 6-digit counter)"
        )),
    }
}

/// The SQLite migrations of `dir` if it is such a directory (some file names a dialect),
/// by version.
pub(super) fn read(dir: &Path) -> Result<Option<BTreeMap<u64, Parts>>, SetError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| error(dir, e.to_string()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut unread: Vec<String> = Vec::new();
    let files: Vec<(String, PopFile)> = names
        .into_iter()
        .filter_map(|name| match parse(&name) {
            Some(file) => Some((name, file)),
            None => {
                if name.ends_with(".sql") {
                    unread.push(crate::text::neutralize(&name, 96));
                }
                None
            }
        })
        .collect();
    let dialects = files
        .iter()
        .filter_map(|(_, f)| f.dialect.as_deref())
        .any(|d| canonical(d).is_some());
    if !dialects {
        return Ok(None);
    }
    if !unread.is_empty() {
        // pop skips names its pattern does not match; so does hsm-host, but says so.
        tracing::warn!(
            "{}: not named as pop names migrations (`<version>_<name>[.<dialect>][.autocommit].up.sql`), \
             so not read: {}",
            dir.display(),
            unread.join(", ")
        );
    }
    // Per version and direction, SQLite's own file, else the one for every dialect.
    let mut chosen: BTreeMap<(String, bool), (PathBuf, &PopFile)> = BTreeMap::new();
    for (name, file) in &files {
        let path = dir.join(name);
        match file.dialect.as_deref() {
            Some(d) if canonical(d) == Some("sqlite3") => {
                let key = (file.version.clone(), file.up);
                if let Some((other, other_file)) = chosen.get(&key)
                    && other_file.dialect.is_some()
                {
                    return Err(error(
                        &path,
                        format!(
                            "is a second SQLite file of version {} beside `{}`: keep one",
                            file.version,
                            other.display()
                        ),
                    ));
                }
                chosen.insert(key, (path, file));
            }
            Some(d) if canonical(d).is_none() => {
                return Err(error(
                    &path,
                    format!("names the dialect `{d}`, which pop does not know"),
                ));
            }
            Some(_) => {}
            None => {
                chosen
                    .entry((file.version.clone(), file.up))
                    .or_insert((path, file));
            }
        }
    }
    let mut by_version: BTreeMap<u64, Parts> = BTreeMap::new();
    let mut order: Vec<(&str, u64)> = Vec::new();
    for ((version, up), (path, file)) in &chosen {
        let number = number(version).map_err(|reason| error(path, reason))?;
        if file.autocommit {
            tracing::info!(
                "{}: runs inside hsm-host's transaction, as every migration: SQLite's schema \
                 changes are transactional (popx's autocommit is for databases whose are not)",
                path.display()
            );
        }
        let parts = by_version.entry(number).or_default();
        parts.layout = Some(Layout::Tool(Tool::Pop));
        if *up {
            parts.id = format!("{version}_{}", file.name);
            parts.name = clean_name(&file.name, number);
            parts.up = Some(path.clone());
            order.push((version, number));
        } else {
            parts.down = Some(path.clone());
        }
    }
    // pop compares versions as text: the numbers must keep that order.
    order.sort();
    if let Some(pair) = order.windows(2).find(|w| w[0].1 >= w[1].1) {
        return Err(error(
            dir,
            format!(
                "versions `{}` and `{}` are of different lengths: pop runs them in the order of \
                 their text, which their numbers cannot keep",
                pair[0].0, pair[1].0
            ),
        ));
    }
    Ok(Some(by_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_as_pop_reads_them() {
        let f = parse("20191100000001000003_identities.sqlite3.up.sql").unwrap();
        assert_eq!(
            (
                f.version.as_str(),
                f.name.as_str(),
                f.dialect.as_deref(),
                f.up
            ),
            ("20191100000001000003", "identities", Some("sqlite3"), true)
        );
        let f = parse("20241029153900000001_identities.autocommit.down.sql").unwrap();
        assert!(f.autocommit && !f.up && f.dialect.is_none());
        assert!(parse("1_a.b.c.up.sql").is_none());
        assert!(parse("x_a.up.sql").is_none());
        assert_eq!(number("20191100000001000003"), Ok(191100000001000003));
        assert_eq!(number("20240101120000"), Ok(20240101120000));
        assert!(number("99999999999999999999").is_err());
    }
}
