#!/usr/bin/env bash
# Builds the npm package's wasm: cargo (wasm32, size-tuned release) → wasm-bindgen (the CLI of
# the crate's pinned version, `--target web`) → wasm-opt -Oz (npm `binaryen`, when installed).
# Output: dist/warren.js, dist/warren_bg.wasm (+ .d.ts). Prints the .wasm size, raw and gzipped.
set -euo pipefail
cd "$(dirname "$0")"

version=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$version" ]; then
  echo "wasm-bindgen CLI $version is required: cargo install wasm-bindgen-cli --version $version" >&2
  exit 1
fi

cargo build --release --target wasm32-unknown-unknown
rm -rf dist
wasm-bindgen --target web --out-dir dist --out-name warren \
  target/wasm32-unknown-unknown/release/warren_wasm.wasm

if [ -x node_modules/.bin/wasm-opt ]; then
  node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers \
    dist/warren_bg.wasm -o dist/warren_bg.wasm
else
  echo "note: wasm-opt not found (npm ci installs it); the .wasm is not optimised" >&2
fi

raw=$(wc -c < dist/warren_bg.wasm)
gz=$(gzip -9 -c dist/warren_bg.wasm | wc -c)
printf 'dist/warren_bg.wasm: %d bytes (%.1f KiB), gzipped %d bytes (%.1f KiB)\n' \
  "$raw" "$(echo "$raw/1024" | bc -l)" "$gz" "$(echo "$gz/1024" | bc -l)"
