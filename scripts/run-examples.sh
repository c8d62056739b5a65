#!/usr/bin/env bash
# The main job on the embedded default: build the seven example migrations from source, put
# them in ./migrations and apply them to ./data/home-server-monitor.db (or $DATABASE_PATH).
# Extra arguments go to `hsm-host up` (e.g. a target version, or --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 \
    --manifest-path migrations-wasm/Cargo.toml --target-dir target/guests
mkdir -p migrations
cp target/guests/wasm32-wasip2/release/v*.wasm migrations/

cargo run --quiet -p hsm-host -- up "$@"
cargo run --quiet -p hsm-host -- status
