#!/usr/bin/env bash
# The wasm package's CI: build it, then run every test of it. Works on a fresh Debian machine
# (installs the pinned wasm-bindgen CLI, Chromium and the npm devDependencies it lacks).
# Usage: wasm/test.sh          (scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n--> wasm: %s\n' "$*"; }
t0=$SECONDS

step "toolchain"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
version=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$version" ]; then
  cargo install --force wasm-bindgen-cli --version "$version"
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  # Waits for the dpkg lock if another install is running.
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq chromium chromium-driver
fi
node -e 'const [a, b] = process.versions.node.split(".").map(Number);
  if (a < 20 || (a === 20 && b < 16)) { console.error("Node >= 20.16 is needed"); process.exit(1); }'
npm ci --no-audit --no-fund --loglevel=error

step "format and clippy (wasm32)"
rustfmt --edition 2021 --check src/*.rs tests/*.rs
cargo clippy -q --target wasm32-unknown-unknown --all-targets -- -D warnings

step "build (cargo → wasm-bindgen → wasm-opt)"
./build.sh
gz=$(gzip -9 -c dist/warren_bg.wasm | wc -c)
if [ "$gz" -gt $((250 * 1024)) ]; then
  echo "dist/warren_bg.wasm is $gz bytes gzipped: over the 250 KiB budget" >&2
  exit 1
fi

step "wasm-bindgen-test: Node, then headless Chromium"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
cargo test --target wasm32-unknown-unknown --test bindings
WASM_BINDGEN_USE_BROWSER=1 cargo test --target wasm32-unknown-unknown --test bindings

step "TypeScript types"
node_modules/.bin/tsc -p test/tsconfig.json

step "npm pack: the tarball installs and runs"
rm -rf test-output/pack && mkdir -p test-output/pack
tarball=$(npm pack --silent --pack-destination test-output/pack)
(
  cd test-output/pack
  echo '{"name":"pack-check","private":true,"type":"module"}' > package.json
  npm install --no-audit --no-fund --loglevel=error "./$tarball"
  node --input-type=module -e '
    const { Broker } = await import("warren-broker");
    const broker = await Broker.create();
    await broker.declareQueue("q");
    await broker.publish("", "q", "from the tarball");
    const m = await broker.get("q", { noAck: true });
    if (m?.text !== "from the tarball") throw new Error("tarball broker did not round-trip");
    await broker.close();
    console.log("installed tarball ok:", process.argv[1]);
  ' "$tarball"
)

step "Node, browser (Playwright + Chromium) and edge (workerd) tests"
node --test --test-timeout=120000 test/node.test.mjs test/browser.test.mjs test/edge.test.mjs

echo "wasm: all passed in $((SECONDS - t0)) s ($(wc -c < dist/warren_bg.wasm) bytes raw, $gz gzipped)"
