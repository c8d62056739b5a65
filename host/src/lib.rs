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
//! An operator's program works on files through [`Project`] (a database and its migrations
//! directory, one method per `hsm-host` command: status, up, down, dry runs, backup, backups,
//! restore, repair, adopt, baseline, test). The public modules are what a program needs besides
//! [`Project`] and [`Migrator`]: [`backup`] and
//! [`restore`], [`status`], [`pack`] (plain SQL migrations), [`adopt`] (other tools'
//! histories), [`tracking`] (the tracking tables and their names), [`source`], [`runtime`]
//! (limits and the compile cache) and [`lock`]. Everything else (the SQL proxy, the policy, the
//! trap check, planning, schema snapshots) is internal; `ARCHITECTURE.md` says how they fit.

pub use hsm_sources::adopt;
mod assess;
pub use hsm_store::backup;
use hsm_store::database;
pub use hsm_store::error;
use hsm_store::integrity;
pub use hsm_store::lock;
pub mod fleet;
pub mod migrator;
pub use hsm_sources::pack;
pub use hsm_sources::tool;
use hsm_store::plan;
mod project;
pub use hsm_store::restore;
pub mod roundtrip;
pub use hsm_sandbox::runtime;
pub mod scaffold;
pub mod server;
use hsm_sandbox::{policy, traps};
pub use hsm_sources::source;
use hsm_store::schema;
pub mod status;
pub mod testing;
use hsm_store::text;
use hsm_store::time;
/// The tracking tables and their names, as a program reads them. Writing them is the
/// migrator's alone (the store's `TrackingWrites` is not re-exported).
pub mod tracking {
    pub use hsm_store::tracking::{
        HistoryDirection, HistoryRow, HistoryStatus, INTERRUPTED, MAX_COMPONENT_BYTES,
        MigrationRow, RowStatus, SharedTracking, Tracking, column_names, other_prefixes,
        stored_form,
    };
}

pub use database::Database;
pub use error::{Error, Result};
pub use migrator::{AdoptReport, DryRunReport, GcReport, Migrator, RunReport, Safety, StepReport};
pub use plan::{Direction, PlanError};
pub use project::Project;
pub use runtime::{Limits, Metadata, MigrationComponent, Runtime};
pub use schema::SchemaChange;
pub use status::Status;
pub use text::neutralize;
