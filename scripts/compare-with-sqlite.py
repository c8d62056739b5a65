#!/usr/bin/env python3
"""Applies a SQL migration directory's up migrations with SQLite itself, in the tool's own order,
and compares the schema with a database hsm-host migrated (its tracking tables left out).

    scripts/compare-with-sqlite.py TOOL DIR HSM_DATABASE [PATTERN] [--placeholder NAME=VALUE]…

TOOL is diesel, sqlx, golang-migrate, goose, dbmate, flyway, refinery, prisma, drizzle, pop or
pattern (then PATTERN, e.g. 'V{version}.{name}.{direction}.sql'). Files for the sqlite3 shell
lose their dot-command lines, as the shell reads them. Prints `schema equal` or the differences; exit 1 on a
difference. Used to check real projects' directories (docs/sql-sets.md); CI does not run it.
"""

import os
import re
import sys

try:
    # A recent SQLite (pip install pysqlite3-binary): sets written for SQLite 3.48+ use `if()`.
    import pysqlite3 as sqlite3
except ImportError:
    import sqlite3

TRACKING = {"migrations", "migration_history", "hsm_components",
            "hsm_migrations", "hsm_migration_history", "hsm_hsm_components"}


def ups(tool, root, pattern=None):
    """(sort key, SQL) of every up migration, in the tool's order."""
    found = []
    if tool == "pop":
        # One file per dialect: SQLite's (sqlite3 or sqlite) wins over the dialect-less one.
        chosen = {}
        for entry in sorted(os.listdir(root)):
            # `.autocommit` is a flag, not a dialect (popx's own tests read it so).
            m = re.match(r"^(\d+)_([^.]+)(\.[a-z0-9]+)?\.up\.sql$", entry.replace(".autocommit.", "."))
            if not m:
                continue
            dialect = (m.group(3) or "")[1:]
            if dialect in ("sqlite3", "sqlite"):
                chosen[m.group(1)] = entry
            elif dialect == "":
                chosen.setdefault(m.group(1), entry)
        return [read(os.path.join(root, chosen[v])) for v in sorted(chosen)]
    if tool == "drizzle":
        import json
        with open(os.path.join(root, "meta", "_journal.json")) as f:
            entries = json.load(f)["entries"]
        # Drizzle runs every migration in one transaction, a statement per breakpoint.
        return [("BEGIN;\n" + ";\n".join(read(os.path.join(root, e["tag"] + ".sql"))
                                          .split("--> statement-breakpoint")) + ";\nCOMMIT;")
                for e in sorted(entries, key=lambda e: e["idx"])]
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if tool == "prisma":
            if os.path.isfile(os.path.join(path, "migration.sql")):
                found.append((entry, read(os.path.join(path, "migration.sql"))))
            continue
        if tool == "diesel":
            if entry.startswith(".") or not os.path.isfile(os.path.join(path, "up.sql")):
                continue
            version = entry.split("_", 1)[0].replace("-", "")
            found.append((version, read(os.path.join(path, "up.sql"))))
            continue
        if not entry.endswith(".sql"):
            continue
        if tool in ("sqlx", "golang-migrate"):
            if entry.endswith(".down.sql"):
                continue
            m = re.match(r"^(\d+)_", entry)
            if m:
                found.append((int(m.group(1)), read(path)))
        elif tool == "goose":
            m = re.match(r"^(\d+)_", entry)
            if m:
                found.append((int(m.group(1)), section(read(path), r"--\s*\+goose\s+up", r"--\s*\+goose\s+down")))
        elif tool == "dbmate":
            m = re.match(r"^(\d+)", entry)
            if m:
                found.append((m.group(1), section(read(path), r"--\s*migrate:up", r"--\s*migrate:down")))
        elif tool in ("flyway", "refinery"):
            m = re.match(r"^V(\d+(?:[._]\d+)*)__", entry)
            if m:
                key = tuple(int(p) for p in re.split(r"[._]", m.group(1)))
                found.append((key, read(path)))
        elif tool == "pattern":
            regex = "^" + re.escape(pattern).replace(r"\{version\}", r"(?P<v>\d+)").replace(
                r"\{name\}", r".+").replace(r"\{direction\}", r"(?P<d>up|down)") + "$"
            m = re.match(regex, entry)
            if m and m.groupdict().get("d", "up") in ("up", None):
                found.append((int(m.group("v")), read(path)))
    found.sort(key=lambda item: item[0])
    return [sql for _, sql in found]


def read(path):
    # newline="": the text as the file has it (CRLF too), as SQLite would be given it.
    with open(path, encoding="utf-8-sig", newline="") as f:
        text = f.read()
    # The sqlite3 shell's dot-commands are not SQL.
    return "".join(line for line in text.splitlines(True) if not line.startswith("."))


def section(text, start, end):
    lines, keep = [], False
    for line in text.splitlines():
        if re.match(start, line, re.I):
            keep = True
            continue
        if re.match(end, line, re.I):
            break
        if keep and not re.match(r"--\s*\+goose\s+statement(begin|end)", line, re.I):
            lines.append(line)
    return "\n".join(lines)


def schema(conn):
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {(t, n, s) for t, n, tbl, s in rows if tbl not in TRACKING and n not in TRACKING}


def application_functions(conn):
    """The functions real sets call that their applications register (the set's
    sql-functions.wasm provides them to hsm-host): normalize(text, form), BIN2B64, B642BIN."""
    import base64
    import unicodedata
    conn.create_function(
        "normalize", -1,
        lambda text, form="nfc": None if text is None else unicodedata.normalize(form.upper(), text))
    conn.create_function(
        "bin2b64", 1, lambda b: None if b is None else base64.b64encode(b).decode())
    conn.create_function(
        "b642bin", 1, lambda t: None if t is None else base64.b64decode(t))


def main():
    args, placeholders = [], {}
    argv = iter(sys.argv[1:])
    for arg in argv:
        if arg == "--placeholder":
            name, value = next(argv).split("=", 1)
            placeholders[name] = value
        else:
            args.append(arg)
    tool, root, migrated = args[:3]
    pattern = args[3] if len(args) > 3 else None
    direct = sqlite3.connect(":memory:")
    application_functions(direct)
    direct.isolation_level = None
    for sql in ups(tool, root, pattern):
        # Flyway's placeholders, as Flyway replaces them.
        for name, value in placeholders.items():
            sql = sql.replace("${" + name + "}", value)
        if sql.strip():
            direct.executescript(sql)
    theirs = schema(sqlite3.connect(f"file:{migrated}?mode=ro", uri=True))
    mine = schema(direct)
    if theirs == mine:
        print(f"schema equal ({len(mine)} objects)")
        return 0
    for item in sorted(mine - theirs, key=str):
        print("only applied directly:", item[:2])
    for item in sorted(theirs - mine, key=str):
        print("only through hsm-host:", item[:2])
    return 1


if __name__ == "__main__":
    sys.exit(main())
