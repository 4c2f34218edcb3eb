// The console's shell: sign-in, navigation between pages without reloads
// (history.pushState), and sign-out. Each page module exports
// mount(main) → unmount function.
import { h, clear, announce } from './dom.js';
import { session, saveSession, clearSession, checkCredentials, describeError, whenAuthLost } from './api.js';

const pages = {
  '/audit': () => import('./audit.js'),
  '/settings': () => import('./settings.js'),
  '/connectors': () => import('./connectors.js'),
};

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
let unmount = null;
let renderSeq = 0;

function pathOf(loc = location) {
  return loc.pathname === '/' ? '/audit' : loc.pathname;
}

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

// lastProject pre-fills the sign-in form after a sign-out or a refused key.
let lastProject = '';

async function render(notice, noticeKind = 'error') {
  const seq = ++renderSeq;
  if (unmount) { unmount(); unmount = null; }
  const s = session();
  if (!s) {
    topbar.hidden = true;
    showSignIn(notice, noticeKind);
    return;
  }
  topbar.hidden = false;
  document.getElementById('who-project').textContent = s.projectId;
  const path = pathOf();
  for (const a of topbar.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const load = pages[path];
  clear(main);
  if (!load) {
    main.append(h('section.page', h('h1', 'Page not found'), h('p', h('a', { href: '/audit', 'data-nav': '' }, 'Go to the audit log'))));
    return;
  }
  const mod = await load();
  if (seq !== renderSeq) return; // another navigation won the race
  unmount = mod.mount(main, { navigate }) || null;
  if (!performance.getEntriesByName('console-interactive').length) performance.mark('console-interactive');
}

function showSignIn(notice, noticeKind) {
  clear(main);
  document.title = 'Sign in · audittrail';
  const error = h('p.form-error', { role: 'alert', id: 'signin-error' });
  if (notice) {
    error.textContent = notice;
    if (noticeKind === 'info') error.className = 'form-note';
  }
  const project = h('input#signin-project', { name: 'project', required: true, autocomplete: 'username', spellcheck: 'false', placeholder: 'P2abc…', value: lastProject });
  const key = h('input#signin-key', { name: 'key', type: 'password', required: true, autocomplete: 'current-password', spellcheck: 'false', placeholder: 'K…' });
  const submit = h('button.btn.primary', { type: 'submit' }, 'Sign in');
  const form = h('form.signin-card', { 'aria-labelledby': 'signin-title', 'aria-describedby': 'signin-error' },
    h('div.brand.big', h('span.brand-mark', { 'aria-hidden': 'true' }), 'audittrail'),
    h('h1#signin-title', 'Sign in to the console'),
    h('p.muted', 'Use a project ID and a management key. They stay in this browser tab only and are forgotten when you sign out or close it.'),
    h('label', { for: 'signin-project' }, 'Project ID'), project,
    h('label', { for: 'signin-key' }, 'Management key'), key,
    error, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    error.className = 'form-error';
    submit.disabled = true;
    submit.textContent = 'Checking…';
    const projectId = project.value.trim();
    const k = key.value.trim();
    try {
      await checkCredentials(projectId, k);
      saveSession(projectId, k);
      announce('Signed in');
      render();
    } catch (err) {
      error.textContent = describeError(err, 'signin');
      (err.status === 404 ? project : key).focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  main.append(h('section.signin', form));
  if (!performance.getEntriesByName('console-interactive').length) performance.mark('console-interactive');
  if (lastProject) key.focus(); else project.focus();
}

// Links marked data-nav change pages without a reload.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-nav]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
  main.focus({ preventScroll: true });
});
window.addEventListener('popstate', () => render());
document.getElementById('sign-out').addEventListener('click', () => {
  lastProject = session()?.projectId || '';
  clearSession();
  announce('Signed out');
  history.replaceState(null, '', '/audit');
  render('You are signed out.', 'info');
});
whenAuthLost((err) => {
  lastProject = session()?.projectId || '';
  clearSession();
  render(describeError(err));
});

render();
