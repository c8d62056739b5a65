#!/usr/bin/env python3
"""Follows the README's "first migration" paths from a fresh clone, exactly as written.

The paths are the parts of README.md and docs/*.md between `<!-- readme-path -->` and
`<!-- /readme-path -->`, taken in the order a newcomer meets them: Rust (the short way, then
the long way), Python, JavaScript, SQL. Within a path, a fenced block whose first line is a
comment naming a file (`# my-py/v012_add_tags/app.py`, `// migrations-wasm/.../lib.rs`) is
written to that file, an `sh` block is run with bash (`set -euo pipefail`), and any other
block is prose. Before that, the set-up's first command (`./scripts/run-examples.sh`) runs.
The clone is of the committed HEAD: commit documentation changes before following them.

Checked: every command succeeds; no path overwrites a file in `migrations/` that was there
before it; at the end the database holds versions 1 to 13 applied and 14 pending, as the
paths leave it.

The clone shares this checkout's `target/debug` (the host's build) and `target/guest-tools`
(componentize-py and componentize-js, from ./scripts/guest-tools.sh): nothing else of this
checkout is read or written. `hsm-host` is the clone's `target/debug/hsm-host`, which the
set-up builds, on PATH.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (document, which of its marked paths), in the order the README sends a newcomer.
ORDER = [
    ("README.md", 0, "Rust, the short way"),
    ("README.md", 1, "Rust, the long way"),
    ("docs/python.md", 0, "Python"),
    ("docs/javascript.md", 0, "JavaScript"),
    ("README.md", 2, "SQL"),
]

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[a-z]*)\s*$")
FILE_COMMENT = re.compile(r"^(#|//) (?P<path>[\w./-]+/[\w.-]+)\s*$")


def marked_paths(text):
    """The text of each `<!-- readme-path -->` … `<!-- /readme-path -->` region."""
    return re.findall(r"<!-- readme-path -->\n(.*?)<!-- /readme-path -->", text, re.S)


def blocks(region):
    """(language, text) of each fenced block, its indentation removed."""
    lines = region.split("\n")
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, lang = len(opening["indent"]), opening["lang"]
        body = []
        i += 1
        while not re.match(r"^ *```\s*$", lines[i]):
            body.append(lines[i][indent:])
            i += 1
        found.append((lang, "\n".join(body) + "\n"))
        i += 1
    return found


def digests(directory):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.glob("*"))
        if p.is_file()
    }


def run(script, cwd, env, what):
    print(f"$ {script.strip()}", flush=True)
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script], cwd=cwd, env=env
    )
    if done.returncode != 0:
        sys.exit(f"readme-paths: {what}: a command exited {done.returncode}")


def main():
    work = Path(tempfile.mkdtemp(prefix="readme-paths-"))
    try:
        follow(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("readme-paths: every path worked as written, and nothing was overwritten")


def follow(work):
    clone = work / "hsm-host"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    (clone / "target").mkdir()
    for shared in ["debug", "guest-tools"]:
        (ROOT / "target" / shared).mkdir(parents=True, exist_ok=True)
        (clone / "target" / shared).symlink_to(ROOT / "target" / shared)

    env = dict(os.environ)
    env.pop("CARGO_TARGET_DIR", None)  # the README's paths name target/ directories
    env["PATH"] = f"{clone / 'target' / 'debug'}{os.pathsep}{env['PATH']}"
    env["XDG_CACHE_HOME"] = str(work / "cache")  # the user's compile cache is left alone
    for variable in list(env):
        if variable.startswith("HSM_") or variable == "DATABASE_PATH":
            del env[variable]

    run("./scripts/run-examples.sh", clone, env, "the set-up's first command")
    migrations = clone / "migrations"
    for document, index, title in ORDER:
        regions = marked_paths((clone / document).read_text())
        if index >= len(regions):
            sys.exit(f"readme-paths: {document} has no marked path number {index + 1}")
        print(f"\n=== {title} ({document}) ===", flush=True)
        before = digests(migrations)
        for lang, text in blocks(regions[index]):
            first = text.split("\n", 1)[0]
            named = FILE_COMMENT.match(first)
            if lang == "sh":
                run(text, clone, env, title)
            elif named:
                target = clone / named["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                print(f"(wrote {named['path']})", flush=True)
        after = digests(migrations)
        overwritten = [n for n, d in before.items() if after.get(n) != d]
        if overwritten:
            sys.exit(f"readme-paths: {title} overwrote or removed {overwritten}")

    status = subprocess.run(
        ["hsm-host", "status", "--json"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    status = json.loads(status.stdout)
    applied = [row["version"] for row in status["applied"] if row["status"] == "applied"]
    pending = [row["version"] for row in status["pending"]]
    if applied != list(range(1, 14)) or pending != [14]:
        sys.exit(f"readme-paths: expected 1-13 applied and 14 pending, found {applied} / {pending}")


if __name__ == "__main__":
    main()
