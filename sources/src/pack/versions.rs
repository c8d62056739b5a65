//! Version numbers from the tools' file names, in each tool's own order: diesel's compared as
//! strings, Flyway's dotted parts, the plain numbers of the others. A number depends only on the
//! file's own name, so it never changes as a set grows.

use std::path::Path;

use super::parts::{SetError, error};

/// `V…__…` or `U…__…` → (`V` or `U`, the rest).
pub(super) fn flyway_file(stem: &str) -> Option<(char, &str)> {
    let kind = stem.chars().next().filter(|c| matches!(c, 'V' | 'U'))?;
    let rest = &stem[1..];
    (rest.starts_with(|c: char| c.is_ascii_digit()) && rest.contains("__")).then_some((kind, rest))
}

/// `1.2__add_users` → (version, `1.2`, `add_users`).
pub(super) fn flyway_id(path: &Path, rest: &str) -> Result<(u64, String, String), SetError> {
    let (raw, name) = rest.split_once("__").unwrap_or((rest, ""));
    let version = flyway_version(raw).map_err(|reason| error(path, reason))?;
    let (_, _, name) = split_id(path, &format!("1_{name}"), "_")?;
    let name = if name == "migration_1" {
        format!("migration_{version}")
    } else {
        name
    };
    Ok((version, raw.to_owned(), name))
}

/// Flyway's version as hsm-host numbers it. Without parts it is the number itself (`V7` is 7,
/// `V20240313170000` is 20240313170000). With parts (`1.2`, `1_2`, `2024.01.15`), each of up
/// to three parts gets six digits: `a.b.c` is a·10¹² + b·10⁶ + c, so `1.2` < `1.10` < `2.0`
/// as Flyway orders them, and the numbers stay the same as the set grows.
///
/// # Errors
/// A version that is not digits and dots, has more than three parts, or a part too large.
pub fn flyway_version(raw: &str) -> Result<u64, String> {
    let parts: Vec<&str> = raw.split(['.', '_']).collect();
    let unusable = |why: &str| {
        format!(
            "version `{raw}` cannot be numbered: {why} (versions are whole numbers, or up to \
             three dotted parts of at most six digits each)"
        )
    };
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(unusable("it is not digits and dots"));
    }
    let number = if parts.len() == 1 {
        parts[0].parse::<u64>().ok()
    } else if parts.len() > 3 {
        return Err(unusable("it has more than three parts"));
    } else {
        let mut number: u64 = 0;
        let mut ok = true;
        for (i, part) in parts.iter().enumerate() {
            let value: u64 = part.parse().unwrap_or(u64::MAX);
            let scale = 10u64.pow(6 * (2 - i as u32));
            ok &= i == 0 || value < 1_000_000;
            number = value
                .checked_mul(scale)
                .and_then(|v| v.checked_add(number))
                .unwrap_or(u64::MAX);
        }
        ok.then_some(number)
    };
    number
        .filter(|v| *v > 0 && i64::try_from(*v).is_ok())
        .ok_or_else(|| unusable("it is 0 or too large"))
}

/// Digits of a diesel version hsm-host numbers by (diesel's `YYYYMMDDHHMMSS`).
const DIESEL_DIGITS: usize = 14;

/// A diesel folder name → (version, original id, name); see [`diesel_number`].
pub(super) fn diesel_id(path: &Path, dir_name: &str) -> Result<(u64, String, String), SetError> {
    let (raw, name) = dir_name.split_once('_').unwrap_or((dir_name, ""));
    let version: String = raw.chars().filter(|&c| c != '-').collect();
    let number = diesel_number(&version).map_err(|reason| error(path, reason))?;
    Ok((number, dir_name.to_owned(), clean_name(name, number)))
}

/// The number of a diesel version as diesel writes it in its history. diesel's version is a
/// folder's name up to the first `_` with the dashes removed, and diesel orders versions *as
/// strings*: so does this numbering, which pads the version with zeros to 14 digits
/// (`2024-03-13_170000_x` is version `20240313`, between `20240306…` and `20240605…`; it is
/// numbered 20240313000000), and numbers a 14-digit version as itself, whatever else is in the
/// set (a number never changes as the set grows). diesel 2.3 adds a hexadecimal counter of the
/// migrations made in the same second (`2025-12-08-135428-0000`, `…-0001`): it is added to the
/// 14 digits before it, so `…135428-0001` is numbered 20251208135429 (a migration of the very
/// next second would then have the same number, and is refused as a duplicate by name).
/// Version 0 (`00000000000000_initial` with SQL in it) is numbered 1, before every other.
///
/// # Errors
/// A version that is not digits (and a hexadecimal counter after the 14th digit).
pub(crate) fn diesel_number(version: &str) -> Result<u64, String> {
    let (head, counter) = version.split_at(version.len().min(DIESEL_DIGITS));
    if head.is_empty() || !head.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "diesel version `{version}` is not digits (and dashes)"
        ));
    }
    let counter = match counter {
        "" => 0,
        hex => u64::from_str_radix(hex, 16)
            .ok()
            .filter(|c| *c < 1 << 16)
            .ok_or_else(|| {
                format!(
                    "diesel version `{version}`: `{hex}` after its 14 digits is not diesel's \
                     counter (four hexadecimal digits)"
                )
            })?,
    };
    let number: u64 = format!("{head:0<DIESEL_DIGITS$}")
        .parse()
        .expect("14 digits fit a u64");
    Ok((number + counter).max(1))
}

/// `<version><sep><name>` → (version, original id, name).
pub(super) fn split_id(
    path: &Path,
    text: &str,
    separator: &str,
) -> Result<(u64, String, String), SetError> {
    let (version, name) = text.split_once(separator).unwrap_or((text, ""));
    if version.contains('.') {
        return Err(error(
            path,
            format!(
                "version `{version}` has parts, and in this layout versions are whole numbers; \
                 if the directory follows a naming of its own, describe it with --layout \
                 (e.g. 'V{{version}}.{{name}}.{{direction}}.sql')"
            ),
        ));
    }
    let digits: String = version.chars().filter(char::is_ascii_digit).collect();
    // 0 is a version golang-migrate and sqlx accept (`0_initial.up.sql`): see `from_one`.
    let number = digits
        .parse::<u64>()
        .ok()
        .filter(|v| *v < i64::MAX as u64)
        .ok_or_else(|| {
            error(
                path,
                format!(
                    "`{version}` is not a usable version: versions are whole numbers from 0 to \
                     {}",
                    i64::MAX
                ),
            )
        })?;
    Ok((number, text.to_owned(), clean_name(name, number)))
}

/// A migration's name from a file's: `[a-z0-9_]` only (so nothing from a file name reaches a
/// path, a terminal or a log raw), `migration_<version>` when nothing is left.
pub(super) fn clean_name(name: &str, number: u64) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.trim_matches('_').is_empty() {
        format!("migration_{number}")
    } else {
        name
    }
}
