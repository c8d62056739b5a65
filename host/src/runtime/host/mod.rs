//! The host side of each interface the contract imports, one file per interface (as
//! wasmtime-wasi lays out its p2 hosts); the store data they work on is `super::state`.

mod log;
mod sql;
