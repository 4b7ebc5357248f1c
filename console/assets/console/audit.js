// Audit (admins): who called what, through the console or any other
// client. The API records every call; this page only reads the record.
import { call } from './shared/api.js';
import { h, clear, fmtTime } from './shared/dom.js';
import { card, errorAlert, loading, empty, mono } from './ui.js';

export async function render(ctx) {
  ctx.sub.textContent = ' Every call to the API, with who made it and what it named';
  const actor = h('input', { id: 'au-actor', placeholder: 'analyst, admin, service, subject:…', value: ctx.params.get('actor') || '' });
  const proc = h('input', { id: 'au-proc', placeholder: '/risk.v1.AppealService/', value: ctx.params.get('procedure') || '' });
  const since = h('input', { id: 'au-since', type: 'datetime-local' });
  const out = h('div', { id: 'audit-out' });
  const form = h('form', { id: 'audit-form', class: 'filters' },
    h('div', { class: 'field span2' }, h('label', { for: 'au-actor' }, 'Actor'), actor),
    h('div', { class: 'field span2' }, h('label', { for: 'au-proc' }, 'Procedure (or prefix)'), proc),
    h('div', { class: 'field' }, h('label', { for: 'au-since' }, 'Since'), since),
    h('div', { class: 'field' }, h('button', { class: 'primary', type: 'submit', id: 'au-go' }, 'Search')));
  const search = async () => {
    clear(out, loading());
    try {
      const r = await call('AdminService', 'QueryAudit', { actor: actor.value.trim(), procedure: proc.value.trim(), since: since.value ? new Date(since.value).toISOString() : undefined, limit: 500 });
      const recs = (r.records || []).slice().sort((a, b) => String(b.at).localeCompare(String(a.at)));
      const row = (x) => h('tr', null,
        h('td', { class: 'small' }, fmtTime(x.at)),
        h('td', { class: 'small' }, mono(x.actor || x.role)),
        h('td', { class: 'mono small' }, String(x.procedure || '').replace('/risk.v1.', '')),
        h('td', { class: 'small' }, (x.targets || []).map((t) => h('div', { class: 'mono' }, t))),
        h('td', null, h('span', { class: 'badge plain ' + (x.code === 'ok' ? 'b-ok' : 'b-bad') }, x.code)));
      const table = h('table', { id: 'audit-table' },
        h('thead', null, h('tr', null, h('th', null, 'When'), h('th', null, 'Actor'), h('th', null, 'Procedure'), h('th', null, 'Targets'), h('th', null, 'Result'))),
        h('tbody', null, recs.map(row)));
      clear(out, recs.length
        ? h('div', null, h('div', { class: 'small muted' }, `${recs.length} records, newest first${r.truncated ? ' (more matched: narrow the search)' : ''}.`), table)
        : empty('No records match.'));
    } catch (e) {
      clear(out, errorAlert(e));
    }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); search(); });
  clear(ctx.content, card('Access audit', h('div', { class: 'stack' }, form, out)));
  search();
}
