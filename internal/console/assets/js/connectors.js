// Connectors: audit streaming to other services. The list shows each
// connector's state, lag (events and seconds) and last error, refreshed
// while the page is open; a form creates a webhook (Descope's fields plus
// filters, PII masking and level); each row pauses, resumes, sends a test,
// replays from a time, or deletes.
//
// Routes: /v1/mgmt/connectors[/{id}[/pause|resume|test|replay]].
import { h, clear, append, timeEl, fmtNumber, fmtUTC, announce, toLocalInput, fromLocalInput } from './dom.js';
import { call, describeError, ApiError } from './api.js';
import { ChipInput } from './chips.js';

// How often the list refreshes: lag moves quickly while a connector
// catches up, and one GET every few seconds costs nothing.
const REFRESH_MS = 3000;

export function mount(main) {
  document.title = 'Connectors · audittrail';
  const page = new ConnectorsPage(main);
  page.start();
  return () => page.stop();
}

const COLUMNS = ['Name', 'State', 'Lag', 'Delivered', 'Last error', 'Actions'];

const STATE_TEXT = {
  active: 'Active', paused: 'Paused', failing: 'Failing', 'auto-paused': 'Auto-paused',
};

/** "4 s", "3 min 20 s", "2 h 5 min": how far behind a connector is. */
export function fmtDuration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

class ConnectorsPage {
  constructor(main) {
    this.main = main;
    this.rows = new Map(); // id → ConnectorRow
    this.timer = null;
    this.loading = false;
    this.status = h('div.status', { role: 'alert' });
    this.note = h('p.muted.conn-note', { 'aria-live': 'polite' });
    this.tbody = h('tbody');
    this.empty = h('tr.empty', h('td', { colspan: '6' }, 'No connectors yet. Create a webhook below to stream every audit event as it is stored.'));
    this.table = h('table.plain.connectors-table', { 'aria-labelledby': 'list-title', 'aria-busy': 'true' },
      h('thead', h('tr', COLUMNS.map((c) => h('th', { scope: 'col' }, c)))), this.tbody);
    this.refreshBtn = h('button.btn.subtle.small', { type: 'button', onclick: () => this.load(true) }, 'Refresh');
    this.form = new WebhookForm({ onCreated: (v) => this.created(v), onError: (err) => this.fail(describeError(err)) });
    clear(main).append(h('section.page.connectors', { 'aria-labelledby': 'connectors-title' },
      h('h1#connectors-title', 'Connectors'),
      h('p.muted', 'A connector streams every matching audit event to another service as it is stored, in order, and retries until the destination accepts it. A paused connector keeps its place and catches up when resumed.'),
      this.status,
      h('section.card', { 'aria-labelledby': 'list-title' },
        h('div.card-head', h('h2#list-title', 'Connectors'), this.note, this.refreshBtn),
        h('div.table-wrap', { tabindex: '0', 'aria-label': 'Connectors table, scrolls sideways on small screens' }, this.table)),
      this.form.el));
  }

  start() {
    this.load();
    this.onVisible = () => { if (!document.hidden) this.load(); };
    document.addEventListener('visibilitychange', this.onVisible);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    this.stopped = true;
    document.removeEventListener('visibilitychange', this.onVisible);
  }

  schedule() {
    clearTimeout(this.timer);
    if (!this.stopped) this.timer = setTimeout(() => { if (!document.hidden) this.load(); else this.schedule(); }, REFRESH_MS);
  }

  async load(byUser = false) {
    if (this.loading) return;
    this.loading = true;
    try {
      const res = await call('GET', '/v1/mgmt/connectors');
      if (this.stopped) return;
      this.render(res.connectors || []);
      this.note.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      if (byUser) announce('Connectors refreshed');
      if (this.status.dataset.kind === 'load') this.clearStatus();
      this.schedule();
    } catch (err) {
      if (this.stopped) return;
      this.table.removeAttribute('aria-busy');
      if (err instanceof ApiError && err.status === 404 && !this.rows.size) {
        this.fail('Streaming is not enabled on this server, so connectors cannot be managed here.', 'load');
        this.form.el.hidden = true;
        return; // no point polling a route that is not there
      }
      const forbidden = err instanceof ApiError && err.status === 403;
      this.fail(forbidden ? 'Connectors need a management key with the writer or admin role.' : describeError(err), 'load');
      if (forbidden) this.form.el.hidden = true;
      if (!(err instanceof ApiError && (err.status === 403 || err.status === 401))) this.schedule();
    } finally {
      this.loading = false;
    }
  }

  render(views) {
    this.table.removeAttribute('aria-busy');
    views.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    const seen = new Set();
    let prev = null;
    for (const v of views) {
      seen.add(v.id);
      let row = this.rows.get(v.id);
      if (!row) {
        row = new ConnectorRow(v, this);
        this.rows.set(v.id, row);
      } else {
        row.update(v);
      }
      // Keep the DOM in the sorted order without moving rows that are
      // already in place (a moved row would lose the keyboard focus).
      const want = prev ? prev.replayRow.nextSibling : this.tbody.firstChild;
      if (want !== row.tr) {
        this.tbody.insertBefore(row.tr, want);
        this.tbody.insertBefore(row.replayRow, row.tr.nextSibling);
      }
      prev = row;
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) { row.tr.remove(); row.replayRow.remove(); this.rows.delete(id); }
    }
    if (!views.length) this.tbody.append(this.empty);
    else this.empty.remove();
  }

  created(v) {
    this.ok(`Connector “${v.name}” created.`);
    this.load();
  }

  clearStatus() {
    clear(this.status);
    this.status.className = 'status';
    delete this.status.dataset.kind;
  }

  fail(text, kind = 'action') {
    clear(this.status).append(h('p#conn-error', text));
    this.status.className = 'status error';
    this.status.dataset.kind = kind;
  }

  ok(text) {
    clear(this.status).append(h('p#conn-ok', text));
    this.status.className = 'status ok';
    this.status.dataset.kind = 'ok';
    announce(text);
  }

  /** Runs one action of a row; the list reloads after it either way. */
  async act(fn, done) {
    try {
      const res = await fn();
      this.ok(typeof done === 'function' ? done(res) : done);
      return res;
    } catch (err) {
      this.fail(describeError(err));
      return null;
    } finally {
      this.load();
    }
  }
}

class ConnectorRow {
  constructor(v, page) {
    this.page = page;
    this.id = v.id;
    this.name = h('td.conn-name');
    this.state = h('td');
    this.lag = h('td.nowrap');
    this.delivered = h('td.nowrap');
    this.error = h('td.conn-error');
    this.pauseBtn = h('button.btn.subtle.small', { type: 'button', onclick: () => this.togglePause() });
    this.testBtn = h('button.btn.subtle.small', { type: 'button', onclick: () => this.test() }, 'Send test');
    this.replayBtn = h('button.btn.subtle.small', { type: 'button', 'aria-expanded': 'false', onclick: () => this.toggleReplay() }, 'Replay…');
    this.deleteBtn = h('button.btn.danger.small', { type: 'button', onclick: () => this.remove() }, 'Delete');
    // data-label names each cell where a phone shows the rows as cards.
    const actions = h('td', h('div.row-actions', this.pauseBtn, this.testBtn, this.replayBtn, this.deleteBtn));
    COLUMNS.forEach((label, i) => [this.name, this.state, this.lag, this.delivered, this.error, actions][i].setAttribute('data-label', label));
    this.tr = h('tr', { dataset: { id: v.id } }, this.name, this.state, this.lag, this.delivered, this.error, actions);

    // The replay form sits in a row of its own under the connector.
    const fieldId = `replay-from-${v.id}`;
    this.replayFrom = h('input', { id: fieldId, type: 'datetime-local', step: '1', required: true });
    this.replayForm = h('form.inline-form.replay-form',
      h('label', { for: fieldId }, 'Replay every event stored since (local time)'), this.replayFrom,
      h('button.btn.primary.small', { type: 'submit' }, 'Replay'),
      h('button.btn.subtle.small', { type: 'button', onclick: () => this.toggleReplay(false) }, 'Cancel'),
      h('small.muted', 'Events already delivered after that time are sent again; receivers should dedupe by event id.'));
    this.replayForm.addEventListener('submit', (ev) => { ev.preventDefault(); this.replay(); });
    this.replayForm.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') { ev.preventDefault(); this.toggleReplay(false); }
    });
    this.replayRow = h('tr.replay-row', { hidden: true, dataset: { for: v.id } }, h('td', { colspan: '6' }, this.replayForm));
    this.replayBtn.setAttribute('aria-controls', `replay-row-${v.id}`);
    this.replayRow.id = `replay-row-${v.id}`;
    this.update(v);
  }

  update(v) {
    this.view = v;
    const hl = v.health || {};
    const state = hl.state || (v.paused ? 'paused' : 'active');
    append(clear(this.name), [h('strong', v.name), h('br'),
      h('span.muted.small-text', `${v.type}${v.level ? ` · ${v.level}` : ''}${v.maskPII ? ' · PII masked' : ''}`),
      v.description ? h('span.sr-only', `, ${v.description}`) : null]);
    const url = v.config && typeof v.config.url === 'string' ? v.config.url : '';
    if (url) this.name.append(h('br'), h('span.mono.muted.small-text.break', url));
    append(clear(this.state), [h('span', { class: `badge c-${state}` }, STATE_TEXT[state] || state),
      hl.breakerOpen ? h('span.muted.small-text', ' retrying later') : null]);
    this.tr.dataset.state = state;
    const lagEvents = Number(hl.lagEvents || 0);
    const lagSeconds = Number(hl.lagSeconds || 0);
    append(clear(this.lag), [lagEvents === 0
      ? h('span', { dataset: { lagEvents: '0', lagSeconds: '0' } }, 'caught up')
      : h('span', { dataset: { lagEvents: String(lagEvents), lagSeconds: String(lagSeconds) } },
        `${fmtNumber(lagEvents)} event${lagEvents === 1 ? '' : 's'}`, h('br'), h('span.muted', `${fmtDuration(lagSeconds)} behind`))]);
    append(clear(this.delivered), [`${fmtNumber(hl.delivered || 0)}`,
      hl.lastSuccess ? [h('br'), h('span.muted.small-text', 'last ', timeEl(Date.parse(hl.lastSuccess)))] : null]);
    append(clear(this.error), [hl.lastError
      ? [h('span.error-text', hl.lastError), hl.lastErrorAt ? [h('br'), h('span.muted.small-text', timeEl(Date.parse(hl.lastErrorAt)))] : null]
      : h('span.muted', '—')]);
    const paused = state === 'paused' || state === 'auto-paused' || v.paused;
    this.paused = paused;
    this.pauseBtn.textContent = paused ? 'Resume' : 'Pause';
    for (const [btn, verb] of [[this.pauseBtn, paused ? 'Resume' : 'Pause'], [this.testBtn, 'Send a test event to'],
      [this.replayBtn, 'Replay'], [this.deleteBtn, 'Delete']]) {
      btn.setAttribute('aria-label', `${verb} ${v.name}`);
    }
  }

  togglePause() {
    const name = this.view.name;
    const resume = this.paused;
    this.page.act(() => call('POST', `/v1/mgmt/connectors/${encodeURIComponent(this.id)}/${resume ? 'resume' : 'pause'}`),
      resume ? `“${name}” resumed: it delivers what it missed, then new events.` : `“${name}” paused: new events wait for it.`);
  }

  test() {
    const name = this.view.name;
    this.testBtn.disabled = true;
    this.testBtn.textContent = 'Sending…';
    this.page.act(() => call('POST', `/v1/mgmt/connectors/${encodeURIComponent(this.id)}/test`),
      `Test event delivered to “${name}”.`).finally(() => {
      this.testBtn.disabled = false;
      this.testBtn.textContent = 'Send test';
    });
  }

  toggleReplay(show = this.replayRow.hidden) {
    this.replayRow.hidden = !show;
    this.replayBtn.setAttribute('aria-expanded', String(show));
    if (show) {
      if (!this.replayFrom.value) this.replayFrom.value = toLocalInput(Date.now() - 3600_000);
      this.replayFrom.focus();
    } else {
      this.replayBtn.focus();
    }
  }

  replay() {
    const from = fromLocalInput(this.replayFrom.value);
    if (!from) {
      this.page.fail('Pick the time to replay from.');
      return;
    }
    const name = this.view.name;
    this.page.act(() => call('POST', `/v1/mgmt/connectors/${encodeURIComponent(this.id)}/replay`, { from }),
      () => `“${name}” replays every event stored since ${fmtUTC(from)}.`).then((res) => {
      if (res) this.toggleReplay(false);
    });
  }

  remove() {
    const name = this.view.name;
    if (!confirm(`Delete the connector “${name}”? It stops delivering at once; its place in the log is lost.`)) return;
    this.page.act(() => call('DELETE', `/v1/mgmt/connectors/${encodeURIComponent(this.id)}`), `Connector “${name}” deleted.`)
      .then(() => this.page.refreshBtn.focus());
  }
}

/** The form that creates a webhook connector. */
class WebhookForm {
  constructor({ onCreated, onError }) {
    this.onCreated = onCreated;
    this.onError = onError;
    const field = (id, label, input, hint) => h('div.field', h('label', { for: id }, label), input,
      hint ? h('small.muted', { id: `${id}-hint` }, hint) : null);
    this.name = h('input#w-name', { required: true, maxlength: '256', autocomplete: 'off', placeholder: 'e.g. SIEM webhook' });
    this.desc = h('input#w-desc', { maxlength: '1024', autocomplete: 'off' });
    this.url = h('input#w-url', { type: 'url', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'https://siem.example.com/audit' });
    this.auth = h('select#w-auth', { 'aria-controls': 'w-auth-fields' },
      h('option', { value: 'none' }, 'None'), h('option', { value: 'bearer' }, 'Bearer token'),
      h('option', { value: 'basic' }, 'Basic (user and password)'), h('option', { value: 'apiKey' }, 'API key header'));
    this.token = h('input#w-token', { type: 'password', autocomplete: 'off' });
    this.user = h('input#w-user', { autocomplete: 'off' });
    this.password = h('input#w-password', { type: 'password', autocomplete: 'off' });
    this.headerName = h('input#w-header', { autocomplete: 'off', placeholder: 'X-API-Key' });
    this.headerToken = h('input#w-header-token', { type: 'password', autocomplete: 'off' });
    this.authFields = {
      bearer: h('div.auth-fields', field('w-token', 'Bearer token', this.token)),
      basic: h('div.auth-fields', field('w-user', 'User name', this.user), field('w-password', 'Password', this.password)),
      apiKey: h('div.auth-fields', field('w-header', 'Header name', this.headerName), field('w-header-token', 'Header value', this.headerToken)),
    };
    for (const el of Object.values(this.authFields)) el.hidden = true;
    this.auth.addEventListener('change', () => this.showAuth());
    this.hmac = h('input#w-hmac', { type: 'password', autocomplete: 'off', 'aria-describedby': 'w-hmac-hint' });
    this.actionsOp = h('select#w-actions-op', h('option', { value: 'includes' }, 'Only these actions'), h('option', { value: 'excludes' }, 'All but these actions'));
    this.actions = new ChipInput({ label: 'Actions', name: 'w-actions', placeholder: 'e.g. LoginFailed', hint: 'Empty: every action. Type an action and press Enter or comma.' });
    this.tenantsOp = h('select#w-tenants-op', h('option', { value: 'includes' }, 'Only these tenants'), h('option', { value: 'excludes' }, 'All but these tenants'));
    this.tenants = new ChipInput({ label: 'Tenants', name: 'w-tenants', placeholder: 'tenant ID', hint: 'Empty: every tenant. Type a tenant ID and press Enter or comma.' });
    this.level = h('select#w-level', h('option', { value: '' }, 'Default'),
      h('option', { value: 'project' }, 'Project events'), h('option', { value: 'company' }, 'Company events'), h('option', { value: 'both' }, 'Both'));
    this.mask = h('input#w-mask', { type: 'checkbox' });
    this.submitBtn = h('button.btn.primary', { type: 'submit' }, 'Create webhook');
    this.formError = h('p.form-error#w-error', { role: 'alert' });
    this.form = h('form.webhook-form', { 'aria-labelledby': 'create-title', novalidate: false },
      h('div.grid-form',
        field('w-name', 'Name', this.name),
        field('w-desc', 'Description (optional)', this.desc),
        h('div.field.wide', h('label', { for: 'w-url' }, 'URL'), this.url)),
      h('fieldset.group', h('legend', 'Authentication'),
        h('div.grid-form', field('w-auth', 'Method', this.auth), h('div#w-auth-fields.auth-slot', Object.values(this.authFields)),
          field('w-hmac', 'HMAC secret (optional)', this.hmac, 'Signs each body: x-descope-webhook-s256 carries its HMAC-SHA256.'))),
      h('fieldset.group', h('legend', 'What to send'),
        h('div.grid-form',
          h('div.field', h('label', { for: 'w-actions-op' }, 'Action filter'), this.actionsOp), this.actions.el,
          h('div.field', h('label', { for: 'w-tenants-op' }, 'Tenant filter'), this.tenantsOp), this.tenants.el,
          field('w-level', 'Level', this.level),
          h('div.field.check-field', h('label.check', { for: 'w-mask' }, this.mask, 'Mask personal data (login IDs, and names, emails and phones in data)')))),
      this.formError,
      h('div', this.submitBtn));
    this.form.addEventListener('submit', (ev) => { ev.preventDefault(); this.submit(); });
    this.el = h('section.card', { 'aria-labelledby': 'create-title' }, h('h2#create-title', 'Create a webhook'), this.form);
  }

  showAuth() {
    for (const [k, el] of Object.entries(this.authFields)) el.hidden = k !== this.auth.value;
  }

  body() {
    const config = { url: this.url.value.trim() };
    switch (this.auth.value) {
      case 'bearer': config.authentication = { bearerToken: this.token.value }; break;
      case 'basic': config.authentication = { basic: { username: this.user.value.trim(), password: this.password.value } }; break;
      case 'apiKey': config.authentication = { apiKey: { key: this.headerName.value.trim(), token: this.headerToken.value } }; break;
      default:
    }
    if (this.hmac.value) config.hmacSecret = this.hmac.value;
    this.actions.commit();
    this.tenants.commit();
    const filters = [];
    if (this.actions.values.length) filters.push({ filterType: 'actions', operator: this.actionsOp.value, values: [...this.actions.values] });
    if (this.tenants.values.length) filters.push({ filterType: 'tenants', operator: this.tenantsOp.value, values: [...this.tenants.values] });
    const body = { name: this.name.value.trim(), description: this.desc.value.trim(), type: 'webhook', filters, maskPII: this.mask.checked, config };
    if (this.level.value) body.level = this.level.value;
    return body;
  }

  async submit() {
    this.formError.textContent = '';
    if (!this.form.checkValidity()) {
      this.form.reportValidity();
      return;
    }
    this.submitBtn.disabled = true;
    this.submitBtn.textContent = 'Creating…';
    try {
      const v = await call('POST', '/v1/mgmt/connectors', this.body());
      this.reset();
      this.onCreated(v);
    } catch (err) {
      this.formError.textContent = `Not created: ${describeError(err)}`;
      this.focusField(err);
    } finally {
      this.submitBtn.disabled = false;
      this.submitBtn.textContent = 'Create webhook';
    }
  }

  /** Puts the focus on the field a 400 names ("config.url: …"). */
  focusField(err) {
    const m = /^(?:config\.)?([a-zA-Z]+)/.exec(err.message || '');
    const byField = { name: this.name, description: this.desc, url: this.url, authentication: this.auth, hmacSecret: this.hmac, level: this.level, filters: this.actions.input };
    (m && byField[m[1]] || this.name).focus();
  }

  reset() {
    this.form.reset();
    this.actions.set([]);
    this.tenants.set([]);
    this.showAuth();
  }
}
