//! Keys: a pair made by `hsm-host keygen` (`NAME.key`, the secret in PEM, mode 0600;
//! `NAME.pub`, the public key as one OpenSSH line), OpenSSH's own ed25519 keys, and
//! fingerprints as `ssh-keygen -l` shows them (`SHA256:…`), so an operator can compare them.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ct_codecs::{Base64, Base64NoPadding, Encoder};
use hsm_store::Error;
use sha2::{Digest, Sha256};
use wasmsign2::{KeyPair, PublicKey, SecretKey};

/// A key that signed a component, as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Signer {
    /// The name the trust file gives it.
    pub name: String,
    /// Its fingerprint ([`fingerprint`]).
    pub fingerprint: String,
}

/// The files `keygen` wrote.
#[derive(Debug)]
pub struct KeyFiles {
    /// `NAME.key`: the secret key.
    pub secret: PathBuf,
    /// `NAME.pub`: the public key, one line.
    pub public: PathBuf,
    /// The public key's fingerprint.
    pub fingerprint: String,
}

/// The largest key file read.
const MAX_KEY_FILE: u64 = 64 << 10;

/// The key's wire form in OpenSSH (`string "ssh-ed25519"`, `string key`).
fn openssh_blob(key: &PublicKey) -> Vec<u8> {
    let mut blob = Vec::with_capacity(51);
    for part in [b"ssh-ed25519".as_slice(), key.pk.as_ref()] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    blob
}

/// `SHA256:` and the unpadded base64 of the sha256 of the key's OpenSSH wire form: what
/// `ssh-keygen -l -f NAME.pub` prints for it.
pub fn fingerprint(key: &PublicKey) -> String {
    let digest = Sha256::digest(openssh_blob(key));
    let encoded = Base64NoPadding::encode_to_string(digest).unwrap_or_default();
    format!("SHA256:{encoded}")
}

/// The public key as one OpenSSH line: `ssh-ed25519 AAAA… comment`.
pub fn public_line(key: &PublicKey, comment: &str) -> String {
    let encoded = Base64::encode_to_string(openssh_blob(key)).unwrap_or_default();
    format!("ssh-ed25519 {encoded} {comment}")
}

/// A public key from one OpenSSH line (`ssh-ed25519 AAAA… [comment]`).
///
/// # Errors
/// A message when the text is not an ed25519 public key.
pub fn read_public_line(text: &str) -> Result<PublicKey, String> {
    PublicKey::from_openssh(text.trim()).map_err(|_| {
        "not an ed25519 public key (the line of a `.pub` file: `ssh-ed25519 AAAA…`)".to_owned()
    })
}

/// Whether `name` is a plain key name: letters, digits, `.`, `_`, `-`, not starting with `.`.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Makes a key pair: `dir/NAME.key` (the secret, PEM, mode 0600) and `dir/NAME.pub` (one
/// OpenSSH line). Neither file may exist: a key is never overwritten.
///
/// # Errors
/// [`Error::Signing`] for a name that is not plain, a file that exists, or one that cannot
/// be written.
pub fn generate(name: &str, dir: &Path) -> Result<KeyFiles, Error> {
    if !plain_name(name) {
        return Err(Error::Signing(format!(
            "`{}` is not a key name: use letters, digits, `.`, `_` and `-` (up to 64)",
            hsm_store::text::neutralize(name, 80)
        )));
    }
    let pair = KeyPair::generate();
    let secret = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    for path in [&secret, &public] {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(Error::Signing(format!(
                "{} exists: hsm-host never overwrites a key (choose another name, or move it)",
                path.display()
            )));
        }
    }
    write_new(&secret, 0o600, pair.sk.to_pem().as_bytes())?;
    let line = format!("{}\n", public_line(&pair.pk, name));
    if let Err(error) = write_new(&public, 0o644, line.as_bytes()) {
        let _ = std::fs::remove_file(&secret);
        return Err(error);
    }
    Ok(KeyFiles {
        secret,
        public,
        fingerprint: fingerprint(&pair.pk),
    })
}

/// Writes a file that must not exist yet (not through a link), with `mode` whatever the umask.
fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), Error> {
    let cannot =
        |e: std::io::Error| Error::Signing(format!("cannot write {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(cannot)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(cannot)?;
    file.write_all(bytes).map_err(cannot)?;
    file.sync_all().map_err(cannot)
}

/// A secret key from `path`: ours (PEM) or an unencrypted OpenSSH ed25519 key. Like ssh, it
/// refuses a key file others may read, or one of another user.
///
/// # Errors
/// [`Error::Signing`] saying what is wrong with the file.
pub fn read_secret_key(path: &Path) -> Result<(SecretKey, PublicKey), Error> {
    let refuse = |why: String| Error::Signing(format!("the key {}: {why}", path.display()));
    let (file, meta) = hsm_store::files::open_regular(path, false).map_err(refuse)?;
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(refuse(format!(
            "it belongs to another user (uid {}): sign with a key of your own",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(refuse(format!(
            "others may read it (mode {:o}): a secret key must be its owner's alone (chmod 600)",
            meta.mode() & 0o777
        )));
    }
    let bytes = hsm_store::files::read_capped(file, &meta, MAX_KEY_FILE).map_err(refuse)?;
    let text = String::from_utf8(bytes).map_err(|_| refuse("it is not a text key file".into()))?;
    let secret = if text.contains("BEGIN OPENSSH PRIVATE KEY") {
        SecretKey::from_openssh(&text).map_err(|_| {
            refuse(
                "an OpenSSH key hsm-host cannot read: only an ed25519 key without a passphrase \
                 (`ssh-keygen -t ed25519 -N ''`, or `hsm-host keygen`)"
                    .into(),
            )
        })?
    } else {
        SecretKey::from_pem(&text).map_err(|_| {
            refuse("not an ed25519 secret key (a `.key` file from `hsm-host keygen`)".into())
        })?
    };
    let public = PublicKey {
        pk: secret.sk.public_key(),
        key_id: None,
    };
    Ok((secret, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_reads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate("alice", dir.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&files.secret), 0o600);
        let (_, public) = read_secret_key(&files.secret).unwrap();
        let line = std::fs::read_to_string(&files.public).unwrap();
        assert!(line.starts_with("ssh-ed25519 ") && line.trim_end().ends_with(" alice"));
        assert_eq!(read_public_line(&line).unwrap(), public);
        assert_eq!(fingerprint(&public), files.fingerprint);
        assert!(files.fingerprint.starts_with("SHA256:"));
        let again = generate("alice", dir.path()).unwrap_err().to_string();
        assert!(again.contains("never overwrites"), "{again}");
        assert!(generate("../evil", dir.path()).is_err());
        // A secret others may read is refused, as ssh refuses it.
        std::fs::set_permissions(&files.secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loose = read_secret_key(&files.secret).unwrap_err().to_string();
        assert!(loose.contains("chmod 600"), "{loose}");
    }
}
