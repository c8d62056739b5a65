//! The digest hsm-host records and compares: sha256, as lowercase hex.

use sha2::{Digest, Sha256};

/// sha256 as lowercase hex, the form stored in `migrations.checksum`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
