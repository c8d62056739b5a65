//! `hsm-host export`: an applied migration's stored component written back out.

use std::path::{Path, PathBuf};

use super::Project;
use crate::error::{Error, Result};

impl Project {
    /// Writes the component an applied migration was applied from, as the database stored
    /// it, to `out` (default: `<version>_<name>.wasm` in the working directory): to put back a
    /// file that changed or is gone; with its detached signature, if one was kept, as
    /// `FILE.sig` beside it. Never writes over an existing file.
    ///
    /// # Errors
    /// [`Error::NoDatabase`]; [`Error::Export`] when the version is not applied, has no stored
    /// component (applied by an older tool), or the file exists or cannot be written.
    pub fn export(&self, version: u64, out: Option<&Path>) -> Result<PathBuf> {
        let db = self.open_required("there is nothing to export")?;
        let conn = db.connection();
        let row =
            match db.tracking().exists(&conn)? {
                true => db.tracking().migrations(&conn)?.into_iter().find(|r| {
                    r.version == version && r.status == crate::tracking::RowStatus::Applied
                }),
                false => None,
            }
            .ok_or_else(|| Error::Export(format!("migration {version} is not applied")))?;
        let bytes = row
            .checksum
            .as_deref()
            .map(|checksum| db.tracking().stored_component(&conn, checksum))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                Error::Export(format!(
                    "migration {version} has no stored component (it was applied by an older \
                     tool, or recorded without running)"
                ))
            })?;
        let name = crate::text::neutralize(&row.name, 64)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>();
        let path = out
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from(format!("{version}_{name}.wasm")));
        // A FILE.sig already there would be read instead of the component's own signature.
        let sig = hsm_signing::detached_path(&path);
        if std::fs::symlink_metadata(&sig).is_ok() {
            return Err(Error::Export(format!(
                "{} exists, and would be read as the signature of what is exported: move it \
                 away, or export elsewhere",
                sig.display()
            )));
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::Export(format!("cannot create {}: {e}", path.display())))?;
        std::io::Write::write_all(&mut file, &bytes)
            .map_err(|e| Error::Export(format!("cannot write {}: {e}", path.display())))?;
        // Its detached signature, kept when it applied, goes back beside it as FILE.sig:
        // without it, `--require-signed` would refuse the file put back.
        let sha256 = crate::runtime::sha256_hex(&bytes);
        if let Some(signature) = db.tracking().stored_signature(&conn, &sha256)? {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&sig)
                .and_then(|mut file| std::io::Write::write_all(&mut file, &signature))
                .map_err(|e| Error::Export(format!("cannot write {}: {e}", sig.display())))?;
        }
        Ok(path)
    }
}
