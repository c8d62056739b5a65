//! Version 8, built against the frozen `hsm:migration@0.1.3` (the same copy as
//! `guest_contract_v013`): runs the SQL of the `attack_script` table, so the shared list of
//! attack classes (tests/integration/attack_classes.rs) reaches the host through the 0.1
//! adapter too.

wit_bindgen::generate!({
    path: "wit",
    world: "migration",
});

use hsm::migration::sql;
use hsm::migration::types::Value;

struct Script;

fn fail(e: sql::SqlError) -> String {
    e.message
}

impl Guest for Script {
    fn metadata() -> Metadata {
        Metadata {
            version: 8,
            name: "script_v01".into(),
            description: "Test guest on contract 0.1.3: runs the attack_script table's SQL".into(),
            reversible: true,
        }
    }

    fn up() -> Result<(), String> {
        let result = sql::query("SELECT sql FROM attack_script", &[]).map_err(fail)?;
        let Some(Value::Text(script)) = result
            .rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
        else {
            return Err("attack_script holds no SQL".into());
        };
        sql::execute_batch(&script).map_err(fail)
    }

    fn down() -> Result<(), String> {
        Ok(())
    }
}

export!(Script);
