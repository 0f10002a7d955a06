"""Publish latency of one owner while another owner with N delivered events is erased (SQLite).

Usage: python3 examples/bench/erase_owner.py path/to/hookd N

Starts `hookd serve --dev` on 127.0.0.1:18080 with a receiver on 127.0.0.1:18081, gives owner
`big` one subscription and one delivered event, stops hookd and copies that event, its delivery
and its attempt N times in SQL, restarts hookd, keeps 8 clients publishing one event per request
to owner `small` (10 ms apart), calls `DELETE /api/owners/big` after 10 s, and prints the publish
latency before, during and after the erasure. Loopback only; the data dir is /tmp/erase-data.
"""
import http.client, http.server, json, os, signal, sqlite3, subprocess, sys, threading, time

HOOKD, N = sys.argv[1], int(sys.argv[2])
DIR, KEY, PORT, RPORT = "/tmp/erase-data", "hookd_erase_key", 18080, 18081
subprocess.run(["rm", "-rf", DIR])

class Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", RPORT), Ok)
threading.Thread(target=srv.serve_forever, daemon=True).start()

def start():
    env = dict(os.environ, HOOKD_API_KEY=KEY, HOOKD_LOG_LEVEL="warn")
    p = subprocess.Popen([HOOKD, "serve", "--dev", "--listen", f"127.0.0.1:{PORT}", "--data-dir", DIR],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT); c.request("GET", "/readyz")
            if c.getresponse().status == 200: return p
        except OSError: pass
        time.sleep(0.1)
    raise SystemExit("no start")

def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    r = conn.getresponse(); data = r.read()
    return r.status, (json.loads(data) if data else None)

p = start()
c = http.client.HTTPConnection("127.0.0.1", PORT)
for owner in ("big", "small"):
    s, b = call(c, "POST", "/api/webhooks", {"url": f"http://127.0.0.1:{RPORT}/{owner}", "events": ["*"], "owner": owner})
    assert s == 201, b
s, b = call(c, "POST", "/api/events", {"event": "a.b", "data": {"n": 1}, "owner": "big"})
eid = b["id"]
for _ in range(100):
    s, b = call(c, "GET", f"/api/events/{eid}")
    if b["deliveries"][0]["state"] == "delivered": break
    time.sleep(0.1)
p.send_signal(signal.SIGTERM); p.wait()

db = sqlite3.connect(f"{DIR}/hookd.db")
def cols(t): return [r[1] for r in db.execute(f"PRAGMA table_info({t})")]
t0 = time.time()
def copy(table, subst):
    cs = cols(table)
    sel = ", ".join(subst.get(c, c) for c in cs)
    db.execute(f"""INSERT INTO {table} ({", ".join(cs)})
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {N})
       SELECT {sel} FROM n, (SELECT * FROM {table} WHERE {TEMPLATE[table]})""")
ev = db.execute("SELECT id FROM events WHERE owner = 'big'").fetchone()[0]
dl = db.execute("SELECT id FROM deliveries WHERE event_id = ?", (ev,)).fetchone()[0]
TEMPLATE = {"events": f"id = '{ev}'", "deliveries": f"id = '{dl}'", "attempts": f"delivery_id = '{dl}'"}
copy("events", {"id": "printf('evt_bulk%08d', i)"})
copy("deliveries", {"id": "printf('dlv_bulk%08d', i)", "event_id": "printf('evt_bulk%08d', i)"})
copy("attempts", {"id": "printf('att_bulk%08d', i)", "delivery_id": "printf('dlv_bulk%08d', i)"})
db.commit(); db.close()
print(f"inserted {N} events, deliveries and attempts in {time.time()-t0:.0f} s", flush=True)

p = start()
statuses = {}
lat, phase, stop = {"before": [], "during": [], "after": []}, ["before"], [False]
def publisher():
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    while not stop[0]:
        t = time.perf_counter()
        s, _ = call(conn, "POST", "/api/events", {"event": "a.b", "data": {"n": 2}, "owner": "small"})
        lat[phase[0]].append((time.perf_counter() - t) * 1000)
        statuses.setdefault((phase[0], s), 0)
        statuses[(phase[0], s)] += 1
        time.sleep(0.01)
threads = [threading.Thread(target=publisher) for _ in range(8)]
for t in threads: t.start()
time.sleep(10)
phase[0] = "during"
t = time.perf_counter()
s, b = call(http.client.HTTPConnection("127.0.0.1", PORT, timeout=3600), "DELETE", "/api/owners/big")
erase_s = time.perf_counter() - t
phase[0] = "after"
time.sleep(5)
stop[0] = True
for t in threads: t.join()
p.send_signal(signal.SIGTERM); p.wait()
def pct(xs, q): xs = sorted(xs); return xs[min(len(xs)-1, int(q*len(xs)))] if xs else float("nan")
print("statuses", statuses)
print(f"DELETE /api/owners/big: {s} in {erase_s:.1f} s: {b}")
for k, xs in lat.items():
    print(f"{k}: {len(xs)} publishes, p50 {pct(xs,.5):.1f} ms, p99 {pct(xs,.99):.1f} ms, max {max(xs or [0]):.1f} ms")
