#!/usr/bin/env bash
# Every test: the host's unit and integration tests (which build all guest components from
# source), formatting and lints of the host and the guest crates.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2

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
RUSTDOCFLAGS="-D warnings" cargo doc -p hsm-host --no-deps

cargo test --workspace
