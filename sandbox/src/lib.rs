//! hsm-host's sandbox: where a migration's code runs and what it may do.
//!
//! The contract ([`contract`], the WIT as Rust types), the wasm runtime with its limits,
//! compile cache and the host side of each imported interface ([`runtime`]), the guest's SQL
//! proxy ([`sql`]), the SQL policy the authorizer enforces while a guest runs ([`policy`]), and
//! the check that a step planted no trap in the schema ([`traps`]).
//!
//! It builds on `hsm-store` (the database, tracking, schema) and never on the layers above it
//! (SQL sources, the migrator, the CLI): see ARCHITECTURE.md.

pub use hsm_contract as contract;
pub mod policy;
pub mod runtime;
pub mod sql;
pub mod traps;

// The store's modules under the paths the sandbox's code names them by.
use hsm_store::{database, error, files, plan, schema, text, tracking};
