// The Encore dashboard: reads the JSON API with fetch and draws every chart
// as SVG, each with its figures in a table. No framework, no build step.
'use strict';

const KEY_STORAGE = 'encore-api-key';
const SVG_NS = 'http://www.w3.org/2000/svg';
const STAGE_ORDER = ['new', 'active', 'dormant', 'at_risk', 'lost'];

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || '';
  } catch (_) {
    return '';
  }
}

// Sends a GET to the API with the key, if any; answers the Response, or
// throws an ApiError carrying the API's JSON error message.
async function apiFetch(path, signal) {
  const headers = { Accept: 'application/json' };
  const key = apiKey();
  if (key) headers.Authorization = 'Bearer ' + key;
  let res;
  try {
    res = await fetch(path, { headers, signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'the server cannot be reached (' + e.message + ')');
  }
  if (!res.ok) {
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    const message = body && typeof body.message === 'string' ? body.message : 'HTTP ' + res.status;
    const code = body && typeof body.code === 'string' ? body.code : 'http_' + res.status;
    if (res.status === 401) showKeyPanel(message);
    throw new ApiError(res.status, code, message);
  }
  return res;
}

async function api(path) {
  return (await apiFetch(path)).json();
}

// ---------------------------------------------------------------- DOM helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(node, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function errorBox(err, what) {
  const text = err instanceof ApiError && err.code !== 'network'
    ? err.message + ' (' + err.code + ')'
    : String(err.message || err);
  return el('div', { class: 'error', role: 'alert' },
    el('strong', { text: (what || 'Error') + ': ' }), el('span', { class: 'error-message', text }));
}

// ---------------------------------------------------------------- formats

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const fmtInt = (v) => (isNum(v) ? Math.round(v).toLocaleString('en-US') : '–');
const fmtMoney = (v) => (isNum(v) ? v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : '–');
// Short numbers for chart axes: 12,000 -> 12K.
const fmtShort = (v) => (isNum(v) ? new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 }).format(v) : '–');
const fmtPct = (v) => (isNum(v) ? (v * 100).toFixed(1) + '%' : '–');
const fmtNum = (v, d) => (isNum(v) ? v.toFixed(d) : '–');
const day = (t) => (typeof t === 'string' ? t.slice(0, 10) : '–');
const label = (s) => String(s).replace(/_/g, ' ');

// A value shown on the page, with the API's raw value beside it.
function field(name, raw, shown) {
  return el('dd', { 'data-field': name, 'data-value': raw === null || raw === undefined ? '' : String(raw), text: shown });
}

function facts(rows) {
  const dl = el('dl', { class: 'facts' });
  for (const [title, name, raw, shown] of rows) {
    dl.append(el('div', {}, el('dt', { text: title }), field(name, raw, shown)));
  }
  return dl;
}

// ---------------------------------------------------------------- charts

// A figure: the SVG chart (marks carry class "mark"), then the same figures
// in a table that screen readers and keyboards reach. `tables` is one table,
// or several as [[name, table], ...] (each folded under its own name).
function figure(id, title, caption, chart, tables) {
  chart.setAttribute('role', 'img');
  chart.setAttribute('aria-label', title + ': the figures are in the ' + (Array.isArray(tables) ? 'tables' : 'table') + ' below the chart');
  const folded = (Array.isArray(tables) ? tables : [[title, tables]]).map(([name, t]) =>
    el('details', {}, el('summary', { text: 'Table: ' + name }), el('div', { class: 'table-wrap' }, t)));
  return el('figure', { class: 'chart', id },
    el('figcaption', {}, el('h3', { text: title }), caption ? el('p', { class: 'note', text: caption }) : null),
    el('div', { class: 'chart-box' }, chart),
    folded);
}

function table(headers, rows) {
  return el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c, i) => (i === 0 ? el('th', { scope: 'row', text: c }) : el('td', { text: c })))))));
}

function withId(id, node) {
  node.id = id;
  return node;
}

// Vertical bars: categories along x, one bar a series per category.
function columnChart(categories, series, format, yMax) {
  const W = 760, H = 280, left = 44, right = 8, top = 22, bottom = 46;
  const max = yMax || Math.max(1e-9, ...series.flatMap((s) => s.values.filter(isNum)));
  const band = (W - left - right) / Math.max(1, categories.length);
  const bar = Math.max(2, (band * 0.8) / series.length);
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot' });
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    g.append(svg('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), class: 'gridline' }),
      svg('text', { x: left - 4, y: y(v) + 4, class: 'axis', 'text-anchor': 'end', text: format(v) }));
  }
  // A label every `every` bands, so that no two overlap: about 0.58 em a
  // character (digits) at the axis' 11 units, and a small gap.
  const widest = Math.max(1, ...categories.map((c) => String(c).length)) * 11 * 0.58 + 4;
  const every = Math.max(Math.ceil(categories.length / 14), Math.ceil(widest / band));
  categories.forEach((c, i) => {
    const x0 = left + i * band + band * 0.1;
    series.forEach((s, j) => {
      const v = isNum(s.values[i]) ? s.values[i] : 0;
      const x = x0 + j * bar;
      g.append(svg('rect', { x, y: y(v), width: bar - 1, height: Math.max(0, y(0) - y(v)), class: 'mark ' + s.cls },
        svg('title', { text: `${s.name}, ${c}: ${format(v)}` })));
      if (categories.length * series.length <= 30) {
        g.append(svg('text', { x: x + bar / 2, y: y(v) - 3, class: 'value', 'text-anchor': 'middle', text: format(v) }));
      }
    });
    if (i % every === 0) {
      g.append(svg('text', { x: left + i * band + band / 2, y: H - bottom + 16, class: 'axis', 'text-anchor': 'middle', text: c }));
    }
  });
  if (series.length > 1) {
    series.forEach((s, j) => {
      const x = left + j * 190;
      g.append(svg('rect', { x, y: H - 18, width: 12, height: 12, class: s.cls }),
        svg('text', { x: x + 16, y: H - 8, class: 'axis', text: s.name }));
    });
  }
  return g;
}

// Horizontal bars with a label on the left and the value on the right.
function barChart(rows, format) {
  const W = 760, row = 28, left = 170, right = 150;
  const H = rows.length * row + 8;
  const max = Math.max(1e-9, ...rows.map((r) => r.value));
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot' });
  rows.forEach((r, i) => {
    const y = 4 + i * row;
    const w = ((W - left - right) * Math.max(0, r.value)) / max;
    g.append(svg('text', { x: left - 8, y: y + 18, class: 'axis', 'text-anchor': 'end', text: r.label }),
      svg('rect', { x: left, y: y + 4, width: Math.max(1, w), height: row - 8, class: 'mark ' + (r.cls || 'series-a') },
        svg('title', { text: `${r.label}: ${r.text || format(r.value)}` })),
      svg('text', { x: left + w + 6, y: y + 18, class: 'value', text: r.text || format(r.value) }));
  });
  return g;
}

// Cohort retention: one row a first-purchase month, one cell a month since.
function heatmap(cohorts) {
  const cols = Math.max(1, ...cohorts.map((c) => c.retention.length));
  const cell = 44, left = 70, top = 34, W = left + cols * cell + 8;
  const H = top + cohorts.length * 24 + 8;
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot heat' });
  g.append(svg('text', { x: left, y: 12, class: 'axis', text: 'months since the first purchase →' }));
  for (let k = 0; k < cols; k++) {
    g.append(svg('text', { x: left + k * cell + cell / 2, y: top - 6, class: 'axis', 'text-anchor': 'middle', text: k }));
  }
  cohorts.forEach((c, i) => {
    const y = top + i * 24;
    g.append(svg('text', { x: left - 6, y: y + 16, class: 'axis', 'text-anchor': 'end', text: c.cohort }));
    c.retention.forEach((r, k) => {
      const shade = Math.min(5, Math.floor(r * 5.0001 + (k === 0 ? 0 : 0.5)));
      g.append(svg('rect', { x: left + k * cell, y, width: cell - 2, height: 22, class: `mark heat-${shade}` },
        svg('title', { text: `cohort ${c.cohort}, month ${k}: ${fmtPct(r)} (${c.active[k]} of ${c.customers})` })),
      svg('text', { x: left + k * cell + cell / 2, y: y + 15, class: 'cell ' + (shade >= 3 ? 'light' : ''), 'text-anchor': 'middle', text: (r * 100).toFixed(0) + '%' }));
    });
  });
  return g;
}

// The customer's timeline: every order (circle) and the predicted next
// purchase (diamond) on the top row; then one row an item, its last purchase
// (circle) and its due date (diamond); a line at the model's reference time.
// `orders` is the answer of /orders (newest first, maybe truncated).
function timeline(profile, next, items, orders) {
  const t = (s) => Date.parse(s.length <= 10 ? s + 'T00:00:00Z' : s);
  const times = [t(profile.first_purchase), t(profile.last_purchase), t(profile.as_of)];
  if (next.predicted_next_purchase_date) times.push(t(next.predicted_next_purchase_date));
  for (const it of items) times.push(t(it.last_purchase), t(it.due_date));
  for (const o of orders.orders) times.push(t(o.time));
  const lo = Math.min(...times), hi = Math.max(...times);
  const span = Math.max(hi - lo, 86400000);
  const W = 760, left = 190, right = 16, row = 24, top = 28;
  const H = top + (items.length + 1) * row + 30;
  const x = (s) => left + ((W - left - right) * (t(s) - lo)) / span;
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot timeline' });
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const ms = lo + (span * i) / ticks;
    const xx = left + ((W - left - right) * i) / ticks;
    g.append(svg('line', { x1: xx, x2: xx, y1: top - 6, y2: H - 26, class: 'gridline' }),
      svg('text', { x: xx, y: H - 10, class: 'axis', 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle', text: new Date(ms).toISOString().slice(0, 10) }));
  }
  const asOf = x(profile.as_of);
  g.append(svg('line', { x1: asOf, x2: asOf, y1: 8, y2: H - 26, class: 'asof' }),
    svg('text', { x: asOf - 4, y: 18, class: 'axis', 'text-anchor': 'end', text: 'model data end ' + day(profile.as_of) }));
  const y0 = top + row / 2;
  const shown = orders.truncated ? `${orders.orders.length} of ${orders.total} orders` : `orders (${orders.total})`;
  g.append(svg('text', { x: left - 8, y: y0 + 4, class: 'axis', 'text-anchor': 'end', text: shown }));
  // Oldest first, so that the newest is drawn on top.
  for (const o of [...orders.orders].reverse()) {
    g.append(svg('circle', { cx: x(o.time), cy: y0, r: 5, class: 'mark bought order' },
      svg('title', { text: `order ${o.date}: ${fmtInt(o.lines)} ${o.lines === 1 ? 'line' : 'lines'}, ${fmtNum(o.units, 0)} units, value ${fmtMoney(o.value)}` })));
  }
  if (next.predicted_next_purchase_date) {
    const px = x(next.predicted_next_purchase_date);
    g.append(svg('path', { d: `M${px} ${y0 - 7} L${px + 7} ${y0} L${px} ${y0 + 7} L${px - 7} ${y0} Z`, class: 'mark predicted' },
      svg('title', { text: 'predicted next purchase ' + next.predicted_next_purchase_date })));
  }
  items.forEach((it, i) => {
    const y = top + (i + 1) * row + row / 2;
    const name = (it.title || it.item_id).slice(0, 26);
    g.append(svg('text', { x: left - 8, y: y + 4, class: 'axis', 'text-anchor': 'end', text: name }));
    const a = x(it.last_purchase), b = x(it.due_date);
    g.append(svg('line', { x1: a, x2: b, y1: y, y2: y, class: 'span' }));
    g.append(svg('circle', { cx: a, cy: y, r: 5, class: 'mark bought' }, svg('title', { text: `${name}: last bought ${it.last_purchase} (${it.purchases} purchases)` })));
    g.append(svg('path', { d: `M${b} ${y - 6} L${b + 6} ${y} L${b} ${y + 6} L${b - 6} ${y} Z`, class: 'mark due' },
      svg('title', { text: `${name}: due ${it.due_date}` })));
  });
  return g;
}

// ---------------------------------------------------------------- key panel

function showKeyPanel(reason) {
  const panel = document.getElementById('key-panel');
  panel.hidden = false;
  document.getElementById('key-reason').textContent = reason
    ? 'The API answered: ' + reason
    : 'This server has API keys: enter a read key to see customer data.';
  document.getElementById('key-input').focus();
}

function setupKeyPanel() {
  document.getElementById('key-toggle').addEventListener('click', () => {
    const panel = document.getElementById('key-panel');
    if (panel.hidden) showKeyPanel('');
    else panel.hidden = true;
  });
  document.getElementById('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = document.getElementById('key-input');
    try {
      sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    } catch (_) { /* storage off: nothing to keep */ }
    input.value = '';
    document.getElementById('key-panel').hidden = true;
    render();
  });
  document.getElementById('key-forget').addEventListener('click', () => {
    try {
      sessionStorage.removeItem(KEY_STORAGE);
    } catch (_) { /* nothing kept */ }
    document.getElementById('key-input').value = '';
    render();
  });
}

// ---------------------------------------------------------------- pages

// The served model's description, or null after appending the API's error
// to `main` (the first request of the Overview and Model pages).
async function modelOrError(main) {
  try {
    return await api('/v1/model');
  } catch (e) {
    main.append(errorBox(e, 'The model'));
    return null;
  }
}

async function overview(main) {
  main.append(el('h1', { text: 'Overview' }));
  const model = await modelOrError(main);
  if (!model) return;
  const d = model.data || {};
  main.append(el('section', { 'aria-labelledby': 'h-model' }, el('h2', { id: 'h-model', text: 'Model and data window' }),
    facts([
      ['Model version', 'model_version', model.model_version, model.model_version],
      ['Trained', 'created_at', model.created_at, day(model.created_at)],
      ['Data from', 'first_purchase', d.first_purchase, day(d.first_purchase)],
      ['Data to', 'last_purchase', d.last_purchase, day(d.last_purchase)],
      ['Customers', 'customers', model.customers, fmtInt(model.customers)],
      ['Items', 'items', model.items, fmtInt(model.items)],
      ['Orders', 'orders', d.orders, fmtInt(d.orders)],
    ])));
  let k;
  try {
    k = await api('/v1/kpis');
  } catch (e) {
    main.append(errorBox(e, 'The KPIs'));
    return;
  }
  const o = k.overall;
  main.append(el('section', { 'aria-labelledby': 'h-rates' },
    el('h2', { id: 'h-rates', text: 'Repurchase rate by month' }),
    el('p', { class: 'note' },
      el('strong', { text: 'User-level rate' }), ': customers with two or more orders in the month / customers with an order in the month. ',
      el('strong', { text: 'Order-level rate' }), ': second and later orders of each customer in the month / all orders of the month. ',
      `Over the whole data: user-level ${fmtPct(o.user_repurchase_rate)} of ${fmtInt(o.buyers)} buyers, order-level ${fmtPct(o.order_repurchase_rate)} of ${fmtInt(o.orders)} orders.`),
    figure('chart-monthly', 'User-level and order-level rate', null,
      columnChart(k.monthly.map((m) => m.period), [
        { name: 'user-level', cls: 'series-a', values: k.monthly.map((m) => m.user_repurchase_rate) },
        { name: 'order-level', cls: 'series-b', values: k.monthly.map((m) => m.order_repurchase_rate) },
      ], (v) => (v * 100).toFixed(0) + '%', 1),
      table(['month', 'buyers', 'repeat buyers', 'user-level rate', 'orders', 'repeat orders', 'order-level rate'],
        k.monthly.map((m) => [m.period, fmtInt(m.buyers), fmtInt(m.repeat_buyers), fmtPct(m.user_repurchase_rate), fmtInt(m.orders), fmtInt(m.repeat_orders), fmtPct(m.order_repurchase_rate)])))));

  const cols = Math.max(1, ...k.cohorts.map((c) => c.retention.length));
  main.append(el('section', { 'aria-labelledby': 'h-cohorts' },
    el('h2', { id: 'h-cohorts', text: 'Cohort retention' }),
    figure('chart-cohorts', 'Share of each cohort buying k months later',
      'Customers whose first order is in the month of the row; each cell is the share of them with an order k months later.',
      heatmap(k.cohorts),
      table(['cohort', 'customers', ...Array.from({ length: cols }, (_, i) => 'month ' + i)],
        k.cohorts.map((c) => [c.cohort, fmtInt(c.customers), ...Array.from({ length: cols }, (_, i) => (i < c.retention.length ? fmtPct(c.retention[i]) : ''))])))));

  const stages = Object.keys(k.stage_counts).sort((a, b) => rank(STAGE_ORDER, a) - rank(STAGE_ORDER, b));
  const total = stages.reduce((s, n) => s + k.stage_counts[n], 0);
  main.append(el('section', { 'aria-labelledby': 'h-stages' },
    el('h2', { id: 'h-stages', text: 'Lifecycle stages' }),
    figure('chart-stages', 'Customers by lifecycle stage',
      'Each customer is placed by the time since their last purchase relative to their own usual gap between purchases.',
      barChart(stages.map((s, i) => ({ label: label(s), value: k.stage_counts[s], cls: 'stage-' + i, text: `${fmtInt(k.stage_counts[s])} (${fmtPct(k.stage_counts[s] / total)})` })), fmtInt),
      table(['stage', 'customers', 'share'], stages.map((s) => [label(s), fmtInt(k.stage_counts[s]), fmtPct(k.stage_counts[s] / total)])))));

  const segs = k.segment_spend || [];
  main.append(el('section', { 'aria-labelledby': 'h-rfm' },
    el('h2', { id: 'h-rfm', text: 'RFM segments' }),
    figure('chart-segments', 'Customers and spend by RFM segment', 'Bars: customers; the text gives their total net spend.',
      barChart(segs.map((s) => ({ label: label(s.segment), value: s.customers, text: `${fmtInt(s.customers)} · ${fmtMoney(s.total_spend)}` })), fmtInt),
      table(['segment', 'customers', 'total spend', 'average spend'], segs.map((s) => [label(s.segment), fmtInt(s.customers), fmtMoney(s.total_spend), fmtMoney(s.average_spend)])))));

  const clv = k.clv_distribution || { bins: [] };
  const binLabel = (b) => (b.to === null ? '≥ ' + fmtInt(b.from) : fmtInt(b.from) + '–' + fmtInt(b.to));
  const binAxis = (b) => (b.to === null ? '≥ ' + fmtShort(b.from) : fmtShort(b.from) + '–' + fmtShort(b.to));
  main.append(el('section', { 'aria-labelledby': 'h-clv' },
    el('h2', { id: 'h-clv', text: 'Customer lifetime value' }),
    clv.bins.length === 0
      ? el('p', { text: 'The model has no CLV (it needs both the repeat-buying and the Gamma-Gamma fit).' })
      : figure('chart-clv', 'CLV distribution',
        `${fmtInt(clv.customers)} customers with a CLV (mean ${fmtMoney(clv.mean)}, 99th percentile ${fmtMoney(clv.p99)}); ${fmtInt(clv.without_clv)} without. The last bin is open-ended.`,
        columnChart(clv.bins.map(binAxis), [{ name: 'customers', cls: 'series-a', values: clv.bins.map((b) => b.customers) }], fmtInt),
        table(['CLV', 'customers'], clv.bins.map((b) => [binLabel(b), fmtInt(b.customers)])))));
}

function rank(order, name) {
  const i = order.indexOf(name);
  return i < 0 ? order.length : i;
}

function itemButton(item, onPick) {
  const text = item.title ? `${item.title} (${item.item_id})` : item.item_id;
  return el('button', { type: 'button', class: 'item', 'data-item': item.item_id, text, onclick: () => onPick(item) });
}

async function customerPage(main, id) {
  main.append(el('h1', { text: 'Customer' }));
  const input = el('input', { id: 'customer-id', name: 'customer', required: true, autocomplete: 'off', value: id || '' });
  main.append(el('form', {
    class: 'inline', id: 'customer-form', role: 'search', onsubmit: (e) => {
      e.preventDefault();
      const v = input.value.trim();
      if (v) location.hash = '#/customer/' + encodeURIComponent(v);
    },
  }, el('label', { for: 'customer-id', text: 'Customer id' }), input, el('button', { type: 'submit', text: 'Look up' })));
  if (!id) {
    main.append(el('p', { class: 'note', text: 'Enter a customer id to see the profile, the purchase timeline, the buy-again items, the next-purchase prediction and the “for you” list.' }));
    return;
  }
  const enc = encodeURIComponent(id);
  let profile, orders, next, again, forYou;
  try {
    [profile, orders, next, again, forYou] = await Promise.all([
      api(`/v1/customers/${enc}/profile`),
      api(`/v1/customers/${enc}/orders?limit=1000`),
      api(`/v1/customers/${enc}/next-purchase?k=10`),
      api(`/v1/customers/${enc}/buy-again?k=20`),
      api(`/v1/customers/${enc}/recommendations?k=10&include_purchased=true`),
    ]);
  } catch (e) {
    main.append(errorBox(e, `Customer ${id}`));
    return;
  }
  const similar = el('section', { id: 'similar', 'aria-live': 'polite', 'aria-labelledby': 'h-similar' },
    el('h2', { id: 'h-similar', text: 'Similar items' }),
    el('p', { class: 'note', text: 'Choose any item below to see the items most similar to it.' }));
  const pick = async (item) => {
    similar.replaceChildren(el('h2', { id: 'h-similar', text: 'Similar to ' + (item.title || item.item_id) }));
    try {
      const s = await api(`/v1/items/${encodeURIComponent(item.item_id)}/similar?k=5`);
      similar.append(el('div', { class: 'table-wrap' }, table(['item', 'title', 'category', 'similarity'],
        s.items.map((x) => [x.item_id, x.title || '–', x.category || '–', fmtNum(x.score, 3)]))));
    } catch (e) {
      similar.append(errorBox(e, 'Similar items'));
    }
    similar.scrollIntoView({ block: 'nearest' });
  };
  main.append(el('section', { 'aria-labelledby': 'h-profile' }, el('h2', { id: 'h-profile', text: `Profile of ${id}` }),
    facts([
      ['RFM segment', 'segment', profile.segment, label(profile.segment)],
      ['RFM score', 'rfm', profile.rfm.score, profile.rfm.score],
      ['Behaviour segment', 'behaviour_segment', profile.behaviour_segment, profile.behaviour_segment || '–'],
      ['Lifecycle stage', 'lifecycle_stage', profile.lifecycle_stage, label(profile.lifecycle_stage)],
      ['Churn risk', 'churn_risk', profile.churn_risk, fmtPct(profile.churn_risk)],
      ['P(alive)', 'p_alive', profile.p_alive, fmtPct(profile.p_alive)],
      ['CLV', 'clv', profile.clv, fmtMoney(profile.clv)],
      ['Orders', 'orders', profile.orders, fmtInt(profile.orders)],
      ['Total spend', 'total_spend', profile.total_spend, fmtMoney(profile.total_spend)],
      ['Average order', 'average_order_value', profile.average_order_value, fmtMoney(profile.average_order_value)],
      ['Usual gap (days)', 'typical_gap_days', profile.typical_gap_days, fmtNum(profile.typical_gap_days, 1)],
      ['As of', 'as_of', profile.as_of, day(profile.as_of)],
    ])));
  main.append(el('section', { 'aria-labelledby': 'h-next' }, el('h2', { id: 'h-next', text: 'Next purchase' }),
    facts([
      ['Predicted next purchase', 'predicted_next_purchase_date', next.predicted_next_purchase_date, next.predicted_next_purchase_date || 'none within a year'],
      ['Buys within 30 days', 'buy_within_30d_probability', next.buy_within_30d_probability, fmtPct(next.buy_within_30d_probability)],
      ['Expected purchases, 30 days', 'expected_purchases_30d', next.expected_purchases_30d, fmtNum(next.expected_purchases_30d, 2)],
      ['Expected purchases, 90 days', 'expected_purchases_90d', next.expected_purchases_90d, fmtNum(next.expected_purchases_90d, 2)],
    ]),
    el('h3', { text: 'Suggested next items' }),
    el('ol', { class: 'items', id: 'next-items' }, next.recommended_items.map((x) => el('li', {}, itemButton(x, pick), x.reason ? el('span', { class: 'note', text: ' ' + label(x.reason) }) : null)))));
  main.append(el('section', { 'aria-labelledby': 'h-timeline' }, el('h2', { id: 'h-timeline', text: 'Purchase timeline' }),
    figure('chart-timeline', 'Orders and due dates',
      'Top row: every order (circle; hover for its lines and value) and the predicted next purchase (diamond)' +
        (orders.truncated ? `: the newest ${orders.orders.length} of ${orders.total} orders` : '') +
        '. Then each item the customer buys again: its last purchase (circle) and its due date (diamond).',
      timeline(profile, next, again.items, orders),
      [[orders.truncated ? `Orders (the newest ${orders.orders.length} of ${orders.total})` : `Orders (${orders.total})`,
        withId('orders-table', table(['date', 'lines', 'units', 'value'],
          orders.orders.map((o) => [o.date, fmtInt(o.lines), fmtNum(o.units, Number.isInteger(o.units) ? 0 : 2), fmtMoney(o.value)])))],
      ['Buy-again items',
        withId('due-table', table(['item', 'title', 'purchases', 'last purchase', 'due date', 'due score'],
          again.items.map((x) => [x.item_id, x.title || '–', fmtInt(x.purchases), x.last_purchase, x.due_date, fmtNum(x.score, 3)])))]])));
  main.append(el('section', { 'aria-labelledby': 'h-again' }, el('h2', { id: 'h-again', text: 'Buy again' }),
    el('ol', { class: 'items', id: 'buy-again' }, again.items.map((x) => el('li', {}, itemButton(x, pick), el('span', { class: 'note', text: ` due ${x.due_date}` }))))));
  main.append(el('section', { 'aria-labelledby': 'h-foryou' }, el('h2', { id: 'h-foryou', text: 'For you' }),
    el('p', { class: 'note', text: `The repeat-aware list (source: ${forYou.source}${forYou.experiment ? ', experiment ' + forYou.experiment + ' variant ' + forYou.variant : ''}).` }),
    el('ol', { class: 'items', id: 'for-you' }, forYou.items.map((x) => el('li', {}, itemButton(x, pick), x.category ? el('span', { class: 'note', text: ' ' + x.category } ) : null)))));
  main.append(similar);
}

const STAGES = ['new', 'active', 'dormant', 'at_risk', 'lost'];

function audienceQuery(form) {
  const q = new URLSearchParams();
  const stages = STAGES.filter((s) => form.querySelector(`input[name=stage][value=${s}]`).checked);
  q.set('stage', stages.join(','));
  for (const name of ['segment', 'min_p_alive', 'max_churn_risk', 'min_clv', 'k', 'limit', 'as_of']) {
    const v = form.elements[name].value.trim();
    if (v) q.set(name, v);
  }
  return q;
}

async function audiencesPage(main) {
  main.append(el('h1', { text: 'Audiences' }),
    el('p', { class: 'note', text: 'A reactivation audience: customers of the chosen lifecycle stages and segments, highest CLV first, each with a send date and personal items. The downloads hold the same rows as encore-train audience with the same filters.' }));
  let segments = [];
  try {
    const k = await api('/v1/kpis');
    segments = (k.segment_spend || []).map((s) => s.segment);
  } catch (e) {
    main.append(errorBox(e, 'The segments'));
  }
  const num = (name, text, attrs) => el('div', { class: 'field' }, el('label', { for: 'aud-' + name, text }), el('input', Object.assign({ id: 'aud-' + name, name, inputmode: 'decimal' }, attrs || {})));
  const form = el('form', { id: 'audience-form' },
    el('fieldset', {}, el('legend', { text: 'Lifecycle stages' }),
      STAGES.map((s) => el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'stage', value: s, checked: s === 'dormant' || s === 'at_risk' }), ' ' + label(s)))),
    el('div', { class: 'form-grid' },
      el('div', { class: 'field' }, el('label', { for: 'aud-segment', text: 'RFM segments (comma-separated, empty: all)' }),
        el('input', { id: 'aud-segment', name: 'segment', list: 'segment-names', autocomplete: 'off' }),
        el('datalist', { id: 'segment-names' }, segments.map((s) => el('option', { value: s })))),
      num('min_p_alive', 'Minimum P(alive), 0 to 1'),
      num('max_churn_risk', 'Maximum churn risk, 0 to 1'),
      num('min_clv', 'Minimum CLV'),
      num('k', 'Items per customer', { value: '5', inputmode: 'numeric' }),
      num('limit', 'At most this many customers', { inputmode: 'numeric' }),
      num('as_of', 'Campaign start (YYYY-MM-DD)', { inputmode: 'text' })),
    el('div', { class: 'actions' },
      el('button', { type: 'submit', id: 'audience-build', text: 'Build the audience' }),
      el('button', { type: 'button', id: 'download-csv', class: 'secondary', text: 'Download CSV', onclick: () => download('csv') }),
      el('button', { type: 'button', id: 'download-ndjson', class: 'secondary', text: 'Download NDJSON', onclick: () => download('ndjson') })));
  const out = el('div', { id: 'audience-result', 'aria-live': 'polite' });
  main.append(form, out);

  async function download(format) {
    const q = audienceQuery(form);
    q.set('format', format);
    try {
      const res = await apiFetch('/v1/audiences/reactivation?' + q);
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = el('a', { href: url, download: 'audience.' + (format === 'csv' ? 'csv' : 'ndjson') });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      out.replaceChildren(el('p', { id: 'download-done', text: `Downloaded ${res.headers.get('x-encore-audience-size')} customers as ${format}.` }));
    } catch (e) {
      out.replaceChildren(errorBox(e, 'The audience'));
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    out.replaceChildren(el('p', { text: 'Building…' }));
    const q = audienceQuery(form);
    q.set('format', 'ndjson');
    const rows = [];
    let size;
    try {
      const res = await apiFetch('/v1/audiences/reactivation?' + q);
      size = Number(res.headers.get('x-encore-audience-size'));
      // Reads only the first 20 lines of the stream, then lets it go.
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      while (rows.length < 20) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0 && rows.length < 20) {
          rows.push(JSON.parse(buffer.slice(0, nl)));
          buffer = buffer.slice(nl + 1);
        }
      }
      reader.cancel().catch(() => {});
    } catch (err) {
      out.replaceChildren(errorBox(err, 'The audience'));
      return;
    }
    out.replaceChildren(
      el('p', {}, el('strong', { text: 'Audience size: ' }), el('span', { id: 'audience-size', text: fmtInt(size) }), ` customers; the first ${rows.length}:`),
      el('div', { class: 'table-wrap' }, table(['customer', 'stage', 'segment', 'CLV', 'churn risk', 'last purchase', 'send date', 'items'],
        rows.map((r) => [r.customer_id, label(r.lifecycle_stage || r.stage || ''), label(r.segment || ''), fmtMoney(r.clv), fmtPct(r.churn_risk), day(r.last_purchase), day(r.send_date), (r.items || []).map((x) => x.item_id || x).join(', ')]))));
  });
}

async function modelPage(main) {
  main.append(el('h1', { text: 'Model' }));
  const model = await modelOrError(main);
  if (!model) return;
  const r = model.reloads || {};
  const last = r.last_error;
  main.append(el('section', { 'aria-labelledby': 'h-version' }, el('h2', { id: 'h-version', text: 'Serving version' }),
    facts([
      ['Model version', 'model_version', model.model_version, model.model_version],
      ['Trained', 'created_at', model.created_at, model.created_at],
      ['Encore', 'encore_version', model.encore_version, model.encore_version],
      ['“For you” model', 'for_you', model.for_you && model.for_you.model, (model.for_you && model.for_you.model) || '–'],
      ['Reloads', 'reloads', r.succeeded, `${fmtInt(r.succeeded)} succeeded, ${fmtInt(r.failed)} failed`],
      ['Last reload error', 'last_reload_error', last ? last.error : '', last ? `${last.at}: ${last.error}` : 'none'],
    ])));

  const m = model.metrics || {};
  const rows = Array.isArray(m.models) ? m.models : [];
  const ks = Array.isArray(m.ks) && m.ks.length ? m.ks : [10];
  const names = ['recall', 'ndcg', 'hit_rate', 'map'];
  const cols = ks.flatMap((kk) => names.map((n) => `${n}@${kk}`));
  const holdout = el('section', { 'aria-labelledby': 'h-holdout' }, el('h2', { id: 'h-holdout', text: 'Holdout metrics against the baselines' }));
  if (rows.length === 0) {
    holdout.append(el('p', { text: 'This model was trained without a holdout evaluation.' }));
  } else {
    const key = `recall@${ks[0]}`;
    holdout.append(el('p', { class: 'note', text: (m.split && m.split.description ? 'Split: ' + m.split.description + '. ' : '') + `${fmtInt(m.customers_scored)} customers scored.` }),
      figure('chart-holdout', `Recall@${ks[0]} by model`, 'The models served and the simple baselines, on the same time-ordered holdout.',
        barChart(rows.map((x) => ({ label: x.model, value: x.metrics[key] || 0, text: fmtNum(x.metrics[key], 4) })), (v) => fmtNum(v, 4)),
        table(['model', ...cols], rows.map((x) => [x.model, ...cols.map((c) => fmtNum(x.metrics[c], 4))]))));
  }
  main.append(holdout);

  const history = el('section', { 'aria-labelledby': 'h-history' }, el('h2', { id: 'h-history', text: 'Promotion history' }));
  main.append(history);
  try {
    const h = await api('/v1/model/history');
    if (h.source !== 'store') {
      history.append(el('p', { text: 'This server reads one model directory, not a model store: there is no promotion history.' }));
    } else if (h.promotions.length === 0) {
      history.append(el('p', { text: 'No version of the store has been made current yet.' }));
    } else {
      history.append(el('p', { class: 'note', text: 'Every time a version was made current, newest first. The promotion gate scores the candidate against the version serving then, on the purchases that version never saw (Recall@K of each list).' }),
        el('div', { class: 'table-wrap', id: 'promotions' }, table(['made current', 'version', 'gate', 'against', 'scores (candidate / previous)'],
        h.promotions.map((p) => {
          const g = p.gate;
          return [p.at, p.version + (p.version === h.current ? ' (current)' : ''),
            g ? (g.promoted ? 'passed' : 'refused') : (p.error ? p.error : 'no gate (first version, or published without one)'),
            g ? g.previous_version : '–',
            g ? g.lists.map((l) => `${l.list} ${l.metric}: ${fmtNum(l.candidate, 4)} / ${fmtNum(l.previous, 4)}`).join('; ') : '–'];
        }))));
    }
  } catch (e) {
    history.append(errorBox(e, 'The promotion history'));
  }

  const exps = el('section', { 'aria-labelledby': 'h-exp' }, el('h2', { id: 'h-exp', text: 'Running experiments' }));
  main.append(exps);
  try {
    const x = await api('/v1/admin/experiments');
    if (x.experiments.length === 0) {
      exps.append(el('p', { text: 'No experiment is running.' }));
    } else {
      exps.append(el('div', { class: 'table-wrap' }, table(['experiment', 'placement', 'control', 'variants'],
        x.experiments.map((s) => [s.name, s.placement || 'recommendations', s.control,
          (s.variant || s.variants || []).map((v) => `${v.name} ${fmtPct(v.share)} (${v.strategy.list}, k ${v.strategy.k})`).join('; ')]))));
    }
    for (const spec of x.experiments) exps.append(await experimentReport(spec.name));
  } catch (e) {
    exps.append(errorBox(e, 'The experiments (an admin route)'));
  }
}

// An estimate and its 95% interval, in percent or money.
const withCi = (est, fmt) => (est && isNum(est.value) ? `${fmt(est.value)} (${fmt(est.ci_low)} to ${fmt(est.ci_high)})` : '–');
const signedPp = (v) => (isNum(v) ? (v >= 0 ? '+' : '') + (v * 100).toFixed(1) + ' pp' : '–');
const signedMoney = (v) => (isNum(v) ? (v >= 0 ? '+' : '') + fmtMoney(v) : '–');
const pValue = (p) => (isNum(p) ? (p < 0.001 ? '< 0.001' : p.toFixed(3)) : '–');

// A difference to control: value, 95% interval, p-value, and * when significant.
function diffText(d, fmt) {
  if (!d || !isNum(d.difference)) return '–';
  return `${fmt(d.difference)} (${fmt(d.ci_low)} to ${fmt(d.ci_high)}), p ${pValue(d.p_value)}${d.significant ? ' *' : ''}`;
}

// The report of one running experiment (GET /v1/admin/experiments/{name}/report),
// or the reason there is none yet.
async function experimentReport(name) {
  const id = 'exp-report-' + name.replace(/[^A-Za-z0-9_-]/g, '_');
  const box = el('div', { class: 'experiment-report', id, 'data-experiment': name },
    el('h3', { text: `Report: ${name}` }));
  let r;
  try {
    r = await api(`/v1/admin/experiments/${encodeURIComponent(name)}/report`);
  } catch (e) {
    // No exposure yet, or no event log: a fact about the server, not a failure.
    if (e.code === 'no_exposures' || e.code === 'events_disabled') {
      box.append(el('p', { class: 'note report-missing', text: `${e.message} (${e.code})` }));
    } else {
      box.append(errorBox(e, `The report of ${name}`));
    }
    return box;
  }
  const srm = r.sample_ratio || {};
  box.append(el('p', { class: srm.mismatch ? 'error' : 'note', role: srm.mismatch ? 'alert' : null,
    text: `${fmtInt(r.customers)} exposed customers, a ${fmtNum(r.window_days, 0)}-day purchase window after each first exposure, control ${r.control}. ` +
      `Sample ratio against the ${srm.expected_from} shares: chi-square ${fmtNum(srm.chi_square, 2)}, p ${pValue(srm.p_value)}` +
      (srm.mismatch ? ': MISMATCH, the assignment or the exposure logging is broken and the differences below cannot be trusted.' : ', no mismatch.') }));
  box.append(el('div', { class: 'table-wrap' }, table(
    ['variant', 'customers', 'conversion (95% CI)', 'revenue per customer (95% CI)', 'repurchase rate (95% CI)'],
    r.variants.map((v) => [v.name, fmtInt(v.customers), withCi(v.conversion, fmtPct), withCi(v.revenue_per_customer, fmtMoney), withCi(v.repurchase_rate, fmtPct)]))));
  if (r.comparisons.length) {
    box.append(el('div', { class: 'table-wrap' }, table(
      ['against control', 'conversion', 'revenue per customer', 'repurchase rate'],
      r.comparisons.map((c) => [c.variant, diffText(c.conversion, signedPp), diffText(c.revenue_per_customer, signedMoney), diffText(c.repurchase_rate, signedPp)]))));
    box.append(el('p', { class: 'note', text: 'Differences are variant minus control with their 95% intervals; * marks p < 0.05. The same figures as encore-train experiment-report.' }));
  }
  for (const n of r.notes || []) box.append(el('p', { class: 'note', text: n }));
  return box;
}

// ---------------------------------------------------------------- router

const PAGES = { overview, customer: customerPage, audiences: audiencesPage, model: modelPage };
let renderCount = 0;

async function render() {
  const main = document.getElementById('main');
  const parts = (location.hash || '#/overview').replace(/^#\/?/, '').split('/');
  const page = PAGES[parts[0]] ? parts[0] : 'overview';
  const arg = parts.length > 1 ? decodeURIComponent(parts.slice(1).join('/')) : '';
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const mine = ++renderCount;
  const content = el('div', { class: 'page', 'data-page': page });
  main.replaceChildren(el('p', { id: 'loading', text: 'Loading…' }));
  try {
    await PAGES[page](content, arg);
  } catch (e) {
    content.append(errorBox(e, 'The page'));
  }
  if (mine !== renderCount) return; // a later navigation won
  content.dataset.ready = 'true';
  content.dataset.render = String(mine);
  // Milliseconds since the navigation started: the load time of a fresh page.
  content.dataset.ms = String(Math.round(performance.now()));
  main.replaceChildren(content);
  document.title = `Encore · ${page[0].toUpperCase()}${page.slice(1)}`;
}

window.addEventListener('hashchange', () => {
  render().then(() => document.getElementById('main').focus({ preventScroll: true }));
});
document.addEventListener('DOMContentLoaded', () => {
  // The skip link moves the focus; following its #main would change the page.
  document.querySelector('.skip').addEventListener('click', (e) => {
    e.preventDefault();
    document.getElementById('main').focus();
  });
  setupKeyPanel();
  render();
});
