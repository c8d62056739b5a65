//! The trust file: who may sign the migrations an operator runs.
//!
//! ```text
//! # NAME KEY: KEY is the line of the signer's .pub file
//! alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI… alice
//! bob   ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI… bob@laptop
//! min-signers 2
//! revoked ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI… carol (key stolen 2026-11)
//! ```
//!
//! It decides what runs, so it is read only if the operator controls it: a regular file, not
//! a link, of this user or root, writable by no one else.

use std::path::{Path, PathBuf};

use hsm_store::Error;
use wasmsign2::PublicKey;

use crate::keys::{fingerprint, read_public_line};

/// The largest trust file read.
const MAX_TRUST_FILE: u64 = 1 << 20;

/// Trusted signers, how many must sign, and the keys no longer trusted.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The file it was read from.
    pub path: PathBuf,
    signers: Vec<(String, PublicKey)>,
    revoked: Vec<PublicKey>,
    /// How many distinct trusted signers a component needs (at least 1).
    pub min_signers: usize,
}

impl Trust {
    /// Reads and checks the trust file at `path`.
    ///
    /// # Errors
    /// [`Error::Signing`] when the file is not the operator's, cannot be read, or a line is
    /// wrong (naming the line).
    pub fn read(path: &Path) -> Result<Self, Error> {
        let cannot =
            |why: String| Error::Signing(format!("the trust file {}: {why}", path.display()));
        let bytes = hsm_store::files::read_owned(path, MAX_TRUST_FILE).map_err(cannot)?;
        let text = String::from_utf8(bytes).map_err(|_| cannot("it is not UTF-8 text".into()))?;
        Self::parse(&text, path)
    }

    /// The trust file's text, as [`Trust::read`] reads it.
    ///
    /// # Errors
    /// As [`Trust::read`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let mut trust = Trust {
            path: path.to_owned(),
            signers: Vec::new(),
            revoked: Vec::new(),
            min_signers: 1,
        };
        let mut min_signers = None;
        for (number, line) in text.lines().enumerate() {
            let at = |why: String| {
                Error::Signing(format!(
                    "the trust file {} line {}: {why}",
                    path.display(),
                    number + 1
                ))
            };
            let line = line.trim_start_matches('\u{feff}').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (first, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match first {
                "min-signers" => {
                    // (`min-signers 2  # two of us`: a comment may follow the number.)
                    let rest = rest.split('#').next().unwrap_or_default().trim();
                    let n: usize = rest
                        .parse()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| at("`min-signers` takes a number, 1 or more".into()))?;
                    if min_signers.replace(n).is_some() {
                        return Err(at("`min-signers` is given twice".into()));
                    }
                }
                "revoked" => trust.revoked.push(read_public_line(rest).map_err(at)?),
                name => {
                    let key = read_public_line(rest)
                        .map_err(|why| at(format!("`NAME KEY` expected, where KEY is {why}")))?;
                    if trust.signers.iter().any(|(n, _)| n == name) {
                        return Err(at(format!("the name `{name}` is given twice")));
                    }
                    if let Some((other, _)) = trust.signers.iter().find(|(_, k)| k.pk == key.pk) {
                        return Err(at(format!("this key is already `{other}`'s")));
                    }
                    trust.signers.push((name.to_owned(), key));
                }
            }
        }
        let trusted = trust
            .signers
            .iter()
            .filter(|(_, key)| !trust.is_revoked(key))
            .count();
        if trusted == 0 {
            return Err(Error::Signing(format!(
                "the trust file {} trusts no key: add `NAME KEY` lines (KEY is the line of a \
                 signer's .pub file)",
                path.display()
            )));
        }
        trust.min_signers = min_signers.unwrap_or(1);
        if trust.min_signers > trusted {
            return Err(Error::Signing(format!(
                "the trust file {} asks for {} signers but trusts {trusted} key(s) that are not \
                 revoked: nothing could run",
                path.display(),
                trust.min_signers
            )));
        }
        Ok(trust)
    }

    /// The trusted keys (revoked ones included: a revoked key stays known, to be refused).
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.signers.iter().map(|(_, k)| k).chain(&self.revoked)
    }

    /// The name the file gives `key`, if it trusts it.
    pub fn name_of(&self, key: &PublicKey) -> Option<&str> {
        self.signers
            .iter()
            .find(|(_, k)| k.pk == key.pk)
            .map(|(name, _)| name.as_str())
    }

    /// Whether the file revokes `key`.
    pub fn is_revoked(&self, key: &PublicKey) -> bool {
        self.revoked.iter().any(|r| r.pk == key.pk)
    }

    /// A key as reports show it: its name here (or `revoked`, or `unknown`) and fingerprint.
    pub fn describe(&self, key: &PublicKey) -> crate::Signer {
        let name = match (self.name_of(key), self.is_revoked(key)) {
            (_, true) => "revoked".to_owned(),
            (Some(name), false) => name.to_owned(),
            (None, false) => "unknown".to_owned(),
        };
        crate::Signer {
            name,
            fingerprint: fingerprint(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(comment: &str) -> (String, PublicKey) {
        let pair = wasmsign2::KeyPair::generate();
        (crate::keys::public_line(&pair.pk, comment), pair.pk)
    }

    #[test]
    fn a_trust_file_names_signers_a_threshold_and_revoked_keys() {
        let (alice, alice_key) = line("alice");
        let (bob, _) = line("bob@laptop");
        let (carol, carol_key) = line("carol");
        let path = Path::new("trust");
        let text = format!(
            "# who signs\nalice {alice}\n\nbob  {bob}\ncarol {carol}\nmin-signers 2  # two\nrevoked {carol}\n"
        );
        let trust = Trust::parse(&text, path).unwrap();
        assert_eq!(trust.min_signers, 2);
        assert_eq!(trust.name_of(&alice_key), Some("alice"));
        assert!(trust.is_revoked(&carol_key));
        assert_eq!(trust.describe(&carol_key).name, "revoked");
        let wrong = |text: &str| Trust::parse(text, path).unwrap_err().to_string();
        assert!(wrong(&format!("alice {alice}\nmin-signers 2\n")).contains("nothing could run"));
        assert!(wrong(&format!("alice {alice}\nalice {bob}\n")).contains("twice"));
        assert!(wrong(&format!("alice {alice}\nbob {alice}\n")).contains("already `alice`"));
        assert!(wrong("alice not-a-key\n").contains("line 1"));
        assert!(wrong(&format!("revoked {alice}\nalice {alice}\n")).contains("trusts no key"));
        assert!(wrong("").contains("trusts no key"));
    }
}
