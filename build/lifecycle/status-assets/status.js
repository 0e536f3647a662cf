// The status page's script: plain browser JavaScript, served as is by the watcher (no build step, no
// framework; docs/status-page.md says why). Rows come from status-rows.ts on the server as JSON over
// server-sent events; every value goes in by textContent, never as markup.
//
// Cheap at 500 nodes: one <tr> per node made once and then updated in place (a cell is touched only when
// its text changes); changes that arrive between two frames are applied together in one animation frame;
// the clocks (time in phase, last report) tick once a second, writing only the cells whose text moved.
'use strict';

const STATE_WORDS = { requested: 'requested', installing: 'installing', done: 'done', failed: 'failed', 'timed-out': 'timed out' };
const tbody = document.querySelector('#nodes tbody');
const summaryEl = document.getElementById('summary');
const connEl = document.getElementById('connection');
/** name → { tr, cells, row } */
const rows = new Map();
/** Rows received but not yet drawn, by name (a node's newer row replaces its older one). */
let pending = new Map();
let frame = 0;
/** The server's clock minus ours: times in phase are counted on the watcher's clock. */
let skewMs = 0;
let osProfile = null;
// Figures the browser test reads (and anyone curious, from the console).
const perf = (window.statusPerf = { snapshots: 0, batches: 0, rowsApplied: 0, firstRenderMs: null, firstDrawnMs: null, lastBatch: null, lastTickMs: null });
/** When the oldest change waiting in `pending` arrived. */
let pendingSince = 0;
/** Runs after the next frame has been laid out and painted: how long the browser really took. */
const afterPaint = (fn) => requestAnimationFrame(() => setTimeout(fn, 0));

function duration(s) {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

function ago(iso, now) {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

function set(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function makeRow(name) {
  const tr = document.createElement('tr');
  const th = document.createElement('th');
  th.scope = 'row';
  th.textContent = name;
  tr.append(th);
  const cells = {};
  for (const key of ['mac', 'ip', 'firmware', 'loader', 'profile', 'state', 'phase', 'progress', 'clock', 'updated', 'tries', 'log']) {
    const td = document.createElement('td');
    td.className = key;
    tr.append(td);
    cells[key] = td;
  }
  const bar = document.createElement('progress');
  bar.max = 100;
  bar.setAttribute('aria-label', `${name} image download`);
  bar.hidden = true;
  const barText = document.createElement('span');
  cells.progress.append(bar, barText);
  const phaseText = document.createElement('span');
  const detail = document.createElement('span');
  detail.className = 'detail';
  cells.phase.append(phaseText, detail);
  const link = document.createElement('a');
  link.href = `log/${encodeURIComponent(name)}`;
  link.textContent = 'log';
  link.setAttribute('aria-label', `install log of ${name}`);
  link.hidden = true;
  const noLog = document.createElement('span');
  noLog.textContent = '—';
  cells.log.append(link, noLog);
  return { tr, cells, bar, barText, phaseText, detail, link, noLog, row: null };
}

function drawClock(entry, now) {
  const r = entry.row;
  const active = r.state === 'requested' || r.state === 'installing';
  const overdue = active && r.deadline !== null && now > Date.parse(r.deadline);
  const text = r.phaseStarted ? duration((now - Date.parse(r.phaseStarted)) / 1000) + (overdue ? ' (overdue)' : '') : '—';
  set(entry.cells.clock, text);
  entry.cells.clock.classList.toggle('overdue', overdue);
  set(entry.cells.updated, ago(r.updated, now));
}

function draw(entry, r, now) {
  entry.row = r;
  const c = entry.cells;
  set(c.mac, r.mac);
  set(c.ip, r.ip ?? 'DHCP');
  set(c.firmware, r.firmware);
  set(c.loader, r.loader);
  set(c.profile, r.profile === null ? '(no link)' : r.profile === osProfile ? `${r.profile} (OS)` : r.profile);
  const stateText = r.state === null ? '—' : (STATE_WORDS[r.state] ?? r.state) + (r.parked ? ' (parked)' : '');
  set(c.state, stateText);
  if (entry.tr.dataset.state !== (r.state ?? 'none')) entry.tr.dataset.state = r.state ?? 'none';
  set(entry.phaseText, r.phase ?? '—');
  const showDetail = r.detail && (r.state === 'failed' || r.state === 'timed-out' || r.parked);
  set(entry.detail, showDetail ? r.detail : '');
  if (r.progress) {
    entry.bar.hidden = false;
    if (r.progress.percent === null) entry.bar.removeAttribute('value');
    else if (entry.bar.value !== r.progress.percent) entry.bar.value = r.progress.percent;
    entry.bar.setAttribute('aria-valuetext', `${r.progress.percent === null ? '' : r.progress.percent + ' %, '}${r.progress.text}`);
    set(entry.barText, `${r.progress.percent === null ? '' : r.progress.percent.toFixed(1) + ' % · '}${r.progress.text}`);
  } else {
    entry.bar.hidden = true;
    set(entry.barText, '—');
  }
  set(c.tries, r.tries === null ? '—' : String(r.tries));
  entry.link.hidden = !r.log;
  entry.noLog.hidden = r.log;
  drawClock(entry, now);
}

function drawSummary(s) {
  const parts = [`${s.nodes} nodes`, `${s.installing} installing`, `${s.requested} requested`, `${s.done} done`, `${s.failed} failed`, `${s.timedOut} timed out`, `${s.idle} idle`];
  set(summaryEl, parts.join(' · '));
}

function flush() {
  frame = 0;
  const t0 = performance.now();
  const now = Date.now() + skewMs;
  const batch = pending;
  pending = new Map();
  for (const r of batch.values()) {
    let entry = rows.get(r.name);
    if (!entry) {
      entry = makeRow(r.name);
      rows.set(r.name, entry);
      tbody.append(entry.tr);
    }
    draw(entry, r, now);
  }
  perf.batches++;
  perf.rowsApplied += batch.size;
  const batchInfo = { rows: batch.size, ms: performance.now() - t0, drawnMs: null };
  const since = pendingSince;
  pendingSince = 0;
  perf.lastBatch = batchInfo;
  afterPaint(() => (batchInfo.drawnMs = performance.now() - since));
}

function queue(list) {
  if (!pendingSince) pendingSince = performance.now();
  for (const r of list) pending.set(r.name, r);
  if (!frame) frame = requestAnimationFrame(flush);
}

function onSnapshot(ev) {
  const t0 = performance.now();
  const data = JSON.parse(ev.data);
  skewMs = Date.parse(data.now) - Date.now();
  osProfile = data.osProfile;
  // A snapshot after a reconnect may follow a spec change: drop rows of nodes that are gone, keep order.
  const names = new Set(data.rows.map((r) => r.name));
  for (const [name, entry] of rows) {
    if (!names.has(name)) {
      entry.tr.remove();
      rows.delete(name);
    }
  }
  pending = new Map();
  if (frame) cancelAnimationFrame(frame);
  queue(data.rows);
  flush();
  const order = document.createDocumentFragment();
  for (const r of data.rows) order.append(rows.get(r.name).tr);
  tbody.append(order);
  drawSummary(data.summary);
  perf.snapshots++;
  if (perf.firstRenderMs === null) {
    perf.firstRenderMs = performance.now() - t0;
    afterPaint(() => (perf.firstDrawnMs = performance.now() - t0));
  }
  document.body.dataset.snapshots = String(perf.snapshots);
}

function onRows(ev) {
  const data = JSON.parse(ev.data);
  skewMs = Date.parse(data.now) - Date.now();
  drawSummary(data.summary);
  queue(data.rows);
}

function connect() {
  const source = new EventSource('events');
  source.addEventListener('open', () => {
    connEl.dataset.conn = 'live';
    set(connEl, 'Live: updates as the watcher hears them.');
  });
  source.addEventListener('error', () => {
    // EventSource reconnects by itself (the server asks for 2 s); the next snapshot makes the table whole.
    connEl.dataset.conn = 'lost';
    set(connEl, 'Connection to the watcher lost; reconnecting…');
  });
  source.addEventListener('snapshot', onSnapshot);
  source.addEventListener('rows', onRows);
}

setInterval(() => {
  const now = Date.now() + skewMs;
  const t0 = performance.now();
  for (const entry of rows.values()) if (entry.row?.updated) drawClock(entry, now);
  perf.lastTickMs = performance.now() - t0;
}, 1000);

connect();
