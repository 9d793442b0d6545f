// SPDX-License-Identifier: Apache-2.0
// The orbit dashboard: runs list, per-run charts (uPlot) of every spectral metric
// with its zone bands behind, loss, grad norm and lr scale, the state timeline as
// coloured bands, burns as markers with their reason, the basin now and ahead,
// the latest spectrum, and 2+ runs side by side. Data: GET api/runs,
// api/runs/NAME/history (backfill), api/config (zones), api/events (live, SSE).
'use strict';

const STATE_FILL = {
  STABLE: 'rgba(46,158,91,0.14)', DRIFTING: 'rgba(201,162,39,0.25)', WARNING: 'rgba(230,126,34,0.28)',
  CRITICAL: 'rgba(208,52,44,0.32)', RECOVERING: 'rgba(58,123,213,0.22)', STALE: 'rgba(136,136,136,0.22)',
  MONITOR: 'rgba(107,91,213,0.12)',
};
const ZONE_FILL = { good: 'rgba(46,158,91,0.07)', warning: 'rgba(230,126,34,0.11)', danger: 'rgba(208,52,44,0.11)' };
const RUN_COLORS = ['#2b6cb0', '#d0342c', '#2e9e5b', '#8e44ad', '#e67e22', '#16a085', '#7f8c8d'];
// One chart per series the page keeps; metric names as in protocol/SPEC.md 5.4.1.
const CHARTS = [
  { key: 'entropy', title: 'Spectral entropy (nats)' },
  { key: 'effective_rank', title: 'Effective rank' },
  { key: 'dominant_ratio', title: 'Dominant ratio' },
  { key: 'phi_proximity', title: 'φ-proximity' },
  { key: 'loop_rate', title: 'Loop rate' },
  { key: 'loss', title: 'Loss' },
  { key: 'grad_norm', title: 'Gradient norm' },
  { key: 'lr_scale', title: 'lr scale in effect' },
];
const KEPT = CHARTS.map((c) => c.key).concat(['health', 'steps_to_danger']);

const dash = {
  zones: {},
  runs: new Map(),      // name -> run (see newRun)
  primary: null,        // the run opened
  compare: new Set(),   // ticked runs; 2+ are drawn together
  charts: [],           // {def, plot}
  timeline: null,
  spectrum: null,
  dirty: false,
};
window.orbitDashboard = dash;  // for the browser test and the console

function newRun(name) {
  return { name, steps: [], states: [], m: Object.fromEntries(KEPT.map((k) => [k, []])), burns: [],
           spectrum: null, last: null, summary: null, loaded: false, loading: false, pending: [] };
}
function run(name) {
  if (!dash.runs.has(name)) dash.runs.set(name, newRun(name));
  return dash.runs.get(name);
}
function shown() {
  if (dash.compare.size >= 2) return [...dash.compare];
  return dash.primary ? [dash.primary] : [];
}

function addPoint(r, p) {
  const n = r.steps.length;
  if (n && p.step <= r.steps[n - 1]) {
    // A rollback restarts from an earlier step: the chart shows the branch now trained.
    let k = n;
    while (k > 0 && r.steps[k - 1] >= p.step) k--;
    r.steps.length = k; r.states.length = k;
    for (const key of KEPT) r.m[key].length = k;
  }
  r.steps.push(p.step);
  r.states.push(p.state);
  const m = p.metrics || {};
  for (const key of KEPT) r.m[key].push(key in m ? m[key] : (key === 'lr_scale' ? p.lr_scale : null));
  if (p.burn) r.burns.push({ step: p.step, seq: p.burn.seq, reason: p.burn.reason, lr_scale: p.burn.lr_scale });
  r.last = p;
}

// ---------------------------------------------------------------- drawing hooks

function stateSegments(r) {
  const segs = [];
  for (let i = 0; i < r.steps.length; i++) {
    const s = r.states[i];
    const last = segs[segs.length - 1];
    if (last && last.state === s) last.to = r.steps[i];
    else segs.push({ state: s, from: r.steps[i], to: r.steps[i] });
  }
  // A band reaches to where the next one starts.
  for (let i = 0; i + 1 < segs.length; i++) segs[i].to = segs[i + 1].from;
  return segs;
}

function drawStateBands(u, r, top, height) {
  const ctx = u.ctx;
  const segs = stateSegments(r);
  for (const s of segs) {
    const x0 = u.valToPos(s.from, 'x', true), x1 = Math.max(u.valToPos(s.to, 'x', true), x0 + 1);
    ctx.fillStyle = STATE_FILL[s.state] || 'rgba(0,0,0,0.05)';
    ctx.fillRect(x0, top, x1 - x0, height);
  }
  return segs;
}

function drawZoneBands(u, band) {
  const { left, top, width, height } = u.bbox;
  const ctx = u.ctx;
  const y = (v) => Math.min(Math.max(u.valToPos(v, 'y', true), top), top + height);
  const up = band.good > band.danger;  // higher is better
  const yGood = y(band.good), yDanger = y(band.danger);
  const rect = (a, b, fill) => { ctx.fillStyle = fill; ctx.fillRect(left, Math.min(a, b), width, Math.abs(b - a)); };
  rect(up ? top : top + height, yGood, ZONE_FILL.good);
  rect(yGood, yDanger, ZONE_FILL.warning);
  rect(yDanger, up ? top + height : top, ZONE_FILL.danger);
}

function placeBurnMarkers(u, names) {
  let layer = u.over.querySelector('.burn-layer');
  if (!layer) {
    layer = document.createElement('div');
    layer.className = 'burn-layer';
    u.over.appendChild(layer);
  }
  layer.textContent = '';
  const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
  names.forEach((name, i) => {
    for (const b of run(name).burns) {
      if (b.step < xmin || b.step > xmax) continue;
      const d = document.createElement('div');
      d.className = 'burn-marker';
      d.style.left = u.valToPos(b.step, 'x') + 'px';
      if (names.length > 1) d.style.background = `linear-gradient(to right, transparent 3px, ${RUN_COLORS[i % RUN_COLORS.length]} 3px, ${RUN_COLORS[i % RUN_COLORS.length]} 4px, transparent 4px)`;
      const text = `${name} burn #${b.seq} at step ${b.step}, lr x${(+b.lr_scale).toPrecision(3)}\n${b.reason}`;
      d.dataset.reason = b.reason;
      d.title = text;
      d.addEventListener('mouseenter', (e) => showTip(e, text));
      d.addEventListener('mouseleave', hideTip);
      layer.appendChild(d);
    }
  });
}

function showTip(e, text) {
  const t = document.getElementById('tooltip');
  t.textContent = text;
  t.style.left = Math.min(e.clientX + 12, window.innerWidth - 470) + 'px';
  t.style.top = e.clientY + 12 + 'px';
  t.hidden = false;
}
function hideTip() { document.getElementById('tooltip').hidden = true; }

// ---------------------------------------------------------------- charts

function chartData(key, names) {
  if (names.length === 1) { const r = run(names[0]); return [r.steps, r.m[key]]; }
  return uPlot.join(names.map((n) => [run(n).steps, run(n).m[key]]));
}

function hasData(key, names) {
  return names.some((n) => run(n).m[key].some((v) => v !== null && v !== undefined));
}

function width(el) { return Math.max(300, el.clientWidth - 6); }

function makeChart(def, names, parent) {
  const box = document.createElement('div');
  box.className = 'chart';
  box.dataset.metric = def.key;
  parent.appendChild(box);
  const band = dash.zones[def.key];
  const opts = {
    title: def.title, width: width(box), height: 200,
    scales: { x: { time: false }, y: def.key === 'grad_norm' ? { distr: 3 } : {} },
    axes: [{ label: 'step' }, {}],
    series: [{ label: 'step' }].concat(names.map((n, i) => ({
      label: names.length > 1 ? n : def.key, stroke: RUN_COLORS[i % RUN_COLORS.length], width: 1.25, spanGaps: true,
      points: { show: false },
    }))),
    cursor: { drag: { x: true, y: false } },
    hooks: {
      drawClear: [(u) => {
        if (band) drawZoneBands(u, band);
        drawStateBands(u, run(names[0]), u.bbox.top, 6 * devicePixelRatio);  // a strip along the top
      }],
      draw: [(u) => placeBurnMarkers(u, names)],
    },
  };
  return new uPlot(opts, chartData(def.key, names), box);
}

function makeTimeline(names) {
  const el = document.getElementById('timeline');
  el.textContent = '';
  const r = run(names[0]);
  const opts = {
    width: width(el), height: 150,
    scales: { x: { time: false }, y: { range: [-1.1, 1.2] } },
    axes: [{ label: 'step' }, { label: 'health', size: 50 }],
    series: [{ label: 'step' }, { label: `health (${r.name})`, stroke: '#1d2330', width: 1, spanGaps: true, points: { show: false } }],
    legend: { show: true },
    hooks: {
      drawClear: [(u) => {
        const segs = drawStateBands(u, r, u.bbox.top, u.bbox.height);
        // What was drawn, for the browser test: "STATE:from-to" per band.
        el.dataset.bands = segs.map((s) => `${s.state}:${s.from}-${s.to}`).join(',');
      }],
      draw: [(u) => placeBurnMarkers(u, names)],
    },
  };
  dash.timeline = new uPlot(opts, [r.steps, r.m.health], el);
}

function makeSpectrum(names) {
  const el = document.getElementById('spectrum');
  el.textContent = '';
  dash.spectrum = null;
  const withSpectrum = names.filter((n) => run(n).spectrum);
  document.getElementById('spectrum-box').hidden = withSpectrum.length === 0;
  if (!withSpectrum.length) return;
  const label = withSpectrum.map((n) => `${n}: ${run(n).spectrum.name} @ step ${run(n).spectrum.step}`).join('; ');
  document.getElementById('spectrum-label').textContent = `(${label})`;
  const cols = withSpectrum.map((n) => {
    const v = run(n).spectrum.values;
    return [v.map((_, i) => i + 1), v.map((x) => (x > 0 ? x : null))];  // a log scale has no room for 0
  });
  const data = cols.length === 1 ? cols[0] : uPlot.join(cols);
  const opts = {
    width: width(el), height: 220,
    scales: { x: { time: false }, y: { distr: 3 } },
    axes: [{ label: 'eigenvalue index' }, { label: 'value (log)', size: 60 }],
    series: [{ label: 'index' }].concat(withSpectrum.map((n, i) => ({
      label: n, fill: RUN_COLORS[i % RUN_COLORS.length] + '99', stroke: RUN_COLORS[i % RUN_COLORS.length],
      paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false },
    }))),
  };
  dash.spectrum = new uPlot(opts, data, el);
}

function rebuild() {
  for (const c of dash.charts) c.plot.destroy();
  dash.charts = [];
  if (dash.timeline) { dash.timeline.destroy(); dash.timeline = null; }
  const parent = document.getElementById('charts');
  parent.textContent = '';
  const names = shown();
  if (!names.length) return;
  makeTimeline(names);
  for (const def of CHARTS) {
    if (!hasData(def.key, names)) continue;  // scalar-only runs have no spectral charts
    dash.charts.push({ def, plot: makeChart(def, names, parent) });
  }
  makeSpectrum(names);
  renderSummary();
  renderBurns();
}

// Live points arrive many per frame: one redraw per animation frame.
function scheduleRedraw() {
  if (dash.dirty) return;
  dash.dirty = true;
  requestAnimationFrame(() => {
    dash.dirty = false;
    const names = shown();
    if (!names.length) return;
    const missing = CHARTS.some((def) => hasData(def.key, names) && !dash.charts.find((c) => c.def.key === def.key));
    if (missing || !dash.timeline) return rebuild();
    for (const c of dash.charts) c.plot.setData(chartData(c.def.key, names));
    const r = run(names[0]);
    dash.timeline.setData([r.steps, r.m.health]);
    renderSummary();
    renderBurns();
  });
}

// ---------------------------------------------------------------- panels

function fmt(v, digits = 3) { return v === null || v === undefined ? '—' : (+v).toPrecision(digits); }

function renderSummary() {
  const box = document.getElementById('summary');
  box.textContent = '';
  for (const name of shown()) {
    const r = run(name);
    const p = r.last;
    if (!p) continue;
    const m = p.metrics || {};
    const age = p.basin_age_steps === undefined ? 'no spectral evidence yet' :
      p.basin_age_steps === 0 ? 'from this step' : `from evidence ${p.basin_age_steps} steps old`;
    const ttd = m.steps_to_danger !== undefined ? `~${Math.ceil(m.steps_to_danger)} steps` : 'no trend toward danger';
    const card = document.createElement('div');
    card.className = 'card';
    card.dataset.run = name;
    card.innerHTML = `<div class="muted">${escapeHtml(name)} · step ${p.step}</div>
      <div><span class="state s-${escapeHtml(p.state)}" data-role="state">${escapeHtml(p.state)}</span>
      basin <b data-role="basin">${escapeHtml(p.basin)}</b> <span class="muted">(${age})</span></div>
      <div>forecast <b data-role="forecast">${escapeHtml(p.forecast_basin)}</b> · time to danger <b>${ttd}</b></div>
      <div>lr scale <b>${fmt(p.lr_scale)}</b> · burns ${r.burns.length} · health ${fmt(m.health)}</div>`;
    box.appendChild(card);
  }
}

function renderBurns() {
  const list = document.getElementById('burns');
  list.textContent = '';
  const all = [];
  for (const name of shown()) for (const b of run(name).burns) all.push({ name, ...b });
  all.sort((a, b) => b.step - a.step);
  for (const b of all.slice(0, 200)) {
    const li = document.createElement('li');
    li.textContent = `${b.name} step ${b.step} #${b.seq} lr x${fmt(b.lr_scale)}: ${b.reason}`;
    list.appendChild(li);
  }
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function renderRuns() {
  const ul = document.getElementById('runs');
  ul.textContent = '';
  for (const [name, r] of [...dash.runs].sort((a, b) => a[0].localeCompare(b[0]))) {
    const li = document.createElement('li');
    li.dataset.run = name;
    if (name === dash.primary) li.classList.add('selected');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = dash.compare.has(name);
    box.title = 'compare';
    box.addEventListener('click', (e) => { e.stopPropagation(); toggleCompare(name, box.checked); });
    const label = document.createElement('span');
    label.textContent = name;
    const state = (r.last && r.last.state) || (r.summary && r.summary.state) || '';
    const badge = document.createElement('span');
    badge.className = `state s-${state}`;
    badge.textContent = state;
    li.append(box, label, badge);
    li.addEventListener('click', () => select(name));
    ul.appendChild(li);
  }
}

// ---------------------------------------------------------------- data flow

async function load(name) {
  const r = run(name);
  if (r.loaded || r.loading) return;
  r.loading = true;
  try {
    const res = await fetch(`api/runs/${encodeURIComponent(name)}/history`);
    if (!res.ok) throw new Error(`${res.status}`);
    const h = await res.json();
    const fresh = newRun(name);
    for (const p of h.points) addPoint(fresh, p);
    Object.assign(r, { steps: fresh.steps, states: fresh.states, m: fresh.m, burns: fresh.burns, last: fresh.last });
    if (h.spectrum) r.spectrum = h.spectrum;
    // Points that came live while the history was on its way.
    const lastStep = r.steps.length ? r.steps[r.steps.length - 1] : -1;
    for (const p of r.pending) if (p.step > lastStep) addPoint(r, p);
    r.pending = [];
    r.loaded = true;
  } finally {
    r.loading = false;
  }
}

async function select(name) {
  dash.primary = name;
  await load(name);
  renderRuns();
  rebuild();
  syncUrl();
}

async function toggleCompare(name, on) {
  if (on) dash.compare.add(name); else dash.compare.delete(name);
  await Promise.all([...dash.compare].map(load));
  renderRuns();
  rebuild();
  syncUrl();
}

function syncUrl() {
  const q = new URLSearchParams();
  if (dash.primary) q.set('run', dash.primary);
  if (dash.compare.size) q.set('compare', [...dash.compare].join(','));
  history.replaceState(null, '', `?${q}`);
}

function onPoint(p) {
  const r = run(p.run);
  if (!r.loaded) {
    r.pending.push(p);
    r.last = p;
  } else {
    addPoint(r, p);
  }
  if (!dash.primary) select(p.run);
  renderRunsSoon();
  if (shown().includes(p.run)) scheduleRedraw();
}

let runsTimer = null;
function renderRunsSoon() {
  if (runsTimer) return;
  runsTimer = setTimeout(() => { runsTimer = null; renderRuns(); }, 500);
}

function onRuns(list) {
  for (const item of list.runs) {
    const r = run(item.run);
    r.summary = item.last;
  }
  renderRuns();
}

function connect() {
  const conn = document.getElementById('connection');
  const es = new EventSource('api/events');
  es.addEventListener('open', () => { conn.textContent = 'live'; conn.className = 'conn live'; });
  es.addEventListener('error', () => {
    conn.textContent = 'disconnected (retrying)';
    conn.className = 'conn down';
    // What was missed while away comes back with the history on reconnect.
    for (const r of dash.runs.values()) r.loaded = false;
    es.addEventListener('open', () => { for (const n of shown()) load(n).then(rebuild); }, { once: true });
  });
  es.addEventListener('runs', (e) => onRuns(JSON.parse(e.data)));
  es.addEventListener('point', (e) => onPoint(JSON.parse(e.data)));
  es.addEventListener('spectrum', (e) => {
    const s = JSON.parse(e.data);
    run(s.run).spectrum = s;
    if (shown().includes(s.run)) makeSpectrum(shown());
  });
}

async function start() {
  const cfg = await (await fetch('api/config')).json();
  dash.zones = cfg.zones || {};
  if (cfg.source) document.getElementById('source').textContent = cfg.source;
  onRuns(await (await fetch('api/runs')).json());
  const q = new URLSearchParams(location.search);
  const compare = (q.get('compare') || '').split(',').filter(Boolean);
  for (const n of compare) dash.compare.add(n);
  await Promise.all(compare.map(load));
  const first = q.get('run') || (dash.runs.size ? [...dash.runs.keys()][0] : null);
  if (first) await select(first);
  connect();
  window.addEventListener('resize', () => rebuild());
}

// ---------------------------------------------------------------- measuring

// Times the chart work on synthetic series of `n` points (3 series on one chart,
// with zone and state bands and 50 burn markers, like a metric chart): create,
// setData + redraw, a cursor move, a zoom. Used by tests/dashboard/page_speed.py.
window.orbitBench = async function (n) {
  const name = '__bench__';
  const r = newRun(name);
  for (let i = 0; i < n; i++) {
    r.steps.push(i);
    r.states.push(i < n * 0.6 ? 'STABLE' : i < n * 0.7 ? 'WARNING' : i < n * 0.8 ? 'CRITICAL' : 'RECOVERING');
    r.m.entropy.push(2.5 + Math.sin(i / 500) - (i > n * 0.6 ? 1.2 : 0));
  }
  for (let k = 0; k < 50; k++) r.burns.push({ step: Math.floor((k * n) / 50), seq: k + 1, reason: 'bench', lr_scale: 1 });
  dash.runs.set(name, r);
  const box = document.createElement('div');
  box.style.width = '900px';
  document.body.appendChild(box);
  const tick = () => new Promise((res) => setTimeout(res, 0));
  const t0 = performance.now();
  const u = makeChart({ key: 'entropy', title: 'bench' }, [name], box);
  await tick();
  const created = performance.now() - t0;
  const data = [r.steps, r.m.entropy];
  const t1 = performance.now();
  const reps = 5;
  for (let k = 0; k < reps; k++) { u.setData(data); await tick(); }
  const setData = (performance.now() - t1) / reps;
  const t2 = performance.now();
  const moves = 200;
  for (let k = 0; k < moves; k++) u.setCursor({ left: (k * 4) % 880, top: 50 });
  const cursor = (performance.now() - t2) / moves;
  const t3 = performance.now();
  u.setScale('x', { min: n * 0.25, max: n * 0.5 });
  await tick();
  const zoom = performance.now() - t3;
  u.destroy();
  box.remove();
  dash.runs.delete(name);
  return { points: n, create_ms: created, setdata_redraw_ms: setData, cursor_move_ms: cursor, zoom_ms: zoom };
};

start().catch((e) => {
  document.getElementById('connection').textContent = 'error: ' + e.message;
});
