#!/usr/bin/env bash
# Warren with @cloudamqp/amqp-client: AMQP over WebSocket and TCP in Node, TLS (amqps, wss)
# with a self-signed certificate, and the client's browser bundle in headless Chromium with
# pika on the other side.
#
#   tests/node/run.sh [node --test args...]
#       WARREN_BIN=/path/to/warren (default: target/debug/warren, built if missing)
#
# Installs what a fresh Debian machine lacks: the npm packages (npm ci, again whenever
# package-lock.json changes), openssl and Chromium (apt), and the Python venv with pika that
# tests/python/run.sh also uses.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    echo "run.sh: node $(node --version) is too old; these tests need Node 20 or later" >&2
    exit 2
fi

# npm packages, reinstalled only when the lockfile changed since the last install.
stamp="$here/node_modules/.package-lock.sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
fi

command -v openssl >/dev/null || apt_install openssl
if [ ! -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ]; then
    apt_install chromium chromium-driver
fi

# pika, in the venv that tests/python/run.sh makes (same requirements, same stamp).
venv="$root/tests/python/.venv"
requirements="$root/tests/python/requirements.txt"
if ! "$venv/bin/python" -c 'import pika' >/dev/null 2>&1; then
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    sha256sum "$requirements" | cut -d' ' -f1 > "$venv/.requirements.sha256"
fi
export PIKA_PYTHON="$venv/bin/python"

if [ -z "${WARREN_BIN:-}" ]; then
    export WARREN_BIN="$root/target/debug/warren"
    [ -x "$WARREN_BIN" ] || (cd "$root" && cargo build -q -p warren)
fi

cd "$here"
# Each file starts its own warren on free ports; one file at a time keeps the 2-core machine
# (and Chromium) from timing tests out.
[ $# -gt 0 ] || set -- test/
exec node --test --test-concurrency=1 --test-timeout=120000 "$@"
