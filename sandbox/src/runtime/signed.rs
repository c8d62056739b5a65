//! `--require-signed`: a runtime that loads only components the trust file accepts. Each file
//! is read, and its bytes verified, before anything is loaded; what the verified bytes hash to
//! is remembered, so the component that runs is known to be those bytes (a file changed after
//! its check no longer matches what the set described, and is refused when its step loads it).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hsm_signing::{Signer, Trust};

use crate::error::{Error, Result};

/// Who signed a component, and its detached signature if that is what verified: kept with
/// the applied component, so `down` can check it again once the file is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The trusted signers whose signatures verified.
    pub signers: Vec<Signer>,
    /// The detached signature (`FILE.sig`) that verified, if it was not embedded.
    pub detached: Option<Vec<u8>>,
}

impl Signed {
    /// The signers as the tracking table records them: `name SHA256:…`, `; `-separated.
    pub fn recorded(&self) -> String {
        self.signers
            .iter()
            .map(|s| format!("{} {}", s.name, s.fingerprint))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The trust file a runtime holds components to, and the verdicts it reached (by sha256).
#[derive(Debug)]
pub struct SignedOnly {
    trust: Trust,
    verdicts: Mutex<HashMap<String, Arc<Signed>>>,
}

impl SignedOnly {
    /// Holds components to `trust`.
    pub fn new(trust: Trust) -> Self {
        Self {
            trust,
            verdicts: Mutex::new(HashMap::new()),
        }
    }

    /// The trust file.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Reads the component file `path` (and its `FILE.sig`) once, verifies it, and returns
    /// the bytes verified: the ones to load.
    ///
    /// # Errors
    /// [`Error::Untrusted`] naming the file and why; [`Error::ReadMigrations`] when it cannot
    /// be read.
    pub fn verified_file(&self, path: &Path) -> Result<Vec<u8>> {
        let unreadable = |why: String| Error::ReadMigrations {
            path: path.to_owned(),
            source: std::io::Error::other(why),
        };
        let bytes = hsm_store::files::read_regular(path, hsm_store::files::MAX_COMPONENT_FILE)
            .or_else(|_| {
                // A link inside the directory (as `component_files` allows) is read through.
                hsm_store::files::open_regular(path, true).and_then(|(file, meta)| {
                    hsm_store::files::read_capped(file, &meta, hsm_store::files::MAX_COMPONENT_FILE)
                })
            })
            .map_err(unreadable)?;
        let detached = hsm_signing::read_detached(path).map_err(|why| Error::Untrusted {
            subject: path.display().to_string(),
            reason: why,
        })?;
        self.check_bytes(&path.display().to_string(), &bytes, detached)?;
        Ok(bytes)
    }

    /// Verifies `bytes` (with their detached signature, if any): the sha256 of the bytes.
    ///
    /// # Errors
    /// [`Error::Untrusted`] naming `subject` and why.
    pub fn check_bytes(
        &self,
        subject: &str,
        bytes: &[u8],
        detached: Option<Vec<u8>>,
    ) -> Result<String> {
        let verdict =
            hsm_signing::verify(bytes, detached.as_deref(), &self.trust).map_err(|reason| {
                Error::Untrusted {
                    subject: subject.to_owned(),
                    reason,
                }
            })?;
        let sha256 = hsm_store::digest::sha256_hex(bytes);
        let signed = Signed {
            signers: verdict.signers,
            detached: verdict.detached.then_some(detached).flatten(),
        };
        self.verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256.clone(), Arc::new(signed));
        Ok(sha256)
    }

    /// What was found about the component whose bytes hash to `sha256`, if it was verified.
    pub fn verdict(&self, sha256: &str) -> Option<Arc<Signed>> {
        self.verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha256)
            .cloned()
    }
}
