#!/usr/bin/env python3
"""Interop check: the official Standard Webhooks library accepts hookd's signatures.

Run by .ci/interop.sh (which builds hookd and sets up the venv):

    python .ci/interop.py --hookd target/debug/hookd

It starts a receiver on 127.0.0.1 that verifies every delivery with
`standardwebhooks.Webhook(secret).verify(body, headers)` and checks the hex `X-Webhook-Signature`,
starts `hookd serve --dev` on a loopback port with a fresh data dir, subscribes the receiver,
publishes events with awkward payloads, rotates the secret with an overlap and publishes once more,
then waits until every delivery is `delivered` and every received request verified.
Everything is loopback only, every wait is bounded, and hookd and the temp dir are always cleaned up.
"""

import argparse
import hashlib
import hmac
import http.server
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
from collections import deque

import standardwebhooks
from standardwebhooks import Webhook, WebhookVerificationError

API_KEY = "hookd_interop_" + secrets.token_hex(16)
START_TIMEOUT_S = 20.0
DELIVERY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 10.0

# `data` objects as raw JSON text: hookd delivers `data` in one canonical form (what
# JSON.stringify(JSON.parse(text)) writes), so the check compares parsed values, and the delivered
# text with the text the API shows. Awkward on purpose: unicode (raw and escaped), nesting,
# numbers that a re-serializer would rewrite (99.99, 1e3, 1E-7, -0, 1.50, big integers),
# escaped quotes and backslashes, whitespace inside the object, empty containers.
PAYLOADS = [
    '{"orderId":"ORD-1","amount":99.99}',
    '{"amount":1e3,"tiny":1E-7,"neg":-0,"trailing":1.50,"big":12345678901234567890}',
    '{"name":"Zoë Çelik","city":"Zürich","note":"naïve café"}',
    '{"emoji":"🎉🚀","cjk":"注文が作成されました","rtl":"مرحبا","combining":"e\u0301"}',
    '{"escaped":"\\u00e9\\u4e2d\\ud83d\\ude00","literal":"é中😀"}',
    '{"quote":"she said \\"hi\\"","backslash":"C:\\\\path\\\\to","slash":"a\\/b"}',
    '{"control":"tab\\tnewline\\ncr\\r","nul":"\\u0000","bell":"\\u0007"}',
    '{"nested":{"a":{"b":{"c":{"d":[1,[2,[3,{"e":null}]]]}}}}}',
    '{"items":[{"sku":"A-1","qty":2,"price":9.95},{"sku":"B-2","qty":1,"price":0.1}],"total":19.999999999999996}',
    '{ "spaced" : [ 1 , 2 ,\n 3 ] ,\t"key" : "value" }',
    '{"empty_obj":{},"empty_arr":[],"empty_str":"","null":null,"t":true,"f":false}',
    '{"unicode_key_é":"v","key with spaces":1,"":"empty key"}',
    '{"int_max":9007199254740993,"negative":-42,"exp_neg":-1.5e-10,"exp_pos":6.02214076E+23}',
    '{"html":"<script>alert(\\"x\\")</script> & </tag>","sql":"\'; DROP TABLE x; --"}',
    '{"dots":"...","id":"{id}.{timestamp}.{body}","sig":"v1,abc= v1,def="}',
    '{"list":' + json.dumps(list(range(200))) + "}",
    '{"long":"' + ("x" * 20000) + '"}',
    '{"mixed":[1,"two",3.0,{"four":4},[5],null,true]}',
    '{"line_separators":"a\u2028b\u2029c","bom":"\ufeff"}',
    '{"deep_unicode":{"ключ":"значение","κλειδί":["τιμή",1e3]}}',
]
ROTATED_PAYLOAD = '{"after_rotation":true,"amount":99.99,"note":"signed with the new and the old secret ✓"}'


class CheckFailed(Exception):
    pass


def hex_signature(secret, body):
    """The X-Webhook-Signature form: hex HMAC-SHA256 of the body keyed with the secret string."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------------
# Receiver


class Receiver:
    """Verifies every POST with the secrets it was told to expect and records the outcome."""

    def __init__(self):
        self.lock = threading.Lock()
        self.secret = None  # the current secret
        self.old_secret = None  # set after a rotation with overlap: must verify too
        self.records = []  # dicts: id, ok, error, body, received_at
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks"

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def expect(self, secret, old_secret=None):
        with self.lock:
            self.secret = secret
            self.old_secret = old_secret

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def check(self, body, headers):
        """Raises on any verification failure; returns the parsed body."""
        with self.lock:
            secret, old_secret = self.secret, self.old_secret
        if secret is None:
            raise CheckFailed("request arrived before the receiver knew the secret")
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "x-webhook-signature"):
            values = headers.get_all(name) or []
            if len(values) != 1:
                raise CheckFailed(f"expected exactly one {name} header, got {len(values)}")
        plain = {k: v for k, v in headers.items()}

        # 1. The official library, with the current secret.
        try:
            parsed = Webhook(secret).verify(body, plain)
        except WebhookVerificationError as e:
            raise CheckFailed(f"standardwebhooks rejected it with the current secret: {e!r}") from e

        # 2. The hex X-Webhook-Signature, keyed with the current secret string as-is.
        expected_hex = hex_signature(secret, body)
        if not hmac.compare_digest(expected_hex, headers["x-webhook-signature"]):
            raise CheckFailed("X-Webhook-Signature does not match hex HMAC-SHA256(secret, body)")

        # 3. During a rotation overlap: two signatures, the old secret verifies too, and each
        #    secret matches its own signature (not just "some" signature).
        signatures = headers["webhook-signature"].split(" ")
        if old_secret is not None:
            if len(signatures) != 2:
                raise CheckFailed(
                    f"expected 2 signatures during the rotation overlap, got {len(signatures)}"
                )
            try:
                Webhook(old_secret).verify(body, plain)
            except WebhookVerificationError as e:
                raise CheckFailed(f"standardwebhooks rejected it with the OLD secret: {e!r}") from e
            matched = []
            for s in (secret, old_secret):
                hits = []
                for i, one in enumerate(signatures):
                    try:
                        Webhook(s).verify(body, {**plain, "webhook-signature": one})
                        hits.append(i)
                    except WebhookVerificationError:
                        pass
                matched.append(hits)
            if len(matched[0]) != 1 or len(matched[1]) != 1 or matched[0] == matched[1]:
                raise CheckFailed(f"new/old secrets matched signature indexes {matched}")
        elif len(signatures) != 1:
            raise CheckFailed(f"expected 1 signature outside a rotation, got {len(signatures)}")

        # 4. Negative controls: the library must reject a tampered body and an unrelated secret,
        #    or the checks above prove nothing.
        for label, attempt in (
            ("a tampered body", lambda: Webhook(secret).verify(body + b" ", plain)),
            ("a random secret", lambda: Webhook(secrets.token_bytes(32)).verify(body, plain)),
        ):
            try:
                attempt()
            except WebhookVerificationError:
                pass
            else:
                raise CheckFailed(f"standardwebhooks accepted {label}: the check is vacuous")
        return parsed

    def _handler_class(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = self.headers.get("Content-Length")
                body = self.rfile.read(int(length)) if length is not None else b""
                webhook_id = self.headers.get("webhook-id")
                record = {"id": webhook_id, "ok": False, "error": None, "body": body, "parsed": None}
                try:
                    if length is None:
                        raise CheckFailed("no Content-Length header")
                    record["parsed"] = receiver.check(body, self.headers)
                    record["ok"] = True
                except Exception as e:  # record anything, including library errors
                    record["error"] = f"{type(e).__name__}: {e}"
                with receiver.lock:
                    receiver.records.append(record)
                status = 200 if record["ok"] else 401
                payload = b'{"ok":true}' if record["ok"] else b'{"ok":false}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        return Handler


# --------------------------------------------------------------------------------------------
# hookd


class Hookd:
    def __init__(self, binary, data_dir):
        self.binary = binary
        self.data_dir = data_dir
        self.proc = None
        self.base = None
        self.log = deque(maxlen=200)
        self.address_seen = threading.Event()
        self.address = None
        # Loopback only: never let a proxy from the environment sit between hookd and us.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self):
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("HOOKD_") and k.lower() not in (
                "rust_log", "http_proxy", "https_proxy", "all_proxy", "no_proxy")
        }
        env["HOOKD_API_KEY"] = API_KEY
        env["HOOKD_LOG_LEVEL"] = "info"
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.address_seen.wait(0.05):
            if self.proc.poll() is not None:
                raise CheckFailed(f"hookd exited at start with status {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise CheckFailed("hookd did not log 'hookd listening' in time")
        host, _, port = self.address.rpartition(":")
        if host != "127.0.0.1":
            raise CheckFailed(f"hookd listens on {self.address}, expected 127.0.0.1")
        self.base = f"http://127.0.0.1:{int(port)}"
        while True:
            try:
                status, _ = self.request("GET", "/readyz", auth=False)
                if status == 200:
                    return
            except (urllib.error.URLError, OSError):
                pass
            if self.proc.poll() is not None:
                raise CheckFailed(f"hookd exited at start with status {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise CheckFailed("hookd's /readyz did not answer 200 in time")
            time.sleep(0.05)

    def _read_log(self):
        pattern = re.compile(r"hookd listening\b.*?\baddress=(\S+)")
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.append(line)
            if self.address is None:
                match = pattern.search(line)
                if match:
                    self.address = match.group(1)
                    self.address_seen.set()

    def request(self, method, path, body=None, auth=True, raw_body=None):
        data = raw_body if raw_body is not None else (
            json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {API_KEY}")
        try:
            with self.opener.open(req, timeout=HTTP_TIMEOUT_S) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def call(self, method, path, expect, body=None, raw_body=None):
        status, text = self.request(method, path, body=body, raw_body=raw_body)
        if status != expect:
            raise CheckFailed(f"{method} {path}: expected {expect}, got {status}: {text[:500]!r}")
        return json.loads(text)

    def stop(self):
        """SIGTERM, then SIGKILL after a bounded wait. Returns a note when the stop was not clean."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            return f"hookd ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s and was killed"
        if self.proc.returncode != 0:
            return f"hookd exited with status {self.proc.returncode} after SIGTERM"
        return None


# --------------------------------------------------------------------------------------------
# The check


def wait_delivered(hookd, receiver, event_ids):
    """Polls until every event's single delivery is `delivered`; fails fast on any failure."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    pending = list(event_ids)
    last_states = {}
    while pending:
        bad = [r for r in receiver.snapshot() if not r["ok"]]
        if bad:
            raise CheckFailed(f"delivery {bad[0]['id']} failed verification: {bad[0]['error']}")
        still = []
        for event_id in pending:
            event = hookd.call("GET", f"/api/events/{event_id}", 200)
            deliveries = event.get("deliveries") or []
            if len(deliveries) != 1:
                raise CheckFailed(f"event {event_id} has {len(deliveries)} deliveries, expected 1")
            state = deliveries[0].get("state")
            last_states[event_id] = deliveries[0]
            if state in ("failed", "dead"):
                raise CheckFailed(f"event {event_id}: delivery is {state}: {deliveries[0]}")
            if state != "delivered":
                still.append(event_id)
        pending = still
        if pending:
            if time.monotonic() > deadline:
                sample = {i: last_states.get(i) for i in pending[:3]}
                raise CheckFailed(
                    f"{len(pending)} deliveries not delivered after {DELIVERY_TIMEOUT_S:.0f}s: {sample}"
                )
            time.sleep(0.1)


def publish(hookd, raw_data, index):
    body = b'{"event":"order.created","data":' + raw_data.encode() + b"}"
    result = hookd.call("POST", "/api/events", 202, raw_body=body)
    if result.get("deliveries") != 1:
        raise CheckFailed(f"event {index}: expected 1 delivery queued, got {result!r}")
    return result["id"]


def run(binary, ctx):
    receiver = Receiver()
    receiver.start()
    data_dir = tempfile.mkdtemp(prefix="hookd-interop-")
    hookd = ctx["hookd"] = Hookd(binary, data_dir)
    stop_note = None
    try:
        hookd.start()
        created = hookd.call("POST", "/api/webhooks", 201,
                             body={"url": receiver.url, "events": ["*"]})
        webhook_id, secret = created.get("id"), created.get("secret", "")
        if not webhook_id or not secret.startswith("whsec_"):
            raise CheckFailed(f"unexpected create-webhook answer: {created!r}")
        receiver.expect(secret)

        sent = {}  # event id -> raw data text
        for i, raw in enumerate(PAYLOADS):
            json.loads(raw)  # our own payloads must be valid JSON
            sent[publish(hookd, raw, i)] = raw
        wait_delivered(hookd, receiver, list(sent))

        # Rotate with overlap: from now on each request carries new + old signatures.
        rotated = hookd.call("POST", f"/api/webhooks/{webhook_id}/rotate-secret", 200,
                             body={"overlap_seconds": 3600})
        new_secret = rotated.get("secret", "")
        if not new_secret.startswith("whsec_") or new_secret == secret:
            raise CheckFailed(f"rotation did not return a new secret: {rotated!r}")
        if not rotated.get("previous_secret_expires_at"):
            raise CheckFailed(f"rotation with overlap has no previous_secret_expires_at: {rotated!r}")
        receiver.expect(new_secret, old_secret=secret)
        rotated_id = publish(hookd, ROTATED_PAYLOAD, len(PAYLOADS))
        sent[rotated_id] = ROTATED_PAYLOAD
        wait_delivered(hookd, receiver, [rotated_id])

        # Final accounting: every request verified, one per event, bodies as published.
        records = receiver.snapshot()
        failed = [r for r in records if not r["ok"]]
        if failed:
            raise CheckFailed(f"{len(failed)} requests failed verification, first: {failed[0]['error']}")
        ids = [r["id"] for r in records]
        if sorted(ids) != sorted(sent):
            extra = sorted(set(ids) - set(sent))
            missing = sorted(set(sent) - set(ids))
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise CheckFailed(
                f"received {len(ids)} requests for {len(sent)} events; "
                f"missing {missing}, unexpected {extra}, duplicated {dupes}"
            )
        for r in records:
            raw = sent[r["id"]]
            envelope = r["parsed"]
            if envelope.get("id") != r["id"] or envelope.get("event") != "order.created":
                raise CheckFailed(f"{r['id']}: envelope id/event mismatch: {envelope.get('id')!r}")
            if envelope.get("data") != json.loads(raw):
                raise CheckFailed(f"{r['id']}: delivered data differs from the published data")
            # `data` is delivered in its canonical form (JSON.stringify's), the very text the API
            # shows for the event.
            body = r["body"]
            start = body.index(b'"data":') + len(b'"data":')
            end = body.rindex(b',"attempt":')
            _, shown = hookd.request("GET", f"/api/events/{r['id']}")
            if b'"data":' + body[start:end] + b',"retryable":' not in shown:
                raise CheckFailed(f"{r['id']}: delivered data is not the text the API shows")
        return len(records)
    finally:
        try:
            stop_note = hookd.stop()
        finally:
            receiver.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
        if stop_note:
            print(f"interop: warning: {stop_note}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hookd", required=True, help="path to the hookd binary")
    args = parser.parse_args()
    if not os.access(args.hookd, os.X_OK):
        print(f"interop: FAILED: {args.hookd} is not an executable", file=sys.stderr)
        return 1

    # A SIGTERM from CI must still run the cleanup in `finally`.
    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    ctx = {}
    try:
        count = run(args.hookd, ctx)
    except Exception as e:
        kind = "" if isinstance(e, CheckFailed) else f" with an unexpected {type(e).__name__}"
        hookd = ctx.get("hookd")
        if hookd is not None and hookd.log:
            print("interop: last lines of hookd's log:", file=sys.stderr)
            for line in list(hookd.log)[-30:]:
                print(f"  | {line}", file=sys.stderr)
        print(f"interop: FAILED{kind}: {e}", file=sys.stderr)
        return 1
    version = getattr(standardwebhooks, "__version__", "unknown")
    print(
        f"interop: {count} deliveries verified by standardwebhooks {version} (python), 0 failed "
        f"[{time.monotonic() - started:.1f}s]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
