//! `hsm-host keygen | sign | verify`: keys, and signatures on component files.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use hsm_signing::{Trust, Verdict};
use serde_json::json;

use super::args::SigningCommand;
use super::{Reported, UsageError};

/// Runs one signing command; its report goes to `out`.
pub(super) fn run(command: &SigningCommand, as_json: bool, out: &mut impl Write) -> Result<()> {
    match command {
        SigningCommand::Keygen { name, dir } => keygen(name, dir, as_json, out),
        SigningCommand::Sign {
            files,
            key,
            detached,
        } => sign(files, key, *detached, as_json, out),
        SigningCommand::Verify { files, trust } => verify(files, trust, as_json, out),
    }
}

fn keygen(name: &str, dir: &Path, as_json: bool, out: &mut impl Write) -> Result<()> {
    let files = hsm_signing::generate(name, dir)?;
    match as_json {
        true => super::fleet::json_line(
            out,
            &json!({
                "shape_version": 2,
                "secret": files.secret,
                "public": files.public,
                "fingerprint": files.fingerprint,
            }),
        )?,
        false => {
            writeln!(
                out,
                "Wrote {} (the secret key: keep it, never share it) and {} (give it to \
                 operators for their trust files).",
                files.secret.display(),
                files.public.display(),
            )?;
            writeln!(out, "Fingerprint: {}", files.fingerprint)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A component file's bytes and mode: a regular file (not through a link) of a component's
/// size at most.
fn read_component(file: &Path) -> Result<(Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    hsm_store::files::open_regular(file, false)
        .and_then(|(handle, meta)| {
            let mode = meta.permissions().mode() & 0o777;
            hsm_store::files::read_capped(handle, &meta, hsm_store::files::MAX_COMPONENT_FILE)
                .map(|bytes| (bytes, mode))
        })
        .map_err(|reason| UsageError(format!("{}: {reason}", file.display())).into())
}

fn sign(
    files: &[std::path::PathBuf],
    key: &Path,
    detached: bool,
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let (secret, public) = hsm_signing::read_secret_key(key)?;
    let fingerprint = hsm_signing::fingerprint(&public);
    let mut failed = 0;
    for file in files {
        let signed = sign_one(file, &secret, detached);
        let line = match (&signed, as_json) {
            (Ok(written), true) => {
                json!({ "file": file, "signed_by": fingerprint, "written": written }).to_string()
            }
            (Err(error), true) => {
                json!({ "file": file, "error": format!("{error:#}") }).to_string()
            }
            (Ok(written), false) => format!(
                "{}: signed by {fingerprint} ({})",
                file.display(),
                match detached {
                    true => format!("detached, in {}", written.display()),
                    false => "embedded: its sha256 changed".to_owned(),
                }
            ),
            (Err(error), false) => format!("{}: NOT SIGNED: {error:#}", file.display()),
        };
        failed += usize::from(signed.is_err());
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if failed > 0 {
        return Err(Reported(format!("{failed} of {} file(s) not signed", files.len())).into());
    }
    Ok(())
}

/// After `pack --sign`: what was signed, and the SQL functions left unsigned on purpose.
pub(super) fn packed_signed(written: &[std::path::PathBuf], out: &mut impl Write) -> Result<()> {
    let functions = |f: &std::path::PathBuf| {
        f.file_name()
            .is_some_and(|n| n == hsm_host::runtime::SQL_FUNCTIONS_FILE)
    };
    let signed = written.iter().filter(|f| !functions(f)).count();
    writeln!(out, "{signed} component(s) signed.")?;
    if let Some(functions) = written.iter().find(|f| functions(f)) {
        writeln!(
            out,
            "{} is copied as it is, not signed by this pack: it is a binary, not SQL you \
             reviewed; if it is not signed already, review it and `hsm-host sign` it yourself \
             (--require-signed refuses it until then).",
            functions.display()
        )?;
    }
    Ok(())
}

/// Signs one file; the file written (the component, or its FILE.sig).
fn sign_one(
    file: &Path,
    secret: &hsm_signing::SecretKey,
    detached: bool,
) -> Result<std::path::PathBuf> {
    let (bytes, mode) = read_component(file)?;
    if detached {
        let existing = hsm_signing::read_detached(file).map_err(anyhow::Error::msg)?;
        let signature = hsm_signing::sign_detached(&bytes, existing.as_deref(), secret)
            .map_err(anyhow::Error::msg)?;
        let path = hsm_signing::detached_path(file);
        hsm_store::files::write_replacing(&path, &signature, 0o644)
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(path);
    }
    // A FILE.sig beside it is read instead of an embedded signature: the new one would be
    // ignored, and the old one no longer matches the rewritten bytes (found by the review).
    if hsm_signing::read_detached(file)
        .map_err(anyhow::Error::msg)?
        .is_some()
    {
        anyhow::bail!(
            "{} is signed detached ({} beside it, which is read instead of an embedded \
             signature): add to it with --detached",
            file.display(),
            hsm_signing::detached_path(file).display()
        );
    }
    let signed = hsm_signing::sign_embedded(&bytes, secret).map_err(anyhow::Error::msg)?;
    hsm_store::files::write_replacing(file, &signed, mode)
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file.to_owned())
}

fn verify(
    files: &[std::path::PathBuf],
    trust: &Path,
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let trust = Trust::read(trust)?;
    let mut refused = 0;
    for file in files {
        let verdict = verify_one(file, &trust);
        refused += usize::from(verdict.is_err());
        match as_json {
            true => super::fleet::json_line(out, &verdict_json(file, &verdict))?,
            false => writeln!(out, "{}", verdict_line(file, &verdict))?,
        }
    }
    out.flush()?;
    if refused > 0 {
        return Err(Reported(format!(
            "{refused} of {} component(s) not trusted",
            files.len()
        ))
        .into());
    }
    Ok(())
}

fn verify_one(file: &Path, trust: &Trust) -> Result<Verdict, String> {
    let (bytes, _) = read_component(file).map_err(|e| format!("{e:#}"))?;
    let detached = hsm_signing::read_detached(file)?;
    hsm_signing::verify(&bytes, detached.as_deref(), trust)
}

fn verdict_json(file: &Path, verdict: &Result<Verdict, String>) -> serde_json::Value {
    match verdict {
        Ok(verdict) => json!({
            "file": file,
            "trusted": true,
            "detached": verdict.detached,
            "signers": verdict.signers.iter().map(|s| json!({ "name": s.name, "fingerprint": s.fingerprint })).collect::<Vec<_>>(),
        }),
        Err(reason) => json!({ "file": file, "trusted": false, "error": reason }),
    }
}

fn verdict_line(file: &Path, verdict: &Result<Verdict, String>) -> String {
    match verdict {
        Ok(verdict) => {
            let signers: Vec<String> = verdict
                .signers
                .iter()
                .map(|s| format!("{} ({})", s.name, s.fingerprint))
                .collect();
            format!(
                "{}: trusted, signed by {}{}",
                file.display(),
                signers.join(", "),
                match verdict.detached {
                    true => " (detached signature)",
                    false => "",
                }
            )
        }
        Err(reason) => format!("{}: REFUSED: {reason}", file.display()),
    }
}
