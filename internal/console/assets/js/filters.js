// The audit search's state: read from and written to the URL, so a search
// can be bookmarked and shared, and turned into the API's search request.

/** List filters: URL parameter, request key, label, suggestion source. */
export const LIST_FILTERS = [
  { param: 'user', key: 'userIds', label: 'Users', placeholder: 'user ID' },
  { param: 'action', key: 'actions', label: 'Actions', placeholder: 'e.g. LoginSucceed', suggest: 'actions' },
  { param: 'exclude', key: 'excludedActions', label: 'Exclude actions', placeholder: 'e.g. UserRefresh', suggest: 'actions' },
  { param: 'actor', key: 'actorIds', label: 'Actors', placeholder: 'actor ID' },
  { param: 'method', key: 'methods', label: 'Methods', placeholder: 'e.g. otp', suggest: 'methods' },
  { param: 'country', key: 'geos', label: 'Countries', placeholder: 'e.g. US', suggest: 'geos' },
  { param: 'ip', key: 'remoteAddresses', label: 'IP addresses', placeholder: 'e.g. 203.0.113.7', suggest: 'ips' },
  { param: 'login', key: 'externalIds', label: 'Login IDs', placeholder: 'e.g. ada@example.com', suggest: 'logins' },
  { param: 'tenant', key: 'tenants', label: 'Tenants', placeholder: 'tenant ID', suggest: 'tenants' },
];

export const DEVICES = ['Desktop', 'Mobile', 'Tablet', 'Bot', 'Unknown'];
export const METHODS = ['otp', 'totp', 'magiclink', 'enchantedlink', 'oauth', 'saml', 'sso', 'password', 'webauthn', 'Impersonate'];

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
export const RANGES = [
  { id: '15m', label: 'Last 15 minutes', ms: 15 * MINUTE },
  { id: '1h', label: 'Last hour', ms: HOUR },
  { id: '6h', label: 'Last 6 hours', ms: 6 * HOUR },
  { id: '24h', label: 'Last 24 hours', ms: DAY },
  { id: '7d', label: 'Last 7 days', ms: 7 * DAY },
  { id: '30d', label: 'Last 30 days', ms: 30 * DAY },
  { id: 'custom', label: 'Custom range…' },
];
export const DEFAULT_RANGE = '24h';
export const PAGE_SIZES = [25, 50, 100, 250, 500, 1000];
export const DEFAULT_SIZE = 50;

export function readState(search = location.search) {
  const p = new URLSearchParams(search);
  const st = { lists: {}, devices: [], noTenants: false, text: '', range: DEFAULT_RANGE, from: 0, to: 0, level: 'all', page: 0, size: DEFAULT_SIZE };
  for (const f of LIST_FILTERS) st.lists[f.key] = p.getAll(f.param).filter(Boolean);
  st.devices = p.getAll('device').filter((d) => DEVICES.includes(d));
  st.noTenants = p.get('notenant') === '1';
  st.text = p.get('q') || '';
  const range = p.get('range');
  if (RANGES.some((r) => r.id === range)) st.range = range;
  if (st.range === 'custom') {
    st.from = Math.max(0, parseInt(p.get('from') || '0', 10) || 0);
    st.to = Math.max(0, parseInt(p.get('to') || '0', 10) || 0);
  }
  const level = p.get('level');
  if (level === 'project' || level === 'company') st.level = level;
  st.page = Math.max(0, parseInt(p.get('page') || '0', 10) || 0);
  const size = parseInt(p.get('size') || '', 10);
  if (PAGE_SIZES.includes(size)) st.size = size;
  return st;
}

export function writeState(st) {
  const p = new URLSearchParams();
  if (st.text) p.set('q', st.text);
  for (const f of LIST_FILTERS) for (const v of st.lists[f.key] || []) p.append(f.param, v);
  for (const d of st.devices) p.append('device', d);
  if (st.noTenants) p.set('notenant', '1');
  if (st.range !== DEFAULT_RANGE) p.set('range', st.range);
  if (st.range === 'custom') {
    if (st.from) p.set('from', String(st.from));
    if (st.to) p.set('to', String(st.to));
  }
  if (st.level !== 'all') p.set('level', st.level);
  if (st.page) p.set('page', String(st.page));
  if (st.size !== DEFAULT_SIZE) p.set('size', String(st.size));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** The time bounds of a state, in epoch ms (0: unset). */
export function timeBounds(st, now = Date.now()) {
  if (st.range === 'custom') return { from: st.from, to: st.to };
  const r = RANGES.find((x) => x.id === st.range);
  return { from: now - r.ms, to: 0 };
}

/** The search request body for a state (Descope's keys plus ours). */
export function toRequest(st, now = Date.now()) {
  const req = {};
  for (const f of LIST_FILTERS) if (st.lists[f.key]?.length) req[f.key] = st.lists[f.key];
  if (st.devices.length) req.devices = st.devices;
  if (st.noTenants) req.noTenants = true;
  if (st.text.trim()) req.text = st.text.trim();
  const { from, to } = timeBounds(st, now);
  if (from) req.from = from;
  if (to) req.to = to;
  if (st.level !== 'all') req.levels = [st.level];
  req.size = st.size;
  req.page = st.page;
  return req;
}

/** How many filters narrow the search (beyond time and level). */
export function activeFilterCount(st) {
  let n = st.devices.length ? 1 : 0;
  for (const f of LIST_FILTERS) if (st.lists[f.key]?.length) n++;
  if (st.noTenants) n++;
  return n;
}
