#!/usr/bin/env bash
# The main job on the embedded default: build the example migrations from source, put them in
# ./migrations and apply them to ./data/home-server-monitor.db (or $DATABASE_PATH).
# The seven Rust examples always; the Python (v008) and JavaScript (v009) ones when
# ./scripts/guest-tools.sh has installed their tools, with a one-line note otherwise.
# Extra arguments go to `hsm-host up` (e.g. a target version, or --dry-run).
# A dry run (`--dry-run` or `dry-run` among the arguments) builds and copies nothing: it
# rehearses what is in ./migrations.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

dry_run=false
for arg in "$@"; do
    [[ "$arg" == "--dry-run" || "$arg" == "dry-run" ]] && dry_run=true
done

rustup target add wasm32-wasip2
if [[ ! -x target/debug/hsm-host ]]; then
    echo "building hsm-host: the first build compiles wasmtime and Cranelift, 15-20 minutes on 2 cores (later builds take seconds)" >&2
fi
cargo build -p hsm-host
hsm="$root/target/debug/hsm-host"

# Copies a built component into ./migrations unless a different file is there already: that
# one may be applied, and a database keeps the checksum of what it applied.
install_component() { # built file
    local built=$1 dest
    dest="$root/migrations/$(basename "$built")"
    if [[ ! -e "$dest" ]]; then
        cp "$built" "$dest"
    elif ! cmp -s "$built" "$dest"; then
        echo "kept migrations/$(basename "$built"): the new build differs and the one there may be applied (remove it to use the new build; \`hsm-host export VERSION\` writes an applied one back)" >&2
    fi
}

if ! $dry_run; then
    cargo build --release --target wasm32-wasip2 \
        --manifest-path migrations-wasm/Cargo.toml --target-dir target/guests
    mkdir -p migrations
    for built in target/guests/wasm32-wasip2/release/v*.wasm; do
        install_component "$built"
    done
fi

# Python and JavaScript builds are not byte-for-byte reproducible: each is built into
# target/lang-examples/ and copied only when ./migrations has none yet.
tools=target/guest-tools
build_lang() { # language, directory, tool, helper, app file, build command...
    local language=$1 dir=$2 tool=$3 helper=$4 app=$5
    shift 5
    if [[ ! -x "$tool" ]]; then
        echo "skipping the $language example: its tool is not installed (./scripts/guest-tools.sh installs it)" >&2
        return
    fi
    for source in migrations-wasm/"$dir"/*/"$app"; do
        local name out stage
        name="$(basename "$(dirname "$source")")"
        if [[ -e "$root/migrations/$name.wasm" ]]; then
            continue
        fi
        stage="$root/target/lang-examples/$name"
        out="$stage/out/$name.wasm"
        rm -rf "$stage" && mkdir -p "$stage/out"
        cp "$source" "$helper" "$stage/"
        echo "building $name ($language)" >&2
        (cd "$stage" && "$root/$tool" "$@" -o "$out" >/dev/null)
        install_component "$out"
    done
}
if ! $dry_run; then
    build_lang Python python "$tools/python/bin/componentize-py" guest-sdk/python/hsm_guest.py app.py \
        -d "$root/wit" -w migration-with-functions componentize app
    build_lang JavaScript js "$tools/js/node_modules/.bin/componentize-js" guest-sdk/js/hsm-guest.js app.js \
        app.js -w "$root/wit" -n migration-with-functions -d http fetch-event
fi

"$hsm" up "$@"
"$hsm" status
