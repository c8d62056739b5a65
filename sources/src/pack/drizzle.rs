//! Drizzle's SQLite migrations: `<idx>_<tag>.sql` files run in the order of the journal beside
//! them (`meta/_journal.json`, `entries[].idx`/`tag`/`when`), not of their names; statements are
//! separated by `--> statement-breakpoint`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::parts::{Layout, Parts, SetError, error};
use super::versions::clean_name;
use crate::tool::Tool;

/// Where Drizzle keeps its journal, inside the migrations directory.
pub(super) const JOURNAL: &str = "meta/_journal.json";

/// The largest `idx` taken: numbers stay far from SQLite's integer limit.
const MAX_IDX: u64 = 1 << 40;

/// Most a journal may weigh (a thousand migrations take about 100 KiB).
const MAX_JOURNAL: u64 = 4 << 20;

#[derive(Deserialize)]
struct Journal {
    #[serde(default)]
    dialect: Option<String>,
    entries: Vec<Entry>,
}

/// One migration of the journal.
#[derive(Deserialize)]
pub struct Entry {
    /// Its place in the journal.
    pub idx: u64,
    /// Its folder's name (`0000_init`).
    pub tag: String,
    /// When it was generated, in milliseconds: what Drizzle records as `created_at`.
    pub when: i64,
}

/// The journal's entries, if `dir` has one (`None`: not a Drizzle directory).
pub fn journal(dir: &Path) -> Result<Option<Vec<Entry>>, SetError> {
    let path = dir.join(JOURNAL);
    let meta = dir.join("meta");
    let Ok(meta_kind) = std::fs::symlink_metadata(&meta) else {
        return Ok(None);
    };
    let snapshots = std::fs::read_dir(&meta)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with("_snapshot.json"))
        });
    let inside = crate::files::is_dir_inside(&meta, dir);
    let has_journal = std::fs::symlink_metadata(&path).is_ok();
    match (inside, has_journal) {
        (true, true) => {}
        // Drizzle's snapshots without its journal (or its meta/ elsewhere): Drizzle would stop
        // here, and reading the files by name instead could run ones it never lists.
        (false, _) if meta_kind.file_type().is_symlink() => {
            return Err(error(
                &meta,
                "is a link out of the migrations directory; hsm-host reads Drizzle's journal \
                 only inside it",
            ));
        }
        (_, false) if snapshots => {
            return Err(error(
                &path,
                "is missing: this is a Drizzle directory (its meta/ has snapshots), and Drizzle's \
                 journal says which files are migrations and in what order",
            ));
        }
        _ => return Ok(None),
    }
    let bytes =
        crate::files::read_inside(&path, &meta, MAX_JOURNAL).map_err(|r| error(&path, r))?;
    let journal: Journal = serde_json::from_slice(&bytes)
        .map_err(|e| error(&path, format!("is not a Drizzle journal: {e}")))?;
    match journal.dialect.as_deref() {
        None | Some("sqlite" | "turso") => Ok(Some(journal.entries)),
        Some(other) => Err(error(
            &path,
            format!(
                "says these Drizzle migrations are for {}, not SQLite: hsm-host migrates SQLite \
                 databases (point --migrations at the set written for SQLite)",
                crate::text::neutralize(other, 64)
            ),
        )),
    }
}

/// The migrations the journal lists, by version: the journal's `idx` (numbered from 1 like
/// every set that starts at 0), its file `<tag>.sql`. `.sql` files the journal does not list
/// are not migrations to Drizzle: they are named in a warning, never run.
pub(super) fn read(dir: &Path, entries: Vec<Entry>) -> Result<BTreeMap<u64, Parts>, SetError> {
    let mut by_version = BTreeMap::new();
    for entry in &entries {
        let tag_is_plain = !entry.tag.is_empty()
            && entry
                .tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let file = dir.join(format!("{}.sql", entry.tag));
        if !tag_is_plain {
            return Err(error(
                &dir.join(JOURNAL),
                format!(
                    "lists the tag `{}`, which is not a file name of this directory",
                    crate::text::neutralize(&entry.tag, 64)
                ),
            ));
        }
        if !file.is_file() {
            return Err(error(
                &file,
                format!(
                    "is listed in {JOURNAL} (idx {}) but is not there",
                    entry.idx
                ),
            ));
        }
        if entry.idx > MAX_IDX {
            return Err(error(
                &dir.join(JOURNAL),
                format!("lists idx {}, more than a migration set has", entry.idx),
            ));
        }
        let name = entry.tag.split_once('_').map_or("", |(_, name)| name);
        let parts = Parts {
            layout: Some(Layout::Tool(Tool::Drizzle)),
            id: entry.tag.clone(),
            name: clean_name(name, entry.idx),
            up: Some(file.clone()),
            down: None,
        };
        if by_version.insert(entry.idx, parts).is_some() {
            return Err(error(
                &dir.join(JOURNAL),
                format!("lists idx {} twice", entry.idx),
            ));
        }
    }
    let listed: Vec<String> = entries.iter().map(|e| format!("{}.sql", e.tag)).collect();
    let unlisted: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| error(dir, e.to_string()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".sql") && !listed.contains(name))
        .collect();
    if !unlisted.is_empty() {
        tracing::warn!(
            "{}: not in Drizzle's journal, so not migrations (Drizzle does not run them either): {}",
            dir.display(),
            crate::text::neutralize(&unlisted.join(", "), 512)
        );
    }
    Ok(by_version)
}

/// A Drizzle file's SQL as Drizzle runs it: each `--> statement-breakpoint` ends a statement.
pub(super) fn statements(text: &str) -> String {
    // `;` where the marker was (an extra `;` after one is an empty statement, which SQLite
    // skips); the rest of the line stays, so lines and columns stay the file's.
    const MARKER: &str = "--> statement-breakpoint";
    text.replace(MARKER, &format!(";{}", " ".repeat(MARKER.len() - 1)))
}
