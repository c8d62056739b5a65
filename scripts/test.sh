#!/usr/bin/env bash
# Every test: the host's unit and integration tests (which build all guest components from
# source, in Rust, Python and JavaScript), formatting and lints of the host and the guest crates.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
# componentize-py and componentize-js (pinned, from PyPI and npm) for the Python and JavaScript
# guests the tests build.
./scripts/guest-tools.sh

guest_manifests=(guest-sdk/Cargo.toml migrations-wasm/Cargo.toml tests/guests/Cargo.toml)

cargo fmt --all -- --check
for manifest in "${guest_manifests[@]}"; do
    cargo fmt --manifest-path "$manifest" --all -- --check
done

cargo clippy --workspace --all-targets -- -D warnings
for manifest in "${guest_manifests[@]}"; do
    cargo clippy --manifest-path "$manifest" --target wasm32-wasip2 --workspace \
        --target-dir target/guests -- -D warnings
done

# The library's public API is documented, and its docs link only to what a reader can see.
RUSTDOCFLAGS="-D warnings" cargo doc -p hsm-store -p hsm-contract -p hsm-sandbox -p hsm-sources -p hsm-host --no-deps

cargo test --workspace

# The README's first-migration paths (Rust, Python, JavaScript, SQL), followed as written from
# a clone of this commit, after the set-up's first command.
python3 scripts/readme-paths.py
