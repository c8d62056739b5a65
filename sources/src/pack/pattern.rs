//! A layout described by a pattern, for projects with a naming of their own:
//! `V{version}.{name}.{direction}.sql` reads `V0001.Initial_Schema.up.sql` as version 1, name
//! `Initial_Schema`, direction up. `{version}` is digits (compared as numbers), `{name}` any
//! non-empty text, `{direction}` `up` or `down` (without it every file is an up-only
//! migration); everything else must be there as written.

use std::fmt;

/// A parsed `--layout` pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Part {
    Text(String),
    Version,
    Name,
    Direction,
}

/// What a file name says under a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    /// The version's digits as written (`0001`).
    pub version: &'a str,
    /// The name as written.
    pub name: &'a str,
    /// `up` or `down` (`up` when the pattern has no `{direction}`).
    pub direction: &'static str,
}

impl Pattern {
    /// Parses a pattern; the reason names what is wrong with it.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("`{source}`: a `{{` is not closed"))?;
                    parts.push(match &rest[1..end] {
                        "version" => Part::Version,
                        "name" => Part::Name,
                        "direction" => Part::Direction,
                        other => {
                            return Err(format!(
                                "`{source}`: `{{{other}}}` is not a placeholder (use {{version}}, \
                                 {{name}} and {{direction}})"
                            ));
                        }
                    });
                    rest = &rest[end + 1..];
                }
                Some(at) => {
                    parts.push(Part::Text(rest[..at].to_owned()));
                    rest = &rest[at..];
                }
                None => {
                    parts.push(Part::Text(rest.to_owned()));
                    rest = "";
                }
            }
        }
        let count = |wanted: &Part| parts.iter().filter(|p| *p == wanted).count();
        if count(&Part::Version) != 1 {
            return Err(format!("`{source}` must hold {{version}} exactly once"));
        }
        if count(&Part::Name) > 1 || count(&Part::Direction) > 1 {
            return Err(format!(
                "`{source}` may hold {{name}} and {{direction}} once each"
            ));
        }
        if !source.ends_with(".sql") {
            return Err(format!("`{source}` must end in .sql"));
        }
        if source.contains('/') {
            return Err(format!("`{source}` names files, not paths: no `/`"));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern reads up and down files.
    pub fn has_direction(&self) -> bool {
        self.parts.contains(&Part::Direction)
    }

    /// What `file_name` says under the pattern, or `None` when it does not match.
    pub fn matches<'a>(&self, file_name: &'a str) -> Option<Matched<'a>> {
        let mut found = Matched {
            version: "",
            name: "",
            direction: "up",
        };
        matches_from(&self.parts, file_name, &mut found).then_some(found)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Matches `parts` against all of `text`, trying shorter and longer placeholders as needed.
fn matches_from<'a>(parts: &[Part], text: &'a str, found: &mut Matched<'a>) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    match first {
        Part::Text(literal) => text
            .strip_prefix(literal.as_str())
            .is_some_and(|after| matches_from(rest, after, found)),
        Part::Direction => ["up", "down"].into_iter().any(|direction| {
            text.strip_prefix(direction).is_some_and(|after| {
                found.direction = direction;
                matches_from(rest, after, found)
            })
        }),
        Part::Version => {
            let digits = text.bytes().take_while(u8::is_ascii_digit).count();
            (1..=digits).rev().any(|len| {
                found.version = &text[..len];
                matches_from(rest, &text[len..], found)
            })
        }
        Part::Name => text
            .char_indices()
            .skip(1)
            .map(|(at, _)| at)
            .chain([text.len()])
            .filter(|&at| at > 0)
            .any(|at| {
                found.name = &text[..at];
                matches_from(rest, &text[at..], found)
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_projects_own_naming_is_read() {
        let pattern = Pattern::parse("V{version}.{name}.{direction}.sql").unwrap();
        let found = pattern.matches("V0001.Initial_Schema.up.sql").unwrap();
        assert_eq!(
            (found.version, found.name, found.direction),
            ("0001", "Initial_Schema", "up")
        );
        let found = pattern.matches("V0012.Add.Dots.down.sql").unwrap();
        assert_eq!(
            (found.version, found.name, found.direction),
            ("0012", "Add.Dots", "down")
        );
        assert!(pattern.matches("V0001.up.sql").is_none());
        assert!(pattern.matches("0001_x.up.sql").is_none());
        assert!(pattern.matches("V0001.x.sideways.sql").is_none());

        let up_only = Pattern::parse("{version}-{name}.sql").unwrap();
        assert!(!up_only.has_direction());
        let found = up_only.matches("12-add-users.sql").unwrap();
        assert_eq!(
            (found.version, found.name, found.direction),
            ("12", "add-users", "up")
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        for (pattern, why) in [
            ("V{name}.sql", "{version} exactly once"),
            ("{version}_{nam}.sql", "not a placeholder"),
            ("{version}_{name}.txt", "end in .sql"),
            ("{version}_{name", "not closed"),
            ("sql/{version}.sql", "no `/`"),
        ] {
            let error = Pattern::parse(pattern).unwrap_err();
            assert!(error.contains(why), "{pattern}: {error}");
        }
    }
}
