#!/usr/bin/env python3
"""OpenAPI check: the document hookd serves, with its `webhooks` section built from a catalog of
event types with schemas, validates as OpenAPI 3.1 with `openapi-spec-validator` (an independent
implementation); so does the checked-in `openapi.json`.

Run by .ci/openapi.sh (which builds hookd and sets up the venv):

    python .ci/openapi_check.py --hookd target/debug/hookd

Starts `hookd serve --dev` on a loopback port with a fresh data dir, adds event types (a plain
schema, one with local `$defs` references, one with per-version schemas and examples), fetches
`/openapi.json`, checks that every type has its webhook entry, and validates the document.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

API_KEY = "hookd_openapi_" + secrets.token_hex(16)
START_TIMEOUT_S = 20.0
HTTP_TIMEOUT_S = 10.0

TYPES = [
    {
        "name": "ci.order.created",
        "description": "An order was placed.",
        "schema": {
            "type": "object",
            "required": ["orderId", "amount"],
            "properties": {
                "orderId": {"type": "string", "pattern": "^ORD-[0-9]+$"},
                "amount": {"type": "number", "minimum": 0},
            },
        },
        "examples": [{"orderId": "ORD-1", "amount": 12.5}],
        "validate": "enforce",
    },
    {
        "name": "ci.invoice.issued",
        "schema": {
            "$defs": {"money": {"type": "object", "required": ["value"],
                                "properties": {"value": {"type": "number"},
                                               "currency": {"type": "string"}}}},
            "type": "object",
            "properties": {"total": {"$ref": "#/$defs/money"},
                           "lines": {"type": "array", "items": {"$ref": "#/$defs/money"}}},
        },
    },
    {
        "name": "ci.user.updated",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        "version_schemas": {"2.0": {"type": "object", "required": ["id"],
                                    "properties": {"id": {"type": "string"}}}},
        "examples": [{"name": "Zoë"}],
        "validate": "warn",
    },
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hookd", required=True)
    parser.add_argument("--checked-in", default="openapi.json")
    args = parser.parse_args()

    spec, _ = read_from_filename(args.checked_in)
    validate(spec)
    print(f"ok: {args.checked_in} is valid OpenAPI {spec['openapi']}")

    data_dir = tempfile.mkdtemp(prefix="hookd-openapi-")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HOOKD_") and k.lower() not in (
               "rust_log", "http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env["HOOKD_API_KEY"] = API_KEY
    env["HOOKD_LOG_LEVEL"] = "info"
    proc = subprocess.Popen(
        [args.hookd, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = wait_for_address(proc)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for body in TYPES:
            status, text = request(opener, base, "POST", "/api/event-types", body)
            if status != 201:
                raise SystemExit(f"creating {body['name']}: {status} {text[:500]!r}")
        status, text = request(opener, base, "GET", "/openapi.json", None)
        if status != 200:
            raise SystemExit(f"GET /openapi.json: {status}")
        served = json.loads(text)
        webhooks = served.get("webhooks", {})
        for body in TYPES:
            if body["name"] not in webhooks:
                raise SystemExit(f"webhooks section lacks {body['name']}: {sorted(webhooks)}")
        validate(served)
        print(f"ok: the served document with {len(webhooks)} webhooks is valid OpenAPI "
              f"{served['openapi']}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


def wait_for_address(proc):
    found = {}
    seen = threading.Event()
    pattern = re.compile(r"hookd listening\b.*?\baddress=(\S+)")

    def read_log():
        for raw in proc.stderr:
            match = pattern.search(raw.decode("utf-8", "replace"))
            if match and not seen.is_set():
                found["address"] = match.group(1)
                seen.set()

    threading.Thread(target=read_log, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not seen.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("hookd did not start")
    _, _, port = found["address"].rpartition(":")
    base = f"http://127.0.0.1:{int(port)}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        try:
            if request(opener, base, "GET", "/readyz", None)[0] == 200:
                return base
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise SystemExit("hookd's /readyz did not answer 200 in time")


def request(opener, base, method, path, body):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {API_KEY}")
    try:
        with opener.open(req, timeout=HTTP_TIMEOUT_S) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


if __name__ == "__main__":
    sys.exit(main())
