#!/usr/bin/env bash
# Every test: the host's unit and integration tests (which build all guest components from
# source, in Rust, Python and JavaScript), formatting and lints of the host and the guest crates.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
# componentize-py and componentize-js (pinned, from PyPI and npm) for the Python and JavaScript
# guests the tests build.
./scripts/guest-tools.sh
# PostgreSQL (Debian's server package) for the tests that need a real server: each run gets a
# throw-away cluster from pg_virtualenv, which exports its connection variables.
if ! command -v pg_virtualenv >/dev/null 2>&1; then
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq postgresql >/dev/null
fi

# ssh-keygen (openssh-client): the signing tests sign with an OpenSSH key and compare
# fingerprints with what it shows.
if ! command -v ssh-keygen >/dev/null 2>&1; then
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq openssh-client >/dev/null
fi

guest_manifests=(guest-sdk/Cargo.toml migrations-wasm/Cargo.toml tests/guests/Cargo.toml)

cargo fmt --all -- --check
for manifest in "${guest_manifests[@]}"; do
    cargo fmt --manifest-path "$manifest" --all -- --check
done

cargo clippy --workspace --all-targets --all-features -- -D warnings
for manifest in "${guest_manifests[@]}"; do
    cargo clippy --manifest-path "$manifest" --target wasm32-wasip2 --workspace \
        --target-dir target/guests -- -D warnings
done

# The library's public API is documented, and its docs link only to what a reader can see.
RUSTDOCFLAGS="-D warnings" cargo doc -p hsm-store -p hsm-signing -p hsm-contract -p hsm-sandbox -p hsm-sources -p hsm-postgres -p hsm-host --no-deps

cargo test --workspace
# The PostgreSQL tests, against a real server started for them and dropped after.
pg_virtualenv -t cargo test -p hsm-host --features postgres-tests --test postgres

# The README's first-migration paths (Rust, Python, JavaScript, SQL), followed as written from
# a clone of this commit, after the set-up's first command.
python3 scripts/readme-paths.py
