// Settings for admin keys: projects, management keys (create, revoke,
// rotate; a secret is shown once) and the company's search settings.
import { h, clear, timeEl, announce } from './dom.js';
import { call, describeError } from './api.js';

export function mount(main) {
  document.title = 'Settings · audittrail';
  const page = new SettingsPage(main);
  page.load();
  return () => {};
}

class SettingsPage {
  constructor(main) {
    this.main = main;
    this.projects = [];
    this.status = h('div.status', { role: 'alert' });
    this.secretBox = h('div.secret-box', { hidden: true, role: 'region', 'aria-labelledby': 'secret-title', tabindex: '-1' });
    this.projectsEl = h('section.card', { 'aria-labelledby': 'projects-title' });
    this.keysEl = h('section.card', { 'aria-labelledby': 'keys-title' });
    this.settingsEl = h('section.card', { 'aria-labelledby': 'company-title' });
    clear(main).append(h('section.page.settings', { 'aria-labelledby': 'settings-title' },
      h('h1#settings-title', 'Settings'),
      h('p.muted', 'Projects, management keys and company settings. Only an admin key may change them; every change is recorded as a company-level audit event.'),
      this.status, this.secretBox,
      h('div.settings-grid', this.settingsEl, this.projectsEl, this.keysEl)));
  }

  async load() {
    clear(this.status);
    try {
      const [projects, keys, settings] = await Promise.all([
        call('GET', '/v1/mgmt/projects'), call('GET', '/v1/mgmt/keys'), call('GET', '/v1/mgmt/company/settings')]);
      this.projects = projects.projects || [];
      this.renderProjects();
      this.renderKeys(keys.keys || []);
      this.renderSettings(settings.settings || {});
    } catch (err) {
      this.fail(err.status === 403 ? 'Settings need an admin management key: this key may not manage the company.' : describeError(err));
    }
  }

  fail(text) {
    clear(this.status).append(h('p.status-error', text));
    this.status.className = 'status error';
  }

  ok(text) {
    this.status.className = 'status';
    clear(this.status);
    announce(text);
  }

  async act(fn, done) {
    try {
      const res = await fn();
      this.ok(done);
      await this.load();
      return res;
    } catch (err) {
      this.fail(describeError(err));
      return null;
    }
  }

  showSecret(title, secret) {
    const input = h('input.mono', { value: secret, readonly: true, 'aria-label': 'The new management key', size: Math.min(70, secret.length) });
    const copied = h('span.muted', { role: 'status' });
    clear(this.secretBox).append(
      h('h2#secret-title', title),
      h('p', 'Copy this management key now: it is shown only once and cannot be recovered.'),
      h('div.secret-row', input,
        h('button.btn.primary', { type: 'button', onclick: async () => { try { await navigator.clipboard.writeText(secret); copied.textContent = 'Copied.'; } catch { input.select(); copied.textContent = 'Selected: press Ctrl+C.'; } } }, 'Copy'),
        h('button.btn.subtle', { type: 'button', onclick: () => { this.secretBox.hidden = true; clear(this.secretBox); } }, 'I have saved it')),
      copied);
    this.secretBox.hidden = false;
    this.secretBox.focus();
    input.select();
  }

  renderSettings(s) {
    const win = h('input#s-window', { type: 'number', min: '1', max: '3650', value: String(s.searchWindowDays ?? 30), required: true });
    const ret = h('input#s-retention', { type: 'number', min: '1', max: '3650', value: String(s.retentionDays ?? 90), required: true });
    const rate = h('input#s-rate', { type: 'number', min: '0', max: '100000', value: s.searchRateLimit === null || s.searchRateLimit === undefined ? '' : String(s.searchRateLimit), placeholder: 'server default' });
    const form = h('form.stack',
      h('div.field', h('label', { for: 's-window' }, 'Search window (days)'), win, h('small.muted', 'How far back a search may reach.')),
      h('div.field', h('label', { for: 's-retention' }, 'Retention (days)'), ret, h('small.muted', 'Older events are deleted; never less than the window.')),
      h('div.field', h('label', { for: 's-rate' }, 'Search rate limit (per minute per project)'), rate, h('small.muted', '0 turns the limit off; empty keeps the server default.')),
      h('button.btn.primary', { type: 'submit' }, 'Save settings'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const body = { searchWindowDays: Number(win.value), retentionDays: Number(ret.value) };
      if (rate.value !== '') body.searchRateLimit = Number(rate.value);
      this.act(() => call('PATCH', '/v1/mgmt/company/settings', body), 'Settings saved');
    });
    clear(this.settingsEl).append(h('h2#company-title', 'Company'), form);
  }

  renderProjects() {
    const name = h('input#p-name', { required: true, maxlength: '200', placeholder: 'Project name' });
    const form = h('form.inline-form', h('label.sr-only', { for: 'p-name' }, 'New project name'), name, h('button.btn.primary', { type: 'submit' }, 'Create project'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.act(() => call('POST', '/v1/mgmt/projects', { name: name.value.trim() }), 'Project created');
    });
    const rows = this.projects.map((p) => h('tr',
      h('td', p.name), h('td.mono', p.id), h('td.nowrap', p.created ? timeEl(Date.parse(p.created), { dateOnly: true }) : ''),
      h('td', h('button.btn.danger.small', { type: 'button', 'aria-label': `Delete project ${p.name}`, onclick: () => {
        if (confirm(`Delete the project “${p.name}” (${p.id})? Its keys stop working for it.`)) this.act(() => call('DELETE', `/v1/mgmt/projects/${encodeURIComponent(p.id)}`), 'Project deleted');
      } }, 'Delete'))));
    clear(this.projectsEl).append(h('h2#projects-title', 'Projects'), form,
      h('div.table-wrap', h('table.plain', h('caption.sr-only', 'Projects'),
        h('thead', h('tr', ['Name', 'ID', 'Created', ''].map((c) => h('th', { scope: 'col' }, c)))), h('tbody', rows))));
  }

  renderKeys(keys) {
    const name = h('input#k-name', { required: true, maxlength: '200', placeholder: 'e.g. CI reader' });
    const role = h('select#k-role', ['reader', 'writer', 'admin'].map((r) => h('option', { value: r }, r)));
    const projects = h('select#k-projects', { multiple: true, size: String(Math.min(4, Math.max(2, this.projects.length))) },
      this.projects.map((p) => h('option', { value: p.id }, `${p.name} (${p.id})`)));
    const expires = h('input#k-expires', { type: 'number', min: '0', max: '3650', value: '0' });
    const form = h('form.grid-form',
      h('div.field', h('label', { for: 'k-name' }, 'Name'), name),
      h('div.field', h('label', { for: 'k-role' }, 'Role'), role),
      h('div.field', h('label', { for: 'k-projects' }, 'Projects (none chosen: all)'), projects),
      h('div.field', h('label', { for: 'k-expires' }, 'Expires in days (0: never)'), expires),
      h('div.field', h('button.btn.primary', { type: 'submit' }, 'Create key')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { name: name.value.trim(), role: role.value, projectIds: [...projects.selectedOptions].map((o) => o.value), expiresInSeconds: Number(expires.value) * 86400 };
      const res = await this.act(() => call('POST', '/v1/mgmt/keys', body), 'Key created');
      if (res) this.showSecret(`New key “${res.key.name}”`, res.secret);
    });
    const now = Date.now();
    const rows = keys.map((k) => {
      const revoked = !!k.revoked;
      const expired = k.expires && Date.parse(k.expires) <= now;
      const state = revoked ? 'revoked' : expired ? 'expired' : 'active';
      return h('tr', { class: state !== 'active' ? 'inactive' : null },
        h('td', k.name), h('td.mono', k.id), h('td', k.role),
        h('td', k.projectIds?.length ? k.projectIds.join(', ') : 'all'),
        h('td', h('span', { class: `badge s-${state}` }, state)),
        h('td.nowrap', k.expires ? timeEl(Date.parse(k.expires)) : 'never'),
        h('td.row-actions', state === 'active' ? [
          h('button.btn.subtle.small', { type: 'button', 'aria-label': `Rotate key ${k.name}`, onclick: async () => {
            if (!confirm(`Rotate “${k.name}”? The current secret stops working at once.`)) return;
            const res = await this.act(() => call('POST', `/v1/mgmt/keys/${encodeURIComponent(k.id)}/rotate`), 'Key rotated');
            if (res) this.showSecret(`Rotated key “${k.name}”`, res.secret);
          } }, 'Rotate'),
          h('button.btn.danger.small', { type: 'button', 'aria-label': `Revoke key ${k.name}`, onclick: () => {
            if (confirm(`Revoke “${k.name}”? It stops working at once and cannot be restored.`)) this.act(() => call('POST', `/v1/mgmt/keys/${encodeURIComponent(k.id)}/revoke`), 'Key revoked');
          } }, 'Revoke')] : null));
    });
    clear(this.keysEl).append(h('h2#keys-title', 'Management keys'), form,
      h('div.table-wrap', h('table.plain', h('caption.sr-only', 'Management keys'),
        h('thead', h('tr', ['Name', 'ID', 'Role', 'Projects', 'State', 'Expires', ''].map((c) => h('th', { scope: 'col' }, c)))), h('tbody', rows))));
  }
}
