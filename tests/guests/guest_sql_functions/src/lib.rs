//! A directory's SQL functions (`sql-functions.wasm`, the `sql-functions` world), as real SQL
//! sets call them: Unicode `normalize(text, form)` and `BIN2B64(blob)` / `B642BIN(text)`; and,
//! to test the limits, `spin()` (never returns), `hog()` (allocates without end) and `fail()`.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "sql-functions",
});

use exports::hsm::migration::functions::Guest;
use hsm::migration::types::Value;
use unicode_normalization::UnicodeNormalization;

struct Functions;

const NAMES: [&str; 6] = ["normalize", "bin2b64", "b642bin", "spin", "hog", "fail"];

impl Guest for Functions {
    fn names() -> Vec<String> {
        NAMES.iter().map(|n| n.to_string()).collect()
    }

    fn call(index: u32, args: Vec<Value>) -> Result<Value, String> {
        match NAMES.get(index as usize).copied() {
            Some("normalize") => normalize(&args),
            Some("bin2b64") => match args.as_slice() {
                [Value::Blob(bytes)] => Ok(Value::Text(encode(bytes))),
                [Value::Null] => Ok(Value::Null),
                _ => Err("bin2b64(blob) takes one blob".into()),
            },
            Some("b642bin") => match args.as_slice() {
                [Value::Text(text)] => decode(text).map(Value::Blob),
                [Value::Null] => Ok(Value::Null),
                _ => Err("b642bin(text) takes one text".into()),
            },
            Some("spin") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("hog") => {
                let mut kept: Vec<Vec<u8>> = Vec::new();
                loop {
                    kept.push(vec![1; 1 << 20]);
                    std::hint::black_box(&kept);
                }
            }
            Some("fail") => Err("fail() always fails".into()),
            _ => Err(format!("no function number {index}")),
        }
    }
}

/// `normalize(text)` (NFC) or `normalize(text, form)`, as PostgreSQL and the Go library real
/// sets were written for.
fn normalize(args: &[Value]) -> Result<Value, String> {
    let (text, form) = match args {
        [Value::Text(text)] => (text, "nfc".to_owned()),
        [Value::Text(text), Value::Text(form)] => (text, form.to_ascii_lowercase()),
        [Value::Null, ..] => return Ok(Value::Null),
        _ => return Err("normalize(text [, form]) takes text".into()),
    };
    Ok(Value::Text(match form.as_str() {
        "nfc" => text.nfc().collect(),
        "nfd" => text.nfd().collect(),
        "nfkc" => text.nfkc().collect(),
        "nfkd" => text.nfkd().collect(),
        other => return Err(format!("normalize: unknown form {other}")),
    }))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut n = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET
            .iter()
            .position(|a| *a == c)
            .ok_or_else(|| format!("b642bin: `{}` is not base64", c as char))?;
        n = n << 6 | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((n >> bits) as u8);
        }
    }
    Ok(out)
}

export!(Functions);
