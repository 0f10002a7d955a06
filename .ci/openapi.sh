#!/usr/bin/env bash
# OpenAPI check: `openapi-spec-validator` (Python, an independent implementation) validates the
# checked-in openapi.json and the document a running hookd serves, whose `webhooks` section is
# built from a catalog of event types with schemas. Builds hookd, sets up a venv under target/,
# runs .ci/openapi_check.py (loopback only; it starts and always stops its own hookd).
set -euo pipefail
cd "$(dirname "$0")/.."

VALIDATOR_VERSION=0.9.0
venv=target/openapi-venv
hookd="${CARGO_TARGET_DIR:-target}/debug/hookd"

echo "== openapi: build hookd"
cargo build --locked -p hookd

echo "== openapi: python venv ($venv, openapi-spec-validator $VALIDATOR_VERSION)"
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  python3 -m venv --clear "$venv"
fi
installed=$("$venv/bin/python" -c \
  'from importlib.metadata import version; print(version("openapi-spec-validator"))' \
  2>/dev/null || true)
if [ "$installed" != "$VALIDATOR_VERSION" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "openapi-spec-validator==$VALIDATOR_VERSION"
fi

echo "== openapi: the checked-in and the served document validate as OpenAPI 3.1"
"$venv/bin/python" .ci/openapi_check.py --hookd "$hookd"
