//! Rust types generated from `wit/migration.wit`; nothing else lives here.
// Generated: documented in the WIT.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "migration",
    with: {
        "hsm:migration/sql.statement": crate::sql::PreparedStatement,
        "hsm:migration/sql.rows": crate::sql::CursorHandle,
    },
});

pub use hsm::migration::types::{SqlError, Value};
pub use hsm::migration::{log, sql};
