#!/usr/bin/env python3
"""Interop check: an Ed25519 implementation hookd did not write verifies its `v1a` signatures.

Run by .ci/interop.sh (which builds hookd and sets up the venv):

    python .ci/interop_v1a.py --hookd target/debug/hookd

Starts `hookd serve --dev` on loopback and a receiver that knows no secret: it discovers each
subscription's public keys at `GET /webhooks/{id}/keys` (no API key) and verifies every delivery's
`v1a` entries over `{webhook-id}.{webhook-timestamp}.{body}` with Python's `cryptography`
(OpenSSL's Ed25519). One subscription signs with `v1a` only (no HMAC header may arrive), one with
`v1` and `v1a` (the official `standardwebhooks` library must still verify its `v1` entry). Then the
keys are rotated with an overlap: the key set must list both keys, and every delivery must carry
one signature per key, each verified by exactly one of them. A random key and a tampered body must
fail, or the check proves nothing. Loopback only; every wait is bounded; hookd and the temp dir are
always cleaned up.
"""

import argparse
import base64
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from standardwebhooks import Webhook

sys.dont_write_bytecode = True  # importing interop must leave no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop import CheckFailed, Hookd  # noqa: E402

DELIVERY_TIMEOUT_S = 30.0
PAYLOADS = [
    {"orderId": "ORD-1", "amount": 99.99},
    {"name": "Zoë Çelik", "emoji": "🎉", "cjk": "注文"},
    {"nested": {"a": [1, [2, {"b": None}]]}, "t": True},
    {"escaped": "she said \"hi\" \\ / \t"},
]


def public_key(text):
    if not text.startswith("whpk_"):
        raise CheckFailed(f"public key without the whpk_ prefix: {text!r}")
    raw = base64.b64decode(text[len("whpk_"):], validate=True)
    if len(raw) != 32:
        raise CheckFailed(f"public key of {len(raw)} bytes, expected 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def verifies(key, signature, message):
    try:
        key.verify(signature, message)
        return True
    except InvalidSignature:
        return False


class Receiver:
    """Verifies each POST to /{subscription id} with the keys discovered for that id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}  # subscription id -> [Ed25519PublicKey]
        self.secrets = {}  # subscription id -> secret, for the ones that also sign v1
        self.records = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, sub_id):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{sub_id}"

    def discover(self, hookd, sub_id, expected):
        status, text = hookd.request("GET", f"/webhooks/{sub_id}/keys", auth=False)
        if status != 200:
            raise CheckFailed(f"GET /webhooks/{sub_id}/keys without an API key: {status} {text!r}")
        listed = json.loads(text)["keys"]
        if len(listed) != expected:
            raise CheckFailed(f"{sub_id}: {len(listed)} keys listed, expected {expected}: {listed}")
        with self.lock:
            self.keys[sub_id] = [public_key(k["public_key"]) for k in listed]

    def check(self, sub_id, body, headers):
        with self.lock:
            keys = list(self.keys.get(sub_id, []))
            secret = self.secrets.get(sub_id)
        if not keys:
            raise CheckFailed(f"a delivery for {sub_id} before its keys were discovered")
        message = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        entries = headers["webhook-signature"].split(" ")
        v1a = [base64.b64decode(e[4:], validate=True) for e in entries if e.startswith("v1a,")]
        v1 = [e for e in entries if e.startswith("v1,")]
        if len(v1a) != len(keys):
            raise CheckFailed(f"{len(v1a)} v1a signatures for {len(keys)} keys: {entries}")
        # Each key verifies exactly one signature, and no two keys the same one.
        hits = [[i for i, s in enumerate(v1a) if verifies(k, s, message)] for k in keys]
        if any(len(h) != 1 for h in hits) or len({h[0] for h in hits}) != len(keys):
            raise CheckFailed(f"keys matched signature indexes {hits}")
        # Negative controls: a random key and a tampered body must fail.
        stranger = Ed25519PrivateKey.generate().public_key()
        if any(verifies(stranger, s, message) for s in v1a):
            raise CheckFailed("a random key verified a signature: the check is vacuous")
        if any(verifies(k, s, message + b" ") for k in keys for s in v1a):
            raise CheckFailed("a tampered body verified: the check is vacuous")
        if secret is None:
            if v1 or headers.get("x-webhook-signature") is not None:
                raise CheckFailed("a v1a-only subscription received an HMAC signature")
        else:
            if len(v1) != 1:
                raise CheckFailed(f"expected one v1 signature beside v1a: {entries}")
            Webhook(secret).verify(body, dict(headers.items()))

    def _handler(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sub_id = self.path.strip("/")
                try:
                    receiver.check(sub_id, body, self.headers)
                    ok, error = True, None
                except Exception as e:  # record anything, including library errors
                    ok, error = False, f"{type(e).__name__}: {e}"
                with receiver.lock:
                    receiver.records.append({"sub": sub_id, "ok": ok, "error": error})
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        return Handler


def wait_delivered(hookd, receiver, event_ids, subscriptions):
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    pending = set(event_ids)
    while pending:
        bad = [r for r in receiver.records if not r["ok"]]
        if bad:
            raise CheckFailed(f"a delivery did not verify: {bad[0]}")
        for event_id in sorted(pending):
            event = hookd.call("GET", f"/api/events/{event_id}", 200)
            deliveries = event["deliveries"]
            if len(deliveries) != subscriptions:
                raise CheckFailed(f"{event_id}: {len(deliveries)} deliveries")
            if all(d["state"] == "delivered" for d in deliveries):
                if any(d["attempt_count"] != 1 for d in deliveries):
                    raise CheckFailed(f"{event_id}: delivered after a refusal: {deliveries}")
                pending.discard(event_id)
        if pending and time.monotonic() > deadline:
            raise CheckFailed(f"not delivered in {DELIVERY_TIMEOUT_S:.0f}s: {sorted(pending)}")
        time.sleep(0.1)


def publish_all(hookd, note):
    return [
        hookd.call("POST", "/api/events", 202,
                   body={"event": "order.created", "data": {**data, "phase": note}})["id"]
        for data in PAYLOADS
    ]


def run(binary):
    work = tempfile.mkdtemp(prefix="hookd-v1a-")
    receiver = Receiver()
    hookd = None
    try:
        hookd = Hookd(binary, os.path.join(work, "data"))
        hookd.start()
        subs = []
        for schemes in (["v1a"], ["v1", "v1a"]):
            # The URL needs the id, so subscribe first and point it at the receiver after.
            created = hookd.call("POST", "/api/webhooks", 201, body={
                "url": receiver.url("pending"), "events": ["order.*"],
                "signature_schemes": schemes})
            sub_id = created["id"]
            if "whsk_" in json.dumps(created):
                raise CheckFailed("the API gave out a private key")
            hookd.call("PATCH", f"/api/webhooks/{sub_id}", 200, body={"url": receiver.url(sub_id)})
            if "v1" in schemes:
                receiver.secrets[sub_id] = created["secret"]
            receiver.discover(hookd, sub_id, 1)
            subs.append(sub_id)

        events = publish_all(hookd, "one key")
        wait_delivered(hookd, receiver, events, len(subs))

        for sub_id in subs:
            rotated = hookd.call("POST", f"/api/webhooks/{sub_id}/rotate-signing-key", 200,
                                 body={"overlap_seconds": 3600})
            if len(rotated["keys"]) != 2 or rotated["keys"][1]["not_after"] is None:
                raise CheckFailed(f"rotation with overlap listed {rotated['keys']}")
            receiver.discover(hookd, sub_id, 2)
        rotated_events = publish_all(hookd, "rotation overlap")
        wait_delivered(hookd, receiver, rotated_events, len(subs))
        checked = len(receiver.records)
        if checked != (len(events) + len(rotated_events)) * len(subs):
            raise CheckFailed(f"{checked} requests received")
        return checked
    finally:
        note = hookd.stop() if hookd else None
        receiver.server.shutdown()
        receiver.server.server_close()
        shutil.rmtree(work, ignore_errors=True)
        if note:
            print(f"v1a interop: warning: {note}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hookd", required=True, help="path to the hookd binary")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        count = run(args.hookd)
    except CheckFailed as e:
        print(f"v1a interop: FAILED: {e}", file=sys.stderr)
        return 1
    print(f"v1a interop: OK: {count} deliveries verified with cryptography's Ed25519 "
          f"from discovered keys, one and two keys, in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
