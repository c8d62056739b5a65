//! hsm-host: runs SQLite migrations shipped as sandboxed WebAssembly components.
//!
//! The library is what the `hsm-host` binary is built on, and what CI code uses to test
//! migration components against a scratch database:
//!
//! ```no_run
//! use hsm_host::{Database, Migrator};
//!
//! # fn main() -> Result<(), hsm_host::Error> {
//! let migrator = Migrator::load_dir("./migrations")?;
//! let db = Database::open_in_memory()?;
//! let report = migrator.up(&db, None)?;
//! assert_eq!(report.steps.len(), migrator.migrations().len());
//! migrator.down(&db, Some(0))?; // roll everything reversible back
//! # Ok(())
//! # }
//! ```
//!
//! Dependencies point one way: [`migrator`] plans and orchestrates; it uses [`runtime`] (the
//! wasm side, which reaches the database only through [`sql`]), and the leaves [`tracking`],
//! [`plan`] and [`schema`], which know nothing of wasm.

pub mod adopt;
pub mod backup;
pub mod database;
pub mod error;
pub mod integrity;
pub mod lock;
pub mod migrator;
pub mod pack;
pub mod plan;
pub mod policy;
pub mod restore;
pub mod runtime;
pub mod schema;
pub mod source;
pub mod sql;
pub mod status;
pub mod text;
pub mod time;
pub mod tracking;
mod traps;

pub use database::Database;
pub use error::{Error, Result};
pub use migrator::{AdoptReport, DryRunReport, Migrator, RunReport, Safety, StepReport};
pub use plan::Direction;
pub use runtime::{Limits, Metadata, MigrationComponent, Runtime};
pub use status::Status;
