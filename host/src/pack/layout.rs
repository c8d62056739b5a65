//! SQL migration sets as the common tools lay them out, read into [`SqlMigration`]s:
//!
//! | layout | files | down |
//! |---|---|---|
//! | diesel | `<version>_<name>/up.sql` | `down.sql` beside it |
//! | golang-migrate, sqlx (reversible) | `<version>_<name>.up.sql` | `<version>_<name>.down.sql` |
//! | sqlx (simple) | `<version>_<name>.sql` | none: irreversible |
//! | dbmate | `<version>_<name>.sql` with `-- migrate:up` | its `-- migrate:down` section |
//! | goose | `<version>_<name>.sql` with `-- +goose Up` | its `-- +goose Down` section |
//! | Flyway, refinery | `V<version>__<name>.sql` | Flyway's `U<version>__<name>.sql` |
//!
//! A missing down makes a migration irreversible; an empty or comment-only one is a reversible
//! no-op. Versions keep the tools' order: digits only, so `2024-03-13-170000` is
//! 20240313170000. The original id stays in the description.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SqlMigration;

/// The layouts hsm-host reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    Diesel,
    /// `.up.sql`/`.down.sql` pairs: golang-migrate, and sqlx's reversible migrations.
    UpDown,
    /// sqlx's single `<version>_<name>.sql`.
    Sqlx,
    Dbmate,
    Goose,
    /// `V<version>__<name>.sql`: Flyway and refinery.
    Flyway,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Diesel => "diesel",
            Layout::UpDown => "golang-migrate",
            Layout::Sqlx => "sqlx",
            Layout::Dbmate => "dbmate",
            Layout::Goose => "goose",
            Layout::Flyway => "flyway",
        }
    }
}

/// What is wrong with a SQL set: the file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetError {
    pub path: PathBuf,
    pub reason: String,
}

fn error(path: &Path, reason: impl Into<String>) -> SetError {
    SetError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// One migration's files as found, before they are read.
#[derive(Default)]
struct Parts {
    layout: Option<Layout>,
    id: String,
    name: String,
    up: Option<PathBuf>,
    down: Option<PathBuf>,
}

/// The SQL migrations of `dir`, by version (empty when it holds none). `.wasm` files and
/// anything that is not a migration file are left alone.
pub fn read(dir: &Path) -> Result<Vec<SqlMigration>, SetError> {
    let mut by_version: BTreeMap<u64, Parts> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| error(dir, e.to_string()))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| error(dir, e.to_string()))?;
    paths.sort();
    for path in paths {
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            let up = path.join("up.sql");
            if !up.is_file() {
                continue;
            }
            if is_empty_initial_setup(file_name, &up)? {
                tracing::info!(
                    "{}: diesel's initial setup has no SQL for SQLite; skipped",
                    path.display()
                );
                continue;
            }
            let (version, id, name) = split_id(&path, file_name, "_")?;
            let down = Some(path.join("down.sql")).filter(|d| d.is_file());
            add(
                &mut by_version,
                &path,
                version,
                Parts {
                    layout: Some(Layout::Diesel),
                    id,
                    name,
                    up: Some(up),
                    down,
                },
            )?;
            continue;
        }
        let Some(stem) = file_name.strip_suffix(".sql") else {
            continue;
        };
        if let Some(stem) = stem.strip_suffix(".up") {
            let (version, id, name) = split_id(&path, stem, "_")?;
            let parts = by_version.entry(version).or_default();
            check_same(&path, parts, Layout::UpDown, &id)?;
            *parts = Parts {
                layout: Some(Layout::UpDown),
                id,
                name,
                up: Some(path.clone()),
                down: parts.down.take(),
            };
        } else if let Some(stem) = stem.strip_suffix(".down") {
            let (version, id, name) = split_id(&path, stem, "_")?;
            let parts = by_version.entry(version).or_default();
            check_same(&path, parts, Layout::UpDown, &id)?;
            parts.layout = Some(Layout::UpDown);
            parts.id = id;
            parts.name = name;
            parts.down = Some(path.clone());
        } else if let Some(rest) = stem.strip_prefix('V').filter(|r| r.contains("__")) {
            let (version, id, name) = split_id(&path, rest, "__")?;
            let parts = by_version.entry(version).or_default();
            check_same(&path, parts, Layout::Flyway, &id)?;
            parts.layout = Some(Layout::Flyway);
            parts.id = format!("V{id}");
            parts.name = name;
            parts.up = Some(path.clone());
        } else if let Some(rest) = stem.strip_prefix('U').filter(|r| r.contains("__")) {
            let (version, _, _) = split_id(&path, rest, "__")?;
            let parts = by_version.entry(version).or_default();
            check_same(&path, parts, Layout::Flyway, &parts.id.clone())?;
            parts.layout = Some(Layout::Flyway);
            parts.down = Some(path.clone());
        } else if stem.starts_with("R__") {
            tracing::warn!(
                "{}: Flyway's repeatable migrations are not supported; skipped",
                path.display()
            );
        } else if stem.starts_with(|c: char| c.is_ascii_digit()) {
            let (version, id, name) = split_id(&path, stem, "_")?;
            let layout = single_file_layout(&path)?;
            add(
                &mut by_version,
                &path,
                version,
                Parts {
                    layout: Some(layout),
                    id,
                    name,
                    up: Some(path.clone()),
                    down: None,
                },
            )?;
        }
    }
    by_version
        .into_iter()
        .map(|(version, parts)| load(version, parts))
        .collect()
}

/// diesel's `00000000000000_diesel_initial_setup`, made for PostgreSQL's helper functions: in
/// SQLite projects its files hold only comments. Version 0 is not a version hsm-host can use.
fn is_empty_initial_setup(dir_name: &str, up: &Path) -> Result<bool, SetError> {
    let all_zero = dir_name
        .split_once('_')
        .is_some_and(|(version, _)| !version.is_empty() && version.chars().all(|c| c == '0'));
    Ok(all_zero && crate::sql::script_is_empty(&read_sql(up)?))
}

/// `<version><sep><name>` → (version, original id, name).
fn split_id(path: &Path, text: &str, separator: &str) -> Result<(u64, String, String), SetError> {
    let (version, name) = text.split_once(separator).unwrap_or((text, ""));
    if version.contains('.') || (separator == "__" && version.contains('_')) {
        return Err(error(
            path,
            format!(
                "version `{version}` has parts; hsm-host versions are whole numbers (rename \
                 the file, e.g. V{}__…)",
                version.replace(['.', '_'], "")
            ),
        ));
    }
    let digits: String = version.chars().filter(char::is_ascii_digit).collect();
    let number = digits
        .parse::<u64>()
        .ok()
        .filter(|v| *v > 0 && i64::try_from(*v).is_ok())
        .ok_or_else(|| {
            error(
                path,
                format!(
                    "`{version}` is not a usable version: versions are whole numbers from 1 to \
                     {}",
                    i64::MAX
                ),
            )
        })?;
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.trim_matches('_').is_empty() {
        format!("migration_{number}")
    } else {
        name
    };
    Ok((number, text.to_owned(), name))
}

fn check_same(path: &Path, parts: &Parts, layout: Layout, id: &str) -> Result<(), SetError> {
    match parts.layout {
        Some(other) if other != layout || (!parts.id.is_empty() && !parts.id.ends_with(id)) => {
            Err(error(
                path,
                format!(
                    "its version is also used by `{}` ({}): versions must be unique",
                    parts.id,
                    other.as_str()
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn add(
    by_version: &mut BTreeMap<u64, Parts>,
    path: &Path,
    version: u64,
    parts: Parts,
) -> Result<(), SetError> {
    if let Some(other) = by_version.get(&version) {
        return Err(error(
            path,
            format!(
                "its version {version} is also used by `{}`: versions must be unique",
                other.id
            ),
        ));
    }
    by_version.insert(version, parts);
    Ok(())
}

/// A single `<version>_<name>.sql`: dbmate or goose by their markers, else sqlx's simple form.
fn single_file_layout(path: &Path) -> Result<Layout, SetError> {
    let text = read_sql(path)?;
    Ok(if find_marker(&text, &["-- migrate:up"]).is_some() {
        Layout::Dbmate
    } else if find_marker(&text, &["-- +goose up"]).is_some() {
        Layout::Goose
    } else {
        Layout::Sqlx
    })
}

fn read_sql(path: &Path) -> Result<String, SetError> {
    let bytes = std::fs::read(path).map_err(|e| error(path, e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| error(path, "is not UTF-8 text"))?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text))
}

/// The byte offset of the line that starts with one of `markers` (case-insensitive, spaces
/// after `--` optional), and the offset just past that line.
fn find_marker(text: &str, markers: &[&str]) -> Option<(usize, usize)> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let normal = normalize_comment(line);
        if markers
            .iter()
            .any(|m| normal.starts_with(&normalize_comment(m)))
        {
            return Some((at, at + line.len()));
        }
        at += line.len();
    }
    None
}

/// `--  +Goose   Up` → `--+goose up`: markers are matched loosely, as the tools do.
fn normalize_comment(line: &str) -> String {
    let line = line.trim().to_ascii_lowercase();
    let rest = line.strip_prefix("--").unwrap_or(&line).trim_start();
    format!(
        "--{}",
        rest.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

fn load(version: u64, parts: Parts) -> Result<SqlMigration, SetError> {
    let layout = parts.layout.expect("set with every part");
    let Some(up_path) = parts.up else {
        let down = parts.down.unwrap_or_default();
        return Err(error(&down, "has no up file beside it"));
    };
    let text = read_sql(&up_path)?;
    let (up, down) = match layout {
        Layout::Diesel | Layout::UpDown | Layout::Flyway => {
            let down = parts.down.as_deref().map(read_sql).transpose()?;
            (text, down)
        }
        Layout::Sqlx => (text, None),
        Layout::Dbmate => sections(&text, &["-- migrate:up"], &["-- migrate:down"]),
        Layout::Goose => {
            let (up, down) = sections(&text, &["-- +goose up"], &["-- +goose down"]);
            (strip_goose(&up), down.map(|d| strip_goose(&d)))
        }
    };
    let header = header_comment(&up);
    let origin = format!("{} migration `{}`", layout.as_str(), parts.id);
    let description = if header.is_empty() {
        origin
    } else {
        format!("{header} ({origin})")
    };
    Ok(SqlMigration {
        version,
        name: parts.name,
        description,
        up,
        down,
        source: up_path,
    })
}

/// The up section (after `up`, before `down`) and the down section, if any.
fn sections(text: &str, up: &[&str], down: &[&str]) -> (String, Option<String>) {
    let start = find_marker(text, up).map_or(0, |(_, after)| after);
    match find_marker(&text[start..], down) {
        Some((at, after)) => (
            text[start..start + at].to_owned(),
            Some(text[start + after..].to_owned()),
        ),
        None => (text[start..].to_owned(), None),
    }
}

/// goose's statement markers and options are comments for goose, not SQL: dropped (the
/// statement splitter keeps a trigger whole on its own).
fn strip_goose(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|line| !normalize_comment(line).starts_with("--+goose"))
        .collect()
}

/// The comment lines a file starts with, as one sentence (a description).
fn header_comment(sql: &str) -> String {
    let mut words = Vec::new();
    for line in sql.lines() {
        let line = line.trim();
        if line.is_empty() {
            if words.is_empty() {
                continue;
            }
            break;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        words.push(comment.trim().to_owned());
    }
    words.join(" ").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, text: &str) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn every_layout_is_read_in_version_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "2024-03-13-170000_create_users/up.sql",
            "-- Users.\nCREATE TABLE users (id INTEGER PRIMARY KEY);",
        );
        write(
            d,
            "2024-03-13-170000_create_users/down.sql",
            "DROP TABLE users;",
        );
        write(
            d,
            "20240314000000_add_posts.up.sql",
            "CREATE TABLE posts (id INTEGER);",
        );
        write(
            d,
            "20240314000000_add_posts.down.sql",
            "-- nothing to undo\n",
        );
        write(
            d,
            "20240315000000_seed.sql",
            "INSERT INTO users VALUES (1);",
        );
        write(
            d,
            "20240316000000_tags.sql",
            "-- migrate:up\nCREATE TABLE tags (t);\n-- migrate:down\nDROP TABLE tags;\n",
        );
        write(
            d,
            "20240317000000_notes.sql",
            "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE notes (n);\n-- +goose StatementEnd\n\n-- +goose Down\nDROP TABLE notes;\n",
        );
        write(d, "V20240318000000__flags.sql", "CREATE TABLE flags (f);");
        write(d, "U20240318000000__flags.sql", "DROP TABLE flags;");
        write(d, "README.md", "not a migration");
        let set = read(d).unwrap();
        let summary: Vec<(u64, &str, bool)> = set
            .iter()
            .map(|m| (m.version, m.name.as_str(), m.down.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                (20240313170000, "create_users", true),
                (20240314000000, "add_posts", true),
                (20240315000000, "seed", false),
                (20240316000000, "tags", true),
                (20240317000000, "notes", true),
                (20240318000000, "flags", true),
            ]
        );
        assert_eq!(
            set[0].description,
            "Users. (diesel migration `2024-03-13-170000_create_users`)"
        );
        assert_eq!(set[3].up.trim(), "CREATE TABLE tags (t);");
        assert_eq!(
            set[3].down.as_deref().map(str::trim),
            Some("DROP TABLE tags;")
        );
        assert_eq!(set[4].up.trim(), "CREATE TABLE notes (n);");
        assert_eq!(
            set[4].down.as_deref().map(str::trim),
            Some("DROP TABLE notes;")
        );
    }

    #[test]
    fn diesels_empty_initial_setup_is_skipped_and_a_real_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let setup = "-- This file was automatically created by Diesel to setup helper functions\n";
        write(
            dir.path(),
            "00000000000000_diesel_initial_setup/up.sql",
            setup,
        );
        write(
            dir.path(),
            "00000000000000_diesel_initial_setup/down.sql",
            setup,
        );
        write(
            dir.path(),
            "2024-01-01-000000_users/up.sql",
            "CREATE TABLE users (id);",
        );
        let set = read(dir.path()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].version, 20240101000000);

        write(
            dir.path(),
            "00000000000000_diesel_initial_setup/up.sql",
            "CREATE TABLE x (y);",
        );
        assert!(
            read(dir.path())
                .unwrap_err()
                .reason
                .contains("not a usable version")
        );
    }

    #[test]
    fn clashing_and_unusable_versions_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "1_a.up.sql", "SELECT 1;");
        write(dir.path(), "1_b.sql", "SELECT 1;");
        let error = read(dir.path()).unwrap_err();
        assert!(
            error.reason.contains("versions must be unique"),
            "{error:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V1.1__x.sql", "SELECT 1;");
        let error = read(dir.path()).unwrap_err();
        assert!(error.reason.contains("has parts"), "{error:?}");
        assert!(error.path.ends_with("V1.1__x.sql"));

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "0_init.sql", "SELECT 1;");
        assert!(
            read(dir.path())
                .unwrap_err()
                .reason
                .contains("not a usable version")
        );
    }
}
