// End-to-end tests of the hookd dashboard and portal in Debian's headless Chromium (playwright-core,
// no downloaded browser). Starts the debug hookd binary on a fresh data dir and a local test receiver,
// walks the operator and subscriber flows, and saves screenshots of every screen (light and dark) to
// target/screenshots/. A second hookd, with `portal_frame_ancestors`, is embedded in an iframe by pages
// served from other loopback sites (127.0.0.2 allowed, 127.0.0.3 refused). Exits non-zero on the
// first failed check.
//
//   node ui-tests/e2e.mjs        (after `cargo build -p hookd`; HOOKD_BIN overrides the binary)

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createHmac } from "node:crypto";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const target = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(root, "target");
const hookdBin = process.env.HOOKD_BIN || join(target, "debug", "hookd");
const shots = join(target, "screenshots");
mkdirSync(shots, { recursive: true });
const KEY = "hookd_e2e_key_" + Math.random().toString(36).slice(2);

// ---- the test receiver: /flaky answers 500 until told to recover; every other path answers 200 ----
let flakyFails = true;
const received = [];
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    received.push({ path: req.url, headers: req.headers, body });
    const trace = { "x-receiver-trace": `e2e${req.url}` };
    if (req.url.startsWith("/flaky") && flakyFails) {
      res.writeHead(500, { "content-type": "text/plain", ...trace }).end("receiver is down");
    } else {
      res.writeHead(200, { "content-type": "application/json", ...trace }).end('{"ok":true}');
    }
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const receiverUrl = `http://127.0.0.1:${receiver.address().port}`;

// ---- hookd ----
const started = [];
/** Starts the debug hookd on a fresh data dir with `extra` config lines; resolves once it is ready. */
async function startHookd(extra = []) {
  const data = mkdtempSync(join(tmpdir(), "hookd-e2e-"));
  const config = join(data, "hookd.toml");
  writeFileSync(config, [
    ...extra,
    "poll_interval_ms = 100",
    "[retry]",
    "max_attempts = 3",
    "base_delay_ms = 300",
    "max_delay_ms = 600",
  ].join("\n"));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(hookdBin, ["serve", "--dev", "--config", config, "--listen", `127.0.0.1:${port}`, "--data-dir", data], {
    env: { ...process.env, HOOKD_API_KEY: KEY, HOOKD_LOG_LEVEL: "warn" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  started.push({ proc, data });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return { base, api: (method, path, body) => call(base, method, path, body) };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("hookd did not start");
}
async function call(origin, method, path, body) {
  const res = await fetch(origin + path, {
    method,
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}
let base, api;

// ---- pages on other sites that embed a URL in an iframe (127.0.0.2 and .3 are other sites) ----
const embedPort = 20000 + Math.floor(Math.random() * 20000);
const embedders = [];
async function embedder(host) {
  const server = createServer((req, res) => {
    const src = new URL(req.url, "http://x").searchParams.get("src") || "";
    const attr = src.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
    res.writeHead(200, { "content-type": "text/html" })
      .end(`<!doctype html><title>embedder</title><iframe id="framed" src="${attr}" width="1100" height="800"></iframe>`);
  });
  await new Promise((r) => server.listen(embedPort, host, r));
  embedders.push(server);
  return `http://${host}:${embedPort}`;
}
/** Whether a received request carries a Standard Webhooks `v1` signature made with `secret`. */
function signedWith(request, secret) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signatures = "" } = request.headers;
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${request.body}`).digest("base64");
  return signatures.split(" ").includes(`v1,${expected}`);
}
/** The requests that reached the receiver at `path` with the event `id`. */
const arrivals = (path, id) => received.filter((r) => r.path === path && JSON.parse(r.body).id === id);
async function eventually(what, check, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-networking"],
});
const cspViolations = [];
function watch(page) {
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on("pageerror", (e) => cspViolations.push("page error: " + e.message));
}
let passed = 0;
async function step(name, fn) {
  process.stdout.write(`- ${name} ... `);
  await fn();
  passed++;
  console.log("ok");
}
/** Screenshots of the current URL in light and dark. */
async function shoot(context, name, url) {
  for (const scheme of ["light", "dark"]) {
    const page = await context.newPage();
    watch(page);
    await page.emulateMedia({ colorScheme: scheme });
    await page.goto(url);
    await page.waitForLoadState("networkidle");
    await page.screenshot({ path: join(shots, `${name}-${scheme}.png`), fullPage: true });
    await page.close();
  }
}

// ---- the catalog type the catalog and content-filter checks use ----
const invoicePaid = {
  name: "invoice.paid",
  description: "An invoice was paid in full.",
  schema: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    required: ["invoiceId", "amount", "currency"],
    properties: {
      invoiceId: { type: "string", pattern: "^INV-[0-9]+$" },
      amount: { type: "number", minimum: 0 },
      currency: { enum: ["EUR", "USD"] },
    },
    additionalProperties: false,
  },
  examples: [{ invoiceId: "INV-2001", amount: 250, currency: "EUR" }],
  validate: "enforce",
};
const invoiceExample = invoicePaid.examples[0];

/** Checks the catalog's card of `invoice.paid` on the current page (dashboard or portal): its
 *  description, its schema pretty-printed under its validation mode, and its example. */
async function checkInvoiceCard(page) {
  const card = page.locator('[id="type-invoice.paid"]');
  assert.equal((await card.locator("h2").textContent()).trim(), "invoice.paid");
  assert.equal((await card.locator("p").first().textContent()).trim(), invoicePaid.description);
  const schema = card.locator("details.schema");
  assert.equal(await schema.count(), 1);
  assert.match(await schema.locator("summary").textContent(), /Schema of data \(validation: enforce\)/);
  await schema.locator("summary").click();
  assert.ok(await schema.locator("pre").isVisible(), "the schema opens");
  const schemaText = await schema.locator("pre").textContent();
  assert.deepEqual(JSON.parse(schemaText), invoicePaid.schema);
  assert.match(schemaText, /^ {2}"properties": \{\n {4}"amount": \{\n {6}"minimum": 0,$/m, "indented, one key a line");
  const example = card.locator("details:not(.schema)");
  assert.match(await example.locator("summary").textContent(), /Example payload/);
  await example.locator("summary").click();
  assert.deepEqual(JSON.parse(await example.locator("pre").textContent()), invoiceExample);
  return card;
}

/** Sends the example from the catalog card to `endpoint` and returns what the receiver got at `path`. */
async function sendExample(card, endpoint, path) {
  const before = received.length;
  await card.locator("select[name=endpoint]").selectOption(endpoint);
  await card.locator("form.send-example button[type=submit]").click();
  const result = card.locator('[id^="send-result-"] .notice');
  await result.waitFor({ timeout: 20000 });
  assert.match(await result.textContent(), /Delivered[\s\S]*200/);
  const got = received.slice(before).filter((r) => r.path === path);
  assert.equal(got.length, 1, "exactly one request reached the endpoint");
  return got[0];
}

/** On an endpoint form: runs "Test filter" and waits for the outcome that contains `expected`,
 *  settled (htmx keeps the previous outcome's attributes on the new one until it settles). */
async function testFilter(page, expected) {
  await page.click("#test-filter");
  await page.waitForFunction((text) => {
    const outcome = document.querySelector("#filter-test-outcome");
    return outcome?.textContent.includes(text) && !outcome.classList.contains("htmx-added");
  }, expected);
  return page.locator("#filter-test-outcome");
}

/** Publishes a matching and a non-matching event to acme (the endpoint's owner); only the first
 *  reaches `endpoint` (at `path`), the other gets no delivery there. Returns the two event ids. */
async function onlyMatchingDelivered(endpoint, path, matching, other) {
  const skipped = await api("POST", "/api/events", { event: "invoice.paid", data: other, owner: "acme" });
  const passed = await api("POST", "/api/events", { event: "invoice.paid", data: matching, owner: "acme" });
  assert.equal(skipped.status, 202);
  assert.equal(passed.status, 202);
  const [got] = await eventually("the matching event arrives", () => arrivals(path, passed.body.id).length && arrivals(path, passed.body.id));
  assert.deepEqual(JSON.parse(got.body).data, matching);
  const deliveries = async (id) => (await api("GET", `/api/events/${id}`)).body.deliveries.map((d) => d.webhook_id);
  assert.ok((await deliveries(passed.body.id)).includes(endpoint));
  assert.ok(!(await deliveries(skipped.body.id)).includes(endpoint), "no delivery of the filtered-out event");
  assert.equal(arrivals(path, skipped.body.id).length, 0);
  return [passed.body.id, skipped.body.id];
}

// Opens a one-time portal link for `owner` in a fresh browser context and continues into the
// portal; returns the context, its page and the link.
async function enterPortal(owner) {
  const link = await api("POST", "/api/portal/sessions", { owner, capabilities: ["read", "manage"], ttl_seconds: 600 });
  assert.equal(link.status, 201);
  const portal = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const p = await portal.newPage();
  watch(p);
  await p.goto(link.body.url);
  // The link's page spends nothing until the subscriber continues (link previews leave it alone).
  await p.click("#continue");
  await p.waitForURL(`${base}/portal`);
  return { portal, p, link };
}

let exitCode = 0;
try {
  ({ base, api } = await startHookd());
  const operator = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await operator.newPage();
  watch(page);
  let okEndpoint, flakyEndpoint, deadDelivery, testEvent, invoiceEndpoint, invoiceSecret, globexInvoices;

  await step("sign in with an API key: HttpOnly, SameSite=Strict session cookie", async () => {
    await page.goto(`${base}/ui`);
    assert.match(page.url(), /\/ui\/login$/);
    await page.screenshot({ path: join(shots, "login-light.png") });
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: join(shots, "login-dark.png") });
    await page.emulateMedia({ colorScheme: "light" });
    await page.fill("#api_key", "hookd_wrong_key");
    await page.click("button[type=submit]");
    assert.match(await page.textContent(".error"), /not valid/);
    await page.fill("#api_key", KEY);
    await page.click("button[type=submit]");
    await page.waitForURL(`${base}/ui`);
    const session = (await operator.cookies()).find((c) => c.name === "hookd_session");
    assert.ok(session, "session cookie set");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.equal(session.path, "/ui");
    assert.ok(!session.value.includes(KEY));
    assert.equal(await page.evaluate(() => document.cookie.includes("hookd_session")), false, "not readable by scripts");
  });

  await step("CSRF: a POST without the token is refused", async () => {
    const status = await page.evaluate(async () => {
      const r = await fetch("/ui/endpoints", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "url=http%3A%2F%2F127.0.0.1%3A9%2Fx&events=*",
      });
      return r.status;
    });
    assert.equal(status, 403);
    const wrong = await page.evaluate(async () => (await fetch("/ui/endpoints", {
      method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", "x-csrf-token": "f00" },
      body: "url=http%3A%2F%2F127.0.0.1%3A9%2Fx&events=*",
    })).status);
    assert.equal(wrong, 403);
    const { body } = await api("GET", "/api/webhooks");
    assert.equal(body.data.length, 0, "nothing was created");
  });

  await step("create an endpoint pointing at the test receiver", async () => {
    await page.click("nav >> text=Endpoints");
    await page.click("#new-endpoint");
    await page.fill("#url", `${receiverUrl}/ok`);
    await page.fill("#events", "order.*, webhook.test");
    await page.fill("#description", "Order service");
    await page.fill("#owner", "acme");
    await page.click("#endpoint-form button[type=submit]:not(#test-filter)");
    await page.waitForURL(/\/ui\/endpoints\/wh_/);
    okEndpoint = page.url().split("/").pop();
    assert.equal(await page.textContent("#endpoint-state"), "active");
  });

  await step("send a test event and see it delivered inline", async () => {
    await page.selectOption("#event_type", { value: "order.created" }).catch(() => page.fill("#event_type", "order.created"));
    await page.fill("#event_type", "order.created");
    await page.click("#send-test");
    await page.waitForSelector("#test-result .notice", { timeout: 20000 });
    const text = await page.textContent("#test-result");
    assert.match(text, /Delivered/);
    assert.match(text, /200/);
    const got = received.find((r) => r.path === "/ok");
    assert.ok(got && got.headers["webhook-signature"], "the receiver got a signed request");
    testEvent = JSON.parse(got.body).id;
  });

  await step("rotate the secret with an overlap", async () => {
    await page.click("#reveal");
    await page.waitForSelector("#secret-result .reveal");
    const before = await page.textContent("#secret-result .reveal");
    await page.selectOption("#overlap", "3600");
    await page.click("#rotate");
    await page.waitForFunction((old) => {
      const el = document.querySelector("#secret-result .reveal");
      return el && el.textContent !== old && document.querySelector("#secret-result").textContent.includes("Secret rotated");
    }, before);
    const after = await page.textContent("#secret-result .reveal");
    assert.match(after, /^whsec_/);
    assert.notEqual(after, before);
    assert.match(await page.textContent("#secret-result"), /signs until/);
  });

  await step("a failing delivery retries and lands in dead letters", async () => {
    const created = await api("POST", "/api/webhooks", { url: `${receiverUrl}/flaky`, events: ["order.*"], owner: "globex" });
    assert.equal(created.status, 201);
    flakyEndpoint = created.body.id;
    const published = await api("POST", "/api/events", { event: "order.created", data: { orderId: "ORD-7" }, owner: "globex" });
    assert.equal(published.status, 202);
    await eventually("three failed attempts", () => received.filter((r) => r.path === "/flaky").length >= 3);
    deadDelivery = await eventually("a dead letter", async () => {
      await page.goto(`${base}/ui/dead-letters`);
      const link = await page.$(`#dead-rows a[href*="/deliveries/dlv_"]`);
      return link && (await link.textContent()).trim();
    });
    assert.match(await page.textContent("#dead-groups"), /500/);
    await page.goto(`${base}/ui/deliveries/${deadDelivery}`);
    assert.equal(await page.textContent("#delivery-state"), "dead");
    assert.equal(await page.locator(".attempt").count(), 3);
    assert.match(await page.textContent(".attempt"), /receiver is down/);
    // The response headers the receiver sent, and the error class, named.
    assert.match(await page.textContent(".attempt .response-headers"), /x-receiver-trace\s*e2e\/flaky/);
    assert.equal((await page.textContent(".attempt .error-class")).trim(), "HTTP");
  });

  await step("redrive it after the receiver recovers", async () => {
    flakyFails = false;
    await page.goto(`${base}/ui/dead-letters`);
    await page.selectOption("#r-endpoint", flakyEndpoint);
    await page.click("#preview-redrive");
    await page.waitForSelector("#redrive-result .notice");
    assert.match(await page.textContent("#redrive-result"), /1 dead letters match/);
    await page.click("#redrive-result button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#redrive-result").textContent.includes("Re-queued 1"));
    await eventually("delivered after redrive", async () => {
      await page.goto(`${base}/ui/deliveries/${deadDelivery}`);
      return (await page.textContent("#delivery-state")) === "delivered";
    });
  });

  await step("recover failed since T: a count first, then progress until done", async () => {
    flakyFails = true;
    const since = new Date(Date.now() - 60_000).toISOString().slice(0, 16);
    const published = await api("POST", "/api/events", { event: "order.created", data: { orderId: "ORD-8" }, owner: "globex" });
    const flakyState = async () => (await api("GET", `/api/events/${published.body.id}`)).body.deliveries.find((d) => d.webhook_id === flakyEndpoint)?.state;
    await eventually("dead again", async () => (await flakyState()) === "dead");
    flakyFails = false;
    await page.goto(`${base}/ui/dead-letters`);
    await page.selectOption("#c-endpoint", flakyEndpoint);
    await page.fill("#c-since", since);
    await page.click("#count-recover");
    await page.waitForSelector("#recover-result .notice");
    assert.match(await page.textContent("#recover-result"), /1 failed or dead deliveries since/);
    await page.click("#recover-result button[type=submit]");
    await page.waitForSelector("#recover-result .recovery[data-state=done]");
    assert.match(await page.textContent("#recover-result"), /Recovered 1 deliveries/);
    assert.equal(await page.getAttribute("#recover-result progress", "value"), "1");
    await eventually("delivered after recovery", async () => (await flakyState()) === "delivered");
  });

  await step("replay an event to an endpoint that had no delivery of it (of the event's owner only)", async () => {
    const later = await api("POST", "/api/webhooks", { url: `${receiverUrl}/later`, events: ["order.*"], owner: "acme" });
    assert.equal(later.status, 201);
    await page.goto(`${base}/ui/events/${testEvent}`);
    const offered = await page.locator("#replay-endpoint option").evaluateAll((options) => options.map((o) => o.value));
    assert.ok(!offered.includes(flakyEndpoint), "another owner's endpoint is not offered");
    await page.selectOption("#replay-endpoint", later.body.id);
    await page.click("#replay-to-endpoint");
    await page.waitForSelector("#replay-result .notice");
    assert.match(await page.textContent("#replay-result"), /New delivery queued/);
    await eventually("the replay arrives", () => received.some((r) => r.path === "/later" && JSON.parse(r.body).id === testEvent));
  });

  await step("delivery log: filters stay in the URL; exact id search", async () => {
    await page.goto(`${base}/ui/deliveries`);
    await page.selectOption("#f-state", "delivered");
    await page.click("form.filters button[type=submit]");
    await page.waitForURL(/state=delivered/);
    assert.ok((await page.locator("#delivery-rows tr").count()) >= 2);
    await page.keyboard.press("/");
    assert.equal(await page.evaluate(() => document.activeElement.id), "global-search");
    await page.keyboard.type(deadDelivery);
    await page.keyboard.press("Enter");
    await page.waitForURL(new RegExp(`/ui/deliveries/${deadDelivery}$`));
    await page.keyboard.press("?");
    assert.equal(await page.evaluate(() => document.getElementById("help").open), true);
  });

  await step("event catalog: a type created through the API shows its description, schema and example", async () => {
    const created = await api("POST", "/api/event-types", invoicePaid);
    assert.equal(created.status, 201);
    assert.equal(created.body.validate, "enforce");
    const endpoint = await api("POST", "/api/webhooks", { url: `${receiverUrl}/invoices`, events: ["invoice.paid"], description: "Billing", owner: "acme" });
    assert.equal(endpoint.status, 201);
    ({ id: invoiceEndpoint, secret: invoiceSecret } = endpoint.body);
    const other = await api("POST", "/api/webhooks", { url: `${receiverUrl}/globex-invoices`, events: ["invoice.*"], owner: "globex" });
    assert.equal(other.status, 201);
    globexInvoices = other.body.id;
    // The schema is enforced: a payload it refuses is not published.
    const refused = await api("POST", "/api/events", { event: "invoice.paid", data: { invoiceId: "INV-1", amount: -5, currency: "EUR" } });
    assert.equal(refused.status, 422);
    assert.equal(refused.body.code, "schema_mismatch");
    await page.keyboard.press("Escape"); // the shortcuts dialog the previous step opened
    await page.click("nav >> text=Event catalog");
    await page.waitForURL(`${base}/ui/events`);
    const card = await checkInvoiceCard(page);
    const subscribed = await card.locator("p", { hasText: "Subscribed endpoints" }).textContent();
    assert.ok(subscribed.includes(`${receiverUrl}/invoices`) && subscribed.includes(`${receiverUrl}/globex-invoices`));
  });

  await step("event catalog: \"send example\" delivers the example, signed, to the chosen endpoint", async () => {
    const card = page.locator('[id="type-invoice.paid"]');
    const options = await card.locator("select[name=endpoint] option").evaluateAll((o) => o.map((e) => e.value).sort());
    assert.deepEqual(options, [invoiceEndpoint, globexInvoices].sort());
    const got = await sendExample(card, invoiceEndpoint, "/invoices");
    const envelope = JSON.parse(got.body);
    assert.equal(envelope.event, "invoice.paid");
    assert.deepEqual(envelope.data, invoiceExample);
    assert.ok(signedWith(got, invoiceSecret), "signed with the endpoint's secret");
    assert.ok(!received.some((r) => r.path === "/globex-invoices"), "the other subscriber got nothing");
    await card.screenshot({ path: join(shots, "catalog-send-example-light.png") });
  });

  await step("endpoint form: a content filter, tested against the catalog example, saved; only matching events are delivered", async () => {
    await page.goto(`${base}/ui/endpoints/${invoiceEndpoint}`);
    assert.match(await page.textContent("#settings"), /Content filter\s*none/);
    await page.click(`a[href="/ui/endpoints/${invoiceEndpoint}/edit"]`);
    await page.waitForURL(`${base}/ui/endpoints/${invoiceEndpoint}/edit`);
    await page.click("#filter-test summary");
    // The test starts from the catalog's example of the endpoint's event type.
    assert.equal(await page.inputValue("#test_event"), "invoice.paid");
    assert.deepEqual(JSON.parse(await page.inputValue("#test_data")), invoiceExample);
    await page.fill("#filter", '{"data.amount": {"$gte": 100}}');
    const passes = await testFilter(page, "The example passes the filter: it would be delivered.");
    assert.equal(await passes.getAttribute("class"), "ok");
    await page.fill("#test_data", JSON.stringify({ ...invoiceExample, amount: 99.5 }));
    const fails = await testFilter(page, "The example does not pass the filter: no delivery.");
    assert.equal(await fails.getAttribute("class"), "error");
    await page.locator("#endpoint-form").screenshot({ path: join(shots, "filter-test-light.png") });
    assert.equal((await api("GET", `/api/webhooks/${invoiceEndpoint}`)).body.filter, null, "testing saves nothing");
    await page.click("#endpoint-form button[type=submit]:not(#test-filter)");
    await page.waitForURL(`${base}/ui/endpoints/${invoiceEndpoint}`);
    assert.deepEqual(JSON.parse(await page.textContent("#endpoint-filter")), { "data.amount": { $gte: 100 } });
    assert.deepEqual((await api("GET", `/api/webhooks/${invoiceEndpoint}`)).body.filter, { "data.amount": { $gte: 100 } });
    await onlyMatchingDelivered(invoiceEndpoint, "/invoices",
      { invoiceId: "INV-2003", amount: 180, currency: "USD" },
      { invoiceId: "INV-2002", amount: 20, currency: "EUR" });
  });

  await step("endpoint form: an invalid content filter is refused with its path, in the test and on save", async () => {
    await page.goto(`${base}/ui/endpoints/${invoiceEndpoint}/edit`);
    assert.deepEqual(JSON.parse(await page.inputValue("#filter")), { "data.amount": { $gte: 100 } });
    const wrong = '{"data.amount": {"$between": [1, 500]}}';
    await page.fill("#filter", wrong);
    await page.click("#filter-test summary");
    const outcome = await testFilter(page, "filter.data.amount.$between");
    assert.match(await outcome.textContent(), /^content filter: filter\.data\.amount\.\$between: unknown operator "\$between"/);
    assert.equal(await outcome.getAttribute("class"), "error");
    const [response] = await Promise.all([
      page.waitForNavigation(),
      page.click("#endpoint-form button[type=submit]:not(#test-filter)"),
    ]);
    assert.equal(response.status(), 422);
    assert.match(await page.textContent("#form-error"), /^filter\.data\.amount\.\$between: unknown operator "\$between"/);
    assert.equal(await page.inputValue("#filter"), wrong, "the form keeps what was typed");
    await page.screenshot({ path: join(shots, "endpoint-form-filter-error-light.png"), fullPage: true });
    assert.deepEqual((await api("GET", `/api/webhooks/${invoiceEndpoint}`)).body.filter, { "data.amount": { $gte: 100 } }, "nothing changed");
  });

  await step("screenshots of every operator screen, light and dark", async () => {
    await shoot(operator, "overview", `${base}/ui?range=1h`);
    await shoot(operator, "endpoints", `${base}/ui/endpoints`);
    await shoot(operator, "endpoint", `${base}/ui/endpoints/${okEndpoint}`);
    await shoot(operator, "endpoint-form", `${base}/ui/endpoints/${okEndpoint}/edit`);
    await shoot(operator, "endpoint-filtered", `${base}/ui/endpoints/${invoiceEndpoint}`);
    await shoot(operator, "endpoint-form-filter", `${base}/ui/endpoints/${invoiceEndpoint}/edit`);
    await shoot(operator, "deliveries", `${base}/ui/deliveries`);
    await shoot(operator, "delivery", `${base}/ui/deliveries/${deadDelivery}`);
    await shoot(operator, "dead-letters", `${base}/ui/dead-letters`);
    await shoot(operator, "catalog", `${base}/ui/events`);
    await shoot(operator, "event", `${base}/ui/events/${testEvent}`);
    await api("POST", "/api/api-keys", { name: "order-service", scopes: ["publish"], owner: "acme" });
    await api("POST", "/api/api-keys", { name: "reporting", scopes: ["read"] });
    await shoot(operator, "api-keys", `${base}/ui/settings/keys`);
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, storageState: await operator.storageState() });
    await shoot(phone, "phone-overview", `${base}/ui`);
    await phone.close();
  });

  await step("portal: a one-time link shows only its owner's data", async () => {
    const { portal, p, link } = await enterPortal("acme");
    const cookie = (await portal.cookies()).find((c) => c.name === "hookd_portal");
    assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict");
    await p.goto(`${base}/portal/endpoints`);
    const list = await p.textContent("main");
    assert.ok(list.includes(`${receiverUrl}/ok`), "its own endpoint is listed");
    assert.ok(!list.includes("/flaky"), "another owner's endpoint is not");
    assert.equal(await p.locator('nav a[href$="/settings/keys"]').count(), 0, "no API keys in the portal");
    const other = await p.goto(`${base}/portal/endpoints/${flakyEndpoint}`);
    assert.equal(other.status(), 404);
    const otherDelivery = await p.goto(`${base}/portal/deliveries/${deadDelivery}`);
    assert.equal(otherDelivery.status(), 404);
    assert.equal((await p.goto(`${base}/portal/settings/keys`)).status(), 404);
    await p.goto(`${base}/portal/deliveries`);
    assert.ok(!(await p.textContent("main")).includes(deadDelivery));
    // The link was used up.
    const again = await (await browser.newContext()).newPage();
    await again.goto(link.body.url);
    const [reused] = await Promise.all([again.waitForNavigation(), again.click("#continue")]);
    assert.equal(reused.status(), 401);
    // The operator's cookie is not valid in the portal and vice versa.
    const fresh = await browser.newContext();
    assert.equal((await (await fresh.newPage()).goto(`${base}/portal/endpoints`)).status(), 401);
    await shoot(portal, "portal-overview", `${base}/portal`);
    await shoot(portal, "portal-endpoints", `${base}/portal/endpoints`);
    await shoot(portal, "portal-endpoint", `${base}/portal/endpoints/${okEndpoint}`);
    await shoot(portal, "portal-deliveries", `${base}/portal/deliveries`);
    await shoot(portal, "portal-dead-letters", `${base}/portal/dead-letters`);
    await portal.close();
  });

  await step("portal: the catalog and content-filter editing, within its owner", async () => {
    const { portal, p } = await enterPortal("acme");
    await p.click("nav >> text=Event catalog");
    await p.waitForURL(`${base}/portal/events`);
    const card = await checkInvoiceCard(p);
    // Only the owner's endpoints are listed and offered.
    const subscribed = await card.locator("p", { hasText: "Subscribed endpoints" }).textContent();
    assert.ok(subscribed.includes(`${receiverUrl}/invoices`) && !subscribed.includes("globex-invoices"));
    const options = await card.locator("select[name=endpoint] option").evaluateAll((o) => o.map((e) => e.value));
    assert.deepEqual(options, [invoiceEndpoint]);
    const got = await sendExample(card, invoiceEndpoint, "/invoices");
    assert.deepEqual(JSON.parse(got.body).data, invoiceExample);
    assert.ok(signedWith(got, invoiceSecret));
    // Another owner's endpoint: no example sent to it, and no form to edit its filter.
    const refused = await p.evaluate(async (id) => (await fetch(`/portal/events/types/invoice.paid/send-example`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-csrf-token": document.querySelector("input[name=_csrf]").value },
      body: new URLSearchParams({ endpoint: id, payload: "{}" }),
    })).status, globexInvoices);
    assert.equal(refused, 404);
    assert.ok(!received.some((r) => r.path === "/globex-invoices" && JSON.parse(r.body).data.invoiceId === "INV-2001"));
    assert.equal((await p.goto(`${base}/portal/endpoints/${globexInvoices}/edit`)).status(), 404);
    // The filter the operator saved, edited here: tested against the catalog example, then saved.
    await p.goto(`${base}/portal/endpoints/${invoiceEndpoint}`);
    assert.deepEqual(JSON.parse(await p.textContent("#endpoint-filter")), { "data.amount": { $gte: 100 } });
    await p.click(`a[href="/portal/endpoints/${invoiceEndpoint}/edit"]`);
    await p.waitForURL(`${base}/portal/endpoints/${invoiceEndpoint}/edit`);
    assert.equal(await p.locator("#owner").count(), 0, "the portal cannot move an endpoint to another owner");
    assert.deepEqual(JSON.parse(await p.inputValue("#filter")), { "data.amount": { $gte: 100 } });
    await p.fill("#filter", '{"data.currency": {"$in": ["EUR"]}, "data.amount": {"$gt": 0}}');
    await p.click("#filter-test summary");
    assert.deepEqual(JSON.parse(await p.inputValue("#test_data")), invoiceExample);
    assert.equal(await (await testFilter(p, "passes the filter")).getAttribute("class"), "ok");
    await p.fill("#test_data", JSON.stringify({ ...invoiceExample, currency: "USD" }));
    assert.equal(await (await testFilter(p, "does not pass the filter")).getAttribute("class"), "error");
    await p.fill("#filter", '{"data.currency": {"$in": "EUR"}}');
    assert.match(await (await testFilter(p, "filter.data.currency.$in")).textContent(), /filter\.data\.currency\.\$in: must be an array of values/);
    await p.fill("#filter", '{"data.currency": {"$in": ["EUR"]}, "data.amount": {"$gt": 0}}');
    await p.click("#endpoint-form button[type=submit]:not(#test-filter)");
    await p.waitForURL(`${base}/portal/endpoints/${invoiceEndpoint}`);
    const saved = { "data.currency": { $in: ["EUR"] }, "data.amount": { $gt: 0 } };
    assert.deepEqual(JSON.parse(await p.textContent("#endpoint-filter")), saved);
    assert.deepEqual((await api("GET", `/api/webhooks/${invoiceEndpoint}`)).body.filter, saved);
    assert.equal((await api("GET", `/api/webhooks/${invoiceEndpoint}`)).body.owner, "acme");
    await onlyMatchingDelivered(invoiceEndpoint, "/invoices",
      { invoiceId: "INV-2005", amount: 15, currency: "EUR" },
      { invoiceId: "INV-2004", amount: 900, currency: "USD" });
    await shoot(portal, "portal-catalog", `${base}/portal/events`);
    await shoot(portal, "portal-endpoint-filtered", `${base}/portal/endpoints/${invoiceEndpoint}`);
    await shoot(portal, "portal-endpoint-form-filter", `${base}/portal/endpoints/${invoiceEndpoint}/edit`);
    await portal.close();
  });

  await step("portal in an iframe: an allowed origin embeds it (partitioned cookie, actions work); others are refused", async () => {
    const allowed = await embedder("127.0.0.2");
    const refused = await embedder("127.0.0.3");
    const framed = await startHookd([`portal_frame_ancestors = ["${allowed}"]`]);
    const sub = await framed.api("POST", "/api/webhooks", { url: `${receiverUrl}/ok`, events: ["*"], owner: "acme" });
    assert.equal(sub.status, 201);
    const link = async () => (await framed.api("POST", "/api/portal/sessions", { owner: "acme", capabilities: ["read", "manage"], ttl_seconds: 600 })).body.url;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    watch(page);
    await page.goto(`${allowed}/?src=${encodeURIComponent(await link())}`);
    const entry = await eventually("the link's page in the frame", () => page.frames().find((f) => f.url().startsWith(`${framed.base}/portal/enter`)));
    await entry.click("#continue");
    const frame = await eventually("the portal in the frame", () => page.frames().find((f) => f.url() === `${framed.base}/portal`));
    await frame.waitForSelector("main h1");
    const cookie = (await context.cookies()).find((c) => c.name === "hookd_portal");
    assert.ok(cookie, "the portal cookie was set inside the cross-site frame");
    assert.equal(cookie.sameSite, "None");
    assert.equal(cookie.secure, true);
    assert.equal(cookie.httpOnly, true);
    if ("partitionKey" in cookie) assert.match(String(cookie.partitionKey), /127\.0\.0\.2/);
    // A state-changing request from inside the frame passes the CSRF and origin checks.
    await frame.goto(`${framed.base}/portal/endpoints/${sub.body.id}`);
    await frame.click("#reveal");
    await frame.waitForSelector("#secret-result .reveal");
    assert.match(await frame.textContent("#secret-result .reveal"), /^whsec_/);
    await page.screenshot({ path: join(shots, "portal-framed-light.png") });

    // Another origin may not frame the portal, and nobody may frame the dashboard.
    for (const [origin, src, name] of [
      [refused, await link(), "another origin"],
      [allowed, `${framed.base}/ui/login`, "the dashboard"],
    ]) {
      const other = await context.newPage();
      const messages = [];
      other.on("console", (m) => messages.push(m.text()));
      await other.goto(`${origin}/?src=${encodeURIComponent(src)}`);
      // Chromium logs "Framing '…' violates the following Content Security Policy directive:
      // "frame-ancestors …". The request has been blocked." and shows an error page in the frame.
      await eventually(`${name}: framing refused`, () => messages.some((m) => /frame-ancestors/.test(m) && /blocked|Refused/.test(m)));
      const inner = other.frames().find((f) => f !== other.mainFrame());
      assert.ok(inner && !inner.url().startsWith(framed.base), `${name}: ${inner && inner.url()}`);
      await other.close();
    }
    await context.close();
  });

  await step("no Content-Security-Policy violations or script errors on any page", async () => {
    assert.deepEqual(cspViolations, []);
  });
  console.log(`\n${passed} checks passed; screenshots in ${shots}`);
} catch (error) {
  console.log("FAILED");
  console.error(error);
  exitCode = 1;
} finally {
  await browser.close();
  started.forEach(({ proc }) => proc.kill("SIGTERM"));
  receiver.close();
  embedders.forEach((server) => server.close());
  await new Promise((r) => setTimeout(r, 300));
  started.forEach(({ data }) => rmSync(data, { recursive: true, force: true }));
  process.exit(exitCode);
}
