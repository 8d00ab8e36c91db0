// FiberLB dashboard. The admin token is entered once and kept in sessionStorage (this tab
// only, gone when it closes); every call sends it as an Authorization header, and the live
// stream is read with fetch() too (EventSource cannot send headers), so the token is never
// part of a URL, a log line of one, the history or a Referer.

const KEY = 'fiberlb.admin.token';
const $ = (id) => document.getElementById(id);
let points = [];
let abort = null;

function token() {
  return sessionStorage.getItem(KEY);
}

async function api(path, init = {}) {
  const r = await fetch(path, {
    ...init,
    headers: { ...(init.headers || {}), authorization: `Bearer ${token()}` },
    cache: 'no-store',
  });
  if (r.status === 401) {
    sessionStorage.removeItem(KEY);
    showLogin('That token was refused.');
    throw new Error('unauthorized');
  }
  return r;
}

function showLogin(message) {
  if (abort) abort.abort();
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fillTable(id, rows) {
  const body = $(id).tBodies[0];
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement('tr');
      for (const c of cells) tr.append(typeof c === 'object' && c !== null ? c : el('td', c));
      return tr;
    }),
  );
}

function cell(text, cls) {
  return el('td', text, cls);
}

function renderState(state) {
  const s = state.status || {};
  const badge = $('status');
  badge.textContent = s.status || '?';
  badge.className = `badge ${s.status || ''}`;
  $('meta').textContent =
    `v${s.version} · revision ${s.revision} · ${s.source} · workers ${s.workers_ready}/${(s.workers || []).length} · up ${s.uptime_s}s`;
  fillTable(
    'listeners',
    (state.listeners || []).map((l) => [
      l.listener,
      l.protocol,
      l.bind,
      l.default_pool || '–',
      cell(l.open ? 'open' : `not open: ${l.error}`, l.open ? 'ok' : 'out'),
    ]),
  );
  const rows = [];
  for (const p of state.pools || [])
    for (const b of p.backends || []) {
      const tr = document.createElement('tr');
      tr.dataset.backend = b.key;
      tr.append(
        cell(p.pool),
        cell(b.id),
        cell(`${b.address}:${b.port}`),
        cell(b.weight),
        cell(b.admin_state),
        cell(b.health.state, b.health.state === 'down' ? 'down' : ''),
        cell(b.serving ? 'serving' : 'out', b.serving ? 'serving' : 'out'),
        cell(b.why || ''),
      );
      rows.push(tr);
    }
  $('backends').tBodies[0].replaceChildren(...rows);
}

function renderChanges(changes) {
  fillTable(
    'changes',
    (changes || []).map((c) => [
      new Date(c.at).toLocaleTimeString(),
      c.revision,
      c.what + (c.detail ? ` — ${c.detail}` : ''),
      cell(c.ok ? 'ok' : 'failed', c.ok ? 'ok' : 'out'),
    ]),
  );
}

function chart(id, values) {
  const svg = $(id);
  const max = Math.max(1, ...values.map((v) => v || 0));
  const n = Math.max(2, values.length);
  const pts = values.map(
    (v, i) => `${((i / (n - 1)) * 300).toFixed(1)},${(58 - ((v || 0) / max) * 56).toFixed(1)}`,
  );
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', pts.join(' '));
  svg.replaceChildren(line);
  svg.dataset.max = String(max);
}

function renderCharts() {
  const last = points.slice(-300);
  chart(
    'chart-rps',
    last.map((p) => p.rps),
  );
  chart(
    'chart-err',
    last.map((p) => p.errors),
  );
  chart(
    'chart-lat',
    last.map((p) => p.p99_ms),
  );
  const p = last[last.length - 1];
  $('rps-now').textContent = p ? String(p.rps) : '';
  $('err-now').textContent = p ? String(p.errors) : '';
  $('lat-now').textContent = p && p.p99_ms !== null ? String(p.p99_ms) : '–';
}

async function stream() {
  abort = new AbortController();
  const r = await api('/api/v1/events', { signal: abort.signal });
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  $('stream-state').textContent = 'live';
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i = buf.indexOf('\n\n');
    while (i >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = frame
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      if (data) {
        const tick = JSON.parse(data);
        points.push(tick.point);
        if (points.length > 300) points.shift();
        renderState(tick.state);
        renderChanges(tick.changes);
        renderCharts();
      }
      i = buf.indexOf('\n\n');
    }
  }
}

async function open() {
  const r = await api('/api/v1/history');
  const h = await r.json();
  points = h.points;
  renderState(h.state);
  renderChanges(h.changes);
  renderCharts();
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  // Reconnect after a dropped stream (a primary restart, a network blip), gently.
  for (;;) {
    try {
      await stream();
    } catch (err) {
      if (err.message === 'unauthorized' || err.name === 'AbortError') return;
    }
    $('stream-state').textContent = 'reconnecting…';
    await new Promise((r) => setTimeout(r, 2000));
  }
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $('token').value.trim());
  $('token').value = '';
  open().catch(() => {});
});
$('logout').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  showLogin('');
});

if (token()) open().catch(() => {});
else showLogin('');
