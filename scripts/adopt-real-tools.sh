#!/usr/bin/env bash
# Adoption checked against databases made by the real tools, not imitations of their tables:
# each tool (pinned, installed under target/real-tools/) migrates a set of our own, then
# hsm-host adopts the database and applies the migration added after. CI does not run this (it
# downloads and builds the tools); the integration tests build each tool's table shape instead.
#
#   scripts/adopt-real-tools.sh [dbmate] [diesel] [sqlx] [refinery] [drizzle]   (default: all)
#
# Prisma is not here: its migrate engine is downloaded from binaries.prisma.sh, not from the
# npm registry; the integration tests build `_prisma_migrations` as Prisma documents it.
#   HSM=path/to/hsm-host scripts/adopt-real-tools.sh          (default: target/debug/hsm-host)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=$root/target/real-tools
hsm=${HSM:-$root/target/debug/hsm-host}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_CACHE_HOME=$work/cache

DBMATE=2.36.0
DIESEL=2.3.14
SQLX=0.8.6
REFINERY=0.10.0
DRIZZLE_KIT=0.31.11
DRIZZLE_ORM=0.44.7
LIBSQL_CLIENT=0.15.15

# adopt DB DIR EXPECTED_VERSION [ARGS…]: hsm-host refuses to start from nothing, adopts, applies the
# rest, and ends at EXPECTED_VERSION.
adopt() {
    local db=$1 dir=$2 expected=$3 args
    args=(--database "$db" --migrations "$dir" --log-file "$work/log" --no-backup "${@:4}")
    if "$hsm" up "${args[@]}" >/dev/null 2>"$work/err"; then
        echo "FAIL: up ran over the other tool's database" >&2
        exit 1
    fi
    grep -q "adopt --dry-run" "$work/err"
    "$hsm" adopt "${args[@]}"
    "$hsm" up "${args[@]}"
    local version
    version=$("$hsm" status --json "${args[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["current_version"])')
    [[ "$version" == "$expected" ]] || { echo "FAIL: at $version, expected $expected" >&2; exit 1; }
    echo "ok: adopted and migrated to $version"
}

run_dbmate() {
    local bin=$tools/dbmate/node_modules/.bin/dbmate dir=$work/dbmate/migrations
    [[ -x $bin ]] || npm install --prefix "$tools/dbmate" --no-audit --no-fund --silent "dbmate@$DBMATE"
    mkdir -p "$dir"
    printf -- '-- migrate:up\nCREATE TABLE users (id INTEGER PRIMARY KEY);\n\n-- migrate:down\nDROP TABLE users;\n' >"$dir/20240101000000_users.sql"
    printf -- '-- migrate:up\nALTER TABLE users ADD COLUMN email TEXT;\n\n-- migrate:down\nALTER TABLE users DROP COLUMN email;\n' >"$dir/20240102000000_email.sql"
    "$bin" --url "sqlite:$work/dbmate/app.db" --migrations-dir "$dir" --no-dump-schema migrate
    printf -- '-- migrate:up\nCREATE INDEX users_email ON users (email);\n\n-- migrate:down\nDROP INDEX users_email;\n' >"$dir/20240103000000_index.sql"
    adopt "$work/dbmate/app.db" "$dir" 20240103000000
}

run_diesel() {
    local bin=$tools/diesel/bin/diesel dir=$work/diesel/migrations
    [[ -x $bin ]] || cargo install --quiet --locked --root "$tools/diesel" diesel_cli \
        --version "$DIESEL" --no-default-features --features sqlite-bundled
    mkdir -p "$dir/2024-03-06-170000_add_sso" "$dir/2024-03-13_170000_sso_cascade"
    echo 'CREATE TABLE sso (user INTEGER);' >"$dir/2024-03-06-170000_add_sso/up.sql"
    echo 'DROP TABLE sso;' >"$dir/2024-03-06-170000_add_sso/down.sql"
    echo 'ALTER TABLE sso ADD COLUMN nonce TEXT;' >"$dir/2024-03-13_170000_sso_cascade/up.sql"
    echo 'ALTER TABLE sso DROP COLUMN nonce;' >"$dir/2024-03-13_170000_sso_cascade/down.sql"
    "$bin" migration run --database-url "$work/diesel/app.db" --migration-dir "$dir"
    mkdir -p "$dir/2024-06-05-131359_index_nonce"
    echo 'CREATE INDEX sso_nonce ON sso (nonce);' >"$dir/2024-06-05-131359_index_nonce/up.sql"
    echo 'DROP INDEX sso_nonce;' >"$dir/2024-06-05-131359_index_nonce/down.sql"
    adopt "$work/diesel/app.db" "$dir" 20240605131359
}

run_sqlx() {
    local bin=$tools/sqlx/bin/sqlx dir=$work/sqlx/migrations
    [[ -x $bin ]] || cargo install --quiet --locked --root "$tools/sqlx" sqlx-cli \
        --version "$SQLX" --no-default-features --features sqlite
    mkdir -p "$dir"
    echo 'CREATE TABLE notes (id INTEGER PRIMARY KEY);' >"$dir/20240101000000_notes.up.sql"
    echo 'DROP TABLE notes;' >"$dir/20240101000000_notes.down.sql"
    touch "$work/sqlx/app.db"
    "$bin" migrate run --database-url "sqlite:$work/sqlx/app.db" --source "$dir"
    echo 'ALTER TABLE notes ADD COLUMN body TEXT;' >"$dir/20240102000000_body.up.sql"
    echo 'ALTER TABLE notes DROP COLUMN body;' >"$dir/20240102000000_body.down.sql"
    adopt "$work/sqlx/app.db" "$dir" 20240102000000
}

run_refinery() {
    local bin=$tools/refinery/bin/refinery dir=$work/refinery/migrations
    [[ -x $bin ]] || cargo install --quiet --locked --root "$tools/refinery" refinery_cli \
        --version "$REFINERY" --no-default-features --features sqlite-bundled
    mkdir -p "$dir"
    touch "$work/refinery/app.db"
    printf '[main]\ndb_type = "Sqlite"\ndb_path = "%s"\n' "$work/refinery/app.db" >"$work/refinery/refinery.toml"
    echo 'CREATE TABLE notes (id INTEGER PRIMARY KEY);' >"$dir/V1__notes.sql"
    echo 'ALTER TABLE notes ADD COLUMN body TEXT;' >"$dir/V2__body.sql"
    "$bin" migrate -c "$work/refinery/refinery.toml" -p "$dir"
    echo 'CREATE INDEX notes_body ON notes (body);' >"$dir/V3__index.sql"
    # refinery's SipHash checksums of the files are compared on adoption.
    adopt "$work/refinery/app.db" "$dir" 3 --layout refinery
}

run_drizzle() {
    local node=$tools/drizzle dir=$work/drizzle/drizzle
    [[ -x $node/node_modules/.bin/drizzle-kit ]] || npm install --prefix "$node" --no-audit \
        --no-fund --silent "drizzle-kit@$DRIZZLE_KIT" "drizzle-orm@$DRIZZLE_ORM" \
        "@libsql/client@$LIBSQL_CLIENT"
    mkdir -p "$dir/meta"
    printf '{"version":"7","dialect":"sqlite","entries":[%s,%s]}' \
        '{"idx":0,"version":"6","when":1700000000000,"tag":"0000_users","breakpoints":true}' \
        '{"idx":1,"version":"6","when":1700000100000,"tag":"0001_email","breakpoints":true}' \
        >"$dir/meta/_journal.json"
    printf 'CREATE TABLE `users` (\n\t`id` integer PRIMARY KEY NOT NULL,\n\t`name` text\n);\n' \
        >"$dir/0000_users.sql"
    printf 'ALTER TABLE `users` ADD `email` text;--> statement-breakpoint\nCREATE INDEX `users_email` ON `users` (`email`);' \
        >"$dir/0001_email.sql"
    printf "export default { dialect: 'sqlite', out: '%s', dbCredentials: { url: 'file:%s' } };\n" \
        "$dir" "$work/drizzle/app.db" >"$work/drizzle/drizzle.config.mjs"
    (cd "$node" && ./node_modules/.bin/drizzle-kit migrate --config "$work/drizzle/drizzle.config.mjs")
    # The third migration, after drizzle-kit ran the first two.
    printf '{"version":"7","dialect":"sqlite","entries":[%s,%s,%s]}' \
        '{"idx":0,"version":"6","when":1700000000000,"tag":"0000_users","breakpoints":true}' \
        '{"idx":1,"version":"6","when":1700000100000,"tag":"0001_email","breakpoints":true}' \
        '{"idx":2,"version":"6","when":1700000200000,"tag":"0002_posts","breakpoints":true}' \
        >"$dir/meta/_journal.json"
    printf 'CREATE TABLE `posts` (`id` integer PRIMARY KEY NOT NULL, `user_id` integer REFERENCES `users`(`id`));' \
        >"$dir/0002_posts.sql"
    # drizzle's `hash` (the SHA-256 of each file) is compared on adoption.
    adopt "$work/drizzle/app.db" "$dir" 3
}

for tool in "${@:-dbmate diesel sqlx refinery drizzle}"; do
    for t in $tool; do
        echo "== $t"
        "run_$t"
    done
done
