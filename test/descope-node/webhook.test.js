// Descope's createAuditWebhook, called through the unchanged Node SDK,
// configures a webhook on audittrail, and the webhook then receives the
// events created afterwards: signed (x-descope-webhook-s256), with the
// configured authentication and headers, filtered as asked.
//
// Same environment as audit.test.js (AUDITTRAIL_URL, AUDITTRAIL_PROJECT_ID,
// AUDITTRAIL_MANAGEMENT_KEY); the receiver listens on 127.0.0.1.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const DescopeClient = require('@descope/node-sdk');

const baseUrl = process.env.AUDITTRAIL_URL;
const projectId = process.env.AUDITTRAIL_PROJECT_ID;
const managementKey = process.env.AUDITTRAIL_MANAGEMENT_KEY;
const missing = !baseUrl || !projectId || !managementKey;
const skip = missing && 'set AUDITTRAIL_URL, AUDITTRAIL_PROJECT_ID and AUDITTRAIL_MANAGEMENT_KEY to run against a server';

const run = `hook-${Date.now()}-${crypto.randomBytes(4).toString('hex')}`;
const tenant = `tenant-${run}`;
const hmacSecret = crypto.randomBytes(16).toString('hex');
const bearerToken = crypto.randomBytes(16).toString('hex');

const sdk = missing ? null : DescopeClient({ projectId, managementKey, baseUrl, logger: { log() {}, debug() {}, info() {}, warn() {}, error: console.error } });

// A webhook receiver that checks what Descope's documentation tells
// receivers to check, and keeps every audit record it accepted.
function startReceiver() {
  const received = [];
  const problems = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const sign = (b) => crypto.createHmac('sha256', hmacSecret).update(b).digest('base64');
      const problem = (msg) => { problems.push(msg); res.writeHead(401).end(); };
      if (req.headers['x-descope-webhook-s256'] !== sign(raw)) return problem(`bad signature on ${raw.length} bytes`);
      if (req.headers.authorization !== `Bearer ${bearerToken}`) return problem(`authorization ${req.headers.authorization}`);
      if (req.headers['x-run'] !== run) return problem(`custom header x-run ${req.headers['x-run']}`);
      if (!String(req.headers['content-type']).startsWith('application/json')) return problem(`content-type ${req.headers['content-type']}`);
      const body = JSON.parse(raw.toString('utf8'));
      // Descope's examples sign JSON.stringify(req.body): the same bytes.
      if (sign(JSON.stringify(body)) !== sign(raw)) return problem('JSON.stringify(body) signs differently');
      received.push(...body.audits);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({ url: `http://127.0.0.1:${server.address().port}/audit`, received, problems, close: () => server.close() });
    });
  });
}

async function waitFor(what, cond, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function expectOk(resp, what) {
  assert.ok(resp.ok, `${what}: HTTP ${resp.code} ${JSON.stringify(resp.error)}`);
}

test('createAuditWebhook: the webhook receives the events created afterwards, signed and filtered', { skip }, async () => {
  const recv = await startReceiver();
  try {
    const webhook = {
      name: `node-sdk-${run}`,
      description: 'created by the Descope Node SDK',
      url: recv.url,
      authentication: { bearerToken },
      hmacSecret,
      headers: { 'x-run': run },
      // The Node SDK's typing names the filter type `key`.
      filters: [{ key: 'tenants', operator: 'includes', values: [tenant] }],
    };
    expectOk(await sdk.management.audit.createAuditWebhook(webhook), 'createAuditWebhook');

    const create = (action, tenantId) => sdk.management.audit.createEvent({ action, type: 'info', actorId: 'node-sdk', tenantId, userId: 'u-node', data: { run } });
    expectOk(await create('WebhookFirst', tenant), 'createEvent');
    expectOk(await create('WebhookFiltered', `other-${run}`), 'createEvent');
    expectOk(await create('WebhookSecond', tenant), 'createEvent');
    await waitFor('two events at the webhook', () => recv.received.length >= 2 || recv.problems.length > 0);
    assert.deepEqual(recv.problems, []);
    assert.deepEqual(recv.received.map((a) => a.action), ['WebhookFirst', 'WebhookSecond']);
    const first = recv.received[0];
    assert.equal(first.projectId, projectId);
    assert.deepEqual(first.tenants, [tenant]);
    assert.equal(first.actorId, 'node-sdk');
    assert.equal(typeof first.occurred, 'string', 'occurred is a string of epoch ms, as search returns it');
    assert.ok(first.id, 'each record has its id, for dedupe');

    // The same name again updates that webhook instead of adding another:
    // the next event arrives once, under the new filter.
    // (Both tenants are this run's: audit.test.js runs beside this file.)
    webhook.filters = [
      { key: 'tenants', operator: 'includes', values: [tenant, `other-${run}`] },
      { key: 'actions', operator: 'excludes', values: ['WebhookNoise'] },
    ];
    expectOk(await sdk.management.audit.createAuditWebhook(webhook), 'createAuditWebhook again');
    expectOk(await create('WebhookNoise', tenant), 'createEvent');
    expectOk(await create('WebhookThird', `other-${run}`), 'createEvent');
    await waitFor('the event after the update', () => recv.received.length >= 3 || recv.problems.length > 0);
    await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive meanwhile
    assert.deepEqual(recv.problems, []);
    assert.deepEqual(recv.received.map((a) => a.action), ['WebhookFirst', 'WebhookSecond', 'WebhookThird']);
  } finally {
    recv.close();
  }
});

test('createAuditWebhook: a bad body answers an error the SDK reports', { skip }, async () => {
  const resp = await sdk.management.audit.createAuditWebhook({ name: `bad-${run}`, url: 'ftp://nowhere' });
  assert.equal(resp.ok, false);
  assert.equal(resp.code, 400);
  assert.match(resp.error.errorMessage, /url/);
});
