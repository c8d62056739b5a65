//! Integration tests: real guest components (built from source by `hsm-test-artifacts`), real
//! SQLite files in a temporary directory per test, and the real `hsm-host` binary.

mod adopt;
mod attack_classes;
mod authoring;
mod backups;
mod cache;
mod cli;
mod compilers;
mod config;
mod crash;
mod failures;
mod fleet;
mod guests_used;
mod hostile_files;
mod hostile_rows;
mod integrity;
mod json_shapes;
mod languages;
mod library;
mod node_sets;
mod pop_sets;
mod real_sets;
mod redo_and_down;
mod sandbox;
mod sandbox_limits;
mod signing;
mod single_transaction;
mod sql_functions;
mod sql_identity;
mod sql_sets;
mod status;
mod support;
mod terminal;
mod tracking_names;
mod tracking_schema;
