//! Who wrote a migration: ed25519 signatures over a component, in the WebAssembly
//! tool-conventions format (`Signatures.md`: a `signature` custom section first in the
//! component, or the same bytes detached in `FILE.sig`), through `wasmsign2`.
//!
//! - [`keys`]: making a key pair, reading secret keys (ours, PEM; or OpenSSH's) and public
//!   keys (one OpenSSH line), fingerprints as OpenSSH shows them.
//! - [`trust`]: the trust file (`NAME KEY` lines, `min-signers N`, `revoked KEY`), read only
//!   if the operator controls it.
//! - [`mod@verify`]: which trusted keys signed these bytes, and whether that is enough.
//! - [`mod@sign`]: adding a signature, embedded or detached.
//! - [`sections`]: walking a component's sections with every length checked against the
//!   bytes there, before `wasmsign2` parses them.

pub mod keys;
pub mod sections;
pub mod sign;
pub mod trust;
pub mod verify;

pub use keys::{KeyFiles, Signer, fingerprint, generate, read_public_line, read_secret_key};
pub use sign::{sign_detached, sign_embedded};
pub use trust::Trust;
pub use verify::{Verdict, signature_count, verify};
pub use wasmsign2::{PublicKey, SecretKey};

/// The name of a detached signature beside a component: `FILE.sig`.
pub fn detached_path(component: &std::path::Path) -> std::path::PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".sig");
    std::path::PathBuf::from(name)
}

/// The largest detached signature read (256 signatures of ~100 bytes are ~26 KiB).
pub const MAX_SIGNATURE_FILE: u64 = 1 << 20;

/// The detached signature beside `component` (`FILE.sig`), if there is one: a regular file,
/// not a link, of a signature's size.
///
/// # Errors
/// A message when it is there but cannot be read as one.
pub fn read_detached(component: &std::path::Path) -> Result<Option<Vec<u8>>, String> {
    let path = detached_path(component);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    hsm_store::files::read_regular(&path, MAX_SIGNATURE_FILE)
        .map(Some)
        .map_err(|why| format!("{}: {why}", path.display()))
}
