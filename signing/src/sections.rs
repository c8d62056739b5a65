//! A component's (or module's) top-level sections, walked with every length checked against
//! the bytes that are there: `wasmsign2` allocates what a section's length says before
//! reading it, so a crafted length would have it reserve gigabytes for a file of a few bytes.

/// The name of the section that holds the signatures (first in a signed component).
pub const SIGNATURE_HEADER: &str = "signature";
/// The name of the section that ends a signed part of a component signed in parts.
pub const SIGNATURE_DELIMITER: &str = "signature_delimiter";

/// A core module's preamble, and a component's.
const HEADERS: [[u8; 8]; 2] = [
    [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00],
];

/// One top-level section: its id, and its name if it is a custom section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section id (0 for a custom section).
    pub id: u8,
    /// A custom section's name.
    pub name: Option<String>,
}

/// The sections of `bytes`, in order.
///
/// # Errors
/// A message when `bytes` are not a WebAssembly module or component, or a length runs past
/// the end.
pub fn sections(bytes: &[u8]) -> Result<Vec<Section>, String> {
    if bytes.len() < 8 || !HEADERS.iter().any(|h| bytes[..8] == *h) {
        return Err("it is not a WebAssembly component".into());
    }
    let mut at = 8;
    let mut found = Vec::new();
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let (len, used) = leb_u32(&bytes[at..])?;
        at += used;
        let end = at
            .checked_add(len as usize)
            .filter(|&end| end <= bytes.len())
            .ok_or("a section runs past the end of the file (cut short?)")?;
        let name = match id {
            0 => {
                let body = &bytes[at..end];
                let (name_len, used) = leb_u32(body)?;
                let name = body
                    .get(used..used + name_len as usize)
                    .ok_or("a custom section's name runs past its end")?;
                Some(String::from_utf8_lossy(name).into_owned())
            }
            _ => None,
        };
        found.push(Section { id, name });
        at = end;
    }
    Ok(found)
}

/// An unsigned LEB128 of at most 32 bits, and the bytes it took.
fn leb_u32(bytes: &[u8]) -> Result<(u32, usize), String> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().take(5).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return u32::try_from(value)
                .map(|v| (v, i + 1))
                .map_err(|_| "a length is larger than WebAssembly allows".into());
        }
    }
    Err("a length is cut short or too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_past_the_end_are_refused_before_anything_allocates() {
        let mut bytes = HEADERS[1].to_vec();
        // A custom section `x` of 3 bytes, then one that claims 4 GiB.
        bytes.extend_from_slice(&[0, 3, 1, b'x', 9]);
        assert_eq!(sections(&bytes).unwrap()[0].name.as_deref(), Some("x"));
        bytes.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(sections(&bytes).unwrap_err().contains("past the end"));
        assert!(sections(b"\0asm").is_err());
        assert!(sections(b"not wasm at all").is_err());
    }
}
