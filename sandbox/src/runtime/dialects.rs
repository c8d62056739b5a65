//! The databases a component says its SQL is written for: `hsm:dialects` custom sections,
//! each a comma-separated list of names. The Rust SDK's `migration!(… dialects: […])` writes
//! one into its core module; [`declare`] appends one to a component any other tool built
//! (componentize-py, componentize-js), so a Python or JavaScript migration can say it runs on
//! PostgreSQL too. A component that declares nothing is SQLite's.

use crate::text;

/// The custom section's name.
pub const SECTION: &str = "hsm:dialects";

/// The dialects hsm-host knows.
pub const KNOWN: [&str; 2] = ["sqlite", "postgresql"];

/// How many names one component may declare (every section together): there are two.
const MAX_NAMES: usize = 16;

/// The dialects a component's `hsm:dialects` sections name (in any of its modules), each
/// once, escaped and shortened for display: a section is the author's text.
pub fn declared(bytes: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let section = match payload {
            Ok(wasmparser::Payload::CustomSection(section)) => section,
            Ok(_) => continue,
            // Not a component hsm-host could run anyway: it declares nothing more.
            Err(_) => break,
        };
        if section.name() != SECTION {
            continue;
        }
        let text = String::from_utf8_lossy(section.data());
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = text::neutralize(name, 32);
            if !names.contains(&name) {
                names.push(name);
            }
            if names.len() == MAX_NAMES {
                return names;
            }
        }
    }
    names
}

/// `component` with an `hsm:dialects` section appended naming those of `dialects` it does not
/// declare yet (declarations only add: what a module of it declares stays), and the names it
/// declares afterwards.
///
/// # Errors
/// A name hsm-host does not know, no name, or bytes that are not a component.
pub fn declare(component: &[u8], dialects: &[String]) -> Result<(Vec<u8>, Vec<String>), String> {
    if dialects.is_empty() {
        return Err(format!("name at least one dialect ({})", KNOWN.join(", ")));
    }
    if let Some(unknown) = dialects.iter().find(|d| !KNOWN.contains(&d.as_str())) {
        return Err(format!(
            "`{}` is not a dialect hsm-host knows ({})",
            text::neutralize(unknown, 32),
            KNOWN.join(", ")
        ));
    }
    if !wasmparser::Parser::is_component(component) {
        return Err(
            "is not a WebAssembly component (a core module or another file): build the \
             migration as a component first"
                .into(),
        );
    }
    let before = declared(component);
    let added: Vec<&str> = KNOWN
        .iter()
        .copied()
        .filter(|k| dialects.iter().any(|d| d == k) && !before.iter().any(|b| b == k))
        .collect();
    if added.is_empty() {
        return Ok((component.to_vec(), before));
    }
    let mut bytes = component.to_vec();
    use wasm_encoder::Section;
    wasm_encoder::CustomSection {
        name: SECTION.into(),
        data: added.join(",").into_bytes().into(),
    }
    .append_to(&mut bytes);
    let after = declared(&bytes);
    Ok((bytes, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: its preamble alone.
    const EMPTY_COMPONENT: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    fn custom(name: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = EMPTY_COMPONENT.to_vec();
        use wasm_encoder::Section;
        wasm_encoder::CustomSection {
            name: name.into(),
            data: data.into(),
        }
        .append_to(&mut bytes);
        bytes
    }

    #[test]
    fn declaring_adds_names_once_and_reads_back() {
        assert!(declared(&EMPTY_COMPONENT).is_empty());
        let (bytes, names) = declare(&EMPTY_COMPONENT, &["postgresql".into()]).unwrap();
        assert_eq!(names, ["postgresql"]);
        // Still a component wasmtime takes.
        wasmtime::component::Component::new(&wasmtime::Engine::default(), &bytes).unwrap();
        let (again, names) = declare(&bytes, &["sqlite".into(), "postgresql".into()]).unwrap();
        assert_eq!(names, ["postgresql", "sqlite"]);
        let (same, _) = declare(&again, &["sqlite".into()]).unwrap();
        assert_eq!(
            same, again,
            "nothing new to declare leaves the bytes as they are"
        );
    }

    #[test]
    fn unknown_names_and_core_modules_are_refused() {
        let error = declare(&EMPTY_COMPONENT, &["mysql\u{1b}[2J".into()]).unwrap_err();
        assert!(error.contains("not a dialect"), "{error}");
        assert!(!error.contains('\u{1b}'), "{error}");
        assert!(declare(&EMPTY_COMPONENT, &[]).is_err());
        let core = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
        assert!(declare(&core, &["sqlite".into()]).is_err());
        assert!(declare(b"#!/bin/sh", &["sqlite".into()]).is_err());
    }

    #[test]
    fn a_hostile_section_is_read_escaped_shortened_and_bounded() {
        let long = "p".repeat(10_000);
        let mut data = format!("postgresql,\u{1b}]0;pwned\u{7},{long},").into_bytes();
        for i in 0..10_000 {
            data.extend_from_slice(format!("d{i},").as_bytes());
        }
        data.extend_from_slice(&[0xff, 0xfe]);
        let names = declared(&custom(SECTION, &data));
        assert_eq!(names.len(), MAX_NAMES);
        assert_eq!(names[0], "postgresql");
        assert!(
            names
                .iter()
                .all(|n| !n.contains('\u{1b}') && !n.contains('\u{7}'))
        );
        // 32 bytes of a name, then what was cut said.
        assert!(names[2].starts_with(&"p".repeat(32)), "{names:?}");
        assert!(names[2].ends_with("more bytes cut)"), "{names:?}");
        assert!(names.iter().all(|n| n.len() <= 64), "{names:?}");
        // Garbage after the section ends the reading, without a panic.
        let mut broken = custom(SECTION, b"sqlite");
        broken.extend_from_slice(&[0x00, 0xff, 0xff, 0xff]);
        assert_eq!(declared(&broken), ["sqlite"]);
    }
}
