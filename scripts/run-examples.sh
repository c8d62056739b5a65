#!/usr/bin/env bash
# The main job on the embedded default: build the example migrations from source, put them in
# ./migrations and apply them to ./data/home-server-monitor.db (or $DATABASE_PATH).
# The seven Rust examples always; the Python (v008) and JavaScript (v009) ones when
# ./scripts/guest-tools.sh has installed their tools, with a one-line note otherwise.
# Extra arguments go to `hsm-host up` (e.g. a target version, or --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 \
    --manifest-path migrations-wasm/Cargo.toml --target-dir target/guests
mkdir -p migrations
cp target/guests/wasm32-wasip2/release/v*.wasm migrations/

# Python and JavaScript builds are not byte-for-byte reproducible, so a component is rebuilt
# only when its sources are newer: an applied migration keeps its checksum.
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
        out="$root/migrations/$name.wasm"
        if [[ -f "$out" && "$out" -nt "$source" && "$out" -nt "$helper" ]]; then
            continue
        fi
        stage="$root/target/lang-examples/$name"
        rm -rf "$stage" && mkdir -p "$stage"
        cp "$source" "$helper" "$stage/"
        echo "building $name ($language)" >&2
        (cd "$stage" && "$root/$tool" "$@" -o "$out" >/dev/null)
    done
}
build_lang Python python "$tools/python/bin/componentize-py" guest-sdk/python/hsm_guest.py app.py \
    -d "$root/wit" -w migration-with-functions componentize app
build_lang JavaScript js "$tools/js/node_modules/.bin/componentize-js" guest-sdk/js/hsm-guest.js app.js \
    app.js -w "$root/wit" -n migration-with-functions -d http fetch-event

cargo run --quiet -p hsm-host -- up "$@"
cargo run --quiet -p hsm-host -- status
