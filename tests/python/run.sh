#!/usr/bin/env bash
# End-to-end tests for Warren (validated against RabbitMQ).
#
#   WARREN_BIN=/path/to/warren tests/python/run.sh [pytest args...]
#       the tests start "$WARREN_BIN server --amqp 127.0.0.1:PORT" themselves
#   AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F tests/python/run.sh [pytest args...]
#       the tests use an already running broker
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# Reinstall only when requirements.txt changed since the last install.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" > "$stamp"
fi

if [ -z "${AMQP_URL:-}" ] && [ -z "${WARREN_BIN:-}" ]; then
    echo "run.sh: set WARREN_BIN=/path/to/warren or AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F" >&2
    exit 2
fi

cd "$here"
exec "$venv/bin/python" -m pytest -q --timeout="${TEST_TIMEOUT:-30}" "$@"
