// Pieces the console's views share.
import { h } from './shared/dom.js';
import { APIError } from './shared/api.js';

export const OUTCOMES = ['OUTCOME_ALLOW', 'OUTCOME_CHALLENGE', 'OUTCOME_REVIEW', 'OUTCOME_DENY'];
export const OUTCOME_RANK = { OUTCOME_UNSPECIFIED: 0, OUTCOME_ALLOW: 1, OUTCOME_CHALLENGE: 2, OUTCOME_REVIEW: 3, OUTCOME_DENY: 4 };

export function enumLabel(v, prefix) {
  const s = String(v || '').replace(prefix, '').toLowerCase().replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function outcomeBadge(o) {
  const k = String(o || '').replace('OUTCOME_', '').toLowerCase();
  return h('span', { class: 'badge b-' + k, 'data-outcome': o }, enumLabel(o, 'OUTCOME_'));
}

export function statusBadge(s) {
  const k = String(s || '').replace('APPEAL_STATUS_', '').toLowerCase();
  return h('span', { class: 'badge b-' + k, 'data-status': s }, enumLabel(s, 'APPEAL_STATUS_'));
}

export function eventLabel(t) { return enumLabel(t, 'EVENT_TYPE_'); }

export function card(title, body, ...actions) {
  return h('div', { class: 'card' },
    title ? h('div', { class: 'card-head' }, typeof title === 'string' ? h('h2', null, title) : title, h('span', { class: 'spacer' }), actions) : null,
    h('div', { class: 'card-body' }, body));
}

// errorAlert shows an API error the way an analyst can act on it.
export function errorAlert(e, context) {
  const code = e instanceof APIError ? e.code : 'error';
  let title = 'Request failed';
  if (code === 'permission_denied') title = 'Not allowed';
  if (code === 'not_found') title = 'Not found';
  if (code === 'failed_precondition') title = 'Cannot do that now';
  if (code === 'invalid_argument') title = 'Check the input';
  if (code === 'unauthenticated') title = 'Signed out';
  const independence = code === 'permission_denied' && /authored|another reviewer/i.test(e.message || '');
  if (independence) title = 'Independence check: you cannot resolve this appeal';
  return h('div', { class: 'alert error', role: 'alert', 'data-code': code, 'data-independence': independence ? 'true' : null },
    h('strong', null, context ? `${title} — ${context}` : title),
    h('span', { class: 'msg' }, e.message || String(e)),
    independence ? h('div', { class: 'small', style: null }, 'A reviewer may not judge a decision made by a rule they wrote or last changed. Hand it to another analyst, or to an admin.') : null);
}

export function loading() { return h('div', { class: 'empty' }, h('span', { class: 'spinner' })); }

export function empty(text) { return h('div', { class: 'empty' }, text); }

export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

export function mono(s) { return h('span', { class: 'mono' }, s); }

export function fmtValue(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  if (typeof v === 'number' && !Number.isInteger(v)) return v.toLocaleString(undefined, { maximumFractionDigits: 2 });
  return String(v);
}

export function duration(d) {
  if (!d) return '';
  const s = parseFloat(String(d).replace('s', ''));
  if (isNaN(s)) return d;
  if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(2)} ms`;
  return `${s.toFixed(2)} s`;
}
