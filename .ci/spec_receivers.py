#!/usr/bin/env python3
"""The original webhook specification's own receivers verify hookd's X-Webhook-Signature.

Run by .ci/interop.sh (which builds hookd and sets up the venv):

    python .ci/spec_receivers.py --hookd target/debug/hookd

Starts the specification's Node receiver (.ci/spec_receiver.js, run with `node`) and its Python
receiver (below: `receive_webhook` and `generate_signature` as the specification writes them, inside
stand-ins for Flask and SQLAlchemy), then `hookd serve --dev` on loopback. Subscribes each receiver
with the `X-Webhook-Signature` form it expects (`body` for Node, `python_sorted` for Python), with a
secret of the specification's own kind (64 hex characters) and with a hookd-generated `whsec_` one,
plus one subscription whose receiver holds another secret (it must be refused, or the check proves
nothing). Publishes awkward payloads with Python's `requests` (`json=`: its default `", "`/`": "`
separators and `\\uXXXX` escapes; and raw text with `1.0`, `1e2`, escapes), then waits until every
delivery is `delivered` on its first attempt. Loopback only; every wait is bounded; hookd, node and
the temp dir are always cleaned up.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types

import requests

sys.dont_write_bytecode = True  # importing interop must leave no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop import API_KEY, CheckFailed, Hookd  # noqa: E402

DELIVERY_TIMEOUT_S = 30.0
NODE_START_TIMEOUT_S = 10.0

# Published with requests.post(json=...): Python writes ", " / ": " and escapes non-ASCII.
JSON_PAYLOADS = [
    {"orderId": "ORD-1", "customer": {"name": "Zoë Çelik", "city": "Zürich"}, "amount": 99.99},
    {"emoji": "🎉🚀", "cjk": "注文が作成されました", "rtl": "مرحبا", "combining": "e\u0301"},
    {"quote": 'she said "hi"', "backslash": "C:\\path\\to", "control": "tab\tnl\ncr\r\x00\x07\x7f"},
    {"floats": [1.0, 100.0, 0.1, 2.50, 1e21, 1e-7, 1.5e300, -0.0], "ints": [0, -42, 2**53]},
    {"nested": [[1, [2, [3, {"e": None}]]], [], [[[]]]], "matrix": [[1.0, 2.0], [3.5, 4e2]]},
    {"10": "ten", "2": "two", "1": "one", "b": 1, "a": {"3": [], "0": {}}, "01": "not an index"},
    {"line_separators": "a\u2028b\u2029c", "bom": "\ufeff", "html": "<script>&</script>"},
    {"empty_obj": {}, "empty_arr": [], "empty_str": "", "null": None, "t": True, "f": False},
]
# Published as raw text, written the way people and other serializers write JSON.
RAW_PAYLOADS = [
    '{"amount": 1.0, "count": 1e2, "ratio": 1E-7, "big": 1e21, "trailing": 1.50}',
    '{"name": "Zo\\u00eb", "escaped": "\\u00e9\\u4e2d\\ud83d\\ude00", "slash": "a\\/b"}',
    '{ "spaced" : [ 1 , 2 ,\n 3 ] ,\t"key" : "value", "2": [1.0, [2e0]], "1": {"b": 1, "a": 2} }',
]
# Only the Python receiver: integers beyond 2^53 are exact in Python, not in JavaScript.
BIG_INT_PAYLOADS = [{"id": 12345678901234567890, "neg": -9007199254740993}]


# --------------------------------------------------------------------------------------------
# The specification's Python receiver, verbatim, and the stand-ins it needs.


class _Request(threading.local):
    """Flask's `request` for the current thread: headers and `get_json()` (json.loads)."""

    def get_json(self):
        return json.loads(self.body)


request = _Request()


def jsonify(value):
    return json.dumps(value)


class _Routes:
    def __init__(self):
        self.handlers = {}

    def route(self, rule, methods):
        def register(handler):
            self.handlers[rule] = handler
            return handler

        return register


app = _Routes()
PY_SECRETS = {}


class WebhookSubscription:
    class query:  # noqa: N801 - SQLAlchemy's spelling
        @staticmethod
        def get(webhook_id):
            secret = PY_SECRETS.get(webhook_id)
            return types.SimpleNamespace(id=webhook_id, secret=secret) if secret else None


def generate_signature(payload, secret):
    message = json.dumps(payload, sort_keys=True)
    return hmac.new(
        secret.encode(),
        message.encode(),
        hashlib.sha256
    ).hexdigest()

@app.route('/webhooks/<webhook_id>', methods=['POST'])
def receive_webhook(webhook_id):
    signature = request.headers.get('X-Webhook-Signature')
    event = request.get_json()

    webhook = WebhookSubscription.query.get(webhook_id)
    if not webhook:
        return jsonify({'error': 'Not found'}), 404

    expected_signature = generate_signature(event, webhook.secret)
    if signature != expected_signature:
        return jsonify({'error': 'Invalid signature'}), 401

    return jsonify({'received': True}), 200


class PythonReceiver:
    def __init__(self):
        handler = app.handlers["/webhooks/<webhook_id>"]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                request.body = self.rfile.read(length)
                request.headers = self.headers  # case-insensitive, like Flask's
                prefix = "/webhooks/"
                if self.path.startswith(prefix):
                    text, status = handler(self.path[len(prefix):])
                else:
                    text, status = jsonify({"error": "no route"}), 404
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, webhook_id):
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/{webhook_id}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class NodeReceiver:
    def __init__(self, secrets_file):
        env = dict(os.environ, SPEC_SECRETS_FILE=secrets_file)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spec_receiver.js")
        self.proc = subprocess.Popen(["node", script], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        port = []
        reader = threading.Thread(target=lambda: port.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(NODE_START_TIMEOUT_S)
        line = port[0].decode() if port else ""
        if not line.startswith("listening "):
            self.stop()
            raise CheckFailed(f"the Node receiver did not start: {line!r}")
        self.port = int(line.split()[1])

    def url(self, webhook_id):
        return f"http://127.0.0.1:{self.port}/webhooks/{webhook_id}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# --------------------------------------------------------------------------------------------
# The check


def subscribe(hookd, url, events, form, secret=None):
    body = {"url": url, "events": events, "legacy_signature": form,
            "retry": {"max_attempts": 1, "base_delay_ms": 1000}}
    if secret is not None:
        body["secret"] = secret
    created = hookd.call("POST", "/api/webhooks", 201, body=body)
    if secret is not None and created.get("secret") != secret:
        raise CheckFailed(f"hookd did not keep the subscriber's secret: {created!r}")
    if created.get("legacy_signature") != form:
        raise CheckFailed(f"legacy_signature not {form}: {created!r}")
    return created["id"], created["secret"]


def publish(hookd, event_type, data=None, raw=None):
    session = requests.Session()
    session.trust_env = False  # loopback: no proxy from the environment
    headers = {"Authorization": f"Bearer {API_KEY}"}
    if raw is not None:
        text = '{"event": "' + event_type + '", "data": ' + raw + "}"
        headers["Content-Type"] = "application/json"
        reply = session.post(hookd.base + "/api/events", data=text.encode(), headers=headers,
                             timeout=10)
    else:
        reply = session.post(hookd.base + "/api/events", json={"event": event_type, "data": data},
                             headers=headers, timeout=10)
    if reply.status_code != 202:
        raise CheckFailed(f"publish answered {reply.status_code}: {reply.text[:300]}")
    return reply.json()["id"]


def wait_final(hookd, event_ids, webhook_ids):
    """Waits until each event's deliveries to `webhook_ids` have ended; returns them by webhook."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        done, results, waiting = True, {}, []
        for event_id in event_ids:
            event = hookd.call("GET", f"/api/events/{event_id}", 200)
            for delivery in event.get("deliveries") or []:
                if delivery["webhook_id"] not in webhook_ids:
                    continue
                results.setdefault(delivery["webhook_id"], []).append((event_id, delivery))
                if delivery["state"] not in ("delivered", "dead", "failed", "held"):
                    done = False
                    waiting.append(f"{event_id}: {delivery['state']}")
        if done:
            return results
        if time.monotonic() > deadline:
            raise CheckFailed(f"deliveries still pending after {DELIVERY_TIMEOUT_S:.0f}s: "
                              f"{len(waiting)}, e.g. {waiting[:3]}")
        time.sleep(0.1)


def run(binary):
    work = tempfile.mkdtemp(prefix="hookd-spec-")
    secrets_file = os.path.join(work, "node-secrets.json")
    with open(secrets_file, "w") as f:
        f.write("{}")
    python = PythonReceiver()
    node = hookd = None
    try:
        node = NodeReceiver(secrets_file)
        hookd = Hookd(binary, os.path.join(work, "data"))
        hookd.start()
        # The specification's default secret: 64 hex characters (randomBytes(32) / urandom(32)).
        node_hex, py_hex = secrets.token_hex(32), os.urandom(32).hex()
        subs = {
            "node_hex": subscribe(hookd, node.url("wh_node_hex"), ["order.*"], "body", node_hex),
            "node_whsec": subscribe(hookd, node.url("wh_node_whsec"), ["order.*"], "body"),
            "node_wrong": subscribe(hookd, node.url("wh_node_wrong"), ["order.*"], "body"),
            "py_hex": subscribe(hookd, python.url("wh_py_hex"), ["order.*", "bigint.*"],
                                "python_sorted", py_hex),
            "py_whsec": subscribe(hookd, python.url("wh_py_whsec"), ["order.*"], "python_sorted"),
            "py_wrong": subscribe(hookd, python.url("wh_py_wrong"), ["order.*"], "body", py_hex),
        }
        with open(secrets_file, "w") as f:
            json.dump({"wh_node_hex": subs["node_hex"][1], "wh_node_whsec": subs["node_whsec"][1],
                       "wh_node_wrong": secrets.token_hex(32)}, f)
        PY_SECRETS.update({"wh_py_hex": subs["py_hex"][1], "wh_py_whsec": subs["py_whsec"][1],
                           # The body form to a python_sorted receiver: must be refused.
                           "wh_py_wrong": py_hex})

        events = [publish(hookd, "order.created", data=d) for d in JSON_PAYLOADS]
        events += [publish(hookd, "order.updated", raw=r) for r in RAW_PAYLOADS]
        events += [publish(hookd, "bigint.created", data=d) for d in BIG_INT_PAYLOADS]
        ids = {sub_id: name for name, (sub_id, _) in subs.items()}
        results = wait_final(hookd, events, set(ids))

        counts = {}
        for sub_id, deliveries in results.items():
            name = ids[sub_id]
            for event_id, delivery in deliveries:
                refused = name.endswith("_wrong")
                status = delivery.get("last_status")
                if refused and delivery["state"] == "held":
                    # Auto-disabled after its run of refusals: the rest wait, unsent.
                    continue
                if refused and status != 401:
                    raise CheckFailed(f"{name}: {event_id} was not refused (status {status}): "
                                      "the check is vacuous")
                if not refused and (delivery["state"] != "delivered" or delivery["attempt_count"] != 1):
                    raise CheckFailed(f"{name}: {event_id} did not verify: {delivery}")
            counts[name] = len(deliveries)
        expected = {"node_hex": 11, "node_whsec": 11, "node_wrong": 11,
                    "py_hex": 12, "py_whsec": 11, "py_wrong": 11}
        if counts != expected:
            raise CheckFailed(f"deliveries per subscription: {counts}, expected {expected}")
        return sum(counts.values())
    finally:
        note = hookd.stop() if hookd else None
        if node:
            node.stop()
        python.stop()
        shutil.rmtree(work, ignore_errors=True)
        if note:
            print(f"spec receivers: warning: {note}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hookd", required=True, help="path to the hookd binary")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        count = run(args.hookd)
    except CheckFailed as e:
        print(f"spec receivers: FAILED: {e}", file=sys.stderr)
        return 1
    print(f"spec receivers: OK: {count} deliveries checked by the specification's Node and Python "
          f"receivers in {time.monotonic() - started:.1f}s (requests {requests.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
