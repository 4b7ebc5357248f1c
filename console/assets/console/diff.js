// A line diff (longest common subsequence) for rule texts and versions.
import { h } from './shared/dom.js';

export function lineDiff(a, b) {
  // A missing final newline is not a changed line.
  const x = a ? a.replace(/\n$/, '').split('\n') : [], y = b ? b.replace(/\n$/, '').split('\n') : [];
  const n = x.length, m = y.length;
  if (n * m > 4e6) return [...x.map((l) => ({ op: '-', l })), ...y.map((l) => ({ op: '+', l }))];
  const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({ op: ' ', l: x[i] }); i++; j++; }
    else if (dp[i + 1][j] >= dp[i][j + 1]) out.push({ op: '-', l: x[i++] });
    else out.push({ op: '+', l: y[j++] });
  }
  while (i < n) out.push({ op: '-', l: x[i++] });
  while (j < m) out.push({ op: '+', l: y[j++] });
  return out;
}

// diffView renders a diff; with context, unchanged runs longer than
// 2*context lines fold into a marker.
export function diffView(d, context) {
  const rows = [];
  const keep = d.map((r, k) => r.op !== ' ' || context === undefined ||
    d.slice(Math.max(0, k - context), k + context + 1).some((x) => x.op !== ' '));
  let folded = 0;
  d.forEach((r, k) => {
    if (!keep[k]) { folded++; return; }
    if (folded) { rows.push(h('div', { class: 'hunk' }, `… ${folded} unchanged line${folded > 1 ? 's' : ''}`)); folded = 0; }
    rows.push(h('div', { class: r.op === '+' ? 'add' : r.op === '-' ? 'del' : null }, `${r.op} ${r.l}`));
  });
  if (folded) rows.push(h('div', { class: 'hunk' }, `… ${folded} unchanged line${folded > 1 ? 's' : ''}`));
  return h('div', { class: 'diff' }, rows);
}
