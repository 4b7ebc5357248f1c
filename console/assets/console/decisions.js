// Decisions: search an account's decisions by outcome, rule and time; the
// whole record; replay and what-if against another rule-set version.
import { call } from './shared/api.js';
import { h, clear, fmtTime, fmtShort } from './shared/dom.js';
import { OUTCOMES, outcomeBadge, statusBadge, eventLabel, card, errorAlert, loading, empty, kv, mono, fmtValue, duration, enumLabel } from './ui.js';

const SCAN_LIMIT = 5000; // decisions read per search, newest first

export async function render(ctx) {
  ctx.sub.textContent = ' Search the decision log, read the full record, replay it';
  const p = ctx.params;
  const f = {
    account: h('input', { id: 'q-account', name: 'account', value: p.get('account') || '', placeholder: 'account id', required: true }),
    outcome: h('select', { id: 'q-outcome', name: 'outcome' }, h('option', { value: '' }, 'Any outcome'),
      OUTCOMES.map((o) => h('option', { value: o, selected: p.get('outcome') === o }, enumLabel(o, 'OUTCOME_')))),
    rule: h('input', { id: 'q-rule', name: 'rule', value: p.get('rule') || '', placeholder: 'rule id (fired)' }),
    from: h('input', { id: 'q-from', name: 'from', type: 'datetime-local', value: p.get('from') || '' }),
    to: h('input', { id: 'q-to', name: 'to', type: 'datetime-local', value: p.get('to') || '' }),
  };
  const byId = h('input', { id: 'q-id', placeholder: 'decision id', value: p.get('id') || '' });
  const form = h('form', { id: 'search', class: 'filters' },
    h('div', { class: 'field' }, h('label', { for: 'q-account' }, 'Account'), f.account),
    h('div', { class: 'field' }, h('label', { for: 'q-outcome' }, 'Outcome'), f.outcome),
    h('div', { class: 'field' }, h('label', { for: 'q-rule' }, 'Rule'), f.rule),
    h('div', { class: 'field' }, h('label', { for: 'q-from' }, 'From'), f.from),
    h('div', { class: 'field' }, h('label', { for: 'q-to' }, 'To'), f.to),
    h('div', { class: 'field' }, h('button', { class: 'primary', type: 'submit', id: 'q-go' }, 'Search')));
  const idForm = h('form', { class: 'row', id: 'by-id' }, h('div', { style: null, class: 'spacer' }, byId), h('button', { type: 'submit' }, 'Open'));
  const results = h('div', { id: 'results' }, empty('Enter an account to search its decisions.'));
  const detail = h('div', { id: 'detail' });
  clear(ctx.content,
    card('Search', h('div', { class: 'stack' }, form, h('div', { class: 'row small muted' }, 'Or open one decision by id:', idForm))),
    h('div', { class: 'split' }, card('Results', results), detail));

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, el] of Object.entries(f)) if (el.value) q.set(k, el.value);
    history.replaceState(null, '', '#/decisions?' + q.toString());
    search(f, results, detail, ctx);
  });
  idForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (byId.value.trim()) showDetail(byId.value.trim(), detail, ctx);
  });
  if (f.account.value) search(f, results, detail, ctx);
  if (p.get('id')) showDetail(p.get('id'), detail, ctx);
}

async function search(f, results, detail, ctx) {
  const account = f.account.value.trim();
  if (!account) { clear(results, errorAlert(new Error('An account id is required: the decision log is indexed by account.'))); return; }
  clear(results, loading());
  const from = f.from.value ? new Date(f.from.value).toISOString() : '';
  const to = f.to.value ? new Date(f.to.value).toISOString() : '';
  const rule = f.rule.value.trim();
  const out = [];
  let scanned = 0, token = '', truncated = false;
  try {
    do {
      const res = await call('DecisionService', 'ListDecisions', { accountId: account, pageSize: 500, pageToken: token });
      const ds = res.decisions || [];
      scanned += ds.length;
      token = res.nextPageToken || '';
      let older = false;
      for (const d of ds) {
        if (to && d.decidedAt > to) continue;
        if (from && d.decidedAt < from) { older = true; break; }
        if (f.outcome.value && d.outcome !== f.outcome.value) continue;
        if (rule && ![...(d.reasons || []), ...(d.shadowReasons || [])].some((r) => r.ruleId.includes(rule))) continue;
        out.push(d);
      }
      if (older) break;
      if (scanned >= SCAN_LIMIT && token) { truncated = true; break; }
    } while (token);
  } catch (e) {
    clear(results, errorAlert(e));
    return;
  }
  if (!out.length) { clear(results, empty(`No decisions match (${scanned} read).`)); return; }
  const rows = out.map((d) => {
    const tr = h('tr', { class: 'clickable', 'data-decision': d.decisionId },
      h('td', { class: 'nowrap' }, fmtShort(d.decidedAt)),
      h('td', null, eventLabel(d.eventType)),
      h('td', null, outcomeBadge(d.outcome), d.degraded ? h('span', { class: 'badge b-warn plain', title: d.degradedReason }, 'degraded') : null),
      h('td', { class: 'num' }, d.score || 0),
      h('td', null, (d.reasons || []).map((r) => h('div', { class: 'mono small' }, r.ruleId)),
        (d.shadowReasons || []).map((r) => h('div', { class: 'mono small muted', title: 'shadow' }, r.ruleId + ' (shadow)'))));
    tr.addEventListener('click', () => {
      for (const x of results.querySelectorAll('tr.selected')) x.classList.remove('selected');
      tr.classList.add('selected');
      showDetail(d.decisionId, detail, ctx);
    });
    return tr;
  });
  clear(results,
    h('div', { class: 'small muted', style: null }, `${out.length} of ${scanned} decisions read${truncated ? ' (stopped at the scan limit: narrow the time range)' : ''}.`),
    h('table', { id: 'results-table' }, h('thead', null, h('tr', null, h('th', null, 'Decided'), h('th', null, 'Event'), h('th', null, 'Outcome'), h('th', { class: 'num' }, 'Score'), h('th', null, 'Rules'))),
      h('tbody', null, rows)));
}

function reasonBlock(r, shadow) {
  return h('div', { class: 'reason' },
    h('div', { class: 'row' }, h('span', { class: 'rid' }, r.ruleId), h('span', { class: 'muted small' }, 'v' + (r.ruleVersion || 0)),
      shadow ? h('span', { class: 'badge b-shadow plain' }, 'shadow') : null,
      h('span', { class: 'spacer' }), h('span', { class: 'badge b-neutral plain' }, r.action === 'score' ? `score +${r.score || 0}` : (r.action || ''))),
    r.messageEn ? h('div', { class: 'msg' }, r.messageEn) : null,
    r.messageZh ? h('div', { class: 'msg zh', lang: 'zh-CN' }, r.messageZh) : null,
    r.expression ? h('div', { class: 'expr' }, r.expression) : null);
}

export async function showDetail(id, el, ctx) {
  clear(el, card('Decision', loading()));
  let x;
  try {
    x = (await call('DecisionLogService', 'ExplainDecision', { decisionId: id })).explanation;
  } catch (e) {
    clear(el, card('Decision', errorAlert(e)));
    return;
  }
  const feats = (x.features || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  const replayOut = h('div', { id: 'replay-out' });
  const version = h('input', { id: 'whatif-version', placeholder: 'rule-set version', list: 'ruleset-versions' });
  const versions = h('datalist', { id: 'ruleset-versions' });
  if (ctx.services.RulesService) {
    call('RulesService', 'ListVersions', {}).then((r) => {
      for (const v of r.versions || []) versions.append(h('option', { value: v.version }, v.note || ''));
    }).catch(() => {});
  }
  const replay = async (v) => {
    clear(replayOut, loading());
    try {
      const r = await call('DecisionLogService', 'ReplayDecision', { decisionId: id, rulesetVersion: v || '' });
      clear(replayOut, replayView(r, !!v));
    } catch (e) {
      clear(replayOut, errorAlert(e, v ? `what-if ${v}` : 'replay'));
    }
  };
  const body = h('div', null,
    h('div', { class: 'row', style: null }, outcomeBadge(x.outcome), h('span', { class: 'muted' }, `score ${x.score || 0}`),
      x.degraded ? h('span', { class: 'badge b-warn' }, 'degraded') : null, h('span', { class: 'spacer' }),
      h('a', { href: '#/appeals?decision=' + encodeURIComponent(id), class: 'small' }, 'Appeals')),
    h('div', { class: 'section-title' }, h('h3', null, 'Record')),
    kv([
      ['Decision', mono(x.decisionId)],
      ['Event', h('span', null, eventLabel(x.eventType), ' · ', mono(x.eventId || ''))],
      ['Account', mono(x.accountId || '')],
      ['Decided', fmtTime(x.decidedAt)],
      ['Rule set', mono(x.rulesetVersion || '')],
      ['Latency', duration(x.latency)],
      ['Appeal until', h('span', null, fmtTime(x.appealDeadline), x.appealable ? '' : ' (closed)')],
      ['Data used', (x.dataCategories || []).join(', ') || '—'],
      x.degradedReason ? ['Degraded', x.degradedReason] : null,
    ]),
    h('div', { class: 'section-title' }, h('h3', null, 'Fired rules')),
    (x.reasons || []).length ? x.reasons.map((r) => reasonBlock(r, false)) : h('p', { class: 'muted' }, 'No active rule fired.'),
    (x.shadowReasons || []).length ? [h('div', { class: 'section-title' }, h('h3', null, 'Shadow rules')), x.shadowReasons.map((r) => reasonBlock(r, true))] : null,
    (x.appeals || []).length ? [h('div', { class: 'section-title' }, h('h3', null, 'Appeals')),
      x.appeals.map((a) => h('div', { class: 'row' }, statusBadge(a.status), h('a', { href: '#/appeals?appeal=' + encodeURIComponent(a.appealId), class: 'mono small' }, a.appealId)))] : null,
    h('div', { class: 'section-title' }, h('h3', null, 'Replay and what-if')),
    h('div', { class: 'replay-row' },
      h('button', { type: 'button', id: 'replay', onclick: () => replay('') }, 'Replay recorded version'),
      h('span', null, versions), version,
      h('button', { type: 'button', id: 'whatif', onclick: () => replay(version.value.trim()) }, 'What if')),
    replayOut,
    h('div', { class: 'section-title' }, h('h3', null, `Features (${feats.length})`)),
    h('table', { class: 'features-table' }, h('tbody', null, feats.map((fv) =>
      h('tr', null, h('td', null, fv.name), h('td', { class: fv.value === null || fv.value === undefined ? 'null' : 'num' }, fv.value === null || fv.value === undefined ? 'absent' : fmtValue(fv.value)))))),
    x.event ? [h('div', { class: 'section-title' }, h('h3', null, 'Stored event (pseudonymized)')), h('pre', { class: 'block' }, JSON.stringify(x.event, null, 2))] : null);
  clear(el, card(h('h2', null, 'Decision ', h('span', { class: 'mono muted small' }, id)), body));
}

function replayView(r, whatIf) {
  const side = (title, o, s, reasons) => h('div', null, h('h3', null, title), h('div', { class: 'row', style: null }, outcomeBadge(o), h('span', { class: 'muted' }, `score ${s || 0}`)),
    (reasons || []).map((x) => h('div', { class: 'mono small' }, x.ruleId)));
  return h('div', { class: 'stack', style: null },
    r.matches
      ? h('div', { class: 'alert ok', id: 'replay-match' }, h('strong', null, whatIf ? 'Same decision' : 'Replay reproduces the decision exactly'), `Rule set ${r.rulesetVersion}.`)
      : h('div', { class: whatIf ? 'alert warn' : 'alert error', id: 'replay-diff' }, h('strong', null, whatIf ? `Rule set ${r.rulesetVersion} would decide differently` : 'Replay differs'),
        h('ul', null, (r.differences || []).map((d) => h('li', null, d)))),
    h('div', { class: 'compare' }, side(`Recorded (${r.recordedRulesetVersion})`, r.recordedOutcome, r.recordedScore, r.recordedReasons),
      side(`Replayed (${r.rulesetVersion})`, r.outcome, r.score, r.reasons)));
}
