// Runs Descope's own Node SDK, unchanged, against an audittrail server: the
// proof that a team can point its existing code at audittrail.
//
// Needs a running server: AUDITTRAIL_URL, AUDITTRAIL_PROJECT_ID and
// AUDITTRAIL_MANAGEMENT_KEY (an admin key, as bootstrap.json holds). The Go
// test in this folder starts one and runs `node --test` here; by hand:
//   AUDITTRAIL_URL=http://127.0.0.1:8080 AUDITTRAIL_PROJECT_ID=P… \
//   AUDITTRAIL_MANAGEMENT_KEY=K… node --test
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const DescopeClient = require('@descope/node-sdk');

const baseUrl = process.env.AUDITTRAIL_URL;
const projectId = process.env.AUDITTRAIL_PROJECT_ID;
const managementKey = process.env.AUDITTRAIL_MANAGEMENT_KEY;
const missing = !baseUrl || !projectId || !managementKey;
const skip = missing && 'set AUDITTRAIL_URL, AUDITTRAIL_PROJECT_ID and AUDITTRAIL_MANAGEMENT_KEY to run against a server';

// One tenant per run keeps these events apart from anything else stored.
const run = `node-${Date.now()}-${crypto.randomBytes(4).toString('hex')}`;
const tenant = `tenant-${run}`;

const sdk = missing ? null : DescopeClient({ projectId, managementKey, baseUrl, logger: quietLogger() });
const audit = sdk && sdk.management.audit;

function quietLogger() {
  // The SDK logs a warning when its start-up license call fails; keep the
  // test output to what matters, but let errors through.
  return { log() {}, debug() {}, info() {}, warn() {}, error: console.error };
}

// The native batch endpoint, to store events with login IDs, devices and
// times the Descope createEvent call cannot set.
async function ingest(events) {
  const res = await fetch(`${baseUrl}/v1/mgmt/audit/events`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${projectId}:${managementKey}` },
    body: JSON.stringify({ events }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, `batch ingest: ${JSON.stringify(body)}`);
  return body.ids;
}

async function getSettings() {
  const res = await fetch(`${baseUrl}/v1/mgmt/company/settings`, {
    headers: { Authorization: `Bearer ${projectId}:${managementKey}` },
  });
  const body = await res.json();
  assert.equal(res.status, 200, `settings: ${JSON.stringify(body)}`);
  return body.settings;
}

async function patchSettings(settings) {
  const res = await fetch(`${baseUrl}/v1/mgmt/company/settings`, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${projectId}:${managementKey}` },
    body: JSON.stringify(settings),
  });
  const body = await res.json();
  assert.equal(res.status, 200, `settings: ${JSON.stringify(body)}`);
  return body.settings;
}

function expectOk(resp, what) {
  assert.ok(resp.ok, `${what}: HTTP ${resp.code} ${JSON.stringify(resp.error)}`);
}

function isNewestFirst(records) {
  for (let i = 1; i < records.length; i++) {
    if (records[i - 1].occurred < records[i].occurred) return false;
  }
  return true;
}

const created = [
  { userId: 'u-alice', action: 'ReportExported', type: 'info', actorId: 'actor-1', data: { rows: 12, email: 'alice@example.com' } },
  { userId: 'u-bob', action: 'ReportExported', type: 'warn', actorId: 'actor-2', data: { rows: 0 } },
  { userId: 'u-alice', action: 'SettingsChanged', type: 'info', actorId: 'actor-1', data: { note: 'quetzal feathers' } },
  { userId: 'u-carol', action: 'AccessDenied', type: 'error', actorId: 'actor-3' },
];

// Stored through the native API: they carry login IDs (externalIds on the
// wire, loginIds in the Node SDK) and fixed times.
const now = Date.now();
const ingested = [
  { action: 'LoginSucceed', userId: 'u-dave', actorId: 'u-dave', occurred: now - 60_000, externalIds: ['dave@example.com'],
    tenants: [tenant], device: 'Mobile', method: 'otp', geo: 'IL', remoteAddress: '203.0.113.9', data: { run } },
  { action: 'LoginFailed', type: 'warn', userId: 'u-erin', actorId: 'u-erin', occurred: now - 120_000,
    externalIds: ['erin@example.com', '+15550100'], tenants: [tenant], device: 'Desktop', method: 'password', geo: 'US',
    remoteAddress: '198.51.100.4', data: { run, error_message: 'wrong password' } },
];

test('Descope Node SDK against audittrail', { skip }, async (t) => {
  // The test makes about 25 searches; lift the rate limit (10 a minute by
  // default) for its duration and put the company's setting back after.
  const original = await getSettings();
  await patchSettings({ searchRateLimit: 0 });
  try {
    await checks(t);
  } finally {
    await patchSettings({ searchRateLimit: original.searchRateLimit });
  }
});

async function checks(t) {
  await t.test('createEvent stores events', async () => {
    for (const ev of created) {
      const resp = await audit.createEvent({ ...ev, tenantId: tenant });
      expectOk(resp, `createEvent ${ev.action}`);
    }
    await ingest(ingested);
  });

  await t.test('createEvent refuses what Descope refuses, in Descope error format', async () => {
    const noActor = await audit.createEvent({ action: 'X', type: 'info', tenantId: tenant });
    assert.equal(noActor.ok, false);
    assert.equal(noActor.code, 400);
    assert.match(noActor.error.errorCode, /^E01100[1-4]$/);
    assert.ok(noActor.error.errorMessage || noActor.error.errorDescription, 'error carries a message');

    const badType = await audit.createEvent({ action: 'X', type: 'fatal', actorId: 'a', tenantId: tenant });
    assert.equal(badType.ok, false);
    assert.equal(badType.code, 400);
    assert.match(badType.error.errorCode, /^E01100[1-4]$/);
  });

  let all;
  await t.test('search returns every event of the run, newest first, in the SDK shape', async () => {
    const resp = await audit.search({ tenants: [tenant] });
    expectOk(resp, 'search');
    all = resp.data;
    assert.ok(Array.isArray(all), 'data is the array of records');
    assert.equal(all.length, created.length + ingested.length);
    assert.ok(isNewestFirst(all), 'newest first');
    for (const r of all) {
      assert.equal(r.projectId, projectId);
      assert.equal(typeof r.occurred, 'number', 'the SDK turned the occurred string into a number');
      assert.ok(Number.isFinite(r.occurred) && r.occurred > now - 3_600_000 && r.occurred < now + 3_600_000, `occurred ${r.occurred}`);
      assert.ok(Array.isArray(r.loginIds), 'externalIds renamed to loginIds');
      assert.equal(r.externalIds, undefined, 'externalIds no longer present');
      assert.deepEqual(r.tenants, [tenant]);
      for (const key of ['userId', 'action', 'device', 'method', 'geo', 'remoteAddress']) {
        assert.equal(typeof r[key], 'string', `${key} is a string`);
      }
    }
    const dave = all.find((r) => r.action === 'LoginSucceed');
    assert.deepEqual(dave.loginIds, ['dave@example.com']);
    assert.equal(dave.occurred, now - 60_000);
    assert.equal(dave.device, 'Mobile');
    assert.equal(dave.method, 'otp');
    assert.equal(dave.geo, 'IL');
    assert.equal(dave.remoteAddress, '203.0.113.9');
    assert.deepEqual(dave.data, { run });

    const alice = all.find((r) => r.action === 'ReportExported' && r.userId === 'u-alice');
    assert.ok(alice, 'created event found');
    assert.equal(alice.actorId, 'actor-1');
    assert.equal(alice.type, 'info');
    assert.deepEqual(alice.data, { rows: 12, email: 'alice@example.com' });
    // Events created through createEvent come after the two ingested with
    // older times, so they sort first.
    assert.deepEqual(all.slice(-2).map((r) => r.action), ['LoginSucceed', 'LoginFailed']);
  });

  await t.test('searchAll returns the records and the exact total', async () => {
    const resp = await audit.searchAll({ tenants: [tenant] });
    expectOk(resp, 'searchAll');
    assert.equal(resp.data.total, all.length);
    assert.deepEqual(resp.data.audits, all);
  });

  await t.test('search without options works and searchAll counts beyond this run', async () => {
    const plain = await audit.search({});
    expectOk(plain, 'search({})');
    assert.ok(Array.isArray(plain.data) && plain.data.length >= all.length);
    assert.ok(isNewestFirst(plain.data), 'newest first');
    const resp = await audit.searchAll({});
    expectOk(resp, 'searchAll({})');
    assert.ok(resp.data.total >= all.length, `total ${resp.data.total}`);
  });

  await t.test('searchAll pages with size and page, total stays exact', async () => {
    const seen = [];
    for (let page = 0; page < 4; page++) {
      const resp = await audit.searchAll({ tenants: [tenant], size: 2, page });
      expectOk(resp, `page ${page}`);
      assert.equal(resp.data.total, all.length, 'total counts every match, not the page');
      assert.equal(resp.data.audits.length, Math.max(0, Math.min(2, all.length - page * 2)), `page ${page} size`);
      seen.push(...resp.data.audits);
    }
    assert.deepEqual(seen, all, 'pages concatenate to the full result');
  });

  await t.test('loginIds filter is sent as externalIds', async () => {
    const resp = await audit.searchAll({ loginIds: ['erin@example.com'], tenants: [tenant] });
    expectOk(resp, 'loginIds');
    assert.equal(resp.data.total, 1);
    assert.equal(resp.data.audits[0].action, 'LoginFailed');
    assert.deepEqual(resp.data.audits[0].loginIds, ['erin@example.com', '+15550100']);
  });

  await t.test('every Descope filter narrows the result', async () => {
    const cases = [
      [{ userIds: ['u-alice'] }, ['SettingsChanged', 'ReportExported']],
      [{ actions: ['ReportExported'] }, ['ReportExported', 'ReportExported']],
      [{ excludedActions: ['ReportExported', 'LoginSucceed', 'LoginFailed'] }, ['AccessDenied', 'SettingsChanged']],
      [{ devices: ['Desktop'] }, ['LoginFailed']],
      [{ methods: ['otp'] }, ['LoginSucceed']],
      [{ geos: ['IL'] }, ['LoginSucceed']],
      [{ remoteAddresses: ['198.51.100.4'] }, ['LoginFailed']],
      [{ text: 'quetzal' }, ['SettingsChanged']],
      [{ text: 'ALICE@example' }, ['ReportExported']],
      [{ from: now - 90_000, to: now - 30_000 }, ['LoginSucceed']],
      [{ from: String(now - 150_000), to: String(now - 90_000) }, ['LoginFailed']],
    ];
    for (const [filter, actions] of cases) {
      const resp = await audit.search({ tenants: [tenant], ...filter });
      expectOk(resp, JSON.stringify(filter));
      const got = resp.data.map((r) => r.action);
      assert.deepEqual(got.slice().sort(), actions.slice().sort(), `filter ${JSON.stringify(filter)}`);
    }
  });

  await t.test('a tenant nobody used finds nothing, with an empty list', async () => {
    const resp = await audit.searchAll({ tenants: [`none-${run}`] });
    expectOk(resp, 'empty');
    assert.deepEqual(resp.data, { audits: [], total: 0 });
  });

  await t.test('a wrong key gets 401 in Descope error format', async () => {
    const bad = DescopeClient({ projectId, managementKey: `${managementKey.split('.')[0]}.wrong`, baseUrl, logger: quietLogger() });
    const resp = await bad.management.audit.search({ tenants: [tenant] });
    assert.equal(resp.ok, false);
    assert.equal(resp.code, 401);
    assert.ok(resp.error.errorCode, 'errorCode is set');
  });

  await t.test('rate limiting answers 429 with Retry-After the SDK reads', async () => {
    await patchSettings({ searchRateLimit: 1 });
    try {
      let limited;
      for (let i = 0; i < 3 && !limited; i++) {
        const resp = await audit.search({ tenants: [tenant] });
        if (!resp.ok) limited = resp;
      }
      assert.ok(limited, 'a search beyond the limit is refused');
      assert.equal(limited.code, 429);
      assert.equal(limited.error.errorCode, 'E130429');
      assert.ok(limited.error.retryAfter >= 1, `retryAfter ${limited.error.retryAfter}`);
    } finally {
      await patchSettings({ searchRateLimit: 0 });
    }
  });
}
