// Statistics: per-rule hits and appeal overturn rates, their trend over
// time (replayed day by day), and the audit chain.
import { call } from './shared/api.js';
import { h, clear, fmtTime } from './shared/dom.js';
import { card, errorAlert, loading, empty, mono, duration, enumLabel } from './ui.js';
import { barRows, lines } from './chart.js';

export async function render(ctx) {
  ctx.sub.textContent = ' Rule hits, appeal overturn rates and the audit chain';
  const main = h('div', { id: 'rates', class: 'stack' }, loading());
  const trend = h('div', { id: 'trend' });
  const audit = h('div', { id: 'audit' });
  clear(ctx.content, main, trend, card('Audit chain', audit,
    h('button', { type: 'button', id: 'verify', onclick: () => verify(audit) }, 'Verify chain')));
  checkpoint(audit);
  try {
    if (ctx.services.RulesService) {
      const r = await call('RulesService', 'RuleStats', {});
      clear(main, ruleStatsView(r));
      clear(trend, trendCard((r.rules || []).filter((x) => Number(x.hits || 0) > 0).map((x) => x.ruleId)));
    } else {
      clear(main, card('Per-rule hits and overturn rate', ratesView(await call('DecisionLogService', 'GetOverturnRates', {}))));
    }
  } catch (e) {
    clear(main, errorAlert(e));
  }
}

function metric(label, value, cls) {
  return h('div', { class: 'metric' }, h('span', { class: 'v ' + (cls || '') }, value), h('span', { class: 'l' }, label));
}

function modeBadge(m) {
  const k = String(m || '').replace('RULE_MODE_', '').toLowerCase() || 'active';
  return h('span', { class: 'badge b-' + k }, enumLabel(m || 'RULE_MODE_ACTIVE', 'RULE_MODE_'));
}

function ruleStatsView(r) {
  const rows = (r.rules || []).map((x) => ({ label: x.ruleId, hits: Number(x.hits || 0), evals: Number(x.evaluations || 0), rate: x.overturnRate || 0,
    hitRate: x.hitRate || 0, flagged: x.flagged, mode: x.mode, cost: x.costNs || 0, overturns: Number(x.overturns || 0) }))
    .sort((a, b) => b.hits - a.hits || a.label.localeCompare(b.label));
  const fired = rows.filter((x) => x.hits > 0);
  const flagged = rows.filter((x) => x.flagged);
  const thr = r.overturnThreshold || 0;
  const totalHits = rows.reduce((a, x) => a + x.hits, 0);
  const totalOver = rows.reduce((a, x) => a + x.overturns, 0);
  const chart = fired.length ? barRows(fired, [
    { title: 'Hits', value: (x) => x.hits, color: (x) => (x.mode === 'RULE_MODE_SHADOW' ? '#5b4bc4' : '#2456d6'), text: (x) => `${x.hits.toLocaleString()} (${(x.hitRate * 100).toFixed(1)}%)` },
    { title: `Overturn rate (alert at ${(thr * 100).toFixed(0)}%)`, value: (x) => x.rate, max: Math.max(0.01, thr * 1.5, ...fired.map((x) => x.rate)),
      color: (x) => (x.flagged ? '#c0262d' : '#7a8496'), text: (x) => `${(x.rate * 100).toFixed(1)}% (${x.overturns}/${x.hits})` },
  ], { title: 'hits and overturn rate per rule' }) : empty('No rule has fired in the live rule set yet.');
  return h('div', { class: 'stack' },
    h('div', { class: 'metrics' }, metric('Rules live', rows.length.toLocaleString()), metric('Hits', totalHits.toLocaleString()),
      metric('Overturned on appeal', totalOver.toLocaleString()), metric('Flagged rules', flagged.length, flagged.length ? 'status-bad' : '')),
    flagged.length ? h('div', { class: 'alert warn', id: 'flagged' }, h('strong', null, `${flagged.length} rule${flagged.length > 1 ? 's' : ''} past the overturn alert`),
      flagged.map((x) => x.label).join(', ') + ': appeals overturn them often; review their conditions.') : null,
    card(`Hits and overturn rate per rule — live set ${r.liveVersion}`, h('div', { class: 'stack', id: 'rule-stats-card' }, chart,
      h('table', null, h('thead', null, h('tr', null, h('th', null, 'Rule'), h('th', null, 'Mode'), h('th', { class: 'num' }, 'Evaluations'), h('th', { class: 'num' }, 'Hits'), h('th', { class: 'num' }, 'Hit rate'), h('th', { class: 'num' }, 'Overturns'), h('th', { class: 'num' }, 'Mean cost'))),
        h('tbody', null, rows.map((x) => h('tr', { 'data-rule': x.label }, h('td', { class: 'mono small' }, x.label, ' ', x.flagged ? h('span', { class: 'badge b-bad plain' }, 'flagged') : null), h('td', null, modeBadge(x.mode)),
          h('td', { class: 'num' }, x.evals.toLocaleString()), h('td', { class: 'num' }, x.hits.toLocaleString()), h('td', { class: 'num' }, `${(x.hitRate * 100).toFixed(1)}%`),
          h('td', { class: 'num' }, x.overturns), h('td', { class: 'num' }, x.cost ? `${Math.round(x.cost)} ns` : '—'))))),
      h('p', { class: 'small muted' }, `Counted since ${r.liveVersion} went live; overturns count appeals on decisions the rule fired in, under any version; rules with fewer than ${r.minHits || 0} hits are never flagged.`))));
}

function ratesView(r) {
  const rules = (r.rules || []).slice().sort((a, b) => Number(b.hits || 0) - Number(a.hits || 0));
  if (!rules.length) return empty('No rule has fired in the live rule set yet.');
  const thr = r.threshold || 0;
  const rows = rules.map((x) => ({ label: x.ruleId, hits: Number(x.hits || 0), overturns: Number(x.overturns || 0), rate: x.rate || 0, flagged: x.flagged }));
  return h('div', { class: 'stack' },
    barRows(rows, [
      { title: 'Hits (live rule set)', value: (x) => x.hits, color: () => '#2456d6', text: (x) => x.hits.toLocaleString() },
      { title: `Overturn rate (alert at ${(thr * 100).toFixed(0)}%)`, value: (x) => x.rate, max: Math.max(thr * 1.5, ...rows.map((x) => x.rate), 0.01),
        color: (x) => (x.flagged ? '#c0262d' : '#7a8496'), text: (x) => `${(x.rate * 100).toFixed(1)}% (${x.overturns}/${x.hits})` },
    ], { title: 'hits and overturn rate per rule' }),
    h('p', { class: 'small muted' }, `Counted since rule set ${r.rulesetVersion || '?'} went live. riskd keeps cumulative per-rule counters, not a time series, so this chart shows one bar per rule.`));
}

// trendCard charts one rule's hits and overturn rate per day. riskd keeps
// no per-rule time series, so the console replays the recorded events of
// each day through the live set (RulesService.Backtest, a scratch store:
// live state is untouched) and reads the live-set hits and the hits on
// overturned decisions.
function trendCard(ruleIds) {
  const rule = h('select', { id: 'trend-rule' }, ruleIds.map((id) => h('option', { value: id }, id)));
  const days = h('select', { id: 'trend-days' }, [7, 14, 30].map((d) => h('option', { value: d, selected: d === 30 }, `last ${d} days`)));
  const out = h('div', { id: 'trend-out' }, h('p', { class: 'muted small' }, 'Replays each day of recorded events through the live rule set; may take a while on a large store.'));
  const go = async () => {
    const n = parseInt(days.value, 10);
    const end = new Date();
    end.setHours(24, 0, 0, 0);
    const labels = [], hits = [], rate = [];
    clear(out, h('div', { class: 'row' }, h('span', { class: 'spinner' }), h('span', { id: 'trend-progress' }, `Replaying day 1 of ${n}…`)));
    try {
      for (let i = n - 1; i >= 0; i--) {
        const from = new Date(end.getTime() - (i + 1) * 86400000), to = new Date(end.getTime() - i * 86400000);
        const p = document.getElementById('trend-progress');
        if (p) p.textContent = `Replaying day ${n - i} of ${n}…`;
        const r = await call('RulesService', 'Backtest', { from: from.toISOString(), to: to.toISOString(), samples: 1 });
        const x = (r.rules || []).find((y) => y.ruleId === rule.value) || {};
        const hv = Number(x.liveHits || 0), ov = Number(x.liveOverturned || 0);
        labels.push(from.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }));
        hits.push(hv);
        rate.push(hv ? ov / hv : null);
      }
    } catch (e) {
      clear(out, errorAlert(e, 'trend'));
      return;
    }
    clear(out, h('div', { class: 'legend' }, h('span', null, h('i', { class: 'sw-hits' }), 'hits per day'), h('span', null, h('i', { class: 'sw-rate' }), 'overturn rate of those hits (days with hits)')),
      lines(labels, [
        { name: 'hits', color: '#2456d6', points: hits, bars: true, max: Math.max(1, ...hits), fmt: (m) => `${m} hits` },
        { name: 'overturn rate', color: '#c0262d', points: rate, max: Math.max(0.05, ...rate.filter((v) => v !== null)), fmt: (m) => `${Math.round(m * 100)}%` },
      ], { title: `${rule.value}: hits and overturn rate per day` }),
      h('p', { class: 'small muted' }, `${rule.value}, by event day. Computed by replaying recorded events through the live set day by day, since riskd keeps per-rule counters but no time series.`));
  };
  if (!ruleIds.length) return card('Trend over time', empty('No rule has fired yet.'));
  return card('Trend over time', h('div', { class: 'stack' },
    h('div', { class: 'row' }, h('div', null, rule), h('div', null, days), h('button', { type: 'button', id: 'trend-go', onclick: go }, 'Chart')), out));
}

async function checkpoint(el) {
  try {
    const r = await call('DecisionLogService', 'GetCheckpoint', {});
    const c = r.checkpoint || {};
    clear(el, h('dl', { class: 'kv' }, h('dt', null, 'Entries'), h('dd', null, String(c.count || 0)),
      h('dt', null, 'Head hash'), h('dd', null, mono(c.hash || '')), h('dt', null, 'At'), h('dd', null, fmtTime(c.at))), h('div', { id: 'verify-out' }));
  } catch (e) {
    clear(el, errorAlert(e));
  }
}

async function verify(el) {
  let out = el.querySelector('#verify-out');
  if (!out) { out = h('div', { id: 'verify-out' }); el.append(out); }
  clear(out, loading());
  try {
    const r = await call('DecisionLogService', 'VerifyChain', {});
    clear(out, r.ok
      ? h('div', { class: 'alert ok' }, h('strong', null, 'The chain verifies'), `${r.checked || 0} entries checked in ${duration(r.elapsed)}; head ${String(r.headHash || '').slice(0, 16)}…`)
      : h('div', { class: 'alert error' }, h('strong', null, `Entry ${r.broken && r.broken.seq} does not verify`), (r.broken && r.broken.reason) || ''));
  } catch (e) {
    clear(out, errorAlert(e));
  }
}
