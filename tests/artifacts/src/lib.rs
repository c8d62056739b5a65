//! Paths of the guest components built from source for the tests (see `build.rs`).

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
