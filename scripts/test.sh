#!/usr/bin/env bash
# Runs every test Warren has, setting up whatever a fresh Debian machine lacks first.
# Usage: scripts/test.sh            (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add wasm32-unknown-unknown >/dev/null
if ! python3 -m venv --help >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq python3-venv
fi

step "format"
cargo fmt --all -- --check

step "generated code is up to date"
cargo run -q -p warren-codegen -- --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "core builds for wasm32"
cargo build -q -p warren-core --target wasm32-unknown-unknown

step "build"
cargo build --workspace --all-targets
export WARREN_BIN="$root/target/debug/warren"

step "cargo tests (unit, property, scenario, lapin end-to-end)"
cargo test --workspace

step "simulator (fixed budget)"
cargo run -q -p warren-sim --release -- run --seeds 500 --steps 5000

step "python tests (pika, tutorials)"
tests/python/run.sh

step "node tests (WebSocket, TLS, browser)"
tests/node/run.sh

step "wasm package (build, wasm-bindgen-test, Playwright demo)"
wasm/test.sh
