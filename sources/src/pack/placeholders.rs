//! Flyway's placeholders: `${name}` in a migration's SQL replaced by its value before it runs
//! (Flyway's default prefix `${` and suffix `}`), values given with `--placeholder name=value`,
//! and Flyway's built-ins (`${flyway:defaultSchema}`, `${flyway:timestamp}`, …). A placeholder
//! with no value is an error naming it and its file, never left in the SQL as text.

use std::collections::BTreeMap;
use std::path::Path;

use super::parts::{SetError, error};

/// `text` with every `${name}` replaced.
pub(super) fn substitute(
    path: &Path,
    text: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, SetError> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            // No suffix: Flyway leaves the text as it is.
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let value = values
            .get(name)
            .cloned()
            .or_else(|| builtin(name, path))
            .ok_or_else(|| {
                let line = text[..text.len() - rest.len() + start]
                    .matches('\n')
                    .count()
                    + 1;
                error(
                    path,
                    format!(
                        "line {line}: the placeholder `${{{}}}` has no value: give it with \
                         --placeholder {}=VALUE (Flyway replaces `${{…}}` in every migration)",
                        crate::text::neutralize(name, 64),
                        crate::text::neutralize(name, 64)
                    ),
                )
            })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Flyway's built-in placeholders, as they read on SQLite (one schema, `main`; no user).
fn builtin(name: &str, path: &Path) -> Option<String> {
    Some(match name {
        "flyway:defaultSchema" | "flyway:database" => "main".to_owned(),
        "flyway:user" => String::new(),
        "flyway:table" => "flyway_schema_history".to_owned(),
        "flyway:environment" => "default".to_owned(),
        "flyway:filename" => path.file_name()?.to_string_lossy().into_owned(),
        "flyway:workingDirectory" => std::env::current_dir().ok()?.display().to_string(),
        "flyway:timestamp" => chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        _ => return None,
    })
}

/// Parses `name=value` (the value may hold `=`; the name may not be empty).
pub fn parse(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_a_missing_one_is_named() {
        let path = Path::new("V2__flags.sql");
        let values = BTreeMap::from([("library-scan-startup".to_owned(), "0".to_owned())]);
        assert_eq!(
            substitute(path, "UPDATE l SET s = ${library-scan-startup};", &values).unwrap(),
            "UPDATE l SET s = 0;"
        );
        assert_eq!(
            substitute(
                path,
                "-- in ${flyway:defaultSchema} from ${flyway:filename}",
                &values
            )
            .unwrap(),
            "-- in main from V2__flags.sql"
        );
        assert_eq!(
            substitute(path, "SELECT '${';", &values).unwrap(),
            "SELECT '${';"
        );
        let err = substitute(path, "SELECT 1;\nSELECT ${nope};", &values).unwrap_err();
        assert!(
            err.reason.contains("line 2: the placeholder `${nope}`"),
            "{}",
            err.reason
        );
        assert!(
            err.reason.contains("--placeholder nope=VALUE"),
            "{}",
            err.reason
        );
        assert_eq!(parse("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse("=x").is_err());
    }
}
