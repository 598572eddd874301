// Small SVG charts, drawn by hand: sparklines for the list, line charts for one
// container's graphs, and horizontal bars for disk usage.

const NS = 'http://www.w3.org/2000/svg';

function svg(w, h, cls) {
  const s = document.createElementNS(NS, 'svg');
  s.setAttribute('viewBox', `0 0 ${w} ${h}`);
  s.setAttribute('width', w);
  s.setAttribute('height', h);
  if (cls) s.setAttribute('class', cls);
  return s;
}

function node(tag, attrs, parent) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (parent) parent.appendChild(n);
  return n;
}

function points(values, w, h, max) {
  if (values.length < 2) return '';
  const m = max || Math.max(...values, 1e-9);
  const dx = w / (values.length - 1);
  return values.map((v, i) => `${(i * dx).toFixed(1)},${(h - 1 - (v / m) * (h - 2)).toFixed(1)}`).join(' ');
}

// A sparkline that can be updated in place (set(values)).
export function sparkline(w = 64, h = 18, cls = 'spark') {
  const s = svg(w, h, cls);
  const line = node('polyline', { fill: 'none', 'stroke-width': '1.5' }, s);
  return { node: s, set(values, max) { line.setAttribute('points', points(values, w, h, max)); } };
}

// A line chart of one or two series with a title, the current values and a y scale
// (at least `floor` high, so that an idle container draws flat lines). Labels may hold
// `{}` where the current value goes.
export function lineChart(title, fmt, floor = 1, w = 420, h = 120) {
  const wrap = document.createElement('div');
  wrap.className = 'chart';
  const head = document.createElement('div');
  head.className = 'chart-head';
  wrap.appendChild(head);
  const s = svg(w, h, 'line');
  for (let i = 1; i < 4; i++) node('line', { x1: 0, x2: w, y1: (h * i) / 4, y2: (h * i) / 4, class: 'grid' }, s);
  const lines = [node('polyline', { class: 's0', fill: 'none' }, s), node('polyline', { class: 's1', fill: 'none' }, s)];
  const top = node('text', { x: 4, y: 12, class: 'axis' }, s);
  wrap.appendChild(s);
  return {
    node: wrap,
    set(series, labels = []) {
      const all = series.flat();
      const max = Math.max(...all, floor / 1.1);
      series.forEach((v, i) => lines[i].setAttribute('points', points(v, w, h, max * 1.1)));
      top.textContent = fmt(max * 1.1);
      const now = series.map((v, i) => {
        const value = fmt(v.length ? v[v.length - 1] : 0);
        const label = labels[i] || '{}';
        return `<span class="k${i}">${label.includes('{}') ? label.replace('{}', value) : `${label} ${value}`}</span>`;
      }).join(' ');
      head.innerHTML = `<b>${title}</b> ${now}`;
    },
  };
}

// Horizontal stacked bars: [{label, total, part, partLabel}] (e.g. size and reclaimable).
export function bars(rows, fmt) {
  const w = 820, rowH = 34, h = rows.length * rowH + 4;
  const max = Math.max(...rows.map((r) => r.total), 1);
  const s = svg(w, h, 'bars');
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    node('text', { x: 0, y: y + 13, class: 'label' }, s).textContent = r.label;
    const bw = 420 * (r.total / max);
    node('rect', { x: 150, y, width: Math.max(bw, 1), height: 16, class: 'total' }, s);
    node('rect', { x: 150, y, width: Math.max(420 * (r.part / max), 0), height: 16, class: 'part' }, s);
    node('text', { x: 156 + bw, y: y + 13, class: 'value' }, s).textContent = `${fmt(r.total)} (${fmt(r.part)} ${r.partLabel})`;
  });
  return s;
}
