// The original webhook specification's Node receiver (POST /webhooks/:id and generateSignature),
// as the specification writes it, inside the smallest stand-ins for Express (JSON body parsed with
// JSON.parse, as express.json() does) and for its WebhookSubscription model (secrets read from the
// JSON file named by SPEC_SECRETS_FILE: {"<webhook id>": "<secret>"}).
//
// Run by .ci/spec_receivers.py: `node .ci/spec_receiver.js`; prints `listening <port>` on stdout.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

// ---- stand-ins -------------------------------------------------------------------------------
const WebhookSubscription = {
  findOne: async ({ id }) => {
    const secrets = JSON.parse(fs.readFileSync(process.env.SPEC_SECRETS_FILE, 'utf8'));
    return Object.prototype.hasOwnProperty.call(secrets, id) ? { id, secret: secrets[id] } : null;
  },
};
const routes = [];
const app = { post: (path, handler) => routes.push({ path, handler }) };
const console = { log: () => {} }; // the specification logs each event; payloads stay out of CI logs

// ---- the specification's receiver, verbatim ---------------------------------------------------
// Webhook endpoint (receiving webhooks)
app.post('/webhooks/:id', async (req, res) => {
  const signature = req.headers['x-webhook-signature'];
  const webhookId = req.params.id;
  const event = req.body;

  try {
    const webhook = await WebhookSubscription.findOne({ id: webhookId });
    if (!webhook) {
      return res.status(404).json({ error: 'Webhook not found' });
    }

    // Verify signature
    const expectedSignature = generateSignature(event, webhook.secret);
    if (signature !== expectedSignature) {
      return res.status(401).json({ error: 'Invalid signature' });
    }

    // Process event
    console.log('Received webhook event:', event);

    res.status(200).json({ received: true });
  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

// Signature generation
const generateSignature = (payload, secret) => {
  const message = JSON.stringify(payload);
  return crypto.createHmac('sha256', secret).update(message).digest('hex');
};

// ---- the tiny server ----------------------------------------------------------------------------
const server = http.createServer((request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    const res = {
      code: 200,
      status(code) { this.code = code; return this; },
      json(value) {
        const text = JSON.stringify(value);
        response.writeHead(this.code, { 'content-type': 'application/json' });
        response.end(text);
        return this;
      },
    };
    const match = /^\/webhooks\/([^/]+)$/.exec(request.url);
    if (request.method !== 'POST' || !match) {
      return res.status(404).json({ error: 'no route' });
    }
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (error) {
      return res.status(400).json({ error: 'body is not JSON' });
    }
    const req = { headers: request.headers, params: { id: decodeURIComponent(match[1]) }, body };
    routes[0].handler(req, res);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
