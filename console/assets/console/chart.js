// Hand-drawn SVG charts: no library, no inline script or style (CSP).
import { s } from './shared/dom.js';

// bars draws horizontal bars, one row per item: {label, value, color, text}.
// Several series per row sit side by side in their own column.
export function barRows(rows, series, opts = {}) {
  const labelW = opts.labelWidth || 260, colW = opts.colWidth || 380, rowH = 28, top = 28;
  const width = labelW + series.length * (colW + 24);
  const height = top + rows.length * rowH + 8;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': opts.title || 'chart' });
  series.forEach((se, i) => {
    const x0 = labelW + i * (colW + 24);
    const max = se.max || Math.max(1e-9, ...rows.map((r) => se.value(r)));
    svg.append(s('text', { x: x0, y: 14, 'font-weight': 600 }, se.title));
    svg.append(s('line', { class: 'axis', x1: x0, x2: x0, y1: top - 4, y2: height - 6 }));
    rows.forEach((r, j) => {
      const v = se.value(r);
      const y = top + j * rowH;
      const w = Math.max(v > 0 ? 2 : 0, (v / max) * (colW - 60));
      svg.append(s('rect', { x: x0, y: y + 4, width: w, height: rowH - 10, rx: 3, fill: se.color(r) }));
      svg.append(s('text', { x: x0 + w + 6, y: y + rowH / 2 + 4 }, se.text(r)));
    });
  });
  rows.forEach((r, j) => {
    svg.append(s('text', { x: labelW - 10, y: top + j * rowH + rowH / 2 + 4, 'text-anchor': 'end', 'font-family': 'monospace' }, r.label));
  });
  return svg;
}

// lines draws series over an x axis of labels: [{name, color, points: [y...]}].
export function lines(labels, series, opts = {}) {
  const W = opts.width || 1040, H = opts.height || 240, L = 56, R = 56, T = 16, B = 34;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': opts.title || 'chart' });
  const n = Math.max(1, labels.length - 1);
  const x = (i) => L + (i / n) * (W - L - R);
  for (let k = 0; k <= 4; k++) {
    const y = T + (k / 4) * (H - T - B);
    svg.append(s('line', { class: 'grid', x1: L, x2: W - R, y1: y, y2: y }));
  }
  series.forEach((se, idx) => {
    const max = se.max || Math.max(1e-9, ...se.points.filter((v) => v !== null));
    const y = (v) => T + (1 - v / max) * (H - T - B);
    if (se.bars) {
      const bw = Math.max(4, (W - L - R) / labels.length * 0.55);
      se.points.forEach((v, i) => { if (v) svg.append(s('rect', { x: x(i) - bw / 2, y: y(v), width: bw, height: H - B - y(v), fill: se.color, opacity: 0.8, rx: 2 })); });
    } else {
      // null is "no value that day": the line breaks there.
      let d = '', pen = false;
      se.points.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
        pen = true;
      });
      svg.append(s('path', { d, fill: 'none', stroke: se.color, 'stroke-width': 2 }));
      se.points.forEach((v, i) => { if (v !== null) svg.append(s('circle', { cx: x(i), cy: y(v), r: 3.5, fill: se.color })); });
    }
    const ax = idx === 0 ? L - 6 : W - R + 6;
    svg.append(s('text', { x: ax, y: T + 4, 'text-anchor': idx === 0 ? 'end' : 'start', fill: se.color }, se.fmt ? se.fmt(max) : String(max)));
    svg.append(s('text', { x: ax, y: H - B, 'text-anchor': idx === 0 ? 'end' : 'start', fill: se.color }, '0'));
  });
  const step = Math.ceil(labels.length / 8);
  labels.forEach((l, i) => { if (i % step === 0) svg.append(s('text', { x: x(i), y: H - B + 16, 'text-anchor': 'middle' }, l)); });
  return svg;
}
