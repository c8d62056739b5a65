//! Plain SQL migrations as ordinary components of the contract, with no Rust toolchain and no
//! network: `hsm-host pack SRC -o DIR` writes them, and a `--migrations` directory holding SQL
//! files is packed as it is read. A packed component is just a component: checksummed, stored,
//! cached and rolled back like any other. Its `up`/`down` pass the file's SQL to the host's
//! `execute-batch`, which runs it as migration files are written (see `sql::script`).

mod component;
pub mod drizzle;
pub mod layout;
mod parts;
mod pattern;
pub mod placeholders;
mod pop;
mod prisma;
mod reading;
mod shell;
mod versions;

use std::path::{Path, PathBuf};

pub use layout::Layout;

use crate::error::{Error, Result};
use crate::tool::Tool;

/// One SQL migration, read from its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlMigration {
    /// The version, from the file name.
    pub version: u64,
    /// snake_case, from the file name.
    pub name: String,
    /// Its id in its tool: the file or folder name as the tool knows it (Drizzle's tag).
    pub id: String,
    /// The up file's header comment, and the original id and layout.
    pub description: String,
    /// The up SQL, as the file has it.
    pub up: String,
    /// `None`: there is no down, the migration is irreversible. An empty or comment-only down
    /// is a reversible no-op.
    pub down: Option<String>,
    /// The up file, which names the component in errors.
    pub source: PathBuf,
    /// The file the down comes from (for errors of `down`): the down file, or the up file of a
    /// layout that keeps both in one; `None` without a down.
    pub down_source: Option<PathBuf>,
    /// The layout its files are in.
    pub layout: Layout,
    /// sha256 of the up file's bytes, lowercase hex (as `sha256sum` prints it).
    pub up_sha256: String,
    /// sha256 of the down file's bytes, when the down is a file of its own.
    pub down_sha256: Option<String>,
    /// The file that asks to run outside a transaction (its tool's no-transaction marker, or
    /// a first line `-- no-transaction`), if one does. Refused unless
    /// [`SqlOptions::no_transaction`] allows it: a database server runs such a migration on
    /// its own; SQLite never needs to.
    pub no_transaction: Option<PathBuf>,
}

impl crate::runtime::SqlOrigin for SqlMigration {
    fn identity(&self) -> String {
        SqlMigration::identity(self)
    }

    fn was_recorded_earlier_as(&self, recorded: &str) -> bool {
        SqlMigration::was_recorded_earlier_as(self, recorded)
    }

    fn down_source(&self) -> Option<&std::path::Path> {
        self.down_source.as_deref()
    }
}

impl SqlMigration {
    /// What identifies it in `migrations.checksum`: its files' own digests, the up file's,
    /// then `+` and the down file's when the down is a file of its own. Neither the layout it
    /// was read with nor the way it is packed enters it, so `sha256sum` reproduces it.
    pub fn identity(&self) -> String {
        match &self.down_sha256 {
            Some(down) => format!("{}+{down}", self.up_sha256),
            None => self.up_sha256.clone(),
        }
    }

    /// The component: deterministic bytes (same migration, same bytes, same checksum).
    ///
    /// # Errors
    /// [`Error::SqlSet`] if it cannot be encoded (a bug: every SQL text can be).
    pub fn component(&self) -> Result<Vec<u8>> {
        component::encode(self, &component::CURRENT).map_err(|reason| Error::SqlSet {
            path: self.source.clone(),
            reason,
        })
    }

    /// Whether `recorded` is what a release that recorded SQL migrations by their component
    /// recorded for this one: the sha256 of the component it packed it into (for contract
    /// 0.1.3), read in this layout or any other (their description named it).
    pub(crate) fn was_recorded_earlier_as(&self, recorded: &str) -> bool {
        let own = format!("{} migration `", self.layout.as_str());
        let Some(at) = self.description.rfind(&own) else {
            return false;
        };
        let layouts = std::iter::once(self.layout).chain(Layout::ALL);
        layouts.into_iter().any(|layout| {
            let mut earlier = self.clone();
            earlier.description = format!(
                "{}{} migration `{}",
                &self.description[..at],
                layout.as_str(),
                &self.description[at + own.len()..]
            );
            component::encode(&earlier, &component::EARLIER)
                .is_ok_and(|bytes| crate::runtime::sha256_hex(&bytes) == recorded)
        })
    }

    /// A sha256 of everything [`SqlMigration::component`] makes its bytes from (and of the way
    /// it makes them), to find them again without packing.
    pub fn component_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        // Length-prefixed, so no two different inputs feed the same bytes.
        let mut feed = |part: &[u8]| {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        };
        feed(component::CURRENT.format.as_bytes());
        feed(component::CURRENT.contract.as_bytes());
        feed(&self.version.to_le_bytes());
        feed(self.identity().as_bytes());
        feed(self.name.as_bytes());
        feed(self.description.as_bytes());
        feed(self.up.as_bytes());
        match &self.down {
            Some(down) => {
                feed(b"down");
                feed(down.as_bytes());
            }
            None => feed(b"irreversible"),
        }
        hex::encode(hasher.finalize())
    }

    /// What its component would say of itself, without packing it: the metadata the packed
    /// component returns, as loading it would show it.
    pub fn info(self) -> crate::runtime::ComponentInfo {
        let metadata = crate::runtime::Metadata {
            version: self.version,
            name: self.name.clone(),
            description: self.description.clone(),
            reversible: self.down.is_some(),
        };
        crate::runtime::ComponentInfo {
            path: self.source.clone(),
            checksum: self.identity(),
            metadata: metadata.shown(),
            sql: Some(std::sync::Arc::new(self)),
        }
    }

    /// `20240313170000_create_users.wasm`.
    pub fn file_name(&self) -> String {
        format!("{}_{}.wasm", self.version, self.name)
    }
}

/// How a directory's SQL files are read: the layout named (`None`: recognised from the file
/// names) and the values of Flyway's placeholders.
#[derive(Debug, Clone, Default)]
pub struct SqlOptions {
    /// `--layout`.
    pub layout: Option<Layout>,
    /// `--placeholder name=value`, for a Flyway set's `${name}`.
    pub placeholders: std::collections::BTreeMap<String, String>,
    /// Whether migrations that ask to run outside a transaction are read (PostgreSQL runs
    /// them so) rather than refused (SQLite).
    pub no_transaction: bool,
}

impl From<Option<Layout>> for SqlOptions {
    fn from(layout: Option<Layout>) -> Self {
        Self {
            layout,
            ..Self::default()
        }
    }
}

/// The SQL migrations of `dir` read as `options` say (the layout named, or any of the layouts
/// of [`layout`] recognised from the file names; Flyway's placeholders replaced), by version;
/// empty when it holds none.
///
/// # Errors
/// [`Error::SqlSet`] naming the file: an unreadable file, a version that is not a whole
/// number, two migrations with one version, a file of another layout than the one named, a
/// placeholder with no value.
pub fn read_dir(dir: &Path, options: impl Into<SqlOptions>) -> Result<Vec<SqlMigration>> {
    let options = options.into();
    let to_error = |e: layout::SetError| Error::SqlSet {
        path: e.path,
        reason: e.reason,
    };
    let mut set = layout::read(dir, options.layout).map_err(to_error)?;
    if !options.no_transaction
        && let Some(migration) = set.iter().find(|m| m.no_transaction.is_some())
    {
        return Err(Error::SqlSet {
            path: migration.no_transaction.clone().unwrap_or_default(),
            reason: reading::no_transaction_refusal(migration.layout),
        });
    }
    if !options.placeholders.is_empty()
        && !set.iter().any(|m| m.layout == Layout::Tool(Tool::Flyway))
    {
        tracing::warn!(
            "--placeholder given, but {} holds no Flyway migrations: only Flyway's have \
             placeholders, so none is replaced",
            dir.display()
        );
    }
    for migration in set
        .iter_mut()
        .filter(|m| m.layout == Layout::Tool(Tool::Flyway))
    {
        migration.up =
            placeholders::substitute(&migration.source, &migration.up, &options.placeholders)
                .map_err(to_error)?;
        if let (Some(down), Some(file)) = (&migration.down, &migration.down_source) {
            migration.down = Some(
                placeholders::substitute(file, down, &options.placeholders).map_err(to_error)?,
            );
        }
    }
    Ok(set)
}

/// Packs every SQL migration of `src` into `out` (created if needed), with the set's SQL
/// functions ([`crate::runtime::SQL_FUNCTIONS_FILE`]) if it has some; returns the files
/// written.
///
/// # Errors
/// As [`read_dir`]; [`Error::SqlSet`] when `src` holds no SQL migrations or a file cannot be
/// written.
pub fn pack_dir(src: &Path, out: &Path, options: impl Into<SqlOptions>) -> Result<Vec<PathBuf>> {
    pack_dir_signed(src, out, options, &[], None)
}

/// [`pack_dir`], each component declaring `dialects` (when not empty: `postgresql` for a set
/// that runs on a server, where the server's own rules split its SQL when it runs) and
/// signed with `key` (embedded), both before it is written, so no file on disk is ever
/// signed by path. The directory's `sql-functions.wasm` is copied as it is: a binary no one
/// reviewed is not signed on the packer's behalf.
///
/// # Errors
/// As [`pack_dir`]; [`Error::SqlSet`] for an unknown dialect or a component that cannot be
/// signed.
pub fn pack_dir_signed(
    src: &Path,
    out: &Path,
    options: impl Into<SqlOptions>,
    dialects: &[String],
    key: Option<&hsm_signing::SecretKey>,
) -> Result<Vec<PathBuf>> {
    let options = options.into();
    let named = options.layout;
    let set = read_dir(src, options)?;
    if set.is_empty() {
        return Err(Error::SqlSet {
            path: src.to_owned(),
            reason: match named {
                Some(named) => format!("holds no SQL migrations of the {} layout", named.as_str()),
                None => "holds no SQL migrations (diesel, golang-migrate, sqlx, dbmate, goose, \
                         Flyway or refinery layout)"
                    .into(),
            },
        });
    }
    let write_error = |path: &Path, e: std::io::Error| Error::SqlSet {
        path: path.to_owned(),
        reason: format!("cannot write: {e}"),
    };
    std::fs::create_dir_all(out).map_err(|e| write_error(out, e))?;
    let mut written = Vec::with_capacity(set.len());
    for migration in &set {
        let path = out.join(migration.file_name());
        let refuse = |reason: String| Error::SqlSet {
            path: path.clone(),
            reason,
        };
        let mut bytes = migration.component()?;
        if !dialects.is_empty() {
            bytes = crate::runtime::dialects::declare(&bytes, dialects)
                .map_err(&refuse)?
                .0;
        }
        if let Some(key) = key {
            bytes = hsm_signing::sign_embedded(&bytes, key)
                .map_err(|reason| refuse(format!("cannot sign it: {reason}")))?;
        }
        crate::files::write_replacing(&path, &bytes, 0o644).map_err(|e| write_error(&path, e))?;
        if key.is_some() {
            // A FILE.sig left from an earlier pack would be read instead of the signature
            // just embedded, and it signs other bytes.
            let stale = hsm_signing::detached_path(&path);
            if std::fs::symlink_metadata(&stale).is_ok() {
                std::fs::remove_file(&stale).map_err(|e| write_error(&stale, e))?;
            }
        }
        written.push(path);
    }
    // The set's SQL functions go with it: its migrations call them.
    let functions = src.join(crate::runtime::SQL_FUNCTIONS_FILE);
    if std::fs::symlink_metadata(&functions).is_ok() {
        let bytes = crate::files::read_inside(&functions, src, crate::files::MAX_COMPONENT_FILE)
            .map_err(|reason| Error::SqlSet {
                path: functions.clone(),
                reason,
            })?;
        let path = out.join(crate::runtime::SQL_FUNCTIONS_FILE);
        crate::files::write_replacing(&path, &bytes, 0o644).map_err(|e| write_error(&path, e))?;
        // With its detached signature, if it has one: copied as it is, like the file.
        if let Ok(Some(signature)) = hsm_signing::read_detached(&functions) {
            let sig = hsm_signing::detached_path(&path);
            crate::files::write_replacing(&sig, &signature, 0o644)
                .map_err(|e| write_error(&sig, e))?;
        }
        written.push(path);
    }
    Ok(written)
}
