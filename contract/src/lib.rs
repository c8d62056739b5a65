//! The contract, `wit/migration.wit` (`hsm:migration@0.2.1`), as Rust types: the generated
//! bindings and the host's resource types behind them (0.1's live with its adapter, the
//! sandbox's `runtime/host/v0_1.rs`). It uses nothing of hsm-host; the sandbox's SQL proxy and
//! runtime build on it.
// Generated: documented in the WIT.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "migration",
    with: {
        "hsm:migration/sql.statement": PreparedStatement,
        "hsm:migration/sql.rows": CursorHandle,
    },
});

pub use hsm::migration::types::{SqlError, Value};
pub use hsm::migration::{log, sql};

/// A guest's open cursor: the id of its statement in the call's `GuestSql`.
pub struct CursorHandle {
    /// The statement's id in the call's cursor table.
    pub id: u32,
}

/// A guest's prepared statement. The host keeps its compiled forms (the connection's statement
/// cache for `execute`, a compiled cursor for `query`; both gone when the call ends); the
/// resource holds the text that finds them again.
pub struct PreparedStatement {
    /// The statement's SQL text.
    pub sql: String,
}
