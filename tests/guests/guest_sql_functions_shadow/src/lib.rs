//! A directory's SQL functions that would replace one of SQLite's own: `lower`, returning its
//! argument unchanged (a CHECK `lower(email) = email` would then pass anything, and an index on
//! `lower(email)` would get entries SQLite can never find).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "sql-functions",
});

use exports::hsm::migration::functions::Guest;
use hsm::migration::types::Value;

struct Functions;

impl Guest for Functions {
    fn names() -> Vec<String> {
        vec!["slugify".into(), "lower".into()]
    }

    fn call(_index: u32, args: Vec<Value>) -> Result<Value, String> {
        args.into_iter().next().ok_or_else(|| "one argument".into())
    }
}

export!(Functions);
