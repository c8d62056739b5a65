//! Where each migration stands, worked out once from the tracking rows and the component
//! files: applied, pending, changed, missing, and which applied ones need the component stored
//! at apply time to roll back. `status`, planning and dry runs all read it from here.

use std::collections::BTreeSet;

use crate::runtime::ComponentInfo;
use crate::tracking::{MigrationRow, RowStatus};

/// The migrations of one database against one set of component files.
#[derive(Debug)]
pub(crate) struct Assessment<'a> {
    /// Rows whose migration is applied, by version.
    pub(crate) applied: Vec<&'a MigrationRow>,
    /// Files whose migration is not applied, by version, and whether it was rolled back.
    pub(crate) pending: Vec<(&'a ComponentInfo, bool)>,
    /// Applied migrations whose file is not the component that applied them.
    pub(crate) changed: Vec<Changed<'a>>,
    /// Applied versions with no file.
    pub(crate) missing: Vec<u64>,
    /// Applied migrations whose own component is known only by its stored checksum (the file
    /// changed or is gone): `down` runs the component stored at apply time.
    pub(crate) from_store: Vec<(u64, &'a str)>,
    /// Applied migrations whose file is their component but whose row does not record its
    /// checksum: the Node tool's rows (none), and SQL packed in an earlier form. `repair`
    /// records the file's checksum and bytes for them.
    pub(crate) unrecorded: Vec<(&'a MigrationRow, &'a ComponentInfo)>,
}

/// An applied migration whose file changed since.
#[derive(Debug)]
pub(crate) struct Changed<'a> {
    pub(crate) row: &'a MigrationRow,
    pub(crate) recorded: &'a str,
    pub(crate) file: &'a ComponentInfo,
}

/// Where each migration stands. Rows of the Node tool (no checksum) are never changed or from
/// the store: their file is their component.
pub(crate) fn assess<'a>(rows: &'a [MigrationRow], files: &'a [ComponentInfo]) -> Assessment<'a> {
    let file = |version: u64| files.iter().find(|f| f.version() == version);
    let applied: Vec<&MigrationRow> = rows
        .iter()
        .filter(|row| row.status == RowStatus::Applied)
        .collect();
    let applied_versions: BTreeSet<u64> = applied.iter().map(|row| row.version).collect();
    let pending = files
        .iter()
        .filter(|f| !applied_versions.contains(&f.version()))
        .map(|f| {
            // The same migration, by name: another one once had this version (a version
            // reused after its migration was rolled back and removed) says nothing of this one.
            let rolled_back = rows.iter().any(|row| {
                row.version == f.version()
                    && row.status == RowStatus::RolledBack
                    && row.name == f.metadata.name
            });
            (f, rolled_back)
        })
        .collect();
    let mut changed = Vec::new();
    let mut missing = Vec::new();
    let mut from_store = Vec::new();
    let mut unrecorded = Vec::new();
    for row in &applied {
        let found = file(row.version);
        if found.is_none() {
            missing.push(row.version);
        }
        let Some(recorded) = row.checksum.as_deref() else {
            unrecorded.extend(found.map(|f| (*row, f)));
            continue;
        };
        match found {
            Some(f) if f.checksum == recorded => {}
            Some(f) if f.is_recorded_as(recorded) => unrecorded.push((*row, f)),
            Some(f) => {
                changed.push(Changed {
                    row,
                    recorded,
                    file: f,
                });
                from_store.push((row.version, recorded));
            }
            None => from_store.push((row.version, recorded)),
        }
    }
    Assessment {
        applied,
        pending,
        changed,
        missing,
        from_store,
        unrecorded,
    }
}

impl Assessment<'_> {
    /// The applied versions, as planning takes them.
    pub(crate) fn applied_versions(&self) -> BTreeSet<u64> {
        self.applied.iter().map(|row| row.version).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::runtime::Metadata;

    fn row(version: u64, status: RowStatus, checksum: Option<&str>) -> MigrationRow {
        MigrationRow {
            version,
            name: format!("m{version}"),
            description: None,
            applied_at: "now".into(),
            rolled_back_at: None,
            backup_path: None,
            status,
            error_message: None,
            checksum: checksum.map(str::to_owned),
        }
    }

    fn file(version: u64, checksum: &str) -> ComponentInfo {
        ComponentInfo {
            path: PathBuf::from(format!("{version}.wasm")),
            checksum: checksum.into(),
            sql: None,
            metadata: Metadata {
                version,
                name: format!("m{version}"),
                description: String::new(),
                reversible: true,
            },
        }
    }

    #[test]
    fn each_migration_is_placed_once() {
        let rows = [
            row(1, RowStatus::Applied, None), // the Node tool's: no checksum
            row(2, RowStatus::Applied, Some("a")), // unchanged
            row(3, RowStatus::Applied, Some("b")), // its file changed
            row(4, RowStatus::Applied, Some("c")), // its file is gone
            row(5, RowStatus::RolledBack, Some("d")),
            row(6, RowStatus::Other("pending_review".into()), None),
        ];
        let files = [
            file(1, "x"),
            file(2, "a"),
            file(3, "B"),
            file(5, "d"),
            file(6, "e"),
            file(7, "f"),
        ];
        let a = assess(&rows, &files);
        assert_eq!(a.applied_versions(), BTreeSet::from([1, 2, 3, 4]));
        let pending: Vec<(u64, bool)> = a.pending.iter().map(|(f, r)| (f.version(), *r)).collect();
        assert_eq!(pending, [(5, true), (6, false), (7, false)]);
        let changed: Vec<u64> = a.changed.iter().map(|c| c.row.version).collect();
        assert_eq!(changed, [3]);
        assert_eq!(a.missing, [4]);
        assert_eq!(a.from_store, [(3, "b"), (4, "c")]);
        // The Node tool's row is its file's, with no checksum to compare: repair records it.
        let unrecorded: Vec<u64> = a.unrecorded.iter().map(|(row, _)| row.version).collect();
        assert_eq!(unrecorded, [1]);
    }

    #[test]
    fn a_version_reused_by_another_migration_is_not_shown_as_rolled_back() {
        let rows = [row(8, RowStatus::RolledBack, Some("d"))];
        let mut other = file(8, "e");
        other.metadata.name = "add_display_names".into();
        let a = assess(&rows, std::slice::from_ref(&other));
        let pending: Vec<(u64, bool)> = a.pending.iter().map(|(f, r)| (f.version(), *r)).collect();
        assert_eq!(pending, [(8, false)]);
    }
}
