//! Finding and loading the migration components of a directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::runtime::{ComponentInfo, MigrationComponent, Runtime};

/// The `*.wasm` files directly in `dir`, sorted by name.
///
/// # Errors
/// [`Error::ReadMigrations`] when `dir` does not exist or cannot be read.
pub fn component_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let read_error = |source| Error::ReadMigrations {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry.path();
        // The directory's SQL functions are not a migration (see `Runtime::provide_sql_functions`).
        if path.extension().is_none_or(|ext| ext != "wasm")
            || entry.file_name() == crate::runtime::SQL_FUNCTIONS_FILE
        {
            continue;
        }
        // A regular file, or a link to one inside the directory: never a device or FIFO (read
        // forever, or never), never a link to the operator's other files.
        match entry.file_type() {
            Ok(kind) if kind.is_file() => files.push(path),
            Ok(kind) if kind.is_dir() => {}
            _ => match crate::files::resolve_inside(&path, dir) {
                Ok(_) => files.push(path),
                Err(reason) => {
                    return Err(Error::ReadMigrations {
                        source: std::io::Error::other(reason),
                        path: path.clone(),
                    });
                }
            },
        }
    }
    files.sort();
    Ok(files)
}

/// A component file found in the migrations directory.
pub struct Found {
    /// Its path, checksum and metadata.
    pub info: ComponentInfo,
    /// Its code, when finding it meant loading it (the compile cache did not know the file).
    pub component: Option<MigrationComponent>,
}

/// Every component of `dir`, sorted by version: described from the compile cache when it knows
/// the file, otherwise loaded (compiled and validated), in parallel, one file per core; and
/// every plain SQL migration of `dir` (see [`crate::pack`], read as `options` say), packed
/// into a component. The directory's SQL functions
/// ([`crate::runtime::SQL_FUNCTIONS_FILE`]), if it has some, are given to each.
///
/// # Errors
/// Those of [`component_files`] and [`Runtime::load_file`] (the first file in name order
/// that fails), and [`Error::DuplicateVersion`].
pub fn scan_dir(
    runtime: &Runtime,
    dir: &Path,
    options: impl Into<crate::pack::SqlOptions>,
) -> Result<Vec<Found>> {
    let files = component_files(dir)?;
    // First, so that every migration loaded below gets them.
    runtime.provide_sql_functions(dir)?;
    // Plain SQL migrations beside the components are packed as they are read; the compile
    // cache knows their (deterministic) bytes from the last run.
    let sql: Vec<Arc<crate::pack::SqlMigration>> = crate::pack::read_dir(dir, options)?
        .into_iter()
        .map(Arc::new)
        .collect();
    // `--require-signed`: each file read once, its bytes verified, and those very bytes
    // loaded (a file swapped after its check is never compiled or asked anything).
    if let Some(policy) = runtime.signed_only() {
        refuse_sql(&sql)?;
        let loaded = parallel_map(&files, |path| {
            let bytes = policy.verified_file(path)?;
            runtime.load(path.clone(), &bytes)
        });
        let found = loaded
            .into_iter()
            .map(|component| {
                component.map(|component| Found {
                    info: component.info(),
                    component: Some(component),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return sorted_unique(found);
    }
    let packing = (sql.len() > 1).then(|| {
        crate::runtime::progress::HostProgress::new(
            format!("loading {} SQL migrations", sql.len()),
            sql.len(),
        )
    });
    let packed = parallel_map(&sql, |migration| {
        // Packing is deterministic, so its bytes are remembered by what they are made from.
        let loaded = runtime
            .remembered_bytes(&migration.component_key(), || migration.component())
            .and_then(|bytes| runtime.load(migration.source.clone(), &bytes))
            .map(|component| component.packed_from(Arc::clone(migration) as _));
        if let Some(progress) = &packing {
            progress.tick();
        }
        loaded
    });
    drop(packing);
    // Known files first, on this thread (a stat and a small read each); the rest are compiled
    // or loaded from the cache in parallel.
    let known: Vec<Option<ComponentInfo>> = files
        .iter()
        .map(|path| runtime.describe_cached(path))
        .collect();
    let unknown: Vec<&PathBuf> = files
        .iter()
        .zip(&known)
        .filter_map(|(path, info)| info.is_none().then_some(path))
        .collect();
    // Loading many new files (compiling them, the first time) shows a bar on a terminal.
    let progress = (unknown.len() > 1).then(|| {
        crate::runtime::progress::HostProgress::new(
            format!("loading {} components", unknown.len()),
            unknown.len(),
        )
    });
    let mut loaded = parallel_map(&unknown, |path| {
        let result = runtime.load_file(path);
        if let Some(progress) = &progress {
            progress.tick();
        }
        result
    })
    .into_iter();
    drop(progress);
    let mut found = Vec::with_capacity(files.len());
    for info in known {
        found.push(match info {
            Some(info) => Found {
                info,
                component: None,
            },
            None => {
                let component = loaded.next().expect("one load per unknown file")?;
                Found {
                    info: component.info(),
                    component: Some(component),
                }
            }
        });
    }
    for component in packed {
        let component = component?;
        found.push(Found {
            info: component.info(),
            component: Some(component),
        });
    }
    sorted_unique(found)
}

/// `found` by version, refusing two of one version.
fn sorted_unique(mut found: Vec<Found>) -> Result<Vec<Found>> {
    found.sort_by(|a, b| (a.info.version(), &a.info.path).cmp(&(b.info.version(), &b.info.path)));
    if let Some(pair) = found
        .windows(2)
        .find(|w| w[0].info.version() == w[1].info.version())
    {
        return Err(Error::DuplicateVersion {
            version: pair[0].info.version(),
            first: pair[0].info.path.clone(),
            second: pair[1].info.path.clone(),
        });
    }
    Ok(found)
}

/// Under `--require-signed`, a SQL migration is refused: it is packed when read and so
/// carries no signature.
fn refuse_sql(sql: &[Arc<crate::pack::SqlMigration>]) -> Result<()> {
    if let Some(migration) = sql.first() {
        return Err(Error::Untrusted {
            subject: migration.source.display().to_string(),
            reason: "a SQL migration is packed into a component when it is read, so it carries \
                     no signature: pack and sign the directory ahead (`hsm-host pack SRC -o DIR \
                     --sign KEY`, with `--dialects sqlite,postgresql` for a PostgreSQL server) \
                     and run the signed components"
                .into(),
        });
    }
    Ok(())
}

/// What [`scan_dir`] finds, without code (for `status`).
///
/// # Errors
/// As [`scan_dir`].
pub fn describe_dir(
    runtime: &Runtime,
    dir: &Path,
    options: impl Into<crate::pack::SqlOptions>,
) -> Result<Vec<ComponentInfo>> {
    Ok(scan_dir(runtime, dir, options)?
        .into_iter()
        .map(|f| f.info)
        .collect())
}

/// A component file the compile cache has not seen: its metadata is unread (reading it means
/// compiling it), its sha256 known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    /// The file.
    pub path: PathBuf,
    /// The sha256 of its bytes, lowercase hex: an applied migration's checksum names it.
    pub sha256: String,
}

/// What is known of a directory without compiling anything (for `status`): the components the
/// compile cache knows and the SQL migrations (described from their files, not packed), and
/// the component files nothing is known of yet.
pub struct Survey {
    /// Described migrations, sorted by version.
    pub known: Vec<ComponentInfo>,
    /// Component files whose metadata is unread, by name.
    pub unread: Vec<Unread>,
}

/// [`Survey`] of `dir`: a `stat` and a small read per known file, a hash per other one (the
/// cache may know its content under another name or age), and the SQL files read; nothing compiled, packed or run (a first `status` of a directory of
/// Python or JavaScript components would otherwise compile each).
///
/// # Errors
/// Those of [`component_files`] and [`crate::pack::read_dir`]; [`Error::ReadMigrations`]
/// for a file that cannot be read; [`Error::DuplicateVersion`] among the described ones.
pub fn survey_dir(
    runtime: &Runtime,
    dir: &Path,
    options: impl Into<crate::pack::SqlOptions>,
) -> Result<Survey> {
    let files = component_files(dir)?;
    let mut known = Vec::new();
    let mut new = Vec::new();
    for path in files {
        match runtime.describe_cached(&path) {
            Some(info) => known.push(info),
            None => new.push(path),
        }
    }
    let unread = parallel_map(&new, |path| {
        // A link was checked to stay inside the directory by `component_files`.
        let bytes = crate::files::open_regular(path, true)
            .and_then(|(file, meta)| {
                crate::files::read_capped(file, &meta, crate::files::MAX_COMPONENT_FILE)
            })
            .map_err(|reason| Error::ReadMigrations {
                path: path.clone(),
                source: std::io::Error::other(reason),
            })?;
        let sha256 = crate::runtime::sha256_hex(&bytes);
        Ok(match runtime.describe_by_content(path, &sha256) {
            Some(info) => Ok(info),
            None => Err(Unread {
                path: path.clone(),
                sha256,
            }),
        })
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let (described, unread): (Vec<_>, Vec<_>) = unread.into_iter().partition(|r| r.is_ok());
    known.extend(described.into_iter().filter_map(|r| r.ok()));
    let unread: Vec<Unread> = unread.into_iter().filter_map(|r| r.err()).collect();
    for migration in crate::pack::read_dir(dir, options)? {
        known.push(migration.info());
    }
    known.sort_by(|a, b| (a.version(), &a.path).cmp(&(b.version(), &b.path)));
    if let Some(pair) = known.windows(2).find(|w| w[0].version() == w[1].version()) {
        return Err(Error::DuplicateVersion {
            version: pair[0].version(),
            first: pair[0].path.clone(),
            second: pair[1].path.clone(),
        });
    }
    Ok(Survey { known, unread })
}

/// `f` over `items` on rayon's pool (one thread per core, shared with wasmtime's parallel
/// compilation), results in the order of `items`.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    items.par_iter().map(f).collect()
}

/// Sorts components by version, refusing two with the same version.
pub fn sort_unique(components: Vec<MigrationComponent>) -> Result<Vec<MigrationComponent>> {
    let mut by_version: BTreeMap<u64, MigrationComponent> = BTreeMap::new();
    for component in components {
        if let Some(other) = by_version.get(&component.version()) {
            return Err(Error::DuplicateVersion {
                version: component.version(),
                first: other.path().to_owned(),
                second: component.path().to_owned(),
            });
        }
        by_version.insert(component.version(), component);
    }
    Ok(by_version.into_values().collect())
}

/// Directories up to two levels below `dir` that hold `.sql` or `.wasm` files (or diesel's
/// `<version>_<name>/up.sql` folders), for the error that `dir` holds none.
pub fn directories_with_migrations(dir: &Path) -> Vec<PathBuf> {
    let holds = |d: &Path| {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                p.extension().is_some_and(|x| x == "sql" || x == "wasm")
                    || p.join("up.sql").is_file()
                    || p.join("migration.sql").is_file()
            })
    };
    let mut found = Vec::new();
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        let mut list: Vec<PathBuf> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
            .collect();
        list.sort();
        list
    };
    for child in subdirs(dir) {
        if holds(&child) {
            found.push(child);
            continue;
        }
        found.extend(subdirs(&child).into_iter().filter(|g| holds(g)));
    }
    found.truncate(10);
    found
}
