//! Version 9, built against a frozen copy of `hsm:migration@0.1.1` (in `wit/` beside this
//! file) with plain wit-bindgen: newer hosts must keep running components built for 0.1.1,
//! including finding their `functions@0.1.1` export.

wit_bindgen::generate!({ path: "wit", world: "migration-with-functions" });

use exports::hsm::migration::functions;
use hsm::migration::sql;
use hsm::migration::types::Value;

struct Old;

fn fail(e: sql::SqlError) -> String {
    e.message
}

impl Guest for Old {
    fn metadata() -> Metadata {
        Metadata {
            version: 9,
            name: "contract_v011".into(),
            description: "Test guest built against hsm:migration@0.1.1".into(),
            reversible: true,
        }
    }

    fn up() -> Result<(), String> {
        sql::execute_batch("CREATE TABLE v011_guest (id INTEGER PRIMARY KEY, note TEXT)")
            .map_err(fail)?;
        let rows = [1, 2].map(|id| vec![Value::Integer(id), Value::Text(format!("note {id}"))]);
        sql::execute_many("INSERT INTO v011_guest (id, note) VALUES (?1, ?2)", &rows)
            .map_err(fail)?;
        sql::register_function("shout", 1, true).map_err(fail)?;
        sql::execute("UPDATE v011_guest SET note = shout(note)", &[]).map_err(fail)?;
        let count =
            sql::Statement::prepare("SELECT count(*) FROM v011_guest WHERE note LIKE 'NOTE%'")
                .and_then(|statement| statement.query(&[]))
                .map_err(fail)?;
        match count.rows.as_slice() {
            [row] if matches!(row.as_slice(), [Value::Integer(2)]) => Ok(()),
            other => Err(format!("expected 2 shouted notes, found {other:?}")),
        }
    }

    fn down() -> Result<(), String> {
        sql::execute_batch("DROP TABLE v011_guest").map_err(fail)
    }
}

impl functions::Guest for Old {
    fn call(name: String, args: Vec<Value>) -> Result<Value, String> {
        match (name.as_str(), args.as_slice()) {
            ("shout", [Value::Text(text)]) => Ok(Value::Text(text.to_uppercase())),
            _ => Err(format!("no function {name}")),
        }
    }
}

export!(Old);
