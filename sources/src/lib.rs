//! hsm-host's sources: where migrations come from.
//!
//! A migrations directory read into components and what is known of them ([`source`]), plain
//! SQL migrations in the common tools' layouts read and packed into components ([`pack`]), and
//! other tools' history tables read so a database they migrated can be adopted ([`adopt`]).
//!
//! It builds on `hsm-store` and `hsm-sandbox` and never on the migrator or the CLI above it:
//! see ARCHITECTURE.md.

pub mod adopt;
pub mod pack;
pub mod source;
pub mod tool;

// The lower crates' modules under the paths the sources' code names them by.
use hsm_sandbox::{runtime, sql};
use hsm_store::{error, files, text, tracking};
