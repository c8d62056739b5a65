//! SQL migration sets as the common tools lay them out, read into [`SqlMigration`]s:
//!
//! | layout | files | down |
//! |---|---|---|
//! | diesel | `<version>_<name>/up.sql` | `down.sql` beside it |
//! | golang-migrate, sqlx (reversible) | `<version>_<name>.up.sql` | `<version>_<name>.down.sql` |
//! | sqlx (simple) | `<version>_<name>.sql` | none: irreversible |
//! | dbmate | `<version>_<name>.sql` with `-- migrate:up` | its `-- migrate:down` section |
//! | goose | `<version>_<name>.sql` with `-- +goose Up` | its `-- +goose Down` section |
//! | Flyway | `V<version>__<name>.sql` | `U<version>__<name>.sql` (an undo file) |
//! | refinery | `V<version>__<name>.sql`, `U<version>__<name>.sql` (unversioned) | none |
//!
//! The layout is recognised from the file names; `--layout` names it where they are ambiguous
//! (refinery's `U` files are migrations of their own, Flyway's undo their `V` file) or to hold
//! a directory to one layout. A missing down makes a migration irreversible; an empty or
//! comment-only one is a reversible no-op. Versions keep the tools' order: digits only, so
//! `2024-03-13-170000` is 20240313170000; Flyway's dotted versions are numbered part by part
//! (see [`flyway_version`]). The original id stays in the description.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SqlMigration;
pub use super::parts::{Layout, SetError};
use super::parts::{Parts, error};
pub use super::pattern::Pattern;
pub(crate) use super::pop::number as pop_number;
use super::reading::{find_marker, load, read_sql};
pub(crate) use super::versions::diesel_number;
pub use super::versions::flyway_version;
use super::versions::{clean_name, diesel_id, flyway_file, flyway_id, split_id};
use crate::tool::Tool;

/// The SQL migrations of `dir` in the layout named (`None`: recognised from the file names), by
/// version (empty when it holds none). `.wasm` files and anything that is not a SQL migration
/// file are left alone; with a layout named, a SQL migration file of another layout is an
/// error.
pub fn read(dir: &Path, named: Option<Layout>) -> Result<Vec<SqlMigration>, SetError> {
    // A Drizzle directory is what its journal lists, in its order.
    if matches!(named, None | Some(Layout::Tool(Tool::Drizzle))) {
        match super::drizzle::journal(dir)? {
            Some(entries) => return finish(super::drizzle::read(dir, entries)?),
            None if named == Some(Layout::Tool(Tool::Drizzle)) => {
                return Err(error(
                    dir,
                    format!(
                        "has no {}: --layout drizzle reads the migrations Drizzle's journal lists",
                        super::drizzle::JOURNAL
                    ),
                ));
            }
            None => {}
        }
    }
    // A directory for several databases: SQLite's files, else those for every dialect.
    if matches!(named, None | Some(Layout::Tool(Tool::Pop))) {
        if let Some(by_version) = super::pop::read(dir)? {
            return finish(by_version);
        }
        if named == Some(Layout::Tool(Tool::Pop)) {
            return Err(error(
                dir,
                "has no file that names a dialect (`<version>_<name>.sqlite3.up.sql`), which \
                 --layout pop reads",
            ));
        }
    }
    super::prisma::check_provider(dir)?;
    let mut by_version: BTreeMap<u64, Parts> = BTreeMap::new();
    // Flyway versions with parts (`1.1`) and without (`2`) cannot share one numbering.
    let mut flyway_kinds: [Option<PathBuf>; 2] = [None, None];
    let entries = std::fs::read_dir(dir).map_err(|e| error(dir, e.to_string()))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| error(dir, e.to_string()))?;
    paths.sort();
    let fits = |path: &Path, found: Layout| match named {
        Some(named) if !named.admits(found) => Err(error(
            path,
            format!(
                "is a {} migration file, but --layout {} expects {}",
                found.as_str(),
                named.as_str(),
                named.expects()
            ),
        )),
        _ => Ok(()),
    };
    let prisma_dir = dir.join(super::prisma::LOCK_FILE).is_file();
    for path in paths {
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            if path.extension().is_some_and(|ext| ext == "sql") {
                return Err(error(
                    &path,
                    "has a name that is not UTF-8: hsm-host cannot read a version or name from \
                     it; rename it",
                ));
            }
            continue;
        };
        if let Some(Layout::Pattern(pattern)) = named {
            add_by_pattern(&mut by_version, pattern, &path, file_name)?;
            continue;
        }
        // A directory of the set, or a link to one inside it; never one elsewhere.
        if crate::files::is_dir_inside(&path, dir) {
            let up = path.join("up.sql");
            if !up.is_file() {
                if path.join("migration.sql").is_file() {
                    fits(&path, Layout::Tool(Tool::Prisma))?;
                    let (version, parts) = super::prisma::parts(&path, file_name)?;
                    super::prisma::warn_unread(&path);
                    add(&mut by_version, &path, version, parts)?;
                } else if prisma_dir && file_name.starts_with(|c: char| c.is_ascii_digit()) {
                    // Prisma refuses such a folder too (P3015): the migration would be lost.
                    return Err(error(
                        &path,
                        "is a Prisma migration folder without migration.sql (Prisma refuses it \
                         too): put the file back, or remove the folder",
                    ));
                }
                continue;
            }
            fits(&path, Layout::Tool(Tool::Diesel))?;
            if is_empty_initial_setup(file_name, &up)? {
                tracing::info!(
                    "{}: diesel's initial setup has no SQL for SQLite; skipped",
                    path.display()
                );
                continue;
            }
            let (version, id, name) = diesel_id(&path, file_name)?;
            let down = Some(path.join("down.sql")).filter(|d| d.is_file());
            add(
                &mut by_version,
                &path,
                version,
                Parts {
                    layout: Some(Layout::Tool(Tool::Diesel)),
                    id,
                    name,
                    up: Some(up),
                    down,
                },
            )?;
            continue;
        }
        if let Some(stem) = file_name.strip_suffix(".go")
            && stem.starts_with(|c: char| c.is_ascii_digit())
            && stem.contains('_')
            && !stem.ends_with("_test")
        {
            // Left out, the set would run on without it and fail further on, or worse not.
            return Err(error(
                &path,
                "is a goose migration written in Go, which hsm-host cannot run (it runs SQL \
                 files and WebAssembly components): port it to a SQL file (`-- +goose Up`) or \
                 a component, or apply the set with goose and then `hsm-host adopt`",
            ));
        }
        let Some(stem) = file_name.strip_suffix(".sql") else {
            continue;
        };
        if let Some((stem, direction)) = up_down_file(stem) {
            // golang-migrate and sqlx pair the two files by version alone
            // (`^([0-9]+)_(.*)\.(down|up)\.(.*)$`): their names may differ, and a name may end
            // in a dot (`1_flags..up.sql`). The up file names the migration.
            fits(&path, Layout::Tool(Tool::GolangMigrate))?;
            let (version, id, name) = split_id(&path, stem, "_")?;
            let parts = by_version.entry(version).or_default();
            check_same(
                &path,
                parts,
                Layout::Tool(Tool::GolangMigrate),
                &parts.id.clone(),
            )?;
            let slot = if direction == "up" {
                &mut parts.up
            } else {
                &mut parts.down
            };
            if let Some(other) = slot {
                return Err(error(
                    &path,
                    format!(
                        "is a second {direction} file of version {version}, beside `{}`: each \
                         version has one {direction} file",
                        other.display()
                    ),
                ));
            }
            *slot = Some(path.clone());
            parts.layout = Some(Layout::Tool(Tool::GolangMigrate));
            if direction == "up" || parts.id.is_empty() {
                parts.id = id;
                parts.name = name;
            }
        } else if let Some((kind, rest)) = flyway_file(stem) {
            let refinery = named == Some(Layout::Tool(Tool::Refinery));
            fits(
                &path,
                if refinery {
                    Layout::Tool(Tool::Refinery)
                } else {
                    Layout::Tool(Tool::Flyway)
                },
            )?;
            let (version, raw, name) = flyway_id(&path, rest)?;
            let dotted = usize::from(raw.contains(['.', '_']));
            if let Some(other) = &flyway_kinds[1 - dotted] {
                return Err(error(
                    &path,
                    format!(
                        "mixes versions with parts (`1.1`) and without (`2`) with {}: their \
                         order cannot be kept in one numbering; give every version the same \
                         number of parts (V2 → V2.0)",
                        other.display()
                    ),
                ));
            }
            flyway_kinds[dotted].get_or_insert_with(|| path.clone());
            let layout = if refinery {
                Layout::Tool(Tool::Refinery)
            } else {
                Layout::Tool(Tool::Flyway)
            };
            if kind == 'U' && !refinery {
                // Flyway's undo file of its V file.
                let parts = by_version.entry(version).or_default();
                check_same(&path, parts, layout, &parts.id.clone())?;
                parts.layout = Some(layout);
                parts.down = Some(path.clone());
            } else {
                let parts = by_version.entry(version).or_default();
                check_same(&path, parts, layout, &format!("V{raw}"))?;
                if parts.up.is_some() {
                    return Err(error(
                        &path,
                        format!(
                            "its version {version} is also used by `{}`: versions must be unique",
                            parts.id
                        ),
                    ));
                }
                parts.layout = Some(layout);
                parts.id = format!("{kind}{raw}");
                parts.name = name;
                parts.up = Some(path.clone());
            }
        } else if stem.starts_with("R__") {
            tracing::warn!(
                "{}: Flyway's repeatable migrations are not supported; skipped",
                path.display()
            );
        } else if stem.starts_with(|c: char| c.is_ascii_digit()) {
            let (version, id, name) = split_id(&path, stem, "_")?;
            let layout = single_file_layout(&path, named)?;
            fits(&path, layout)?;
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
    if !by_version.is_empty() {
        let unread = unread_sql_files(dir);
        if !unread.is_empty() {
            tracing::warn!(
                "{}: not read as migrations (their names do not start with a version): {}",
                dir.display(),
                unread.join(", ")
            );
        }
    }
    finish(by_version)
}

/// The `.sql` files directly in `dir` that no layout reads as a migration (their names, sorted
/// and escaped), to say so rather than leave them out in silence.
pub fn unread_sql_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| {
            name.strip_suffix(".sql").is_some_and(|stem| {
                !stem.starts_with(|c: char| c.is_ascii_digit())
                    && flyway_file(stem).is_none()
                    && !stem.starts_with("R__")
            })
        })
        .map(|name| crate::text::neutralize(&name, 64))
        .collect();
    names.sort();
    names
}

/// Reads the files of each migration found, numbered from 1.
fn finish(by_version: BTreeMap<u64, Parts>) -> Result<Vec<SqlMigration>, SetError> {
    from_one(by_version)
        .into_iter()
        .map(|(version, parts)| load(version, parts))
        .collect()
}

/// hsm-host's versions start at 1 (0 means "nothing applied"): a set whose first version is 0
/// (golang-migrate's and sqlx's `0_initial…`) is numbered from 1, each version the tool's plus
/// one (the tool's own stays in the description, and `adopt` maps the tool's history the same
/// way). The numbers do not change as the set grows: its first migration stays 0.
fn from_one(by_version: BTreeMap<u64, Parts>) -> BTreeMap<u64, Parts> {
    if !by_version.contains_key(&0) {
        return by_version;
    }
    by_version
        .into_iter()
        .map(|(version, parts)| (version + 1, parts))
        .collect()
}

/// A file of a directory laid out by `pattern`: every `.sql` file must match it (a file that
/// does not is named, never silently left out); up and down files pair by version.
fn add_by_pattern(
    by_version: &mut BTreeMap<u64, Parts>,
    pattern: &'static Pattern,
    path: &Path,
    file_name: &str,
) -> Result<(), SetError> {
    if !file_name.ends_with(".sql")
        || crate::files::is_dir_inside(path, path.parent().unwrap_or(path))
    {
        return Ok(());
    }
    let found = pattern.matches(file_name).ok_or_else(|| {
        error(
            path,
            format!("does not match the layout pattern `{pattern}`"),
        )
    })?;
    let number = found
        .version
        .parse::<u64>()
        .ok()
        .filter(|v| *v < i64::MAX as u64)
        .ok_or_else(|| {
            error(
                path,
                format!(
                    "`{}` is not a usable version: versions are whole numbers from 0 to {}",
                    found.version,
                    i64::MAX
                ),
            )
        })?;
    let parts = by_version.entry(number).or_default();
    let slot = if found.direction == "up" {
        &mut parts.up
    } else {
        &mut parts.down
    };
    if let Some(other) = slot {
        return Err(error(
            path,
            format!(
                "is a second {} file of version {number}, beside `{}`",
                found.direction,
                other.display()
            ),
        ));
    }
    *slot = Some(path.to_owned());
    parts.layout = Some(Layout::Pattern(pattern));
    if found.direction == "up" || parts.id.is_empty() {
        parts.id = file_name.trim_end_matches(".sql").to_owned();
        parts.name = clean_name(found.name, number);
    }
    Ok(())
}

/// `<version>_<name>.up` or `.down` (the stem of a `.sql` file) → (`<version>_<name>`,
/// `up` or `down`), as golang-migrate matches them: the direction is the last dotted part.
fn up_down_file(stem: &str) -> Option<(&str, &'static str)> {
    let (rest, direction) = if let Some(rest) = stem.strip_suffix(".up") {
        (rest, "up")
    } else {
        (stem.strip_suffix(".down")?, "down")
    };
    Some((rest, direction))
}

/// diesel's `00000000000000_diesel_initial_setup`, made for PostgreSQL's helper functions: in
/// SQLite projects its files hold only comments. Version 0 is not a version hsm-host can use.
fn is_empty_initial_setup(dir_name: &str, up: &Path) -> Result<bool, SetError> {
    let all_zero = dir_name
        .split_once('_')
        .is_some_and(|(version, _)| !version.is_empty() && version.chars().all(|c| c == '0'));
    Ok(all_zero && crate::sql::script_is_empty(&read_sql(up)?.text))
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
/// A layout named for the directory decides instead, and its markers must be there.
fn single_file_layout(path: &Path, named: Option<Layout>) -> Result<Layout, SetError> {
    let text = read_sql(path)?.text;
    if text.contains('\r') && !text.contains('\n') {
        // One "line" to hsm-host (and to the tools): markers in it would go unseen.
        return Err(error(
            path,
            "ends its lines with CR alone (classic Mac OS): hsm-host reads lines ending in LF or \
             CRLF; convert the file",
        ));
    }
    let dbmate = find_marker(&text, &["-- migrate:up"]).is_some();
    let goose = find_marker(&text, &["-- +goose up"]).is_some();
    let missing = |marker: &str, layout: Layout| {
        Err(error(
            path,
            format!(
                "has no `{marker}` line, which --layout {} needs",
                layout.as_str()
            ),
        ))
    };
    match named {
        Some(Layout::Tool(Tool::Sqlx)) => Ok(Layout::Tool(Tool::Sqlx)),
        Some(Layout::Tool(Tool::Dbmate)) if !dbmate => {
            missing("-- migrate:up", Layout::Tool(Tool::Dbmate))
        }
        Some(Layout::Tool(Tool::Goose)) if !goose => {
            missing("-- +goose Up", Layout::Tool(Tool::Goose))
        }
        _ if dbmate => Ok(Layout::Tool(Tool::Dbmate)),
        _ if goose => Ok(Layout::Tool(Tool::Goose)),
        _ => Ok(Layout::Tool(Tool::Sqlx)),
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
