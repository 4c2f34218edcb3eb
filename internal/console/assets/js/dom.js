// Small DOM helpers: build elements without innerHTML, so no event text
// can ever become markup.

/**
 * h('tag.class#id', {attr: value, onclick: fn}, ...children)
 * Children may be strings, nodes, arrays, null or false (skipped).
 */
export function h(spec, attrs, ...children) {
  // 'tag#id.class1.class2', in any order after the tag.
  const parts = spec.match(/^[^.#]*|[.#][^.#]+/g);
  const el = document.createElement(parts[0] || 'div');
  const classes = [];
  for (const p of parts.slice(1)) {
    if (p[0] === '#') el.id = p.slice(1);
    else classes.push(p.slice(1));
  }
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled' || k === 'hidden') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** svg('rect', {x: 1}) builds an SVG element. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

const numberFormat = new Intl.NumberFormat();
export const fmtNumber = (n) => numberFormat.format(n);

const thisYear = new Date().getFullYear();
const localFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});
const localFormatYear = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});
/** Local time to the millisecond; the year only when it is not this one. */
export function fmtLocal(ms) {
  const d = new Date(ms);
  return (d.getFullYear() === thisYear ? localFormat : localFormatYear).format(d);
}
const dateFormat = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
export const fmtDate = (ms) => dateFormat.format(new Date(ms));
export const fmtUTC = (ms) => new Date(ms).toISOString().replace('T', ' ').replace('Z', ' UTC');

/** A <time> showing local time, with UTC on hover. */
export function timeEl(ms, { dateOnly = false } = {}) {
  return h('time', { datetime: new Date(ms).toISOString(), title: fmtUTC(ms) }, dateOnly ? fmtDate(ms) : fmtLocal(ms));
}

const pad = (n) => String(n).padStart(2, '0');

/** The value of a datetime-local input (local time, whole seconds) for ms. */
export function toLocalInput(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Epoch ms of a datetime-local input's value; 0 when empty or invalid. */
export function fromLocalInput(v) {
  if (!v) return 0;
  const t = new Date(v).getTime();
  return Number.isFinite(t) ? t : 0;
}

/** Announces a message to screen readers through the live region. */
export function announce(text) {
  const live = document.getElementById('announcer');
  if (!live) return;
  live.textContent = '';
  // A new text node after a tick makes every reader speak it again.
  setTimeout(() => { live.textContent = text; }, 30);
}
