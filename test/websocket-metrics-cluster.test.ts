// WebSocket upgrades in /metrics and the access log of a real FiberLB (dist/cli.js) with 2
// workers: upgrades on fresh connections (spread by the kernel) until both workers served some,
// then every outcome — 101 tunnelled, 404 no route, 503 no healthy backend, 429 over the
// instance-wide rate limit — adds up exactly in the HTTP request series the primary merges,
// per worker too, and each upgrade has its one "websocket" access-log line.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { lbConfigHead, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';
import { wsConnect, wsEchoServer } from './helpers/ws.ts';

/** Sum of the samples of `name` whose labels include every `key="value"` of `match`. */
function sum(text: string, name: string, match: Record<string, string> = {}): number {
  let n = 0;
  const want = Object.entries(match).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labels = line.startsWith(`${name}{`) ? line.slice(name.length + 1, line.lastIndexOf('}')) : '';
    const parts = labels === '' ? [] : labels.split(',');
    if (want.every((w) => parts.includes(w))) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

/** One upgrade on a fresh connection: 101 (one echo, then a clean close) or the refusal's status. */
async function upgrade(t: TestContext, port: number, path: string): Promise<number> {
  try {
    const c = await wsConnect(port, { path });
    t.after(() => c.socket.destroy());
    c.send('ping');
    assert.equal((await c.next()).toString(), 'ping');
    c.close();
    await c.closed;
    return 101;
  } catch (err) {
    const response = (err as { response?: string }).response;
    if (response === undefined) throw err;
    return Number(response.split(' ')[1]);
  }
}

test('2 workers: every upgrade outcome adds up in /metrics, and each has its access-log line', async (t) => {
  const echo = await wsEchoServer();
  t.after(() => echo.close());
  const [admin, port] = [await freeTcpPort(), await freeTcpPort()];
  const dir = tempDir();
  const file = writeConfig(
    dir,
    `${lbConfigHead(admin, 'workers: 2', 'ws')}      - name: chat
        port: ${port}
        protocol: http
        routes:
          - { match: { path_prefix: /chat }, pool: echo }
          - { match: { path_prefix: /down }, pool: down }
          - { match: { path_prefix: /limited }, pool: echo, rate_limit: { rate: 2, per: 60s, burst: 2 } }
    pools:
      - name: echo
        backends: [{ id: e, address: 127.0.0.1, port: ${echo.port} }]
      - name: down
        backends: [{ id: d, address: 127.0.0.1, port: ${echo.port}, admin_state: disabled }]
access_log: { path: access.log }
`,
  );
  const lb = await startLb(file, admin);
  t.after(() => lb.stop());
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const scrape = async () =>
    (
      await fetch(`http://127.0.0.1:${admin}/metrics`, { headers: { authorization: `Bearer ${token}` } })
    ).text();

  // Concurrent bursts on fresh connections until both workers have counted some.
  const BURST = 8;
  let ok = 0;
  let notFound = 0;
  let unavailable = 0;
  for (let round = 0; round < 15; round++) {
    const got = await Promise.all([
      ...Array.from({ length: BURST }, () => upgrade(t, port, '/chat')),
      upgrade(t, port, '/nowhere'),
      upgrade(t, port, '/down'),
    ]);
    assert.deepEqual(got, [...Array.from({ length: BURST }, () => 101), 404, 503]);
    ok += BURST;
    notFound++;
    unavailable++;
    const text = await scrape();
    if (
      sum(text, 'fiberlb_worker_http_requests_total', { worker: '0' }) > 0 &&
      sum(text, 'fiberlb_worker_http_requests_total', { worker: '1' }) > 0
    )
      break;
  }
  // The rate limit's bucket is the primary's: exactly burst (2) of 6 are tunnelled.
  const limited = await Promise.all(Array.from({ length: 6 }, () => upgrade(t, port, '/limited')));
  assert.deepEqual(
    limited.sort((a, b) => a - b),
    [101, 101, 429, 429, 429, 429],
  );
  const all = ok + notFound + unavailable + 6;

  // Worker counters reach /metrics on the next scrape: wait for them, then be exact.
  let text = await scrape();
  for (let i = 0; i < 50 && sum(text, 'fiberlb_http_requests_total') < all; i++) {
    await sleep(100);
    text = await scrape();
  }
  const chat = { listener: 'ws/chat' };
  assert.equal(sum(text, 'fiberlb_http_requests_total', chat), all, text);
  assert.equal(sum(text, 'fiberlb_worker_http_requests_total', { worker: '0' }) > 0, true);
  assert.equal(sum(text, 'fiberlb_worker_http_requests_total', { worker: '1' }) > 0, true);
  assert.equal(sum(text, 'fiberlb_worker_http_requests_total'), all);
  const responses = (m: Record<string, string>) => sum(text, 'fiberlb_http_responses_total', m);
  assert.equal(responses({ route: '0', backend: 'ws/echo/e', status_class: '1xx' }), ok);
  assert.equal(responses({ route: '', status_class: '4xx' }), notFound);
  assert.equal(responses({ route: '1', pool: 'ws/down', status_class: '5xx' }), unavailable);
  assert.equal(responses({ route: '2', status_class: '1xx' }), 2);
  assert.equal(responses({ route: '2', backend: '', status_class: '4xx' }), 4);
  assert.equal(sum(text, 'fiberlb_http_request_duration_seconds_count', chat), all);
  assert.equal(sum(text, 'fiberlb_websocket_tunnels_total'), ok + 2);
  assert.equal(sum(text, 'fiberlb_failures_total', { error_class: 'no_route' }), notFound);
  assert.equal(sum(text, 'fiberlb_failures_total', { error_class: 'no_healthy_backend' }), unavailable);
  assert.equal(sum(text, 'fiberlb_failures_total', { error_class: 'rate_limited' }), 4);

  // One line per upgrade, from both workers, written when each ended (tunnels: closed).
  const log = join(dir, 'access.log');
  const lines = () =>
    existsSync(log)
      ? readFileSync(log, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];
  for (let i = 0; i < 50 && lines().length < all; i++) await sleep(100);
  const ws = lines();
  assert.equal(ws.length, all);
  assert.ok(ws.every((l) => l.type === 'websocket' && l.listener === 'ws/chat'));
  const count = (status: number, cls: string | null) =>
    ws.filter((l) => l.status === status && l.error_class === cls).length;
  assert.equal(count(101, null), ok + 2);
  assert.equal(count(404, 'no_route'), notFound);
  assert.equal(count(503, 'no_healthy_backend'), unavailable);
  assert.equal(count(429, 'rate_limited'), 4);
  // "ping" each way and the close handshake: (2+4+4) + (2+4+2) up, (2+4) + (2+2) down.
  for (const l of ws.filter((x) => x.status === 101)) assert.deepEqual([l.bytes_in, l.bytes_out], [18, 10]);
});

test('a tunnel open across a reload that moves the access log: its line goes to the new file', async (t) => {
  const echo = await wsEchoServer();
  t.after(() => echo.close());
  const [admin, port] = [await freeTcpPort(), await freeTcpPort()];
  const dir = tempDir();
  const config = (
    log: string,
  ) => `${lbConfigHead(admin, 'workers: 1', 'ws')}      - { name: chat, port: ${port}, protocol: http, default_pool: echo }
    pools:
      - name: echo
        backends: [{ id: e, address: 127.0.0.1, port: ${echo.port} }]
access_log: { path: ${log}, flush_interval: 0s }
`;
  const file = writeConfig(dir, config('old.log'));
  const lb = await startLb(file, admin);
  t.after(() => lb.stop());
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const c = await wsConnect(port, { path: '/chat' });
  t.after(() => c.socket.destroy());
  c.send('before');
  assert.equal((await c.next()).toString(), 'before');
  writeFileSync(file, config('new.log'));
  const r = await fetch(`http://127.0.0.1:${admin}/api/v1/reload`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(r.status, 200, await r.text());
  c.send('after');
  assert.equal((await c.next()).toString(), 'after');
  c.close();
  await c.closed;
  const lines = (name: string) =>
    existsSync(join(dir, name))
      ? readFileSync(join(dir, name), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];
  for (let i = 0; i < 50 && lines('new.log').length === 0; i++) await sleep(100);
  assert.deepEqual(
    lines('new.log').map((l) => [l.type, l.status]),
    [['websocket', 101]],
  );
  assert.equal(lines('old.log').length, 0);
});
