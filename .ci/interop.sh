#!/usr/bin/env bash
# Interop check: the official Standard Webhooks library (Python `standardwebhooks`) must accept the
# signatures hookd puts on real deliveries. Builds hookd, sets up a venv under target/, runs
# .ci/interop.py (loopback only; it starts and always stops its own hookd).
set -euo pipefail
cd "$(dirname "$0")/.."

STANDARDWEBHOOKS_VERSION=1.1.0
venv=target/interop-venv
hookd="${CARGO_TARGET_DIR:-target}/debug/hookd"

echo "== interop: build hookd"
cargo build --locked -p hookd

echo "== interop: python venv ($venv, standardwebhooks $STANDARDWEBHOOKS_VERSION)"
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  python3 -m venv --clear "$venv"
fi
installed=$("$venv/bin/python" -c 'import standardwebhooks; print(standardwebhooks.__version__)' \
  2>/dev/null || true)
if [ "$installed" != "$STANDARDWEBHOOKS_VERSION" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "standardwebhooks==$STANDARDWEBHOOKS_VERSION"
fi

echo "== interop: standardwebhooks verifies hookd's deliveries"
"$venv/bin/python" .ci/interop.py --hookd "$hookd"
