//! What a component file is before anyone runs it (`hsm-host inspect`): what it says about
//! itself, which contract and world it targets, what it imports, and whether this host accepts
//! it, by the same checks as `up` and without a database.

use std::path::{Path, PathBuf};

use serde::Serialize;
use wasmtime::component::Component;

use super::{Metadata, Runtime, sha256_hex};
use crate::error::{Error, Result};
use crate::text;

/// What `inspect` found in one file.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// sha256 of its bytes, lowercase hex (what `migrations.checksum` records).
    pub sha256: String,
    /// What it says about itself, when it could be asked.
    pub metadata: Option<Metadata>,
    /// The contract it was built against, e.g. `hsm:migration@0.1.3`.
    pub contract: Option<String>,
    /// `migration`, or `migration-with-functions` when it exports SQL functions.
    pub world: Option<String>,
    /// Everything it imports, as the component names it.
    pub imports: Vec<String>,
    /// The databases it says it is written for (`hsm:dialects`); none means SQLite alone.
    pub dialects: Vec<String>,
    /// Its signatures (embedded, or in `FILE.sig` beside it).
    pub signatures: Signatures,
    /// Whether `up` would accept it.
    pub accepted: bool,
    /// Why not, when it would not.
    pub problem: Option<String>,
}

/// A component's signatures, as `inspect` shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Signatures {
    /// How many signatures it carries, whoever made them.
    pub count: usize,
    /// Whether they are in `FILE.sig` beside it rather than in it.
    pub detached: bool,
    /// Who signed it, by the trust file's names (only with `--require-signed`: a signature
    /// names no key, a trust file's keys are tried against it).
    pub signers: Vec<hsm_signing::Signer>,
}

impl Runtime {
    /// Inspects the component in `path` (see [`Inspection`]); a component this host refuses is
    /// an inspection with `accepted: false`, not an error.
    ///
    /// # Errors
    /// [`Error::ReadMigrations`] when the file cannot be read.
    pub fn inspect_file(&self, path: &Path) -> Result<Inspection> {
        let bytes = crate::files::open_regular(path, true)
            .and_then(|(file, meta)| {
                crate::files::read_capped(file, &meta, crate::files::MAX_COMPONENT_FILE)
            })
            .map_err(|reason| Error::ReadMigrations {
                path: path.to_owned(),
                source: std::io::Error::other(reason),
            })?;
        let detached = hsm_signing::read_detached(path);
        let mut signatures = Signatures::default();
        // Under `--require-signed`, a component the trust file refuses is not compiled, nor
        // its metadata asked for: it is described from its bytes alone.
        let refused = match &detached {
            Ok(detached) => {
                signatures.detached = detached.is_some();
                signatures.count =
                    hsm_signing::signature_count(&bytes, detached.as_deref()).unwrap_or(0);
                match &self.signed_only {
                    Some(policy) => {
                        match hsm_signing::verify(&bytes, detached.as_deref(), policy.trust()) {
                            Ok(verdict) => {
                                signatures.signers = verdict.signers;
                                None
                            }
                            Err(reason) => Some(reason),
                        }
                    }
                    None => None,
                }
            }
            // Without a trust file, a FILE.sig that cannot be read only means no signature
            // is counted: `up` would run the component.
            Err(reason) if self.signed_only.is_some() => Some(reason.clone()),
            Err(_) => None,
        };
        let mut inspection = match refused {
            Some(reason) if self.signed_only.is_some() => Inspection {
                path: path.to_owned(),
                size: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
                metadata: None,
                contract: None,
                world: None,
                imports: Vec::new(),
                dialects: super::dialects::declared(&bytes),
                signatures: Signatures::default(),
                accepted: false,
                problem: Some(reason),
            },
            refused => {
                let mut inspection = self.inspect_bytes(path, &bytes)?;
                if let Some(reason) = refused {
                    inspection.accepted = false;
                    inspection.problem.get_or_insert(reason);
                }
                inspection
            }
        };
        inspection.signatures = signatures;
        Ok(inspection)
    }

    /// [`Runtime::inspect_file`] of a component's bytes (a SQL migration packed), named `path`.
    ///
    /// # Errors
    /// As [`Runtime::inspect_file`].
    pub fn inspect_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Inspection> {
        // The engine that would compile it: a refused large component compiles quickly again.
        let wasm = self.engine(self.compiler.compile_tier(bytes.len() as u64))?;
        let names = |component: &Component| -> (Vec<String>, Vec<String>) {
            let ty = component.component_type();
            let list = |it: &mut dyn Iterator<Item = &str>| -> Vec<String> {
                it.map(|n| text::neutralize(n, 200)).collect()
            };
            (
                list(&mut ty.imports(&wasm.engine).map(|(n, _)| n)),
                list(&mut ty.exports(&wasm.engine).map(|(n, _)| n)),
            )
        };
        let (metadata, problem, (imports, exports)) = match self.load(path.to_owned(), bytes) {
            // Accepted: its declarations come from the component already loaded (and cached).
            Ok(loaded) => (
                Some(loaded.metadata().clone()),
                None,
                names(loaded.pre.instance_pre().component()),
            ),
            // Refused: compiled once more on its own, to say what it declares.
            Err(error) => {
                let reason = match error {
                    Error::InvalidComponent { reason, .. } => reason,
                    other => other.to_string(),
                };
                let declared = Component::new(&wasm.engine, bytes)
                    .map(|c| names(&c))
                    .unwrap_or_default();
                (None, Some(reason), declared)
            }
        };
        let contract = imports
            .iter()
            .chain(&exports)
            .find_map(|name| contract_of(name));
        let world = contract.as_ref().map(|_| {
            if exports
                .iter()
                .any(|n| n.starts_with("hsm:migration/functions@"))
            {
                "migration-with-functions".to_owned()
            } else {
                "migration".to_owned()
            }
        });
        Ok(Inspection {
            path: path.to_owned(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            metadata,
            contract,
            world,
            imports,
            dialects: super::dialects::declared(bytes),
            signatures: Signatures::default(),
            accepted: problem.is_none(),
            problem,
        })
    }
}

/// `hsm:migration/sql@0.1.3` → `hsm:migration@0.1.3`.
fn contract_of(name: &str) -> Option<String> {
    let rest = name.strip_prefix("hsm:migration/")?;
    let (_, version) = rest.split_once('@')?;
    Some(format!("hsm:migration@{version}"))
}

#[cfg(test)]
mod tests {
    use super::contract_of;

    #[test]
    fn the_contract_is_read_from_an_interface_name() {
        assert_eq!(
            contract_of("hsm:migration/sql@0.1.3").as_deref(),
            Some("hsm:migration@0.1.3")
        );
        assert_eq!(contract_of("wasi:io/streams@0.2.6"), None);
        assert_eq!(contract_of("hsm:migration/sql"), None);
    }
}
