//! Finding and loading the migration components of a directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

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
        let path = entry.map_err(read_error)?.path();
        if path.extension().is_some_and(|ext| ext == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every component of `dir`, sorted by version. Components the cache does not hold are
/// compiled in parallel, one file per core.
///
/// # Errors
/// Those of [`component_files`] and [`Runtime::load_file`] (the first file in name order that
/// fails), and [`Error::DuplicateVersion`].
pub fn load_dir(runtime: &Runtime, dir: &Path) -> Result<Vec<MigrationComponent>> {
    let files = component_files(dir)?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let mut loaded: Vec<(usize, Result<MigrationComponent>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(index) else { break };
                        mine.push((index, runtime.load_file(path)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a loader thread panicked"))
            .collect()
    });
    loaded.sort_by_key(|(index, _)| *index);
    let components = loaded
        .into_iter()
        .map(|(_, component)| component)
        .collect::<Result<Vec<_>>>()?;
    sort_unique(components)
}

/// What [`load_dir`] would load, as cheaply as the cache allows (for `status`).
///
/// # Errors
/// As [`load_dir`].
pub fn describe_dir(runtime: &Runtime, dir: &Path) -> Result<Vec<ComponentInfo>> {
    let mut infos = component_files(dir)?
        .iter()
        .map(|path| runtime.describe_file(path))
        .collect::<Result<Vec<_>>>()?;
    infos.sort_by(|a, b| {
        a.metadata
            .version
            .cmp(&b.metadata.version)
            .then(a.path.cmp(&b.path))
    });
    if let Some(pair) = infos
        .windows(2)
        .find(|w| w[0].metadata.version == w[1].metadata.version)
    {
        return Err(Error::DuplicateVersion {
            version: pair[0].metadata.version,
            first: pair[0].path.clone(),
            second: pair[1].path.clone(),
        });
    }
    Ok(infos)
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
