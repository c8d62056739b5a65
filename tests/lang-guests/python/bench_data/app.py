"""The data benchmark in Python, twin of tests/guests/guest_bench_data: normalise every
`items.email` (trim, lowercase), reading pages with a prepared statement and writing each page
back with `execute_many`."""

from hsm_guest import Db, migration

PAGE = 10_000


def up(db: Db) -> None:
    page = db.prepare("SELECT id, email FROM items WHERE id > ?1 ORDER BY id LIMIT ?2")
    last = -(2**63)
    while True:
        rows = page.query((last, PAGE))
        if not rows:
            break
        last = rows[-1][0]
        db.execute_many("UPDATE items SET email = ?2 WHERE id = ?1",
                        [(i, email.strip().lower()) for i, email in rows])


WitWorld, Functions = migration(
    version=1,
    name="bench_data_py",
    description="Benchmark: normalise one million emails in Python",
    up=up,
)
