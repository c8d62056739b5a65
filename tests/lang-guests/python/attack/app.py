"""Version 8, in Python: the adversarial suite's core cases. Which attack it makes is read from
the one row of the `attack` table; each reports what it got, and reports a leak if the host
let it through."""

import os
import socket

from hsm_guest import Db, SqlError, migration


def attack(db: Db) -> None:
    (name,) = db.query_one("SELECT name FROM attack")
    if name == "error":
        db.execute("INSERT INTO attack VALUES ('written before the error')")
        raise ValueError("refusing on purpose after writing")
    if name == "sql_error":
        db.execute("INSERT INTO no_such_table VALUES (1)")
    if name == "dialect":
        # Contract 0.2.1: the dialect, and an error's SQLSTATE (none on SQLite).
        try:
            db.execute("INSERT INTO no_such_table VALUES (1)")
        except SqlError as error:
            raise RuntimeError(f"dialect {db.dialect()}, sqlstate {error.sqlstate}")
        raise RuntimeError("the insert did not fail")
    if name == "trap":
        db.execute("INSERT INTO attack VALUES ('written before the trap')")
        os.abort()
    if name == "filesystem":
        try:
            with open("/etc/passwd") as f:
                raise RuntimeError("LEAK: read " + f.read(20))
        except OSError as error:
            raise RuntimeError(f"blocked: {error}")
    if name == "network":
        # A bytes host: a str one would go through the idna codec, not bundled.
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect((b"127.0.0.1", 9))
        except OSError as error:
            raise RuntimeError(f"blocked: tcp: {error}")
        raise RuntimeError("LEAK: connected")
    if name == "attach":
        db.execute("ATTACH DATABASE '/tmp/hsm-py-attach.db' AS other")
        raise RuntimeError("LEAK: attached")
    if name == "tracking":
        db.execute("UPDATE migrations SET checksum = 'forged'")
        raise RuntimeError("LEAK: wrote the tracking table")
    if name == "loop":
        while True:
            pass
    if name == "memory":
        hoard = []
        while True:
            hoard.append(bytearray(16 << 20))
    if name == "streams":
        # More streams than the host keeps cursors open (32): each must be freed when read.
        read = sum(1 for i in range(40) for (n,) in db.stream("SELECT ?1", (i,)) if n == i)
        raise RuntimeError(f"{read} streams read")
    if name == "none":
        db.execute_batch("CREATE TABLE survivor (x)")
        return
    if name == "script":
        # The shared list of attack classes (tests/integration/attack_classes.rs) runs its SQL
        # through every entry point: here, from the `attack_script` table.
        (script,) = db.query_one("SELECT sql FROM attack_script")
        db.execute_batch(script)
        return
    raise RuntimeError(f"unknown attack {name}")


def down(db: Db) -> None:
    db.execute_batch("DROP TABLE survivor")


WitWorld, Functions = migration(
    version=8,
    name="py_attack",
    description="Test guest: the adversarial suite's core cases, in Python",
    up=attack,
    down=down,
)
