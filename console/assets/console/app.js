// The riskd console: sign-in, navigation and the views.
import { token, setToken, signOut, whoami, call, APIError } from './shared/api.js';
import { h, clear } from './shared/dom.js';
import * as decisions from './decisions.js';
import * as appeals from './appeals.js';
import * as stats from './stats.js';
import * as rules from './rules.js';
import * as lists from './lists.js';
import * as audit from './audit.js';

const VIEWS = [
  { id: 'decisions', label: 'Decisions', mod: decisions },
  { id: 'appeals', label: 'Appeals', mod: appeals },
  { id: 'rules', label: 'Rules', mod: rules, service: 'RulesService' },
  { id: 'lists', label: 'Lists', mod: lists, service: 'ListsService' },
  { id: 'stats', label: 'Statistics', mod: stats },
  { id: 'audit', label: 'Audit', mod: audit, admin: true },
];

const root = document.getElementById('root');
const session = { role: '', services: {} };

function signInScreen(err) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', placeholder: 'Paste your analyst or admin token' });
  const msg = h('div', { id: 'signin-msg' }, err ? h('div', { class: 'alert error' }, err) : null);
  const form = h('form', { id: 'signin', autocomplete: 'off' },
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Access token'), input,
      h('div', { class: 'hint' }, h('span', null, 'Kept in this tab only (sessionStorage); closing the tab signs you out.'))),
    msg,
    h('button', { class: 'primary', type: 'submit', style: null }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    await start();
  });
  clear(root, h('div', { class: 'signin' }, h('div', { class: 'card' }, h('div', { class: 'card-body stack' },
    h('div', { class: 'logo' }, h('span', { class: 'mark' }), 'riskd console'),
    h('p', { class: 'muted' }, 'Decisions, appeals, rules and lists for risk analysts and reviewers.'),
    form))));
  input.focus();
}

// probe tells whether riskd serves a service (for pages that need one that
// may not be deployed): unimplemented / 404 means no.
async function probe(service, method) {
  try {
    await call(service, method, {});
    return true;
  } catch (e) {
    return !(e instanceof APIError && (e.code === 'unimplemented' || e.status === 404));
  }
}

async function start() {
  if (!token()) { signInScreen(); return; }
  try {
    const me = await whoami();
    if (me.role !== 'analyst' && me.role !== 'admin') {
      signOut();
      signInScreen(`A ${me.role} token cannot use the console. Subjects use the appeal page; services call the API.`);
      return;
    }
    session.role = me.role;
  } catch (e) {
    signOut();
    signInScreen(e.message);
    return;
  }
  const [r, l] = await Promise.all([probe('RulesService', 'ListVersions'), probe('ListsService', 'ListLists')]);
  session.services = { RulesService: r, ListsService: l };
  if (!session.listening) { window.addEventListener('hashchange', route); session.listening = true; }
  route();
}

// visible: the page's service is served and the role may use it (the API
// decides; this only hides what would be refused).
function visible(v) {
  return (!v.service || session.services[v.service]) && (!v.admin || session.role === 'admin');
}

function shell(active) {
  const nav = h('nav', { class: 'side', 'aria-label': 'Sections' },
    h('div', { class: 'logo' }, h('span', { class: 'mark' }), h('div', null, 'riskd', h('small', null, 'Risk console'))),
    VIEWS.filter(visible).map((v) =>
      h('a', { href: '#/' + v.id, class: v.id === active ? 'active' : null, id: 'nav-' + v.id }, v.label,
        v.id === 'appeals' ? h('span', { class: 'count hidden', id: 'overdue-count' }) : null)),
    h('div', { class: 'who' }, 'Signed in as ', h('b', { id: 'role' }, session.role),
      h('button', { type: 'button', id: 'sign-out', onclick: () => { signOut(); session.role = ''; history.replaceState(null, '', location.pathname); signInScreen(); } }, 'Sign out')));
  const title = h('h1', null);
  const sub = h('span', { class: 'sub' });
  const actions = h('div', { class: 'row' });
  const content = h('div', { class: 'content', id: 'content' });
  clear(root, h('div', { class: 'shell' }, nav,
    h('div', { class: 'main' }, h('header', { class: 'topbar' }, h('div', null, title, sub), h('span', { class: 'spacer' }), actions), content)));
  return { title, sub, actions, content, role: session.role, services: session.services };
}

async function overdueCount() {
  try {
    const res = await call('AppealService', 'ListAppeals', { overdueOnly: true, pageSize: 500 });
    const n = (res.appeals || []).length;
    const el = document.getElementById('overdue-count');
    if (el && n) { el.textContent = String(n); el.classList.remove('hidden'); el.title = `${n} overdue`; }
  } catch { /* the badge is a convenience */ }
}

function route() {
  if (!token() || !session.role) { signInScreen(); return; }
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const [id, ...rest] = path.split('/');
  const view = VIEWS.find((v) => v.id === id && visible(v)) || VIEWS[0];
  const ctx = shell(view.id);
  ctx.params = new URLSearchParams(query || '');
  ctx.rest = rest.map(decodeURIComponent);
  ctx.title.textContent = view.label;
  view.mod.render(ctx).catch((e) => clear(ctx.content, h('div', { class: 'alert error' }, String(e && e.message || e))));
  overdueCount();
}

window.addEventListener('riskd:unauthenticated', () => {
  if (!session.role) return; // not signed in yet: the sign-in form reports it
  session.role = '';
  signOut();
  signInScreen('Your session ended: the token is no longer valid. Sign in again.');
});

start();
