//! What the cache remembers besides compiled code: the sha256 and metadata of component files
//! it has seen, by file identity and by content (so `status` reads none of them, or hashes a
//! file only), components' stored forms, and packed SQL
//! migrations.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::*;
use crate::runtime::{ComponentInfo, Metadata, sha256_hex};

/// What the cache remembers of a component file it loaded: enough to describe it again
/// without reading it.
#[derive(Debug, Serialize, Deserialize)]
struct FileRecord {
    checksum: String,
    #[serde(flatten)]
    metadata: Metadata,
}

impl ComponentCache {
    /// Where what is known of a component file is remembered, by its [`file_identity`].
    fn file_entry(&self, identity: &str) -> PathBuf {
        self.dir
            .join("files")
            .join(&sha256_hex(identity.as_bytes())[..32])
    }

    /// Remembers that the file `path`, with this [`file_identity`], is this component.
    pub(crate) fn remember_file(
        &self,
        path: &Path,
        identity: &str,
        checksum: &str,
        metadata: &Metadata,
    ) {
        let entry = self.file_entry(identity);
        let record = FileRecord {
            checksum: checksum.to_owned(),
            metadata: metadata.clone(),
        };
        let record = serde_json::to_vec(&record).expect("a record serializes");
        let written = write_private(&entry, &record);
        self.written();
        if let Err(e) = written {
            tracing::debug!("cannot remember {}: {e}", path.display());
        }
    }

    /// Remembers the metadata of the component whose bytes hash to `checksum`: a file copied,
    /// renamed or too new to be trusted by its identity is still described once hashed
    /// (`status` hashes what it does not know; it never compiles).
    pub(crate) fn remember_content(&self, checksum: &str, metadata: &Metadata) {
        let entry = self.described_entry(checksum);
        if entry.is_file() {
            return;
        }
        let metadata = serde_json::to_vec(metadata).expect("metadata serializes");
        let written = write_private(&entry, &metadata);
        self.written();
        if let Err(e) = written {
            tracing::debug!("cannot remember component {checksum}: {e}");
        }
    }

    /// Where the metadata of the component with this sha256 is remembered.
    fn described_entry(&self, checksum: &str) -> PathBuf {
        self.dir.join("described").join(checksum)
    }

    /// The metadata of the component whose bytes hash to `checksum`, if one was loaded before:
    /// one small read.
    pub(crate) fn describe_content(&self, path: &Path, checksum: &str) -> Option<ComponentInfo> {
        if checksum.len() != 64 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let metadata: Metadata =
            serde_json::from_slice(&fs::read(self.described_entry(checksum)).ok()?).ok()?;
        Some(ComponentInfo {
            path: path.to_owned(),
            checksum: checksum.to_owned(),
            metadata: crate::runtime::neutralize_metadata(metadata),
            sql: None,
        })
    }

    /// The checksum and metadata of `path` if this exact file was loaded before: one `stat`
    /// and one small read.
    pub(crate) fn describe(&self, path: &Path) -> Option<ComponentInfo> {
        let meta = fs::metadata(path).ok()?;
        if !settled(&meta) {
            return None;
        }
        self.describe_identity(path, &file_identity(&meta))
    }

    /// [`ComponentCache::describe`] for a file whose [`file_identity`] is known.
    pub(crate) fn describe_identity(&self, path: &Path, identity: &str) -> Option<ComponentInfo> {
        let record: FileRecord =
            serde_json::from_slice(&fs::read(self.file_entry(identity)).ok()?).ok()?;
        Some(ComponentInfo {
            path: path.to_owned(),
            checksum: record.checksum,
            metadata: crate::runtime::neutralize_metadata(record.metadata),
            sql: None,
        })
    }
}

impl ComponentCache {
    /// The form in which a component is stored in a database (deflated), made once by
    /// [`ComponentCache::keep_stored_form`]; checked against the sha256 kept in front of it.
    pub(crate) fn stored_form(&self, component_sha256: &str) -> Option<Vec<u8>> {
        let kept = fs::read(self.dir.join("stored").join(component_sha256)).ok()?;
        let (digest, form) = kept.split_at_checked(32)?;
        (Sha256::digest(form).as_slice() == digest).then(|| form.to_vec())
    }

    /// Keeps a component's stored form. Failures only cost making it again.
    pub(crate) fn keep_stored_form(&self, component_sha256: &str, form: &[u8]) {
        let mut kept = Sha256::digest(form).to_vec();
        kept.extend_from_slice(form);
        let written = write_private(&self.dir.join("stored").join(component_sha256), &kept);
        self.written();
        if let Err(e) = written {
            tracing::debug!("cannot keep a stored form: {e}");
        }
    }
}

impl ComponentCache {
    /// Bytes stored under `key` (a sha256 of everything they are made from), by
    /// [`ComponentCache::remember_bytes`].
    pub(crate) fn remembered_bytes(&self, key: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join("packed").join(key)).ok()
    }

    /// Keeps bytes that are costly to make (a packed SQL migration) under `key`. Failures only
    /// cost making them again next time.
    pub(crate) fn remember_bytes(&self, key: &str, bytes: &[u8]) {
        let written = write_private(&self.dir.join("packed").join(key), bytes);
        self.written();
        if let Err(e) = written {
            tracing::debug!("cannot remember packed bytes: {e}");
        }
    }
}
