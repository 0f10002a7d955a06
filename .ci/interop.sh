#!/usr/bin/env bash
# Interop checks: the official Standard Webhooks library (Python `standardwebhooks`) must accept the
# signatures hookd puts on real deliveries (.ci/interop.py); Python's `cryptography` must verify its
# Ed25519 `v1a` signatures with the public keys hookd serves (.ci/interop_v1a.py); the original
# webhook specification's own Node and Python receivers must accept its X-Webhook-Signature on
# payloads published with Python's `requests` (.ci/spec_receivers.py, .ci/spec_receiver.js). Builds
# hookd, sets up a venv under target/ (loopback only; each script starts and always stops its own
# hookd).
set -euo pipefail
cd "$(dirname "$0")/.."

STANDARDWEBHOOKS_VERSION=1.1.0
REQUESTS_VERSION=2.34.2
CRYPTOGRAPHY_VERSION=46.0.7
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

installed=$("$venv/bin/python" -c 'import cryptography; print(cryptography.__version__)' \
  2>/dev/null || true)
if [ "$installed" != "$CRYPTOGRAPHY_VERSION" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "cryptography==$CRYPTOGRAPHY_VERSION"
fi

installed=$("$venv/bin/python" -c 'import requests; print(requests.__version__)' 2>/dev/null || true)
if [ "$installed" != "$REQUESTS_VERSION" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "requests==$REQUESTS_VERSION"
fi

echo "== interop: standardwebhooks verifies hookd's deliveries"
"$venv/bin/python" .ci/interop.py --hookd "$hookd"

echo "== interop: cryptography's Ed25519 verifies v1a with keys discovered at /webhooks/{id}/keys"
"$venv/bin/python" .ci/interop_v1a.py --hookd "$hookd"

echo "== interop: the original specification's Node ($(node --version)) and Python receivers verify"
"$venv/bin/python" .ci/spec_receivers.py --hookd "$hookd"
