// The event detail side panel: every field, the Change of UserModified and
// SCIMEvent as before/after, the request details, data as a tree and as raw
// JSON.
import { h, clear, timeEl, fmtUTC } from './dom.js';

// Fields a value of which can become a search filter, and the request key.
const FILTERABLE = {
  action: 'actions', userId: 'userIds', actorId: 'actorIds', externalIds: 'externalIds', tenants: 'tenants',
  device: 'devices', method: 'methods', geo: 'geos', remoteAddress: 'remoteAddresses',
};

export class DetailPanel {
  /** onFilter(key, value) narrows the search to events sharing the value. */
  constructor({ onFilter } = {}) {
    this.onFilter = onFilter;
    this.title = h('h2#detail-title', 'Event');
    this.body = h('div.detail-body');
    this.closeBtn = h('button.btn.icon', { type: 'button', 'aria-label': 'Close the event detail', title: 'Close (Esc)' }, '×');
    this.el = h('aside.detail#detail', { role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': 'detail-title', hidden: true, tabindex: '-1' },
      h('div.detail-head', this.title, this.closeBtn), this.body);
    this.closeBtn.addEventListener('click', () => this.close());
    this.el.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.stopPropagation(); this.close(); } });
    this.returnFocus = null;
  }

  open(ev, from) {
    this.returnFocus = from || document.activeElement;
    this.title.textContent = ev.action || 'Event';
    clear(this.body);
    const data = ev.data && typeof ev.data === 'object' ? ev.data : {};
    this.body.append(
      section('Event', fieldList(ev, this.onFilter && ((key, v) => { this.close(); this.onFilter(key, v); }))),
      changeSection(ev, data),
      requestSection(data),
      section('Data', Object.keys(data).length ? h('div.tree', { role: 'tree', 'aria-label': 'data' }, tree(data, 0)) : h('p.muted', 'No data.')),
      rawSection(ev),
    );
    this.el.hidden = false;
    document.body.classList.add('detail-open');
    this.title.setAttribute('tabindex', '-1');
    this.title.focus();
  }

  close() {
    if (this.el.hidden) return;
    this.el.hidden = true;
    document.body.classList.remove('detail-open');
    if (this.returnFocus && this.returnFocus.isConnected) this.returnFocus.focus();
  }
}

function section(title, ...content) {
  return h('section.detail-section', h('h3', title), content);
}

const FIELDS = [
  ['id', 'ID'], ['occurred', 'Occurred'], ['action', 'Action'], ['type', 'Type'], ['level', 'Level'],
  ['projectId', 'Project'], ['userId', 'User'], ['actorId', 'Actor'], ['externalIds', 'Login IDs'],
  ['tenants', 'Tenants'], ['device', 'Device'], ['method', 'Method'], ['geo', 'Country'], ['remoteAddress', 'IP address'],
];

function fieldList(ev, onFilter) {
  const dl = h('dl.fields');
  for (const [k, label] of FIELDS) {
    let v = ev[k];
    const values = Array.isArray(v) ? v : v ? [v] : [];
    const filters = onFilter && FILTERABLE[k]
      ? values.map((x) => h('button.btn.subtle.small.filter-btn', { type: 'button', title: `Show only events with ${label.toLowerCase()} ${x}`,
        'aria-label': `Filter by ${label.toLowerCase()} ${x}`, onclick: () => onFilter(FILTERABLE[k], x) }, '+ filter'))
      : [];
    if (k === 'occurred') {
      const ms = Number(v);
      v = h('span', timeEl(ms), h('br'), h('span.muted', fmtUTC(ms)), h('br'), h('span.muted.mono', String(ms)));
    } else if (k === 'type') {
      v = h('span', { class: `badge t-${v}` }, v);
    } else if (Array.isArray(v)) {
      v = v.length ? v.join(', ') : '—';
    } else if (v === undefined || v === null || v === '') {
      v = '—';
    }
    dl.append(h('dt', label), h('dd', { class: k === 'id' ? 'mono' : null }, v, filters.length ? ' ' : null, filters));
  }
  return dl;
}

function show(v) {
  if (v === undefined) return h('span.muted', '—');
  if (v === null) return h('span.muted', '(removed)');
  if (typeof v === 'object') return h('code', JSON.stringify(v));
  return String(v);
}

function items(v) {
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object') return Object.entries(v).map(([k, x]) => `${k}: ${Array.isArray(x) ? x.join(', ') : JSON.stringify(x)}`);
  return [v];
}

function itemText(x) {
  if (x && typeof x === 'object') {
    if (x.tenant !== undefined && Array.isArray(x.roles)) return `${x.tenant}: ${x.roles.join(', ')}`;
    return JSON.stringify(x);
  }
  return String(x);
}

function changeSection(ev, data) {
  const change = data.Change;
  if (!change || typeof change !== 'object' || Array.isArray(change)) return null;
  const rows = [];
  for (const [key, v] of Object.entries(change)) {
    let field = key;
    let before = h('span.muted', '—');
    let after;
    let kind = 'changed';
    const m = /^(added|removed)_(.+)$/.exec(key);
    if (m) {
      field = m[2];
      kind = m[1];
      const list = h('ul.change-items', items(v).map((x) => h('li', { class: kind }, (kind === 'added' ? '+ ' : '− ') + itemText(x))));
      if (kind === 'added') after = list; else { before = list; after = h('span.muted', '—'); }
    } else if (v && typeof v === 'object' && !Array.isArray(v) && ('old' in v || 'new' in v) && Object.keys(v).every((k) => k === 'old' || k === 'new')) {
      before = show(v.old);
      after = show(v.new);
    } else {
      after = show(v);
    }
    rows.push(h('tr', { class: `change-${kind}` }, h('th', { scope: 'row' }, field.replace(/^custom_attribute_/, 'custom attribute: ').replaceAll('_', ' ')), h('td', before), h('td', after)));
  }
  const caption = ev.action === 'SCIMEvent' ? 'Changes made by the SCIM call' : 'Changes made to the user';
  return section('Change',
    h('table.change', h('caption.sr-only', caption), h('thead', h('tr', h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Before'), h('th', { scope: 'col' }, 'After'))), h('tbody', rows)),
    ev.action === 'SCIMEvent' && data.scim_action ? h('p.muted', `SCIM action: ${data.scim_action}`) : null);
}

function requestSection(data) {
  const rd = data.request_details;
  if (!rd || typeof rd !== 'object') return null;
  const http = rd.headers?.http || {};
  const dl = h('dl.fields');
  for (const [label, v] of [['Method', rd.method], ['URL', rd.url || rd.uri], ['Host', rd.host], ['Origin', http.origin],
    ['Referer', http.referer], ['User-agent', http['user-agent']], ['Content length', rd.contentLength]]) {
    if (v === undefined || v === null || v === '') continue;
    dl.append(h('dt', label), h('dd.break', String(v)));
  }
  return section('Request', dl);
}

function tree(value, depth) {
  const ul = h('ul', { role: depth ? 'group' : null });
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  for (const [k, v] of entries) {
    if (v && typeof v === 'object') {
      const n = Array.isArray(v) ? `[${v.length}]` : `{${Object.keys(v).length}}`;
      const det = h('details', { open: depth < 2 ? true : null }, h('summary', h('span.k', k), ' ', h('span.muted', n)), tree(v, depth + 1));
      ul.append(h('li', { role: 'treeitem' }, det));
    } else {
      const cls = v === null ? 'null' : typeof v;
      ul.append(h('li', { role: 'treeitem' }, h('span.k', k), ': ', h('span', { class: `v v-${cls}` }, v === null ? 'null' : typeof v === 'string' ? `"${v}"` : String(v))));
    }
  }
  return ul;
}

function rawSection(ev) {
  const text = JSON.stringify(ev, null, 2);
  const status = h('span.muted', { role: 'status' });
  const copy = h('button.btn.subtle', { type: 'button' }, 'Copy JSON');
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(text); status.textContent = 'Copied.'; } catch { status.textContent = 'Copy is not allowed here: select the text instead.'; }
  });
  return section('Raw JSON', h('div.raw-tools', copy, status), h('pre.raw', { tabindex: '0', 'aria-label': 'The event as raw JSON' }, text));
}
