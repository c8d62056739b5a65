//! Version 8, built against a frozen copy of `hsm:migration@0.1.0` (in `wit/` beside this
//! file) with plain wit-bindgen: newer hosts must keep running components built for 0.1.0.

wit_bindgen::generate!({ path: "wit", world: "migration" });

use hsm::migration::sql;
use hsm::migration::types::Value;

struct Old;

impl Guest for Old {
    fn metadata() -> Metadata {
        Metadata {
            version: 8,
            name: "contract_v010".into(),
            description: "Test guest built against hsm:migration@0.1.0".into(),
            reversible: true,
        }
    }

    fn up() -> Result<(), String> {
        sql::execute_batch("CREATE TABLE old_guest (id INTEGER PRIMARY KEY, note TEXT)")
            .map_err(|e| e.message)?;
        sql::execute(
            "INSERT INTO old_guest (note) VALUES (?1)",
            &[Value::Text("built for 0.1.0".into())],
        )
        .map_err(|e| e.message)?;
        Ok(())
    }

    fn down() -> Result<(), String> {
        sql::execute_batch("DROP TABLE old_guest").map_err(|e| e.message)
    }
}

export!(Old);
