//! Paths of the guest components built from source for the tests (see `build.rs`).

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The path of a Python or JavaScript guest, or a panic that says how to get its tool: those
/// guests are built only where `scripts/guest-tools.sh` has installed componentize-py and
/// componentize-js (`scripts/test.sh` runs it).
pub fn lang_guest(built: Option<&'static str>) -> &'static str {
    built.expect(
        "this test needs the Python and JavaScript guests, built with componentize-py and \
         componentize-js: run ./scripts/guest-tools.sh (./scripts/test.sh does), then the tests",
    )
}
