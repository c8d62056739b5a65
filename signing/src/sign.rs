//! Adding a signature: embedded (a `signature` section first in the component; its bytes, and
//! so its checksum, change) or detached (`FILE.sig`; the component's bytes stay as they are,
//! for one already applied). Each signer adds to the signatures already there.

use wasmsign2::{CustomSection, Module, PublicKey, SecretKey, Section, WSError};

use crate::sections::{SIGNATURE_DELIMITER, SIGNATURE_HEADER, sections};

fn module_of(bytes: &[u8]) -> Result<(Module, bool), String> {
    let found = sections(bytes)?;
    if found
        .iter()
        .any(|s| s.name.as_deref() == Some(SIGNATURE_DELIMITER))
    {
        return Err(
            "it is signed in parts (a `signature_delimiter` section); hsm-host signs \
                    only whole components"
                .into(),
        );
    }
    let embedded = found.first().and_then(|s| s.name.as_deref()) == Some(SIGNATURE_HEADER);
    let module = Module::deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("it cannot be read: {e}"))?;
    Ok((module, embedded))
}

fn signed(result: Result<(Module, Vec<u8>), WSError>) -> Result<(Module, Vec<u8>), String> {
    result.map_err(|e| match e {
        WSError::DuplicateSignature => "this key has signed it already".into(),
        other => format!("it cannot be signed: {other}"),
    })
}

/// The component `bytes` with a signature by `key` embedded (added to any already there).
///
/// # Errors
/// Why it cannot be signed.
pub fn sign_embedded(bytes: &[u8], key: &SecretKey) -> Result<Vec<u8>, String> {
    let (module, _) = module_of(bytes)?;
    let (module, _) = signed(key.sign_multi(module, None, false, false))?;
    let mut out = Vec::with_capacity(bytes.len() + 128);
    module
        .serialize(&mut out)
        .map_err(|e| format!("cannot write it: {e}"))?;
    verifies(&out, None, key)?;
    Ok(out)
}

/// The signature just made verifies over the bytes as they will be read: `wasmsign2` hashes
/// sections as it writes them, so a component whose lengths were written longer than needed
/// (some tools pad them) would carry a detached signature that never verifies.
fn verifies(bytes: &[u8], detached: Option<&[u8]>, key: &SecretKey) -> Result<(), String> {
    let public = PublicKey {
        pk: key.sk.public_key(),
        key_id: None,
    };
    public
        .verify(&mut std::io::Cursor::new(bytes), detached)
        .map_err(|_| {
            "the signature made does not verify over the file's bytes (its section lengths are \
             not in their shortest form?): sign it embedded instead, which rewrites it"
                .to_owned()
        })
}

/// A detached signature of `bytes` by `key`, added to `existing` (the `FILE.sig` there
/// already, if any). The component must carry no embedded signature: a detached one covers
/// every byte, an embedded one all but its own section, and the two would not agree.
///
/// # Errors
/// Why it cannot be signed.
pub fn sign_detached(
    bytes: &[u8],
    existing: Option<&[u8]>,
    key: &SecretKey,
) -> Result<Vec<u8>, String> {
    let (mut module, embedded) = module_of(bytes)?;
    if embedded {
        return Err(
            "it carries an embedded signature: sign it embedded (without --detached) \
                    to add a signer"
                .into(),
        );
    }
    if let Some(existing) = existing {
        // Read as the section it would be, so the new signature joins the old ones.
        let header = Section::Custom(CustomSection::new(
            SIGNATURE_HEADER.into(),
            existing.to_vec(),
        ));
        module.sections.insert(0, header);
    }
    let (_, signature) = signed(key.sign_multi(module, None, true, false))?;
    verifies(bytes, Some(&signature), key)?;
    Ok(signature)
}
