//! Which trusted keys signed a component's bytes, and whether that is enough.

use std::collections::HashSet;

use wasmsign2::{CustomSection, Module, PublicKeySet, WSError};

use crate::keys::Signer;
use crate::sections::{SIGNATURE_DELIMITER, SIGNATURE_HEADER, sections};
use crate::trust::Trust;

/// A component the trust file accepts: who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The trusted signers whose signatures verify, by name.
    pub signers: Vec<Signer>,
    /// Whether the signature was the detached one (`FILE.sig`).
    pub detached: bool,
}

/// Checks `bytes` (and their detached signature, if given: it is used instead of an embedded
/// one) against `trust`: signed over the whole component, by at least `min-signers` distinct
/// trusted keys, and by no revoked key.
///
/// # Errors
/// Why the component is refused, for the operator.
pub fn verify(bytes: &[u8], detached: Option<&[u8]>, trust: &Trust) -> Result<Verdict, String> {
    verify_signatures(bytes, detached, trust).map_err(|reason| match detached {
        // A stale FILE.sig beside a component signed inside would otherwise read as tampering.
        Some(_) => format!(
            "{reason} (the signature checked was the detached one, FILE.sig, which is used \
             instead of any embedded one)"
        ),
        None => reason,
    })
}

fn verify_signatures(
    bytes: &[u8],
    detached: Option<&[u8]>,
    trust: &Trust,
) -> Result<Verdict, String> {
    check_layout(bytes, detached.is_some())?;
    let keys = PublicKeySet::new(trust.keys().cloned().collect());
    let verified = match keys.verify(&mut std::io::Cursor::new(bytes), detached) {
        Ok(verified) => verified,
        Err(WSError::NoSignatures) => return Err(unsigned()),
        Err(WSError::VerificationFailed) => {
            return Err(format!(
                "no signature on it verifies with a key of the trust file {}: it changed after \
                 it was signed, or was signed by a key that file does not trust",
                trust.path.display()
            ));
        }
        Err(other) => return Err(format!("its signature cannot be read ({other})")),
    };
    if let Some(revoked) = verified.iter().find(|key| trust.is_revoked(key)) {
        return Err(format!(
            "it is signed by a revoked key ({}): what that key signed is no longer trusted",
            crate::keys::fingerprint(revoked)
        ));
    }
    let mut signers: Vec<Signer> = verified
        .iter()
        .filter(|key| trust.name_of(key).is_some())
        .map(|key| trust.describe(key))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    signers.sort();
    if signers.len() < trust.min_signers {
        let names: Vec<&str> = signers.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "it is signed by {} trusted signer(s){}; the trust file asks for {}",
            signers.len(),
            match names.is_empty() {
                true => String::new(),
                false => format!(" ({})", names.join(", ")),
            },
            trust.min_signers
        ));
    }
    Ok(Verdict {
        signers,
        detached: detached.is_some(),
    })
}

fn unsigned() -> String {
    "it is not signed (no signature section in it, no FILE.sig beside it): sign it with \
     `hsm-host sign FILE --key KEY` (`--detached` for a component already applied)"
        .into()
}

/// The shapes refused before any signature is checked: not a component; signed in parts
/// (`wasmsign2`'s whole-module verifier accepts a component cut short at a
/// `signature_delimiter`, so a signed part could run without the rest); a signature section
/// that is not first; unsigned.
fn check_layout(bytes: &[u8], detached: bool) -> Result<(), String> {
    let found = sections(bytes)?;
    let named = |name: &'static str| {
        found
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.name.as_deref() == Some(name))
            .map(|(i, _)| i)
    };
    if named(SIGNATURE_DELIMITER).next().is_some() {
        return Err(
            "it is signed in parts (it has a `signature_delimiter` section): hsm-host accepts \
             only a signature over the whole component, since a signed part can be cut off and \
             run alone"
                .into(),
        );
    }
    if named(SIGNATURE_HEADER).any(|i| i != 0) {
        return Err("it has a signature section that is not its first section".into());
    }
    if !detached && named(SIGNATURE_HEADER).next().is_none() {
        return Err(unsigned());
    }
    Ok(())
}

/// How many signatures `bytes` carry (or `detached` does), whoever made them: what `inspect`
/// can say without a trust file.
///
/// # Errors
/// A message when the bytes are not a component or the signature cannot be read.
pub fn signature_count(bytes: &[u8], detached: Option<&[u8]>) -> Result<usize, String> {
    let header = match detached {
        Some(detached) => CustomSection::new(SIGNATURE_HEADER.into(), detached.to_vec()),
        None => {
            let found = sections(bytes)?;
            if found.first().and_then(|s| s.name.as_deref()) != Some(SIGNATURE_HEADER) {
                return Ok(0);
            }
            let module = Module::deserialize(&mut std::io::Cursor::new(bytes))
                .map_err(|e| format!("it cannot be read: {e}"))?;
            match module.sections.into_iter().next() {
                Some(wasmsign2::Section::Custom(section)) => section,
                _ => return Ok(0),
            }
        }
    };
    let data = header
        .signature_data()
        .map_err(|e| format!("its signature cannot be read ({e})"))?;
    Ok(data
        .signed_hashes_set
        .iter()
        .map(|set| set.signatures.len())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::public_line;
    use crate::sign::{sign_detached, sign_embedded};
    use std::path::Path;
    use wasmsign2::KeyPair;

    /// A component's preamble and one custom section: enough bytes to sign.
    fn component() -> Vec<u8> {
        let mut bytes = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        bytes.extend_from_slice(&[0, 6, 4, b'n', b'o', b't', b'e', b'!']);
        bytes
    }

    fn trust_of(pairs: &[(&str, &KeyPair)], extra: &str) -> Trust {
        let mut text: String = pairs
            .iter()
            .map(|(name, pair)| format!("{name} {}\n", public_line(&pair.pk, name)))
            .collect();
        text.push_str(extra);
        Trust::parse(&text, Path::new("trust")).unwrap()
    }

    #[test]
    fn embedded_and_detached_signatures_verify_and_every_tampering_is_refused() {
        let (alice, bob, mallory) = (
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
        );
        let trust = trust_of(&[("alice", &alice), ("bob", &bob)], "");
        let bytes = component();
        assert!(
            verify(&bytes, None, &trust)
                .unwrap_err()
                .contains("not signed")
        );

        let signed = sign_embedded(&bytes, &alice.sk).unwrap();
        let verdict = verify(&signed, None, &trust).unwrap();
        assert_eq!(verdict.signers.len(), 1);
        assert_eq!(verdict.signers[0].name, "alice");
        assert_eq!(signature_count(&signed, None).unwrap(), 1);
        // A byte changed, a section appended, the file cut short: each refused.
        let mut tampered = signed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(
            verify(&tampered, None, &trust)
                .unwrap_err()
                .contains("changed")
        );
        let mut appended = signed.clone();
        appended.extend_from_slice(&[0, 2, 1, b'x']);
        assert!(verify(&appended, None, &trust).is_err());
        assert!(verify(&signed[..signed.len() - 1], None, &trust).is_err());
        // Signed by a stranger only: refused the same way.
        let strangers = sign_embedded(&bytes, &mallory.sk).unwrap();
        assert!(verify(&strangers, None, &trust).is_err());
        // Twice by one key is refused; a second signer adds to the first.
        assert!(
            sign_embedded(&signed, &alice.sk)
                .unwrap_err()
                .contains("already")
        );
        let both = sign_embedded(&signed, &bob.sk).unwrap();
        assert_eq!(verify(&both, None, &trust).unwrap().signers.len(), 2);

        // Detached: the bytes stay as they are.
        let sig = sign_detached(&bytes, None, &alice.sk).unwrap();
        let verdict = verify(&bytes, Some(&sig), &trust).unwrap();
        assert!(verdict.detached);
        let sig2 = sign_detached(&bytes, Some(&sig), &bob.sk).unwrap();
        assert_eq!(
            verify(&bytes, Some(&sig2), &trust).unwrap().signers.len(),
            2
        );
        assert!(verify(&tampered_copy(&bytes), Some(&sig), &trust).is_err());
        assert!(
            sign_detached(&signed, None, &bob.sk)
                .unwrap_err()
                .contains("embedded")
        );
    }

    fn tampered_copy(bytes: &[u8]) -> Vec<u8> {
        let mut copy = bytes.to_vec();
        *copy.last_mut().unwrap() ^= 1;
        copy
    }

    #[test]
    fn thresholds_revocations_and_signatures_in_parts() {
        let (alice, bob) = (KeyPair::generate(), KeyPair::generate());
        let bytes = component();
        let by_alice = sign_embedded(&bytes, &alice.sk).unwrap();
        let two = trust_of(&[("alice", &alice), ("bob", &bob)], "min-signers 2\n");
        let error = verify(&by_alice, None, &two).unwrap_err();
        assert!(error.contains("1 trusted signer(s) (alice)"), "{error}");
        let both = sign_embedded(&by_alice, &bob.sk).unwrap();
        assert_eq!(verify(&both, None, &two).unwrap().signers.len(), 2);
        // Revoking bob refuses what he signed, even beside alice's signature.
        let revoked = format!("revoked {}\n", public_line(&bob.pk, "bob"));
        let trust = trust_of(&[("alice", &alice)], &revoked);
        assert!(verify(&both, None, &trust).unwrap_err().contains("revoked"));
        assert!(verify(&by_alice, None, &trust).is_ok());
        // A component signed in parts can be cut at its delimiter: refused outright.
        let mut parts = bytes.clone();
        let name = b"signature_delimiter";
        parts.extend_from_slice(&[0, (name.len() + 1 + 16) as u8, name.len() as u8]);
        parts.extend_from_slice(name);
        parts.extend_from_slice(&[7; 16]);
        let (module, _) = wasmsign2::Module::deserialize(&mut std::io::Cursor::new(&parts))
            .map(|m| (m, ()))
            .unwrap();
        let (signed, _) = alice.sk.sign_multi(module, None, false, false).unwrap();
        let mut signed_bytes = Vec::new();
        signed.serialize(&mut signed_bytes).unwrap();
        let trust = trust_of(&[("alice", &alice)], "");
        assert!(
            verify(&signed_bytes, None, &trust)
                .unwrap_err()
                .contains("in parts")
        );
    }
}
