//! The host side of each interface the contract imports, one file per interface (as
//! wasmtime-wasi lays out its p2 hosts); the store data they work on is `super::state`.
//! `v0_1` links components built for contract 0.1 onto the same implementations.

mod log;
mod sql;
pub(super) mod v0_1;
