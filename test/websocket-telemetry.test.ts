// WebSocket upgrades in the listener's telemetry (http/upgrade.ts → telemetry/record.ts and
// access-log.ts), through an in-process http listener with a real WorkerTelemetry and access
// log file, a real RFC 6455 client and echo backends (test/helpers/ws.ts): every outcome (101
// tunnelled, the backend's own refusal, 404 no route, 503 no healthy backend, 429 rate limited)
// is counted in the same request series as plain requests and written as one access-log line
// of type "websocket" when it ends, a tunnel's with its exact bytes each way; a 503 upgrade
// refusal carries the Retry-After a plain request's 503 gets.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { backendKey, type PoolConfig } from '../src/config/model.ts';
import type { MetricFamily } from '../src/shared/metrics.ts';
import { createHttpListener } from '../src/worker/http/listener.ts';
import { stats } from '../src/worker/http/upgrade.ts';
import { WorkerTelemetry } from '../src/worker/telemetry/telemetry.ts';
import { captureLog } from './helpers/capture-log.ts';
import { tempDir } from './helpers/cluster-fiberlb.ts';
import { parseHead, request } from './helpers/http-client.ts';
import {
  backend,
  healthCheck,
  LB,
  type ListenerOverrides,
  listenerConfig,
  listenerState,
  poolConfig,
  route,
  workerEnv,
} from './helpers/http-fixtures.ts';
import { waitFor } from './helpers/l4-state.ts';
import { freeTcpPort } from './helpers/net.ts';
import { rateLimit } from './helpers/rate-limit.ts';
import { type WsClient, wsConnect, wsEchoServer } from './helpers/ws.ts';

type Line = Record<string, unknown>;

/** An http listener whose env has a WorkerTelemetry and whose access log goes to a temp file. */
async function telemetryListener(
  t: TestContext,
  o: ListenerOverrides,
  pools: PoolConfig[],
  down: Set<string>,
) {
  const file = join(tempDir(), 'access.log');
  const base = workerEnv();
  const telemetry = new WorkerTelemetry(base.failures, '0');
  const env = { ...base, telemetry };
  const port = await freeTcpPort();
  const state = {
    ...listenerState(listenerConfig(port, o), pools, down),
    accessLog: { path: file, sample: 1, flushIntervalMs: 0 },
  };
  const handle = createHttpListener(state, env);
  await handle.ready;
  t.after(async () => {
    await handle.close(500);
    await env.upstreams.close();
    await telemetry.accessLogs.close();
  });
  const lines = (): Line[] =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Line)
      : [];
  return { port, telemetry, lines };
}

/** Sum of a family's samples whose labels include `match`. */
function total(fams: MetricFamily[], name: string, match: Record<string, string> = {}): number {
  const f = fams.find((x) => x.name === name);
  assert.ok(f, `no family ${name}`);
  let n = 0;
  for (const v of f.values)
    if (v.metricName === undefined || v.metricName === `${name}_count`)
      if (Object.entries(match).every(([k, want]) => String(v.labels[k]) === want)) n += v.value;
  return n;
}

/** One upgrade: the open client on 101, else the refusal's status and head. */
async function upgrade(
  t: TestContext,
  port: number,
  path: string,
): Promise<{ status: number; headers: Record<string, string>; client?: WsClient }> {
  try {
    const c = await wsConnect(port, { path });
    t.after(() => c.socket.destroy());
    return { status: 101, headers: {}, client: c };
  } catch (err) {
    const response = (err as { response?: string }).response;
    if (response === undefined) throw err;
    return parseHead(response);
  }
}

test('every upgrade outcome is counted in the HTTP request series and logged once, type websocket', async (t) => {
  const failures = captureLog(t);
  const echo = await wsEchoServer();
  const refuser = await wsEchoServer({ refuse: 403 });
  t.after(() => Promise.all([echo.close(), refuser.close()]));
  const pools = [
    poolConfig('chat', [backend(echo.port, 'e')]),
    poolConfig('deny', [backend(refuser.port, 'r')]),
    { ...poolConfig('down', [backend(echo.port, 'd')]), healthCheck: healthCheck({ rise: 3 }) },
  ];
  const limited = {
    ...route('chat', { pathPrefix: '/limited' }),
    rateLimits: [rateLimit({ rate: 1, perMs: 60_000 })],
  };
  const p = await telemetryListener(
    t,
    {
      defaultPool: undefined,
      routes: [
        route('chat', { pathPrefix: '/chat' }),
        route('deny', { pathPrefix: '/deny' }),
        route('down', { pathPrefix: '/down' }),
        limited,
      ],
    },
    pools,
    new Set([backendKey(LB, 'down', 'd')]),
  );

  // 101: one text frame each way, then a close handshake. Client frames are masked (2 + 4 +
  // payload), the backend's are not (2 + payload): 11 + 8 bytes up, 7 + 4 down.
  const ok = await upgrade(t, p.port, '/chat/room?token=secret');
  assert.equal(ok.status, 101);
  ok.client!.send('hello');
  assert.equal((await ok.client!.next()).toString(), 'hello');
  ok.client!.close();
  await ok.client!.closed;
  // The backend's own refusal is relayed.
  assert.equal((await upgrade(t, p.port, '/deny')).status, 403);
  // No healthy backend: 503 with the Retry-After of a plain request to the same pool (rise 3 ×
  // interval 2 s), from the same computation.
  const down = await upgrade(t, p.port, '/down');
  assert.equal(down.status, 503);
  const plain = await request(p.port, { path: '/down' });
  assert.equal(plain.status, 503);
  assert.equal(plain.headers['retry-after'], '6');
  assert.equal(down.headers['retry-after'], plain.headers['retry-after']);
  // No route (the listener has no default pool).
  assert.equal((await upgrade(t, p.port, '/nowhere')).status, 404);
  // Rate limited: the first is tunnelled, the second refused.
  const first = await upgrade(t, p.port, '/limited');
  assert.equal(first.status, 101);
  const second = await upgrade(t, p.port, '/limited');
  assert.equal(second.status, 429);
  first.client!.close();
  await first.client!.closed;

  // The refusals went through the one failure path too (the backend's own 403 is no failure).
  assert.deepEqual(
    ['no_healthy_backend', 'no_route', 'rate_limited'].map((c) => failures.of(c).length),
    [2, 1, 1],
  );
  assert.equal(failures.lines.length, 4);
  // 6 upgrades and 1 plain request, each counted once, in its route's series.
  await waitFor(() => total(p.telemetry.collect(), 'fiberlb_http_requests_total') >= 7, 5000, '7 requests');
  const fams = p.telemetry.collect();
  const web = { listener: `${LB}/web` };
  assert.equal(total(fams, 'fiberlb_http_requests_total', web), 7);
  assert.equal(total(fams, 'fiberlb_worker_http_requests_total'), 7);
  assert.equal(total(fams, 'fiberlb_http_request_duration_seconds', web), 7);
  const responses = (route: string, status_class: string, extra: Record<string, string> = {}) =>
    total(fams, 'fiberlb_http_responses_total', { route, status_class, ...extra });
  assert.equal(responses('0', '1xx', { pool: `${LB}/chat`, backend: `${LB}/chat/e` }), 1);
  assert.equal(responses('1', '4xx', { backend: `${LB}/deny/r` }), 1);
  assert.equal(responses('2', '5xx', { pool: `${LB}/down`, backend: '' }), 2);
  assert.equal(responses('', '4xx', { pool: '' }), 1);
  assert.equal(responses('3', '1xx'), 1);
  assert.equal(responses('3', '4xx', { backend: '' }), 1);
  assert.equal(total(fams, 'fiberlb_http_responses_total'), 7);
  // The backends' answers (101, 403) are timed as first bytes; our refusals are not.
  assert.equal(total(fams, 'fiberlb_upstream_first_byte_seconds'), 3);

  // One line per upgrade (written when it ended), plus the plain request's.
  await waitFor(() => p.lines().length >= 7, 5000, '7 access-log lines');
  const lines = p.lines();
  assert.equal(lines.length, 7);
  const ws = lines.filter((l) => l.type === 'websocket');
  assert.equal(ws.length, 6);
  assert.equal(lines.filter((l) => l.type === 'http').length, 1);
  // Both tunnels closed: their bytes (after the 101) are in fiberlb_websocket_bytes_total too.
  assert.equal(stats().bytesUp, 19 + 8);
  assert.equal(stats().bytesDown, 11 + 4);
  const byPath = (path: string) => ws.filter((l) => l.path === path);
  const tunnel = byPath('/chat/room')[0]!; // the query string is left out
  assert.ok(tunnel, JSON.stringify(ws));
  const { ts, duration_ms, upstream_connect_ms, upstream_first_byte_ms, request_id, ...rest } = tunnel;
  assert.deepEqual(rest, {
    type: 'websocket',
    listener: `${LB}/web`,
    route: '0',
    pool: `${LB}/chat`,
    backend: `${LB}/chat/e`,
    backend_address: `127.0.0.1:${echo.port}`,
    client: '127.0.0.1',
    method: 'GET',
    path: '/chat/room',
    status: 101,
    bytes_in: 19,
    bytes_out: 11,
    error_class: null,
  });
  assert.match(String(ts), /^\d{4}-\d\d-\d\dT/);
  assert.match(String(request_id), /\S/);
  assert.equal(typeof upstream_connect_ms, 'number');
  assert.ok((upstream_first_byte_ms as number) >= (upstream_connect_ms as number));
  assert.ok((duration_ms as number) >= (upstream_first_byte_ms as number));

  const pick = (l: Line) => [l.route, l.pool, l.backend, l.status, l.bytes_in, l.bytes_out, l.error_class];
  assert.deepEqual(pick(byPath('/deny')[0]!), ['1', `${LB}/deny`, `${LB}/deny/r`, 403, 0, 0, null]);
  assert.deepEqual(pick(byPath('/down')[0]!), ['2', `${LB}/down`, null, 503, 0, 0, 'no_healthy_backend']);
  assert.deepEqual(pick(byPath('/nowhere')[0]!), [null, null, null, 404, 0, 0, 'no_route']);
  assert.deepEqual(
    byPath('/limited')
      .map(pick)
      .sort((a, b) => Number(a[3]) - Number(b[3])),
    [
      ['3', `${LB}/chat`, `${LB}/chat/e`, 101, 2 + 4 + 2, 2 + 2, null],
      ['3', `${LB}/chat`, null, 429, 0, 0, 'rate_limited'],
    ],
  );
});
