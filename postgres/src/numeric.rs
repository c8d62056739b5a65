//! PostgreSQL's binary `numeric`: base-10000 digits with a weight, a sign and a display scale.
//! Read as the decimal text the server would print; written from decimal text.

use postgres::types::IsNull;
use postgres::types::private::BytesMut;

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;
const NAN: u16 = 0xC000;
const PINF: u16 = 0xD000;
const NINF: u16 = 0xF000;

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// The decimal text of a binary numeric.
pub(crate) fn decode(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a numeric cut short".into())
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i64;
    let sign = word(2)?;
    let dscale = word(3)? as usize;
    match sign {
        NAN => return Ok("NaN".into()),
        PINF => return Ok("Infinity".into()),
        NINF => return Ok("-Infinity".into()),
        _ => {}
    }
    let digits = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<Vec<u16>, _>>()?;
    let digit = |position: i64| -> u16 {
        usize::try_from(position)
            .ok()
            .and_then(|p| digits.get(p).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == NEGATIVE {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for position in 0..=weight {
            let group = digit(position);
            if position == 0 {
                text.push_str(&group.to_string());
            } else {
                text.push_str(&format!("{group:04}"));
            }
        }
    }
    if dscale > 0 {
        text.push('.');
        let mut fraction = String::new();
        let mut position = weight + 1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(position)));
            position += 1;
        }
        fraction.truncate(dscale);
        text.push_str(&fraction);
    }
    Ok(text)
}

/// Writes decimal text (`-12.5`, `1e3`, `NaN`) as a binary numeric.
pub(crate) fn encode(text: &str, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    let bad = || -> BoxError { format!("{text:?} is not a number").into() };
    let special = match text.to_ascii_lowercase().as_str() {
        "nan" => Some(NAN),
        "infinity" | "+infinity" | "inf" => Some(PINF),
        "-infinity" | "-inf" => Some(NINF),
        _ => None,
    };
    if let Some(sign) = special {
        for word in [0u16, 0, sign, 0] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        return Ok(IsNull::No);
    }
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().map_err(|_| bad())?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        || exponent.abs() > 1000
    {
        return Err(bad());
    }
    // All digits, and where the decimal point sits among them.
    let mut all: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .collect();
    let mut point = int_part.len() as i64 + exponent;
    let dscale = (frac_part.len() as i64 - exponent).max(0) as u16;
    // Pad so the point falls on a group boundary, with whole groups on both sides.
    let front = (4 - point.rem_euclid(4)) % 4;
    for _ in 0..front {
        all.insert(0, 0);
    }
    point += front;
    while point < 0 {
        all.splice(0..0, [0, 0, 0, 0]);
        point += 4;
    }
    while (all.len() as i64) < point {
        all.push(0);
    }
    while !all.len().is_multiple_of(4) {
        all.push(0);
    }
    let mut groups: Vec<u16> = all
        .chunks(4)
        .map(|c| c.iter().fold(0u16, |n, d| n * 10 + u16::from(*d)))
        .collect();
    let mut weight = point / 4 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if negative && !groups.is_empty() {
        NEGATIVE
    } else {
        POSITIVE
    };
    let header = [groups.len() as u16, weight as i16 as u16, sign, dscale];
    for word in header.iter().chain(groups.iter()) {
        out.extend_from_slice(&word.to_be_bytes());
    }
    Ok(IsNull::No)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_survives_a_round_trip_through_the_binary_form() {
        for (input, shown) in [
            ("0", "0"),
            ("12.50", "12.50"),
            ("-12.5", "-12.5"),
            ("123456789.000123", "123456789.000123"),
            ("0.0001", "0.0001"),
            ("10000", "10000"),
            ("1e3", "1000"),
            ("-0.00005", "-0.00005"),
            ("NaN", "NaN"),
        ] {
            let mut out = BytesMut::new();
            encode(input, &mut out).unwrap();
            assert_eq!(decode(&out).unwrap(), shown, "{input}");
        }
        assert!(encode("12a", &mut BytesMut::new()).is_err());
        assert!(encode("", &mut BytesMut::new()).is_err());
    }
}
