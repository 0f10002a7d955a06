#!/usr/bin/env bash
# Contract check: `schemathesis run --checks all` against a running hookd must find nothing. The
# OpenAPI document (`/openapi.json`, generated from the code) must then list every status each
# operation answers, and every limit the server enforces, exactly. Builds hookd, sets up a venv under
# target/, starts hookd --dev on a fresh data dir (loopback only), runs schemathesis, stops hookd.
# Checks left out, and why: .ci/schemathesis-excluded.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv=target/schemathesis-venv
hookd="${CARGO_TARGET_DIR:-target}/debug/hookd"
examples="${SCHEMATHESIS_EXAMPLES:-10}"
key="hk_schemathesis_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"

echo "== schemathesis: build hookd"
cargo build --locked -p hookd

echo "== schemathesis: python venv ($venv, schemathesis $SCHEMATHESIS_VERSION)"
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  python3 -m venv --clear "$venv"
fi
installed=$("$venv/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}' || true)
if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi

data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOOKD_API_KEY="$key" HOOKD_AUTH_FAILURES_PER_MINUTE=100000 \
  "$hookd" serve --dev --listen "127.0.0.1:$port" --data-dir "$data" >"$data/hookd.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

excluded=$({ grep -v '^#' .ci/schemathesis-excluded.txt || true; } | awk -F: 'NF { gsub(/ /, "", $1); print $1 }' | paste -sd, -)
echo "== schemathesis: --checks all (excluded: ${excluded:-none}), $examples examples per operation"
args=(--config-file .ci/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" --checks all
  -H "Authorization: Bearer $key" --max-examples "$examples" --seed 1
  --generation-database none --no-color)
if [ -n "$excluded" ]; then args+=(--exclude-checks "$excluded"); fi
if ! "$venv/bin/schemathesis" "${args[@]}"; then
  echo "== hookd's log (last 50 lines)"
  tail -n 50 "$data/hookd.log"
  exit 1
fi
