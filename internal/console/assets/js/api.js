// The management API as the console uses it: credentials live in
// sessionStorage only (gone when the tab closes or on sign-out), every call
// sends Descope's "Bearer <projectId>:<managementKey>".

const STORAGE_KEY = 'audittrail.session';

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    return s && s.projectId && s.key ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(projectId, key) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ projectId, key }));
}

export function clearSession() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** An error the API answered, in Descope's shape. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
    this.retryAfter = retryAfter || 0;
  }
  get rateLimited() { return this.status === 429; }
  get unauthenticated() { return this.status === 401; }
}

/** Listeners told when a call finds the key refused mid-session. */
const onAuthLost = new Set();
export function whenAuthLost(fn) { onAuthLost.add(fn); }

function headers(creds, extra) {
  const c = creds || session();
  const h = { ...extra };
  if (c) h.Authorization = `Bearer ${c.projectId}:${c.key}`;
  return h;
}

async function errorFrom(resp) {
  let body = {};
  try { body = await resp.json(); } catch { /* not JSON: keep the status */ }
  const retry = parseInt(resp.headers.get('Retry-After') || '0', 10) || 0;
  return new ApiError(resp.status, body.errorCode, body.errorMessage || body.errorDescription, retry);
}

/**
 * call(method, path, body?, {creds, signal, raw}) → parsed JSON, or the
 * Response itself when raw is set (streams). Throws ApiError.
 */
export async function call(method, path, body, opts = {}) {
  const init = { method, headers: headers(opts.creds), signal: opts.signal, cache: 'no-store' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, '', 'The server could not be reached. Check your connection and try again.');
  }
  if (!resp.ok) {
    const err = await errorFrom(resp);
    if (err.unauthenticated && !opts.creds) onAuthLost.forEach((fn) => fn(err));
    throw err;
  }
  if (opts.raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

/** A sentence for a person, from any error a call threw. */
export function describeError(err, context = 'session') {
  if (!(err instanceof ApiError)) return err && err.message ? err.message : String(err);
  switch (err.status) {
    case 0: return err.message;
    case 401:
      return context === 'signin'
        ? 'That management key was not accepted: check that it was copied whole, and that it has not been revoked or expired.'
        : 'Your management key is no longer accepted: it has expired or was revoked. Sign in again with a valid key.';
    case 403: return `Not allowed: ${err.message}`;
    case 404: return err.message.startsWith('unknown project') ? `Unknown project ID: ${err.message}` : err.message;
    case 429: return `Too many searches: the limit for this project is reached. Try again in ${err.retryAfter || 'a few'} seconds.`;
    case 503: return 'The server\u2019s storage is unavailable right now. Try again shortly.';
    default: return `${err.message}${err.code ? ` (${err.code})` : ''}`;
  }
}

/**
 * Checks credentials without spending a search: looking up an event id
 * that cannot exist answers "no event" only to a valid key and project.
 */
export async function checkCredentials(projectId, key) {
  try {
    await call('GET', '/v1/mgmt/audit/event/console-sign-in-check', undefined, { creds: { projectId, key } });
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404 && !err.message.startsWith('unknown project')) return true;
    throw err;
  }
}
