"""Version 8, in Python: gives every user a display name and a search key.

The display name is the user's name as Unicode NFKC, with its spaces collapsed and in title
case, made here (Python's `unicodedata`) row by row: rows are read through a cursor a page at a
time and written back in one batch per page, with progress reported. The search key is made by
SQLite itself, calling this migration's `name_key` function once per row.
"""

import unicodedata

from hsm_guest import Db, migration, progress

PAGE = 500


def display_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).split()).title()


def name_key(name):
    """Accents and case dropped, for searching: `Zoë  Ångström` -> `zoe angstrom`."""
    if name is None:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


def up(db: Db) -> None:
    db.execute_batch(
        "ALTER TABLE users ADD COLUMN display_name TEXT;"
        "ALTER TABLE users ADD COLUMN name_key TEXT;"
    )
    (total,) = db.query_one("SELECT count(*) FROM users")
    done = 0
    batch = []
    for user_id, name in db.stream("SELECT id, name FROM users ORDER BY id", batch=PAGE):
        batch.append((display_name(name), user_id))
        if len(batch) == PAGE:
            db.execute_many("UPDATE users SET display_name = ?1 WHERE id = ?2", batch)
            done += len(batch)
            batch = []
            progress(done, total)
    if batch:
        db.execute_many("UPDATE users SET display_name = ?1 WHERE id = ?2", batch)
        done += len(batch)
    progress(done, total)
    db.register_function("name_key", 1)
    db.execute("UPDATE users SET name_key = name_key(name)")


def down(db: Db) -> None:
    db.execute_batch(
        "ALTER TABLE users DROP COLUMN name_key;"
        "ALTER TABLE users DROP COLUMN display_name;"
    )


WitWorld, Functions = migration(
    version=8,
    name="add_display_names",
    description="Add users.display_name (Unicode-normalised title case) and users.name_key "
    "(accent- and case-free), written by a Python migration",
    up=up,
    down=down,
    functions=[name_key],
)
