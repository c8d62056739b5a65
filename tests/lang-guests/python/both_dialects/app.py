"""Version 1, in Python: one migration for SQLite and PostgreSQL (declared with `hsm-host
declare --dialects sqlite,postgresql`), choosing its SQL by the dialect the host reports and
reading a server error's SQLSTATE (contract 0.2.1). A duplicate insert fails and the migration
goes on, on either database."""

from hsm_guest import Db, SqlError, migration


def up(db: Db) -> None:
    dialect = db.dialect()
    if dialect == "postgresql":
        db.execute_batch(
            "CREATE TABLE dialect_notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " note text NOT NULL UNIQUE, sqlstate text)"
        )
        insert = "INSERT INTO dialect_notes (note, sqlstate) VALUES ($1, $2)"
    else:
        db.execute_batch(
            "CREATE TABLE dialect_notes (id INTEGER PRIMARY KEY, note TEXT NOT NULL UNIQUE,"
            " sqlstate TEXT)"
        )
        insert = "INSERT INTO dialect_notes (note, sqlstate) VALUES (?1, ?2)"
    db.execute(insert, (dialect, None))
    try:
        db.execute(insert, (dialect, None))
    except SqlError as error:
        db.execute(insert, (f"duplicate (code {error.code})", error.sqlstate))


def down(db: Db) -> None:
    db.execute_batch("DROP TABLE dialect_notes")


WitWorld, Functions = migration(
    version=1,
    name="both_dialects",
    description="Test guest: one Python migration for SQLite and PostgreSQL",
    up=up,
    down=down,
)
