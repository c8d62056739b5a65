//! `hsm-guest`: write hsm-host migrations in Rust.
//!
//! A migration is a crate of type `cdylib` built with `cargo build --target wasm32-wasip2`. It
//! depends on this crate, writes an `up` (and, when it can be undone, a `down`) against [`Db`],
//! and declares itself with [`migration!`]:
//!
//! ```ignore
//! use hsm_guest::{Db, Result};
//!
//! fn up(db: &Db) -> Result<()> {
//!     db.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
//! }
//!
//! fn down(db: &Db) -> Result<()> {
//!     db.execute_batch("DROP TABLE notes")
//! }
//!
//! hsm_guest::migration! {
//!     version: 8,
//!     name: "add_notes",
//!     description: "Create the notes table",
//!     up: up,
//!     down: down,
//! }
//! ```
//!
//! The host runs `up`/`down` inside a transaction it owns: return `Ok(())` to commit, an error
//! (or panic) to roll everything back. Leave out `down:` to declare the migration irreversible;
//! the host then refuses to roll it back and points the operator at a backup instead.
//!
//! For data migrations over many rows: page through the table with a [`Statement`] from
//! [`Db::prepare`] (or stream it with [`Db::query_stream`]), read text with [`Row::get_str`]
//! (no copy), and write each page back with one [`Db::execute_many`]. Rows cross the boundary
//! as pages both ways (all their text in one buffer), never a list per row;
//! `migrations-wasm/v007_migrate_legacy_data` shows the idiom. For a per-row transformation
//! SQLite can apply itself, a guest SQL function (`functions: [f]` in [`migration!`], then
//! [`Db::register_function`]) keeps the loop inside SQLite, at the cost of one call into the
//! component per row (a few hundred nanoseconds; BENCHMARKS.md compares the two).
//!
//! Build with the release profile the README recommends (`opt-level = "s"`,
//! `codegen-units = 1`, `lto = true`): smaller components compile faster on the host.

// Lets the generated bindings and the macros below name this crate `hsm_guest` from inside too.
extern crate self as hsm_guest;

mod db;
mod error;
pub mod log;
mod value;

pub use bindings::hsm::migration::sql::Dialect;
pub use db::{ColumnIndex, Db, Row, RowStream, Statement};
pub use error::{Error, Result};
pub use value::{FromSql, Params, ToSql, Value};

/// The raw bindings generated from the `hsm:migration` WIT package. Prefer [`Db`]; these are
/// here for what the wrappers do not cover.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "migration-with-functions",
        additional_derives: [PartialEq],
        pub_export_macro: true,
        export_macro_name: "__export_migration",
        default_bindings_module: "hsm_guest::bindings",
        runtime_path: "hsm_guest::__private::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::{Db, Result};

    /// The dialects hsm-host knows; a name outside them fails the build.
    const DIALECTS: &[&str] = &["sqlite", "postgresql"];

    const fn known(name: &str) -> bool {
        let mut i = 0;
        while i < DIALECTS.len() {
            let (a, b) = (DIALECTS[i].as_bytes(), name.as_bytes());
            if a.len() == b.len() {
                let mut j = 0;
                while j < a.len() && a[j] == b[j] {
                    j += 1;
                }
                if j == a.len() {
                    return true;
                }
            }
            i += 1;
        }
        false
    }

    /// The length of `migration!`'s `dialects` section: the names, comma-separated.
    pub const fn dialects_len(names: &[&str]) -> usize {
        assert!(
            !names.is_empty(),
            "dialects: name at least one (\"sqlite\", \"postgresql\")"
        );
        let mut len = names.len() - 1;
        let mut i = 0;
        while i < names.len() {
            assert!(
                known(names[i]),
                "dialects: the known ones are \"sqlite\" and \"postgresql\""
            );
            len += names[i].len();
            i += 1;
        }
        len
    }

    /// The bytes of `migration!`'s `dialects` section.
    pub const fn dialects_bytes<const N: usize>(names: &[&str]) -> [u8; N] {
        let mut out = [0u8; N];
        let mut at = 0;
        let mut i = 0;
        while i < names.len() {
            if i > 0 {
                out[at] = b',';
                at += 1;
            }
            let name = names[i].as_bytes();
            let mut j = 0;
            while j < name.len() {
                out[at] = name[j];
                at += 1;
                j += 1;
            }
            i += 1;
        }
        out
    }

    /// Runs one step and turns its error into the message the host reports.
    pub fn run_step(step: fn(&Db) -> Result<()>) -> core::result::Result<(), String> {
        step(&Db::new()).map_err(|error| error.to_string())
    }

    pub fn irreversible(version: u64, name: &str) -> core::result::Result<(), String> {
        Err(format!(
            "migration {version} ({name}) is irreversible: it declares no down step; \
             restore the backup taken before it was applied instead"
        ))
    }
}

/// Declares this crate's migration and exports it as a component.
///
/// Takes `version` (a positive integer, unique among the migrations of a database), `name`
/// (short, snake_case), `description`, `up` and, optionally, `down`: functions of type
/// `fn(&Db) -> hsm_guest::Result<()>`. Without `down` the migration is irreversible.
/// Optionally `functions: [f, g]` lists scalar SQL functions (`fn(&[Value]) ->
/// hsm_guest::Result<Value>`) that `up`/`down` can register with [`Db::register_function`]
/// under their Rust names. Use it once per crate.
///
/// ```ignore
/// fn normalize_email(args: &[Value]) -> Result<Value> {
///     Ok(match &args[0] {
///         Value::Text(email) => Value::Text(email.trim().to_lowercase()),
///         other => other.clone(),
///     })
/// }
///
/// fn up(db: &Db) -> Result<()> {
///     db.register_function("normalize_email", 1)?;
///     db.execute("UPDATE users SET email = normalize_email(email)", ())?;
///     Ok(())
/// }
///
/// hsm_guest::migration! {
///     version: 9,
///     name: "normalize_emails",
///     description: "IRREVERSIBLE: trim and lowercase every email",
///     up: up,
///     functions: [normalize_email],
/// }
/// ```
///
/// `dialects: ["sqlite", "postgresql"]` (last) says which databases the migration's SQL is
/// written for; without it, it is SQLite's alone, and hsm-host refuses to run it on
/// PostgreSQL. Placeholders are `?1` on SQLite and `$1` on PostgreSQL, so SQL written for both
/// keeps to what both accept (or a migration ships one component per database).
#[macro_export]
macro_rules! migration {
    (
        version: $version:expr,
        name: $name:expr,
        description: $description:expr,
        up: $up:expr
        $(, down: $down:expr)?
        $(, functions: [$($function:ident),* $(,)?])?
        $(, dialects: [$($dialect:literal),* $(,)?])?
        $(,)?
    ) => {
        struct __HsmMigration;

        // The databases it is written for, in a custom section the host reads before running
        // it: without one, a component is SQLite's alone.
        $(
            #[unsafe(link_section = "hsm:dialects")]
            #[used]
            static __HSM_DIALECTS: [u8; $crate::__private::dialects_len(&[$($dialect),*])] =
                $crate::__private::dialects_bytes(&[$($dialect),*]);
        )?

        impl $crate::bindings::Guest for __HsmMigration {
            fn metadata() -> $crate::bindings::hsm::migration::types::Metadata {
                $crate::bindings::hsm::migration::types::Metadata {
                    version: $version,
                    name: ::std::string::String::from($name),
                    description: ::std::string::String::from($description),
                    reversible: $crate::__reversible!($($down)?),
                }
            }

            fn up() -> ::core::result::Result<(), ::std::string::String> {
                $crate::__private::run_step($up)
            }

            fn down() -> ::core::result::Result<(), ::std::string::String> {
                $crate::__down!($version, $name, $($down)?)
            }
        }

        impl $crate::bindings::exports::hsm::migration::functions::Guest for __HsmMigration {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$($(::std::string::String::from(::core::stringify!($function))),*)?]
            }

            fn call(
                index: u32,
                args: ::std::vec::Vec<$crate::Value>,
            ) -> ::core::result::Result<$crate::Value, ::std::string::String> {
                const FUNCTIONS: &[fn(&[$crate::Value]) -> $crate::Result<$crate::Value>] =
                    &[$($($function),*)?];
                match FUNCTIONS.get(index as usize) {
                    ::core::option::Option::Some(function) => {
                        function(&args).map_err(|error| error.to_string())
                    }
                    ::core::option::Option::None => ::core::result::Result::Err(::std::format!(
                        "this migration declares no SQL function number {index}"
                    )),
                }
            }
        }

        $crate::bindings::__export_migration!(__HsmMigration);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __reversible {
    () => {
        false
    };
    ($down:expr) => {
        true
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __down {
    ($version:expr, $name:expr,) => {
        $crate::__private::irreversible($version, $name)
    };
    ($version:expr, $name:expr, $down:expr) => {
        $crate::__private::run_step($down)
    };
}
