//! hsm-host's store: everything about the SQLite database that needs no WebAssembly.
//!
//! The database and its hardened connection ([`database`]), the tracking tables and the
//! components stored in them ([`tracking`]), schema snapshots ([`schema`]), integrity and
//! foreign-key checks ([`integrity`]), the migration lock ([`lock`]), backups ([`backup`]) and
//! restore ([`restore`]), pure planning ([`plan`]), progress reporting ([`progress`]), and the
//! leaves they share: [`error`], [`text`], [`files`], [`digest`], [`time`].
//!
//! This crate is the bottom of hsm-host's layers (see ARCHITECTURE.md): it depends on rusqlite
//! and never on wasmtime, so a second database backend, or a tool that only reads the tracking
//! tables, builds without the sandbox.

pub mod backup;
pub mod database;
pub mod digest;
pub mod error;
pub mod files;
pub mod integrity;
pub mod lock;
pub mod plan;
pub mod progress;
pub mod restore;
pub mod schema;
pub mod text;
pub mod time;
pub mod tracking;

pub use database::Database;
pub use error::{Error, Result};
pub use plan::{Direction, PlanError};
