// The Audit page: filter bar, histogram, results with paging, event
// detail, live tail and export. The URL holds the search.
import { h, clear, timeEl, fmtNumber, announce, toLocalInput, fromLocalInput } from './dom.js';
import { call, describeError, ApiError } from './api.js';
import { ChipInput } from './chips.js';
import { Histogram } from './histogram.js';
import { DetailPanel } from './detail.js';
import {
  LIST_FILTERS, DEVICES, METHODS, RANGES, PAGE_SIZES, readState, writeState, toRequest, timeBounds, activeFilterCount,
} from './filters.js';

const TAIL_MAX_ROWS = 1000;
// A page longer than WINDOW_MIN rows (up to 1000) keeps only the rows in
// view plus WINDOW_BUFFER on each side in the DOM (see renderRows).
const WINDOW_MIN = 150;
const WINDOW_BUFFER = 30;

export function mount(main) {
  document.title = 'Audit · audittrail';
  const page = new AuditPage(main);
  page.start();
  return () => page.stop();
}

class AuditPage {
  constructor(main) {
    this.main = main;
    this.state = readState();
    this.rows = [];
    this.rowsSeq = 0;
    this.total = 0;
    this.seen = { actions: new Set(), geos: new Set(), ips: new Set(), logins: new Set(), tenants: new Set() };
    this.catalogActions = null;
    this.searchCtl = null;
    this.histCtl = null;
    this.histKey = '';
    this.tail = null;
    this.retryTimer = null;
    this.onKey = (ev) => this.globalKey(ev);
  }

  start() {
    this.build();
    this.fillForm();
    document.addEventListener('keydown', this.onKey);
    this.loadActions();
    this.search();
  }

  stop() {
    document.removeEventListener('keydown', this.onKey);
    this.searchCtl?.abort();
    this.histCtl?.abort();
    this.stopTail();
    this.exportCtl?.abort();
    clearInterval(this.retryTimer);
    this.watchScroll(false);
    document.documentElement.classList.remove('windowed-page');
    document.body.classList.remove('detail-open');
  }

  // ---- layout --------------------------------------------------------

  build() {
    const m = clear(this.main);
    this.text = h('input#f-text', { type: 'search', name: 'q', placeholder: 'Search every field: john.doe, chrome, 203.0.113…', autocomplete: 'off', spellcheck: 'false' });
    this.range = h('select#f-range', { name: 'range' }, RANGES.map((r) => h('option', { value: r.id }, r.label)));
    this.level = h('select#f-level', { name: 'level' },
      h('option', { value: 'all' }, 'All'), h('option', { value: 'project' }, 'Project'), h('option', { value: 'company' }, 'Company'));
    this.fromInput = h('input#f-from', { type: 'datetime-local', step: '1' });
    this.toInput = h('input#f-to', { type: 'datetime-local', step: '1' });
    this.custom = h('div.custom-range', { hidden: true },
      h('div.field', h('label', { for: 'f-from' }, 'From (local time)'), this.fromInput),
      h('div.field', h('label', { for: 'f-to' }, 'To (local time)'), this.toInput));
    this.range.addEventListener('change', () => {
      this.custom.hidden = this.range.value !== 'custom';
      if (this.range.value === 'custom' && !this.fromInput.value) {
        const { from, to } = timeBounds(this.state);
        this.fromInput.value = toLocalInput(from);
        this.toInput.value = toLocalInput(to || Date.now());
      }
    });

    this.chips = {};
    for (const f of LIST_FILTERS) {
      this.chips[f.key] = new ChipInput({ label: f.label, name: f.param, placeholder: f.placeholder, suggestions: f.suggest === 'methods' ? METHODS : [] });
    }
    this.deviceBoxes = DEVICES.map((d) => h('input', { type: 'checkbox', name: 'device', value: d, id: `f-dev-${d}` }));
    this.noTenant = h('input#f-notenant', { type: 'checkbox', name: 'notenant' });
    this.filterCount = h('span.count-badge', { 'aria-hidden': 'true' });
    this.more = h('details.more-filters',
      h('summary', 'More filters ', this.filterCount),
      h('div.filter-grid',
        Object.values(this.chips).map((c) => c.el),
        h('fieldset.field.devices', h('legend', 'Devices'),
          this.deviceBoxes.map((b) => h('label.check', b, b.value))),
        h('div.field.check-field', h('label.check', { for: 'f-notenant' }, this.noTenant, 'Also events without a tenant')),
      ));

    this.form = h('form.filter-bar', { role: 'search', 'aria-label': 'Search the audit log' },
      h('div.filter-main',
        h('div.field.grow', h('label', { for: 'f-text' }, 'Free text'), this.text),
        h('div.field', h('label', { for: 'f-range' }, 'Time range'), this.range),
        h('div.field', h('label', { for: 'f-level' }, 'Level'), this.level),
        h('div.field.actions', h('button.btn.primary', { type: 'submit' }, 'Search'),
          h('button.btn.subtle', { type: 'button', onclick: () => this.reset() }, 'Reset'))),
      this.custom, this.more);
    this.form.addEventListener('submit', (ev) => { ev.preventDefault(); this.submit(); });

    this.histogram = new Histogram({ onNarrow: (from, to) => this.narrow(from, to) });

    this.status = h('div.status', { role: 'alert' });
    this.totalEl = h('p.total', { 'aria-live': 'polite' });
    this.tailBtn = h('button.btn.toggle', { type: 'button', 'aria-pressed': 'false' }, h('span.dot', { 'aria-hidden': 'true' }), 'Live tail');
    this.pauseBtn = h('button.btn.subtle', { type: 'button', 'aria-pressed': 'false', hidden: true }, 'Pause');
    this.tailInfo = h('span.tail-info', { 'aria-live': 'polite' });
    this.tailBtn.addEventListener('click', () => (this.tail ? this.stopTail(true) : this.startTail()));
    this.pauseBtn.addEventListener('click', () => this.togglePause());
    this.exportBtns = ['csv', 'ndjson'].map((fmt) => h('button.btn.subtle', { type: 'button', onclick: () => this.export(fmt) }, `Export ${fmt.toUpperCase()}`));
    this.exportProgress = h('div.export-progress', { hidden: true, role: 'status' });

    this.tbody = h('tbody');
    // Fixed column widths let the browser lay out a page of 1000 rows
    // without measuring every cell first.
    const columns = [['Time', 'c-time'], ['Action', 'c-action'], ['Type', 'c-type'], ['User', 'c-id'], ['Actor', 'c-id'],
      ['Login IDs', 'c-login'], ['Tenants', 'c-tenants'], ['Device', 'c-device'], ['Method', 'c-method'], ['Country', 'c-country'], ['IP', 'c-ip']];
    this.table = h('table.results', { 'aria-labelledby': 'results-title' },
      h('colgroup', columns.map(([, cls]) => h('col', { class: cls }))),
      h('thead', h('tr', { 'aria-rowindex': '1' }, columns.map(([c]) => h('th', { scope: 'col' }, c)))),
      this.tbody);
    this.tableWrap = h('div.table-wrap', { tabindex: '0', 'aria-label': 'Results table, scrolls sideways on small screens' }, this.table);

    this.sizeSel = h('select#f-size', PAGE_SIZES.map((s) => h('option', { value: String(s) }, String(s))));
    this.sizeSel.addEventListener('change', () => { this.state.size = Number(this.sizeSel.value); this.state.page = 0; this.go({ histogram: false }); });
    this.prevBtn = h('button.btn.subtle', { type: 'button', onclick: () => this.turn(-1) }, '← Previous');
    this.nextBtn = h('button.btn.subtle', { type: 'button', onclick: () => this.turn(1) }, 'Next →');
    this.pageInfo = h('span.page-info');
    this.pager = h('nav.pager', { 'aria-label': 'Result pages' }, this.prevBtn, this.pageInfo, this.nextBtn,
      h('span.page-size', h('label', { for: 'f-size' }, 'Rows per page'), this.sizeSel));

    this.detail = new DetailPanel({ onFilter: (key, value) => this.addFilter(key, value) });

    m.append(h('div.audit-layout',
      h('section.page.audit', { 'aria-labelledby': 'audit-title' },
        h('h1#audit-title.sr-only', 'Audit log'),
        this.form,
        this.histogram.el,
        h('div.results-head',
          h('h2#results-title.section-title', 'Events'), this.totalEl,
          h('div.tools', this.tailBtn, this.pauseBtn, this.tailInfo, h('span.sep', { 'aria-hidden': 'true' }), this.exportBtns)),
        this.exportProgress,
        this.status,
        this.tableWrap,
        this.pager),
      this.detail.el));
  }

  fillForm() {
    const st = this.state;
    this.text.value = st.text;
    this.range.value = st.range;
    this.level.value = st.level;
    this.custom.hidden = st.range !== 'custom';
    this.fromInput.value = st.from ? toLocalInput(st.from) : '';
    this.toInput.value = st.to ? toLocalInput(st.to) : '';
    for (const f of LIST_FILTERS) this.chips[f.key].set(st.lists[f.key]);
    for (const b of this.deviceBoxes) b.checked = st.devices.includes(b.value);
    this.noTenant.checked = st.noTenants;
    this.sizeSel.value = String(st.size);
    const n = activeFilterCount(st);
    this.filterCount.textContent = n ? String(n) : '';
    this.more.querySelector('summary').setAttribute('aria-label', n ? `More filters, ${n} active` : 'More filters');
    // Show the active filters, except on a phone where they would push
    // the results far down.
    if (n && window.matchMedia('(min-width: 721px)').matches) this.more.open = true;
  }

  readForm() {
    for (const c of Object.values(this.chips)) c.commit();
    const st = { ...this.state, lists: {} };
    st.text = this.text.value;
    st.range = this.range.value;
    st.level = this.level.value;
    st.from = st.to = 0;
    if (st.range === 'custom') {
      st.from = fromLocalInput(this.fromInput.value);
      // The field shows whole seconds: include all of the last one.
      st.to = fromLocalInput(this.toInput.value) && fromLocalInput(this.toInput.value) + 999;
    }
    for (const f of LIST_FILTERS) st.lists[f.key] = [...this.chips[f.key].values];
    st.devices = this.deviceBoxes.filter((b) => b.checked).map((b) => b.value);
    st.noTenants = this.noTenant.checked;
    st.page = 0;
    return st;
  }

  // ---- navigation ----------------------------------------------------

  submit() {
    this.state = this.readForm();
    this.go({ histogram: true });
  }

  reset() {
    this.state = readState('');
    this.fillForm();
    this.go({ histogram: true });
  }

  addFilter(key, value) {
    const st = { ...this.state, lists: { ...this.state.lists }, page: 0 };
    if (key === 'devices') st.devices = [...new Set([...st.devices, value])];
    else st.lists[key] = [...new Set([...(st.lists[key] || []), value])];
    this.state = st;
    this.fillForm();
    this.go({ histogram: true });
    announce(`Filter added: ${value}`);
  }

  narrow(from, to) {
    this.state = { ...this.state, range: 'custom', from, to, page: 0 };
    this.fillForm();
    this.go({ histogram: true });
  }

  turn(delta) {
    this.state = { ...this.state, page: Math.max(0, this.state.page + delta) };
    this.go({ histogram: false });
    this.tableWrap.focus({ preventScroll: false });
  }

  go({ histogram }) {
    const url = `/audit${writeState(this.state)}`;
    if (url !== location.pathname + location.search) history.pushState(null, '', url);
    this.fillForm();
    this.search({ histogram });
    if (this.tail) this.startTail();
  }

  globalKey(ev) {
    if (ev.key === 'Escape' && !this.detail.el.hidden) this.detail.close();
    // "/" jumps to the free-text search, as in many consoles.
    if (ev.key === '/' && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName || '')) {
      ev.preventDefault();
      this.text.focus();
    }
  }

  // ---- search --------------------------------------------------------

  async search({ histogram = true } = {}) {
    this.searchCtl?.abort();
    const ctl = new AbortController();
    this.searchCtl = ctl;
    const now = Date.now();
    const req = toRequest(this.state, now);
    this.clearStatus();
    this.table.setAttribute('aria-busy', 'true');
    this.totalEl.textContent = 'Searching…';
    const { page, size, ...filters } = req;
    const key = JSON.stringify({ ...filters, range: this.state.range });
    if (histogram || key !== this.histKey) this.loadHistogram(filters, key);
    let res;
    try {
      performance.mark('audit-search-start');
      res = await call('POST', '/v1/mgmt/audit/search', req, { signal: ctl.signal });
      performance.mark('audit-api-answer');
    } catch (err) {
      if (err.name === 'AbortError') return;
      this.table.removeAttribute('aria-busy');
      this.totalEl.textContent = '';
      this.prevBtn.disabled = this.nextBtn.disabled = true;
      this.pageInfo.textContent = '';
      this.showError(err, () => this.search({ histogram: false }));
      return;
    }
    if (ctl !== this.searchCtl) return;
    this.rows = res.audits;
    this.total = res.total;
    this.rowHeight = 0;
    // Rendered means painted: the frame after the DOM change (asked for
    // first, so it runs before the work on a long page's later rows).
    afterPaint(() => {
      performance.mark('audit-rendered');
      performance.measure('audit-render', 'audit-api-answer', 'audit-rendered');
      performance.measure('audit-search', 'audit-search-start', 'audit-rendered');
    });
    this.renderRows(() => {
      // Every row is in: the table is no longer busy.
      this.table.removeAttribute('aria-busy');
      performance.mark('audit-all-rows');
      performance.measure('audit-render-all', 'audit-api-answer', 'audit-all-rows');
    });
    this.renderTotal();
    performance.measure('audit-dom', 'audit-api-answer');
    announce(`${fmtNumber(res.total)} events match`);
  }

  async loadHistogram(filters, key) {
    this.histCtl?.abort();
    const ctl = new AbortController();
    this.histCtl = ctl;
    this.histKey = key;
    this.histogram.loading();
    try {
      const body = { ...filters, utcOffsetMinutes: -new Date().getTimezoneOffset() };
      if (!body.to) body.to = Date.now();
      const data = await call('POST', '/v1/mgmt/audit/histogram', body, { signal: ctl.signal });
      if (ctl === this.histCtl) this.histogram.render(data);
    } catch (err) {
      if (err.name === 'AbortError') return;
      this.histKey = '';
      this.histogram.error(err instanceof ApiError && err.status === 404 ? 'The histogram is not available on this server.' : describeError(err));
    }
  }

  renderTotal() {
    const { page, size } = this.state;
    const first = this.total ? page * size + 1 : 0;
    const last = Math.min(this.total, page * size + this.rows.length);
    clear(this.totalEl).append(h('strong#total-count', { dataset: { total: String(this.total) } }, fmtNumber(this.total)), this.total === 1 ? ' event' : ' events');
    const pages = Math.max(1, Math.ceil(Math.min(this.total, 1_000_000) / size));
    this.pageInfo.textContent = this.total ? `${fmtNumber(first)}–${fmtNumber(last)} of ${fmtNumber(this.total)} · page ${page + 1} of ${fmtNumber(pages)}` : 'No results';
    this.prevBtn.disabled = page === 0;
    this.nextBtn.disabled = (page + 1) * size >= Math.min(this.total, 1_000_000);
  }

  /**
   * Replaces the table's rows; allIn runs once every row in view is
   * painted. A page of up to WINDOW_MIN rows is put in whole; a longer one
   * (up to 1000) is windowed: only the rows in view plus WINDOW_BUFFER on
   * each side are in the DOM, between two spacer rows that keep the
   * scroll height, and rows are built as the page scrolls. Building 1000
   * rows of 11 cells took 0.7–3.3 s on a busy machine; a window takes the
   * time of a page of 50.
   */
  renderRows(allIn) {
    ++this.rowsSeq;
    for (const ev of this.rows) this.learn(ev);
    this.rowEls = new Map();
    this.freshIds = new Set(); // live-tail events, highlighted when built
    this.windowed = this.rows.length > WINDOW_MIN;
    this.table.classList.toggle('windowed', this.windowed);
    document.documentElement.classList.toggle('windowed-page', this.windowed);
    if (this.windowed) {
      // Screen readers learn the size of the whole page (header row + rows).
      this.table.setAttribute('aria-rowcount', String(this.rows.length + 1));
      this.topSpacer = spacerRow();
      this.bottomSpacer = spacerRow();
      this.win = { start: 0, end: 0 };
      clear(this.tbody).append(this.topSpacer, this.bottomSpacer);
      this.paintWindow();
      this.watchScroll(true);
    } else {
      this.table.removeAttribute('aria-rowcount');
      this.watchScroll(false);
      const frag = document.createDocumentFragment();
      this.rows.forEach((ev, i) => frag.append(this.rowAt(i)));
      if (!this.rows.length) {
        frag.append(h('tr.empty', h('td', { colspan: '11' }, 'No events match this search. Widen the time range or remove a filter.')));
      }
      clear(this.tbody).append(frag);
    }
    this.refreshSuggestions();
    const seq = this.rowsSeq;
    afterPaint(() => { if (seq === this.rowsSeq) allIn(); });
  }

  /** The row element of this.rows[i], built once per search. */
  rowAt(i) {
    let tr = this.rowEls.get(i);
    if (!tr) {
      tr = this.row(this.rows[i], this.freshIds.has(this.rows[i].id));
      if (this.windowed) tr.setAttribute('aria-rowindex', String(i + 2));
      this.rowEls.set(i, tr);
    }
    return tr;
  }

  watchScroll(on) {
    if (on && !this.onScroll) {
      let queued = false;
      this.onScroll = () => {
        if (queued) return;
        queued = true;
        requestAnimationFrame(() => { queued = false; if (this.windowed) this.paintWindow(); });
      };
      window.addEventListener('scroll', this.onScroll, { passive: true });
      window.addEventListener('resize', this.onScroll, { passive: true });
    } else if (!on && this.onScroll) {
      window.removeEventListener('scroll', this.onScroll);
      window.removeEventListener('resize', this.onScroll);
      this.onScroll = null;
    }
  }

  /**
   * Puts in the DOM the rows in view plus a buffer, adding and removing
   * rows at the edges only, so a focused row in view stays where it is
   * (and keeps the focus) while the page scrolls.
   */
  paintWindow(rebuild = false) {
    const n = this.rows.length;
    if (!this.rowHeight) {
      // Every row is one line (cells do not wrap): measure one row once.
      const probe = this.rowAt(0);
      this.tbody.insertBefore(probe, this.bottomSpacer);
      this.rowHeight = probe.getBoundingClientRect().height || 36;
      probe.remove();
    }
    const rh = this.rowHeight;
    const top = this.tbody.getBoundingClientRect().top;
    let start = Math.max(0, Math.floor(-top / rh) - WINDOW_BUFFER);
    let end = Math.min(n, Math.ceil((window.innerHeight - top) / rh) + WINDOW_BUFFER);
    if (end <= start) { start = Math.max(0, Math.min(start, n - 1)); end = Math.min(n, start + 1); }
    const old = this.win;
    // A focused row scrolled far out of view is blurred before it leaves:
    // Chromium scrolls back towards a focused element that is removed.
    // (Tab then goes on from where it was.)
    const focused = this.tbody.contains(document.activeElement) ? document.activeElement : null;
    const focusedAt = Number(focused?.closest('tr')?.getAttribute('aria-rowindex')) - 2;
    if (focused && (rebuild || !(focusedAt >= start && focusedAt < end))) focused.blur();
    if (rebuild || end <= old.start || start >= old.end) {
      // No overlap: replace the rows. (Nothing here may read the layout
      // before the spacers are set: a layout with the old spacers and the
      // new rows is shorter, and the browser would clamp the scroll
      // position to it.)
      for (const tr of [...this.tbody.children]) if (tr !== this.topSpacer && tr !== this.bottomSpacer) tr.remove();
      const frag = document.createDocumentFragment();
      for (let i = start; i < end; i++) frag.append(this.rowAt(i));
      this.tbody.insertBefore(frag, this.bottomSpacer);
    } else {
      for (let i = old.start; i < start; i++) this.rowEls.get(i)?.remove();
      for (let i = end; i < old.end; i++) this.rowEls.get(i)?.remove();
      const head = document.createDocumentFragment();
      for (let i = start; i < old.start; i++) head.append(this.rowAt(i));
      this.topSpacer.after(head);
      const tail = document.createDocumentFragment();
      for (let i = Math.max(old.end, start); i < end; i++) tail.append(this.rowAt(i));
      this.tbody.insertBefore(tail, this.bottomSpacer);
    }
    this.win = { start, end };
    // The spacers stand for rows of the rendered rows' real pitch (a row
    // measured alone, or before the fonts settle, can differ by a pixel,
    // which over 1000 rows would leave the last rows out of reach).
    const setSpacers = () => {
      setSpacer(this.topSpacer, start * this.rowHeight);
      setSpacer(this.bottomSpacer, (n - end) * this.rowHeight);
    };
    setSpacers();
    if (end - start > 1) {
      const pitch = (this.rowEls.get(end - 1).getBoundingClientRect().bottom - this.rowEls.get(start).getBoundingClientRect().top) / (end - start);
      if (pitch > 0 && Math.abs(pitch - this.rowHeight) * n > 0.5) {
        this.rowHeight = pitch;
        setSpacers();
      }
    }
  }



  row(ev, fresh = false) {
    const ms = Number(ev.occurred);
    const open = h('button.linklike', { type: 'button', title: 'Show the event detail' }, ev.action);
    const tr = h('tr', { class: fresh ? 'fresh' : null, dataset: { id: ev.id } },
      h('td.nowrap', timeEl(ms)),
      h('td', open),
      h('td', h('span', { class: `badge t-${ev.type}` }, ev.type)),
      h('td.mono', ev.userId || ''),
      h('td.mono', ev.actorId || ''),
      h('td', (ev.externalIds || []).join(', ')),
      h('td', (ev.tenants || []).join(', ')),
      h('td', ev.device || ''),
      h('td', ev.method || ''),
      h('td', ev.geo || ''),
      h('td.mono', ev.remoteAddress || ''));
    open.addEventListener('click', (e) => { e.stopPropagation(); this.openDetail(ev, open); });
    tr.addEventListener('click', () => this.openDetail(ev, open));
    return tr;
  }

  openDetail(ev, from) {
    this.tbody.querySelectorAll('tr.selected').forEach((r) => r.classList.remove('selected'));
    from.closest('tr')?.classList.add('selected');
    this.detail.open(ev, from);
  }

  learn(ev) {
    if (ev.action) this.seen.actions.add(ev.action);
    if (ev.geo) this.seen.geos.add(ev.geo);
    if (ev.remoteAddress) this.seen.ips.add(ev.remoteAddress);
    for (const l of ev.externalIds || []) this.seen.logins.add(l);
    for (const t of ev.tenants || []) this.seen.tenants.add(t);
  }

  refreshSuggestions() {
    const actions = new Set([...(this.catalogActions || []), ...this.seen.actions]);
    for (const f of LIST_FILTERS) {
      if (!f.suggest || f.suggest === 'methods') continue;
      const src = f.suggest === 'actions' ? actions : this.seen[f.suggest];
      this.chips[f.key].setSuggestions([...src].sort().slice(0, 500));
    }
  }

  async loadActions() {
    // The event catalogue, where the server has it; else the actions
    // seen in results are the suggestions.
    try {
      const res = await call('GET', '/v1/mgmt/audit/actions');
      this.catalogActions = (res.actions || []).map((a) => a.action).filter(Boolean);
      this.refreshSuggestions();
    } catch {
      this.catalogActions = null;
    }
  }

  // ---- errors --------------------------------------------------------

  clearStatus() {
    clearInterval(this.retryTimer);
    clear(this.status);
    this.status.className = 'status';
  }

  showError(err, retry) {
    this.clearStatus();
    this.status.className = 'status error';
    const msg = h('p#error-message', describeError(err));
    this.status.append(msg);
    if (err instanceof ApiError && err.rateLimited) {
      // Count down so the wait is visible, then offer the retry.
      let left = err.retryAfter || 1;
      const btn = h('button.btn.subtle', { type: 'button', disabled: true, onclick: () => retry() }, `Retry in ${left} s`);
      this.status.append(btn);
      this.retryTimer = setInterval(() => {
        left -= 1;
        if (left <= 0) {
          clearInterval(this.retryTimer);
          btn.disabled = false;
          btn.textContent = 'Retry now';
        } else {
          btn.textContent = `Retry in ${left} s`;
        }
      }, 1000);
    } else if (retry && !(err instanceof ApiError && (err.status === 400 || err.status === 403))) {
      this.status.append(h('button.btn.subtle', { type: 'button', onclick: () => retry() }, 'Retry'));
    }
  }

  // ---- live tail -----------------------------------------------------

  async startTail() {
    this.stopTail();
    const ctl = new AbortController();
    const tail = { ctl, paused: false, pending: [], received: 0 };
    this.tail = tail;
    this.tailBtn.setAttribute('aria-pressed', 'true');
    this.tailBtn.classList.add('on');
    this.pauseBtn.hidden = false;
    this.pauseBtn.setAttribute('aria-pressed', 'false');
    this.pauseBtn.textContent = 'Pause';
    this.tailInfo.textContent = 'Connecting…';
    // New events whatever their time stamp: only the filters apply.
    const { page, size, from, to, ...filters } = toRequest(this.state);
    let resp;
    try {
      resp = await call('POST', '/v1/mgmt/audit/tail', filters, { signal: ctl.signal, raw: true });
    } catch (err) {
      if (err.name === 'AbortError') return;
      this.stopTail();
      this.showError(err, () => this.startTail());
      return;
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    tail.reader = reader;
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          this.tailMessage(tail, parseSSE(buf.slice(0, i)));
          buf = buf.slice(i + 2);
        }
      }
      if (this.tail === tail) {
        this.stopTail();
        this.tailInfo.textContent = 'Live tail ended.';
      }
    } catch (err) {
      if (err.name !== 'AbortError' && this.tail === tail) {
        this.stopTail();
        this.tailInfo.textContent = 'Live tail lost its connection.';
      }
    }
  }

  tailMessage(tail, msg) {
    if (this.tail !== tail) return;
    switch (msg.event) {
      case 'ready':
        this.tailInfo.textContent = 'Live: waiting for new events…';
        announce('Live tail on');
        break;
      case 'audit': {
        const ev = JSON.parse(msg.data);
        tail.received++;
        if (tail.paused) {
          tail.pending.push(ev);
          this.tailInfo.textContent = `Paused: ${fmtNumber(tail.pending.length)} new waiting`;
        } else {
          this.addLive([ev]);
          this.tailInfo.textContent = `Live: ${fmtNumber(tail.received)} new`;
        }
        break;
      }
      case 'error':
        this.tailInfo.textContent = 'Live: the server cannot read new events right now; retrying…';
        break;
      case 'end':
        this.tailInfo.textContent = `Live tail ended: ${JSON.parse(msg.data || '{}').reason || ''}`;
        break;
      default: // heartbeat
    }
  }

  addLive(events) {
    if (this.windowed) {
      // The window's rows shift down: index the page anew and repaint.
      const ids = new Set(this.rows.map((r) => r.id));
      for (const ev of events) {
        if (ids.has(ev.id)) continue; // also in the search's page
        this.learn(ev);
        this.rows.unshift(ev);
        this.freshIds.add(ev.id);
      }
      this.rows.length = Math.min(this.rows.length, TAIL_MAX_ROWS);
      this.rowEls = new Map();
      this.table.setAttribute('aria-rowcount', String(this.rows.length + 1));
      this.paintWindow(true);
      return;
    }
    const empty = this.tbody.querySelector('tr.empty');
    if (empty) empty.remove();
    for (const ev of events) {
      if (this.tbody.querySelector(`tr[data-id="${CSS.escape(ev.id)}"]`)) continue; // also in the search's page
      this.learn(ev);
      this.rows.unshift(ev);
      this.tbody.prepend(this.row(ev, true));
    }
    while (this.tbody.rows.length > TAIL_MAX_ROWS) this.tbody.lastElementChild.remove();
    this.rows.length = Math.min(this.rows.length, TAIL_MAX_ROWS);
  }

  togglePause() {
    const tail = this.tail;
    if (!tail) return;
    tail.paused = !tail.paused;
    this.pauseBtn.setAttribute('aria-pressed', String(tail.paused));
    this.pauseBtn.textContent = tail.paused ? 'Resume' : 'Pause';
    if (!tail.paused) {
      this.addLive(tail.pending);
      tail.pending = [];
      this.tailInfo.textContent = `Live: ${fmtNumber(tail.received)} new`;
    } else {
      this.tailInfo.textContent = 'Paused: 0 new waiting';
    }
  }

  stopTail(byUser = false) {
    const tail = this.tail;
    this.tail = null;
    if (tail) tail.ctl.abort();
    this.tailBtn.setAttribute('aria-pressed', 'false');
    this.tailBtn.classList.remove('on');
    this.pauseBtn.hidden = true;
    if (byUser) { this.tailInfo.textContent = ''; announce('Live tail off'); }
  }

  // ---- export --------------------------------------------------------

  async export(format) {
    this.exportCtl?.abort();
    const ctl = new AbortController();
    this.exportCtl = ctl;
    const { page, size, ...filters } = toRequest(this.state);
    const bar = h('progress', { max: '1', value: '0', 'aria-label': 'Export progress' });
    const text = h('span', 'Starting the export…');
    const cancel = h('button.btn.subtle', { type: 'button', onclick: () => ctl.abort() }, 'Cancel');
    clear(this.exportProgress).append(h('strong', `Export ${format.toUpperCase()}`), bar, text, cancel);
    this.exportProgress.hidden = false;
    this.exportBtns.forEach((b) => { b.disabled = true; });
    try {
      const resp = await call('POST', `/v1/mgmt/audit/export?format=${format}`, filters, { signal: ctl.signal, raw: true });
      const total = parseInt(resp.headers.get('X-Total-Count') || '0', 10);
      bar.max = Math.max(1, total);
      const reader = resp.body.getReader();
      const chunks = [];
      let lines = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        chunks.push(value);
        for (let i = 0; i < value.length; i++) if (value[i] === 10) lines++;
        const records = format === 'csv' ? Math.max(0, lines - 1) : lines;
        bar.value = Math.min(records, bar.max);
        text.textContent = `${fmtNumber(records)} of ${fmtNumber(total)} records`;
      }
      const type = format === 'csv' ? 'text/csv' : 'application/x-ndjson';
      const url = URL.createObjectURL(new Blob(chunks, { type }));
      const stamp = new Date().toISOString().slice(0, 19).replaceAll(':', '').replace('T', '-');
      const a = h('a', { href: url, download: `audit-${stamp}.${format}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      text.textContent = `Done: ${fmtNumber(total)} records saved.`;
      cancel.remove();
      announce(`Export finished: ${total} records`);
    } catch (err) {
      text.textContent = err.name === 'AbortError' ? 'Export cancelled.' : `Export failed: ${describeError(err)}`;
      cancel.remove();
    } finally {
      this.exportBtns.forEach((b) => { b.disabled = false; });
    }
  }
}

/** A row that stands for the rows out of the window (height set later). */
function spacerRow() {
  return h('tr.spacer', { 'aria-hidden': 'true' }, h('td', { colspan: '11' }));
}

function setSpacer(tr, px) {
  // Through the CSSOM, which the CSP allows (no style attribute in markup).
  tr.firstChild.style.height = `${px}px`;
  tr.hidden = px === 0;
}

/** Runs fn after the next frame is painted. */
function afterPaint(fn) {
  requestAnimationFrame(() => setTimeout(fn, 0));
}

function parseSSE(block) {
  const msg = { event: 'message', data: '', id: '' };
  for (const line of block.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const field = line.slice(0, i);
    const value = line.slice(i + 1).replace(/^ /, '');
    if (field === 'event') msg.event = value;
    else if (field === 'data') msg.data += value;
    else if (field === 'id') msg.id = value;
  }
  return msg;
}

