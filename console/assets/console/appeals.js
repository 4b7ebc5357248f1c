// Appeals: the review queue (oldest due first, overdue marked), start
// review, and resolve with a reason; the independence check's refusal is
// shown as such.
import { call } from './shared/api.js';
import { h, clear, fmtTime, relDays } from './shared/dom.js';
import { statusBadge, outcomeBadge, eventLabel, card, errorAlert, loading, empty, kv, mono } from './ui.js';

const TABS = [
  { id: 'queue', label: 'Queue', statuses: ['APPEAL_STATUS_OPEN', 'APPEAL_STATUS_IN_REVIEW'] },
  { id: 'overdue', label: 'Overdue', overdue: true },
  { id: 'upheld', label: 'Upheld', statuses: ['APPEAL_STATUS_UPHELD'] },
  { id: 'overturned', label: 'Overturned', statuses: ['APPEAL_STATUS_OVERTURNED'] },
  { id: 'all', label: 'All', statuses: [''] },
];

export async function render(ctx) {
  ctx.sub.textContent = ' Every appeal answered within 15 days, with a reason the subject reads';
  const tabId = ctx.params.get('tab') || 'queue';
  const account = h('input', { id: 'a-account', placeholder: 'filter by account', value: ctx.params.get('account') || '' });
  const list = h('div', { id: 'appeal-list' });
  const detail = h('div', { id: 'appeal-detail' });
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, TABS.map((t) =>
    h('button', { type: 'button', class: t.id === tabId ? 'on' : null, 'data-tab': t.id, onclick: () => go(t.id) }, t.label)));
  const go = (id) => {
    const q = new URLSearchParams({ tab: id });
    if (account.value.trim()) q.set('account', account.value.trim());
    location.hash = '#/appeals?' + q.toString();
  };
  account.addEventListener('change', () => go(tabId));
  clear(ctx.content, h('div', { class: 'split wide-left' },
    h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', null, 'Appeals'), h('span', { class: 'spacer' }), h('div', { style: null }, account)), tabs,
      h('div', { class: 'card-body' }, list)),
    detail));
  await loadList(TABS.find((t) => t.id === tabId) || TABS[0], account.value.trim(), list, detail, ctx);
  const want = ctx.params.get('appeal');
  if (want) showAppeal(want, detail, ctx, () => loadList(TABS.find((t) => t.id === tabId) || TABS[0], account.value.trim(), list, detail, ctx));
}

async function loadList(tab, account, list, detail, ctx) {
  clear(list, loading());
  let appeals = [];
  try {
    const calls = tab.overdue
      ? [call('AppealService', 'ListAppeals', { overdueOnly: true, pageSize: 500, accountId: account })]
      : tab.statuses.map((s) => call('AppealService', 'ListAppeals', { status: s || undefined, pageSize: 500, accountId: account }));
    for (const r of await Promise.all(calls)) appeals.push(...(r.appeals || []));
  } catch (e) {
    clear(list, errorAlert(e));
    return;
  }
  appeals.sort((a, b) => (a.dueAt || '').localeCompare(b.dueAt || ''));
  if (ctx.params.get('decision')) appeals = appeals.filter((a) => a.decisionId === ctx.params.get('decision'));
  if (!appeals.length) { clear(list, empty(tab.id === 'queue' ? 'The queue is empty.' : 'No appeals here.')); return; }
  const reload = () => loadList(tab, account, list, detail, ctx);
  const rows = appeals.map((a) => {
    const days = relDays(a.dueAt);
    const resolved = a.status === 'APPEAL_STATUS_UPHELD' || a.status === 'APPEAL_STATUS_OVERTURNED';
    const due = resolved ? h('span', { class: 'muted small' }, 'resolved ' + fmtTime(a.resolvedAt))
      : a.overdue ? h('span', { class: 'overdue-tag' }, `Overdue ${Math.max(1, -days)}d`)
        : h('span', { class: days <= 3 ? 'due-soon' : 'small muted' }, days <= 0 ? 'due today' : `due in ${days}d`);
    const tr = h('tr', { class: 'clickable' + (a.overdue ? ' overdue' : ''), 'data-appeal': a.appealId, 'data-overdue': a.overdue ? 'true' : 'false' },
      h('td', null, h('div', null, fmtTime(a.dueAt)), due),
      h('td', null, statusBadge(a.status)),
      h('td', null, mono(a.accountId || '')),
      h('td', null, h('div', { class: 'mono small' }, a.appealId), h('div', { class: 'small muted' }, 'filed ' + fmtTime(a.filedAt))));
    tr.addEventListener('click', () => {
      for (const x of list.querySelectorAll('tr.selected')) x.classList.remove('selected');
      tr.classList.add('selected');
      showAppeal(a.appealId, detail, ctx, reload);
    });
    return tr;
  });
  const overdue = appeals.filter((a) => a.overdue).length;
  clear(list,
    h('div', { class: 'small muted', style: null }, `${appeals.length} appeal${appeals.length === 1 ? '' : 's'}, oldest due first`, overdue ? h('span', { class: 'overdue-tag' }, ` · ${overdue} overdue`) : null),
    h('table', { id: 'appeals-table' }, h('thead', null, h('tr', null, h('th', null, 'Due'), h('th', null, 'Status'), h('th', null, 'Account'), h('th', null, 'Appeal'))),
      h('tbody', null, rows)));
}

async function showAppeal(id, el, ctx, reload) {
  clear(el, card('Appeal', loading()));
  let a, x;
  try {
    a = (await call('AppealService', 'GetAppeal', { appealId: id })).appeal;
    x = (await call('DecisionLogService', 'ExplainDecision', { decisionId: a.decisionId })).explanation;
  } catch (e) {
    clear(el, card('Appeal', errorAlert(e)));
    return;
  }
  const msg = h('div', { id: 'resolve-msg' });
  const open = a.status === 'APPEAL_STATUS_OPEN' || a.status === 'APPEAL_STATUS_IN_REVIEW';
  const refresh = async () => { await showAppeal(id, el, ctx, reload); reload(); };
  const start = a.status === 'APPEAL_STATUS_OPEN'
    ? h('button', { type: 'button', id: 'start-review', onclick: async (e) => {
      e.target.disabled = true;
      try { await call('AppealService', 'StartReview', { appealId: id }); await refresh(); } catch (err) { e.target.disabled = false; clear(msg, errorAlert(err)); }
    } }, 'Start review') : null;
  const body = h('div', null,
    h('div', { class: 'row' }, statusBadge(a.status), a.overdue ? h('span', { class: 'badge b-overdue' }, 'Overdue') : null, h('span', { class: 'spacer' }), start),
    h('div', { class: 'section-title' }, h('h3', null, 'Statement')),
    h('p', { id: 'statement', style: null }, a.statement || ''),
    kv([
      ['Account', mono(a.accountId || '')],
      ['Contact', a.contact || '—'],
      ['Filed', fmtTime(a.filedAt)],
      ['Due', h('span', { class: a.overdue ? 'overdue-tag' : null }, fmtTime(a.dueAt))],
      a.resolvedAt ? ['Resolved', `${fmtTime(a.resolvedAt)} by ${a.resolvedBy || '?'}`] : null,
      a.resolutionReason ? ['Reason', h('span', { id: 'resolution-reason' }, a.resolutionReason)] : null,
    ]),
    h('div', { class: 'section-title' }, h('h3', null, 'Decision')),
    h('div', { class: 'row' }, outcomeBadge(x.outcome), h('span', null, eventLabel(x.eventType)), h('span', { class: 'muted small' }, fmtTime(x.decidedAt)),
      h('span', { class: 'spacer' }), h('a', { href: '#/decisions?id=' + encodeURIComponent(a.decisionId) + '&account=' + encodeURIComponent(a.accountId || ''), class: 'small' }, 'Full record ›')),
    (x.reasons || []).map((r) => h('div', { class: 'reason' }, h('span', { class: 'rid' }, r.ruleId), h('div', { class: 'msg' }, r.messageEn))),
    (a.history || []).length ? [h('div', { class: 'section-title' }, h('h3', null, 'History')),
      h('ul', { class: 'small', style: null }, a.history.map((t) => h('li', null, `${fmtTime(t.at)} · ${t.actor || t.role}: ${shortStatus(t.from)} → ${shortStatus(t.to)}${t.reason ? ' — ' + t.reason : ''}`)))] : null,
    open ? resolveForm(a, msg, refresh) : null,
    msg);
  clear(el, card(h('h2', null, 'Appeal ', h('span', { class: 'mono muted small' }, id)), body));
}

function shortStatus(s) { return String(s || '').replace('APPEAL_STATUS_', '').toLowerCase().replace('_', ' ') || 'new'; }

function resolveForm(a, msg, refresh) {
  const uphold = h('input', { type: 'radio', name: 'resolution', value: 'APPEAL_STATUS_UPHELD', id: 'r-uphold', checked: true });
  const overturn = h('input', { type: 'radio', name: 'resolution', value: 'APPEAL_STATUS_OVERTURNED', id: 'r-overturn' });
  const reason = h('textarea', { id: 'r-reason', rows: 4, maxlength: 4000, placeholder: 'The subject reads this. Say what you checked and why.' });
  const remedy = h('input', { id: 'r-remedy', type: 'number', min: 0, max: 365, value: '0' });
  const remedyField = h('div', { class: 'field hidden', id: 'remedy-field' }, h('label', { for: 'r-remedy' }, 'Remedy: allow the account for (days)'), remedy,
    h('div', { class: 'hint' }, h('span', null, 'Puts the account on the allowed list so the same rule does not stop it again. 0: no remedy.')));
  const sync = () => remedyField.classList.toggle('hidden', !overturn.checked);
  uphold.addEventListener('change', sync);
  overturn.addEventListener('change', sync);
  const submit = h('button', { class: 'primary', type: 'submit', id: 'resolve' }, 'Resolve appeal');
  const form = h('form', { id: 'resolve-form', class: 'stack', style: null },
    h('div', { class: 'section-title' }, h('h3', null, 'Resolve')),
    h('div', { class: 'row' },
      h('label', { class: 'row', for: 'r-uphold', style: null }, uphold, 'Uphold the decision'),
      h('label', { class: 'row', for: 'r-overturn', style: null }, overturn, 'Overturn it')),
    h('div', { class: 'field' }, h('label', { for: 'r-reason' }, 'Reason'), reason),
    remedyField,
    h('div', { class: 'row' }, h('span', { class: 'spacer' }), submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!reason.value.trim()) { clear(msg, errorAlert(new Error('A reason is required: the subject sees it.'))); return; }
    submit.disabled = true;
    try {
      await call('AppealService', 'ResolveAppeal', {
        appealId: a.appealId, resolution: overturn.checked ? 'APPEAL_STATUS_OVERTURNED' : 'APPEAL_STATUS_UPHELD',
        reason: reason.value.trim(), remedyDays: overturn.checked ? String(parseInt(remedy.value || '0', 10) || 0) : '0',
      });
      await refresh();
    } catch (err) {
      submit.disabled = false;
      clear(msg, errorAlert(err));
    }
  });
  return form;
}
