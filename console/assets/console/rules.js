// Rules: the editor (compile errors at the line as you type, inline tests),
// diff against the live set, backtest, publish (new rules start in shadow),
// per-rule modes, versions with diffs, rollback and the change history.
import { call } from './shared/api.js';
import { h, clear, debounce, fmtTime } from './shared/dom.js';
import { card, errorAlert, loading, empty, outcomeBadge, enumLabel, mono } from './ui.js';
import { barRows } from './chart.js';
import { lineDiff, diffView } from './diff.js';

const TABS = [['editor', 'Editor'], ['versions', 'Versions'], ['history', 'History']];

const NEW_RULE = `
  - id: team.new_rule
    description: What this rule catches, in one line
    applies_to: [LOGIN]
    when: login.success && features.login_failures_account_10m >= 3
    score: 20
    mode: shadow
    reason:
      en: "Signed in after {{features.login_failures_account_10m}} failed attempts"
      zh: "此前有 {{features.login_failures_account_10m}} 次失败尝试后登录"
    owner: risk-team
    tests:
      - name: fires after failures
        event: {type: LOGIN, login: {success: true}}
        features: {login_failures_account_10m: 4}
        expect: {fired: true}
`;

// The editor's state lives across re-renders of the page (tab switches).
const state = { files: null, base: null, current: '', draft: 'console', validation: null };

export async function render(ctx) {
  ctx.sub.textContent = ' Write, test, backtest and publish rules';
  const tab = ctx.rest[0] || 'editor';
  const tabs = h('div', { class: 'tabs card', role: 'tablist' }, TABS.map(([id, label]) =>
    h('button', { type: 'button', class: id === tab ? 'on' : null, 'data-tab': id, onclick: () => { location.hash = '#/rules/' + id; } }, label)));
  const body = h('div', { class: 'stack' });
  clear(ctx.content, tabs, body);
  if (tab === 'versions') return versions(body, ctx);
  if (tab === 'history') return history(body);
  return editor(body, ctx);
}

async function loadLive() {
  const live = await call('RulesService', 'GetVersion', {});
  state.base = { version: live.version.version, files: live.files || [] };
  state.files = (live.files || []).map((f) => ({ name: f.name, content: f.content }));
  state.current = state.files.length ? state.files[0].name : 'rules.yaml';
  if (!state.files.length) state.files.push({ name: 'rules.yaml', content: 'rules:\n' });
}

async function editor(body, ctx) {
  clear(body, loading());
  try {
    if (!state.files) await loadLive();
  } catch (e) {
    clear(body, errorAlert(e, 'loading the live rule set'));
    return;
  }
  const fileTabs = h('div', { class: 'row', id: 'file-tabs' });
  const gutter = h('div', { class: 'gutter', id: 'gutter' });
  const marks = h('div', { class: 'marks' });
  const text = h('textarea', { id: 'rule-text', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', wrap: 'off', 'aria-label': 'Rule file' });
  const ed = h('div', { class: 'editor' }, gutter, h('div', { class: 'stage' }, marks, text));
  const status = h('div', { id: 'compile-status', class: 'row' });
  const problems = h('ul', { class: 'problems', id: 'problems' });
  const summary = h('div', { id: 'rule-summary' });
  const tests = h('div', { id: 'test-results' });
  const out = h('div', { id: 'rules-out', class: 'stack' });
  const note = h('input', { id: 'publish-note', placeholder: 'Why (kept in the history)' });

  const cur = () => state.files.find((f) => f.name === state.current);
  const drawFileTabs = () => clear(fileTabs, state.files.map((f) =>
    h('button', { type: 'button', class: f.name === state.current ? 'primary' : 'ghost', 'data-file': f.name, onclick: () => { state.current = f.name; load(); } }, f.name)),
  h('span', { class: 'spacer' }),
  h('button', { type: 'button', id: 'new-rule', onclick: () => { text.value = text.value.replace(/\s*$/, '\n') + NEW_RULE.trimEnd() + '\n'; onInput(); text.focus(); } }, '+ New rule (shadow)'),
  h('button', { type: 'button', class: 'ghost', id: 'revert', onclick: async () => { state.files = null; await loadLive(); load(); } }, 'Revert to live'));

  const errLines = () => new Set(((state.validation && state.validation.errors) || []).filter((e) => e.file === state.current && e.line > 0).map((e) => e.line));
  const drawGutter = () => {
    const n = text.value.split('\n').length;
    const bad = errLines();
    clear(gutter, Array.from({ length: n }, (_, i) => h('div', { class: bad.has(i + 1) ? 'err' : null, 'data-line': i + 1 }, i + 1)));
    clear(marks, Array.from({ length: n }, (_, i) => h('div', { class: bad.has(i + 1) ? 'err' : null, 'data-line': i + 1 })));
    syncScroll();
  };
  const syncScroll = () => {
    gutter.scrollTop = text.scrollTop;
    marks.style.transform = `translate(${-text.scrollLeft}px, ${-text.scrollTop}px)`;
  };
  text.addEventListener('scroll', syncScroll);
  const gotoLine = (line) => {
    const lines = text.value.split('\n');
    const pos = lines.slice(0, line - 1).reduce((a, l) => a + l.length + 1, 0);
    text.focus();
    text.setSelectionRange(pos, pos + (lines[line - 1] || '').length);
    text.scrollTop = Math.max(0, (line - 5) * 20);
  };

  let seq = 0;
  const validate = async () => {
    const mine = ++seq;
    clear(status, h('span', { class: 'spinner' }), h('span', { class: 'muted' }, 'Compiling…'));
    let v;
    try {
      v = await call('RulesService', 'ValidateRules', { files: state.files });
    } catch (e) {
      if (mine === seq) clear(status, errorAlert(e, 'validate'));
      return;
    }
    if (mine !== seq) return; // a newer keystroke's answer will come
    state.validation = v;
    drawGutter();
    const errs = v.errors || [];
    if (v.valid) {
      clear(status, h('span', { class: 'status-ok', id: 'compile-ok' }, '✓ Compiles'),
        h('span', { class: 'muted small' }, `${(v.rules || []).length} rules · ${v.contentVersion || ''}`));
      clear(problems);
      drawSummary(v.rules || []);
      runTests(false);
    } else {
      clear(status, h('span', { class: 'status-bad', id: 'compile-bad' }, `✗ ${errs.length} problem${errs.length === 1 ? '' : 's'}`));
      clear(problems, errs.map((e) => h('li', { 'data-line': e.line, 'data-file': e.file, onclick: () => { if (e.file !== state.current) { state.current = e.file; load(); } gotoLine(e.line); } },
        h('span', { class: 'loc' }, `${e.file}:${e.line}:${e.column}`), e.ruleId ? h('span', { class: 'mono small' }, `[${e.ruleId}] `) : null, e.message,
        e.suggestion && !String(e.message).includes(e.suggestion) ? h('div', { class: 'small' }, `Did you mean `, h('code', null, e.suggestion), '?') : null,
        e.snippet ? h('pre', null, e.snippet) : null)));
      clear(tests, h('p', { class: 'muted small' }, 'The tests run once the files compile.'));
    }
  };
  const validateSoon = debounce(validate, 350);
  const onInput = () => {
    const f = cur();
    if (f) f.content = text.value;
    drawGutter();
    clear(status, h('span', { class: 'muted small' }, 'Editing…'));
    validateSoon();
  };
  text.addEventListener('input', onInput);
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Tab') { // indent, don't leave the editor
      e.preventDefault();
      const s = text.selectionStart;
      text.setRangeText('  ', s, text.selectionEnd, 'end');
      onInput();
    }
  });

  const drawSummary = (rules) => {
    clear(summary, h('table', { id: 'rules-table' },
      h('thead', null, h('tr', null, h('th', null, 'Rule'), h('th', null, 'Applies to'), h('th', null, 'Action'), h('th', null, 'Mode'), h('th', { class: 'num' }, 'Tests'))),
      h('tbody', null, rules.map((r) => h('tr', { 'data-rule': r.id, class: 'clickable', title: `${r.file}:${r.line}`,
        onclick: () => { if (r.file && r.file !== state.current) { state.current = r.file; load(); } if (r.line) gotoLine(r.line); } },
        h('td', null, h('span', { class: 'mono' }, r.id), h('span', { class: 'small muted' }, '  ' + (r.description || ''))),
        h('td', { class: 'small' }, (r.appliesTo || []).join(', ') || 'all'),
        h('td', null, r.action || `score ${r.score || 0}`),
        h('td', null, modeBadge(r.mode)),
        h('td', { class: 'num' }, r.tests || 0))))));
  };

  const runTests = async (loud) => {
    if (loud) clear(tests, loading());
    try {
      const r = await call('RulesService', 'TestRules', { files: state.files });
      const failed = (r.results || []).filter((x) => !x.passed);
      clear(tests,
        h('div', { class: 'row', id: 'tests-summary' }, h('span', { class: failed.length ? 'status-bad' : 'status-ok' }, `${r.passed || 0} passed, ${r.failed || 0} failed`),
          h('span', { class: 'muted small' }, `inline tests of ${r.version || 'the edited set'}`)),
        failed.length ? h('ul', { class: 'problems' }, failed.map((x) => h('li', { onclick: () => { if (x.file && x.file !== state.current) { state.current = x.file; load(); } if (x.line) gotoLine(x.line); } },
          h('span', { class: 'loc' }, `${x.file}:${x.line}`), h('b', null, `${x.ruleId} — ${x.name}: `), x.message))) : null);
    } catch (e) {
      clear(tests, errorAlert(e, 'tests'));
    }
  };

  const saveDraft = async () => {
    const r = await call('RulesService', 'PutDraft', { name: state.draft, files: state.files });
    return r;
  };
  const doDiff = async () => {
    clear(out, loading());
    try {
      await saveDraft();
      const d = await call('RulesService', 'DiffDraft', { draft: state.draft });
      clear(out, card(`Changes against live ${d.liveVersion}`, draftDiffView(d)));
    } catch (e) { clear(out, errorAlert(e, 'diff')); }
  };
  const from = h('input', { id: 'bt-from', type: 'datetime-local', value: localInput(Date.now() - 7 * 86400000) });
  const to = h('input', { id: 'bt-to', type: 'datetime-local', value: localInput(Date.now() + 60000) });
  const doBacktest = async () => {
    clear(out, card('Backtest', h('div', { class: 'row' }, h('span', { class: 'spinner' }), 'Replaying recorded events through the live set and this candidate…')));
    try {
      const r = await call('RulesService', 'Backtest', { from: new Date(from.value).toISOString(), to: new Date(to.value).toISOString(), candidateFiles: state.files, samples: 20 });
      clear(out, card('Backtest report', backtestView(r)));
    } catch (e) { clear(out, errorAlert(e, 'backtest')); }
  };
  const doPublish = async () => {
    if (!state.validation || !state.validation.valid) { clear(out, errorAlert(new Error('Fix the compile errors first.'), 'publish')); return; }
    const shadow = (state.validation.rules || []).filter((r) => r.mode === 'RULE_MODE_SHADOW').map((r) => r.id);
    if (!(await confirmInline(out, 'Publish this rule set as a new live version?',
      shadow.length ? `In shadow (logged, never acted on): ${shadow.join(', ')}` : 'Every rule acts as written: none is in shadow.', 'Publish now'))) return;
    clear(out, loading());
    try {
      const r = await call('RulesService', 'Publish', { files: state.files, note: note.value.trim() });
      const v = r.version || {};
      state.base = { version: v.version, files: state.files.map((f) => ({ ...f })) };
      clear(out, h('div', { class: 'alert ok', id: 'published' }, h('strong', null, `Published ${v.version}: now live`),
        shadow.length ? `Shadow rules (logged, never acted on): ${shadow.join(', ')}. Promote them from the Versions tab once their hits look right.` : 'All rules act as written.'));
    } catch (e) { clear(out, errorAlert(e, 'publish')); }
  };

  const load = () => {
    drawFileTabs();
    const f = cur();
    text.value = f ? f.content : '';
    drawGutter();
    validate();
  };

  clear(body, h('div', { class: 'split wide-left' },
    card(h('div', { class: 'row' }, h('h2', null, 'Rule files'), h('span', { class: 'muted small' }, `editing on top of live ${state.base ? state.base.version : ''}`)),
      h('div', { class: 'stack' }, fileTabs, ed, status, problems)),
    h('div', { class: 'stack' },
      card('Test and publish', h('div', { class: 'stack' },
        h('div', { class: 'row' }, h('button', { type: 'button', id: 'run-tests', onclick: () => runTests(true) }, 'Run tests'),
          h('button', { type: 'button', id: 'diff', onclick: doDiff }, 'Diff against live')),
        h('div', { class: 'two' }, h('div', { class: 'field' }, h('label', { for: 'bt-from' }, 'Backtest events from'), from),
          h('div', { class: 'field' }, h('label', { for: 'bt-to' }, 'to'), to)),
        h('div', { class: 'row' }, h('button', { type: 'button', id: 'backtest', onclick: doBacktest }, 'Run backtest'),
          h('span', { class: 'muted small' }, 'replays recorded events through live and this candidate')),
        h('div', { class: 'field' }, h('label', { for: 'publish-note' }, 'Publish note'), note),
        h('div', { class: 'row' }, h('span', { class: 'muted small spacer' }, 'New rules carry mode: shadow until promoted.'),
          h('button', { type: 'button', class: 'primary', id: 'publish', onclick: doPublish }, 'Publish')))),
      card('Inline tests', tests))),
  out,
  card('Rules in this set', summary));
  load();
}

function localInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function modeBadge(m) {
  const k = String(m || '').replace('RULE_MODE_', '').toLowerCase() || 'active';
  return h('span', { class: 'badge b-' + k, 'data-mode': m }, enumLabel(m || 'RULE_MODE_ACTIVE', 'RULE_MODE_'));
}

function draftDiffView(d) {
  const parts = [];
  if (!(d.added || []).length && !(d.removed || []).length && !(d.changed || []).length && !d.thresholdsChanged) return empty('No change against the live set.');
  for (const id of d.added || []) parts.push(h('div', null, h('div', { class: 'row' }, h('span', { class: 'badge b-allow plain' }, 'added'), mono(id)), diffView(lineDiff('', (d.addedText || {})[id] || ''))));
  for (const id of d.removed || []) parts.push(h('div', null, h('div', { class: 'row' }, h('span', { class: 'badge b-deny plain' }, 'removed'), mono(id)), diffView(lineDiff((d.removedText || {})[id] || '', ''))));
  for (const c of d.changed || []) parts.push(h('div', null, h('div', { class: 'row' }, h('span', { class: 'badge b-review plain' }, 'changed'), mono(c.ruleId), h('span', { class: 'muted small' }, (c.fields || []).join(', '))), diffView(lineDiff(c.before || '', c.after || ''))));
  if (d.thresholdsChanged) parts.push(h('div', { class: 'alert warn' }, `Thresholds: ${JSON.stringify(d.thresholdsBefore)} → ${JSON.stringify(d.thresholdsAfter)}`));
  return h('div', { class: 'stack' }, parts);
}

function countOf(list, o) { const x = (list || []).find((c) => c.outcome === o); return x ? Number(x.count || 0) : 0; }

function backtestView(r) {
  const outcomes = ['OUTCOME_ALLOW', 'OUTCOME_CHALLENGE', 'OUTCOME_REVIEW', 'OUTCOME_DENY'];
  const mix = outcomes.map((o) => ({ label: enumLabel(o, 'OUTCOME_'), before: countOf(r.before, o), after: countOf(r.after, o) }));
  const all = (r.rules || []).slice().sort((a, b) => Number(b.candidateHits || 0) + Number(b.liveHits || 0) - Number(a.candidateHits || 0) - Number(a.liveHits || 0));
  const rules = all.filter((x) => Number(x.liveHits || 0) + Number(x.candidateHits || 0) > 0 || x.liveMode !== x.candidateMode);
  const quiet = all.length - rules.length;
  const colors = { Allow: '#11804b', Challenge: '#5b4bc4', Review: '#a15c00', Deny: '#c0262d' };
  return h('div', { class: 'stack', id: 'backtest-report' },
    h('div', { class: 'metrics' },
      metric('Events replayed', Number(r.events || 0).toLocaleString()),
      metric('Outcomes changed', Number(r.changed || 0).toLocaleString(), 'bt-changed'),
      metric('Candidate', String(r.candidateVersion || '—').slice(0, 12)),
      metric('Speed', `${Math.round(r.eventsPerSecond || 0).toLocaleString()}/s`)),
    h('h3', null, 'Outcome mix: live → candidate'),
    barRows(mix, [
      { title: `Live ${r.liveVersion}`, value: (x) => x.before, color: (x) => colors[x.label], text: (x) => x.before.toLocaleString() },
      { title: 'Candidate', value: (x) => x.after, max: Math.max(1, ...mix.map((x) => Math.max(x.before, x.after))), color: (x) => colors[x.label], text: (x) => x.after.toLocaleString() },
    ], { labelWidth: 90, colWidth: 230, title: 'outcome mix' }),
    h('h3', null, 'Per rule'),
    rules.length ? h('table', { id: 'backtest-rules' }, h('thead', null, h('tr', null, h('th', null, 'Rule'), h('th', null, 'Mode live → candidate'), h('th', { class: 'num' }, 'Hits live'), h('th', { class: 'num' }, 'Hits candidate'), h('th', { class: 'num' }, 'Changed'), h('th', { class: 'num' }, 'Fraud hits'), h('th', { class: 'num' }, 'Overturned hits'))),
      h('tbody', null, rules.map((x) => h('tr', null, h('td', { class: 'mono small' }, x.ruleId),
        h('td', { class: 'small' }, `${shortMode(x.liveMode)} → ${shortMode(x.candidateMode)}`),
        h('td', { class: 'num' }, x.liveHits || 0), h('td', { class: 'num' }, x.candidateHits || 0), h('td', { class: 'num' }, x.outcomesChanged || 0),
        h('td', { class: 'num' }, `${x.liveFraud || 0} → ${x.candidateFraud || 0}`), h('td', { class: 'num' }, `${x.liveOverturned || 0} → ${x.candidateOverturned || 0}`))))) : empty('No rule fired in the window.'),
    quiet ? h('p', { class: 'small muted' }, `${quiet} other rule${quiet > 1 ? 's' : ''} fired in neither set.`) : null,
    (r.samples || []).length ? [h('h3', null, 'Changed decisions (sample)'),
      h('table', null, h('tbody', null, r.samples.map((s) => h('tr', null, h('td', { class: 'mono small' }, s.eventId), h('td', { class: 'small' }, fmtTime(s.occurredAt)),
        h('td', null, outcomeBadge(s.before), ' → ', outcomeBadge(s.after)), h('td', { class: 'mono small' }, (s.afterRules || []).join(', '))))))] : null,
    h('p', { class: 'small muted' }, `Replayed in ${((r.elapsedSeconds || 0) * 1000).toFixed(1)} ms. Features are recomputed as of each event in a scratch store; live state is never touched.`));
}

function shortMode(m) { return m ? String(m).replace('RULE_MODE_', '').toLowerCase() : '—'; }

function metric(label, value, id) {
  return h('div', { class: 'metric', id }, h('span', { class: 'v' }, value), h('span', { class: 'l' }, label));
}

async function versions(body, ctx) {
  clear(body, loading());
  let vs, live;
  try {
    [vs, live] = await Promise.all([call('RulesService', 'ListVersions', {}), call('RulesService', 'GetVersion', {})]);
  } catch (e) {
    clear(body, errorAlert(e));
    return;
  }
  const list = (vs.versions || []).slice().reverse();
  const detail = h('div', { id: 'version-detail' });
  const msg = h('div', { id: 'versions-msg' });
  const rows = list.map((v, i) => {
    const tr = h('tr', { class: 'clickable', 'data-version': v.version },
      h('td', null, h('b', { class: 'mono' }, v.version), v.live ? h('span', { class: 'badge b-active', style: null }, 'live') : null),
      h('td', { class: 'small' }, fmtTime(v.publishedAt)),
      h('td', { class: 'small' }, v.kind),
      h('td', { class: 'small' }, `${(v.author && v.author.token) || ''}`),
      h('td', { class: 'small' }, v.note || ''),
      h('td', null, v.live ? null : h('button', { type: 'button', class: 'danger', 'data-rollback': v.version, onclick: async (e) => {
        e.stopPropagation();
        if (!(await confirmInline(msg, `Make ${v.version} live again?`, 'The live set switches at once; no new version is made.', 'Roll back'))) return;
        try { await call('RulesService', 'Rollback', { version: v.version, note: 'rolled back from the console' }); state.files = null; versions(body, ctx); }
        catch (err) { clear(msg, errorAlert(err, 'rollback')); }
      } }, 'Roll back to this')));
    tr.addEventListener('click', () => showVersion(v, list[i + 1], detail));
    return tr;
  });
  const setMode = async (r, m) => {
    try { await call('RulesService', 'SetRuleMode', { ruleId: r.id, mode: m, note: 'from the console' }); state.files = null; versions(body, ctx); }
    catch (err) { clear(msg, errorAlert(err, 'set mode')); }
  };
  const modeButtons = (r) => ['RULE_MODE_ACTIVE', 'RULE_MODE_SHADOW', 'RULE_MODE_DISABLED'].filter((m) => m !== r.mode).map((m) =>
    h('button', { type: 'button', class: 'ghost small', 'data-set-mode': m, onclick: () => setMode(r, m) },
      m === 'RULE_MODE_ACTIVE' ? 'Promote to active' : enumLabel(m, 'RULE_MODE_')));
  const modeRows = (live.rules || []).map((r) => h('tr', { 'data-rule': r.id },
    h('td', { class: 'mono small' }, r.id), h('td', null, modeBadge(r.mode)), h('td', null, h('div', { class: 'modes' }, modeButtons(r)))));
  const modes = h('table', { id: 'live-modes' },
    h('thead', null, h('tr', null, h('th', null, 'Rule (live)'), h('th', null, 'Mode'), h('th', null, ''))),
    h('tbody', null, modeRows));
  clear(body, msg, h('div', { class: 'split' },
    h('div', { class: 'stack' },
      card('Published versions', h('table', { id: 'versions-table' }, h('thead', null, h('tr', null, h('th', null, 'Version'), h('th', null, 'Published'), h('th', null, 'Kind'), h('th', null, 'By'), h('th', null, 'Note'), h('th', null, ''))), h('tbody', null, rows))),
      card(`Rule modes in live ${vs.liveVersion}`, modes)),
    detail));
  if (list.length) showVersion(list[0], list[1], detail);
}

async function showVersion(v, prev, el) {
  clear(el, card(`Version ${v.version}`, loading()));
  try {
    const [a, b] = await Promise.all([call('RulesService', 'GetVersion', { version: v.version }), prev ? call('RulesService', 'GetVersion', { version: prev.version }) : Promise.resolve({ files: [] })]);
    const names = [...new Set([...(b.files || []), ...(a.files || [])].map((f) => f.name))].sort();
    const get = (x, n) => ((x.files || []).find((f) => f.name === n) || {}).content || '';
    const diffs = names.map((n) => ({ n, d: lineDiff(get(b, n), get(a, n)) })).filter((x) => x.d.some((l) => l.op !== ' '));
    clear(el, card(h('h2', null, `Version ${v.version}`, h('span', { class: 'muted small' }, prev ? `  changes since ${prev.version}` : '  first version')),
      h('div', { class: 'stack', id: 'version-diff' }, diffs.length ? diffs.map((x) => h('div', null, h('div', { class: 'mono small', style: null }, x.n), diffView(x.d, 3))) : empty(prev ? 'Same files as the version before (a mode change or rollback).' : 'The bootstrap rule set.'))));
  } catch (e) {
    clear(el, card(`Version ${v.version}`, errorAlert(e)));
  }
}

async function history(body) {
  clear(body, loading());
  try {
    const r = await call('RulesService', 'History', { limit: 200 });
    const cs = r.changes || [];
    clear(body, card('Change history', cs.length ? h('table', { id: 'history-table' }, h('thead', null, h('tr', null, h('th', null, 'When'), h('th', null, 'Who'), h('th', null, 'Action'), h('th', null, 'Version'), h('th', null, 'Rule'), h('th', null, 'Note'))),
      h('tbody', null, cs.map((c) => h('tr', null, h('td', { class: 'small' }, fmtTime(c.at)), h('td', { class: 'small' }, c.author ? `${c.author.token} (${c.author.role})` : ''),
        h('td', null, h('span', { class: 'badge b-neutral plain' }, c.action)), h('td', { class: 'mono small' }, c.version || c.draft || ''),
        h('td', { class: 'mono small' }, c.ruleId ? `${c.ruleId} → ${shortMode(c.mode)}` : ''), h('td', { class: 'small' }, c.note || ''))))) : empty('No changes yet.')));
  } catch (e) {
    clear(body, errorAlert(e));
  }
}

// confirmInline asks in the page (not a browser dialog) and resolves true
// when the analyst confirms.
function confirmInline(el, question, detail, yes) {
  return new Promise((resolve) => {
    const done = (v) => { clear(el); resolve(v); };
    clear(el, h('div', { class: 'alert warn', id: 'confirm' }, h('strong', null, question), h('div', null, detail),
      h('div', { class: 'row' }, h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'ghost', id: 'confirm-no', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'button', class: 'primary', id: 'confirm-yes', onclick: () => done(true) }, yes))));
  });
}
