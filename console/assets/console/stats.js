// Statistics: per-rule hits and appeal overturn rates, and the audit chain.
import { call } from './shared/api.js';
import { h, clear, fmtTime } from './shared/dom.js';
import { card, errorAlert, loading, empty, mono, duration } from './ui.js';
import { barRows } from './chart.js';

export async function render(ctx) {
  ctx.sub.textContent = ' Rule hits, appeal overturn rates and the audit chain';
  const rates = h('div', { id: 'rates' }, loading());
  const audit = h('div', { id: 'audit' });
  const extra = h('div', { id: 'rule-stats' });
  clear(ctx.content, card('Per-rule hits and overturn rate', rates), extra, card('Audit chain', audit,
    h('button', { type: 'button', id: 'verify', onclick: () => verify(audit) }, 'Verify chain')));
  checkpoint(audit);
  try {
    const r = await call('DecisionLogService', 'GetOverturnRates', {});
    clear(rates, ratesView(r));
  } catch (e) {
    clear(rates, errorAlert(e));
  }
  if (ctx.services.RulesService) {
    try {
      const mod = await import('./rules.js');
      if (mod.statsCard) extra.append(await mod.statsCard());
    } catch (e) {
      extra.append(errorAlert(e, 'rule statistics'));
    }
  }
}

function ratesView(r) {
  const rules = (r.rules || []).slice().sort((a, b) => Number(b.hits || 0) - Number(a.hits || 0));
  if (!rules.length) return empty('No rule has fired in the live rule set yet.');
  const thr = r.threshold || 0;
  const rows = rules.map((x) => ({ label: x.ruleId, hits: Number(x.hits || 0), overturns: Number(x.overturns || 0), rate: x.rate || 0, flagged: x.flagged }));
  const chart = barRows(rows, [
    { title: 'Hits (live rule set)', value: (x) => x.hits, color: () => '#2456d6', text: (x) => x.hits.toLocaleString() },
    { title: `Overturn rate (alert at ${(thr * 100).toFixed(0)}%)`, value: (x) => x.rate, max: Math.max(thr * 1.5, ...rows.map((x) => x.rate), 0.01),
      color: (x) => (x.flagged ? '#c0262d' : '#7a8496'), text: (x) => `${(x.rate * 100).toFixed(1)}% (${x.overturns}/${x.hits})` },
  ], { title: 'hits and overturn rate per rule' });
  const flagged = rows.filter((x) => x.flagged);
  return h('div', { class: 'stack' },
    flagged.length ? h('div', { class: 'alert warn', id: 'flagged' }, h('strong', null, `${flagged.length} rule${flagged.length > 1 ? 's' : ''} past the overturn alert`),
      flagged.map((x) => x.label).join(', ') + ': appeals overturn them often; review their conditions.') : null,
    chart,
    h('p', { class: 'small muted' }, `Counted since rule set ${r.rulesetVersion || '?'} went live; rules with fewer than ${r.minHits || 0} hits are never flagged. `,
      'riskd keeps cumulative per-rule counters, not a time series, so this chart shows one bar per rule rather than a line over time.'));
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
      ? h('div', { class: 'alert ok', style: null }, h('strong', null, 'The chain verifies'), `${r.checked || 0} entries checked in ${duration(r.elapsed)}; head ${String(r.headHash || '').slice(0, 16)}…`)
      : h('div', { class: 'alert error' }, h('strong', null, `Entry ${r.broken && r.broken.seq} does not verify`), (r.broken && r.broken.reason) || ''));
  } catch (e) {
    clear(out, errorAlert(e));
  }
}
