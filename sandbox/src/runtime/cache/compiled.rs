//! Compiled components: precompiled artifacts and their records, named by the component's
//! sha256 and this engine's compatibility hash, checked before they are mapped.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::*;
use crate::runtime::{Metadata, sha256_hex};

/// What the cache keeps next to an artifact.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    component_sha256: String,
    artifact_sha256: String,
    /// The artifact file's identity when hsm-host wrote it: while it is unchanged the bytes
    /// are the ones hashed then, and need not be hashed again.
    #[serde(default)]
    artifact_identity: Option<String>,
    #[serde(flatten)]
    metadata: Metadata,
}

impl ComponentCache {
    /// Where compiled functions are kept for engines configured like `engine` (see
    /// `incremental`).
    pub(crate) fn functions_dir(&self, engine: &Engine) -> PathBuf {
        self.dir.join("functions").join(self.engine_hash(engine))
    }

    /// A digest of `engine`'s compatibility hash (Cranelift's and Winch's differ), computed
    /// once per engine.
    fn engine_hash(&self, engine: &Engine) -> String {
        let mut known = self.engine_hashes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, hash)) = known.iter().find(|(e, _)| Engine::same(e, engine)) {
            return hash.clone();
        }
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let hash = hex::encode(&hasher.0.finalize()[..8]);
        known.push((engine.clone(), hash.clone()));
        hash
    }

    fn paths(&self, engine: &Engine, component_sha256: &str) -> (PathBuf, PathBuf) {
        let engine_hash = self.engine_hash(engine);
        let stem = format!("{component_sha256}-{engine_hash}");
        (
            self.dir.join(format!("{stem}.cwasm")),
            self.dir.join(format!("{stem}.json")),
        )
    }

    /// Whether an entry for this component is recorded (everything is checked when it is
    /// loaded; a bad entry is compiled again then).
    pub(crate) fn has(&self, engine: &Engine, component_sha256: &str) -> bool {
        let (_, record_path) = self.paths(engine, component_sha256);
        record_path.is_file()
    }

    /// The cached compiled component and its metadata, if a valid entry exists.
    pub(crate) fn get(
        &self,
        engine: &Engine,
        component_sha256: &str,
    ) -> Option<(Component, Metadata)> {
        let (artifact_path, record_path) = self.paths(engine, component_sha256);
        let record: Record = serde_json::from_slice(&fs::read(&record_path).ok()?).ok()?;
        if record.component_sha256 != component_sha256 {
            return None;
        }
        // The usual case: the artifact is the file hsm-host wrote (same identity, settled), so
        // it is mapped, not read: a large component (an interpreter, tens of MB of code) then
        // loads in a few milliseconds. The cache replaces files by rename and prunes by unlink,
        // never truncates one in place, so a mapped artifact cannot shrink under us.
        let mapped_identity = || {
            fs::metadata(&artifact_path)
                .ok()
                .filter(settled)
                .map(|meta| file_identity(&meta))
        };
        if record.artifact_identity.is_some() && mapped_identity() == record.artifact_identity {
            // SAFETY: as below; the file is the one hsm-host wrote and hashed (same device,
            // inode, size, mtime and ctime), in a directory only this user can write, checked
            // again once mapped.
            let component = unsafe { Component::deserialize_file(engine, &artifact_path) }.ok()?;
            if mapped_identity() == record.artifact_identity {
                crate::runtime::cache_trim::touch(&record_path);
                return Some((
                    component,
                    crate::runtime::neutralize_metadata(record.metadata),
                ));
            }
        }
        let (artifact, identity) = read_with_identity(&artifact_path).ok()?;
        let unchanged = identity.is_some() && record.artifact_identity == identity;
        if !unchanged && sha256_hex(&artifact) != record.artifact_sha256 {
            tracing::debug!(
                "cache entry {} is corrupt or foreign: recompiling",
                artifact_path.display()
            );
            return None;
        }
        Engine::detect_precompiled(&artifact)?;
        // SAFETY: the bytes are exactly the artifact this engine configuration serialized
        // (checked above against the record hsm-host wrote in a directory only this user can
        // write: the same file, untouched since, or the same sha256); wasmtime itself rejects
        // artifacts of another version or configuration.
        let component = unsafe { Component::deserialize(engine, &artifact) }.ok()?;
        crate::runtime::cache_trim::touch(&record_path);
        Some((
            component,
            crate::runtime::neutralize_metadata(record.metadata),
        ))
    }

    /// Stores a freshly compiled component. Failures only cost a recompile next time.
    pub(crate) fn put(
        &self,
        engine: &Engine,
        component_sha256: &str,
        component: &Component,
        metadata: &Metadata,
    ) {
        let artifact = match component.serialize() {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!("cannot serialize a compiled component: {e}");
                return;
            }
        };
        let (artifact_path, record_path) = self.paths(engine, component_sha256);
        if let Err(e) = write_atomically(&artifact_path, &artifact) {
            tracing::debug!("cannot write the compile cache: {e}");
            return;
        }
        let record = Record {
            component_sha256: component_sha256.to_owned(),
            artifact_sha256: sha256_hex(&artifact),
            artifact_identity: fs::metadata(&artifact_path)
                .ok()
                .map(|meta| file_identity(&meta)),
            metadata: metadata.clone(),
        };
        let record = serde_json::to_vec(&record).expect("a record serializes");
        // The record goes last: a reader finds either no record or one whose artifact is whole.
        if let Err(e) = write_atomically(&record_path, &record) {
            tracing::debug!("cannot write the compile cache: {e}");
        }
        self.written();
    }
}

/// Feeds `Hash` output into sha256, for a hash that is stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only the sha256 digest is used")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
