// Access logs through a real FiberLB: one JSON line per HTTP request (a success, a 502, a client
// abort), per TCP connection and per UDP session, with the documented fields; a listener's own
// access_log replaces the top-level one (sample 0 = off); SIGUSR1 reopens a rotated file. The
// writer never blocks: with nobody reading, lines are dropped and counted, the loop stays free.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseConfigText } from '../src/config/validate.ts';
import type { BackendTarget } from '../src/worker/routing/balancer/types.ts';
import { AccessLogSink } from '../src/worker/telemetry/access-log.ts';
import { LogWriter, MAX_PENDING_BYTES } from '../src/worker/telemetry/log-writer.ts';
import { lbConfigHead, nameServer, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { readToEnd, tcpConnect, tcpEcho, udpBackend, udpClient } from './helpers/l4-backends.ts';
import { freeTcpPort, freeUdpPort, sleep } from './helpers/net.ts';

type Line = Record<string, unknown>;

function lines(file: string): Line[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

async function waitFor<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('access log', () => {
  test('fields for a success, a 502, a client abort, a TCP connection and a UDP session; SIGUSR1 reopens', async (t) => {
    const web = await nameServer('web');
    const echo = await tcpEcho();
    const uecho = await udpBackend();
    const deadPort = await freeTcpPort();
    t.after(() => Promise.all([web.close(), echo.close(), uecho.close()]));
    const dir = tempDir();
    const [adminPort, httpPort, quietPort, tcpPort, udpPort] = [
      await freeTcpPort(),
      await freeTcpPort(),
      await freeTcpPort(),
      await freeTcpPort(),
      await freeUdpPort(),
    ];
    const file = writeConfig(
      dir,
      `access_log: { path: access.log }
${lbConfigHead(adminPort, 'workers: 2', 'pub')}      - name: web
        port: ${httpPort}
        protocol: http
        default_pool: web
        routes:
          - { match: { path_prefix: /dead }, pool: dead }
      - { name: quiet, port: ${quietPort}, protocol: http, default_pool: web, access_log: { path: stdout, sample: 0 } }
      - { name: raw, port: ${tcpPort}, protocol: tcp, default_pool: echo }
      - { name: dns, port: ${udpPort}, protocol: udp, default_pool: uecho, timeouts: { idle: 300ms } }
    pools:
      - name: web
        backends: [ { id: w, address: 127.0.0.1, port: ${web.port} } ]
      - name: dead
        backends: [ { id: d, address: 127.0.0.1, port: ${deadPort} } ]
      - name: echo
        backends: [ { id: e, address: 127.0.0.1, port: ${echo.port} } ]
      - name: uecho
        backends: [ { id: u, address: 127.0.0.1, port: ${uecho.port} } ]
`,
    );
    const log = join(dir, 'access.log');
    const lb = await startLb(file, adminPort);
    t.after(() => lb.stop());

    assert.equal(await get(httpPort, '/hello?secret=1', {}), 200);
    assert.equal(await get(httpPort, '/dead/x', {}), 502);
    // A client that gives up while the backend is still thinking: it resets the connection (a
    // plain FIN would read as a half-close, which FiberLB answers; see http/listener.ts).
    await new Promise<void>((resolve) => {
      const req = request({
        host: '127.0.0.1',
        port: httpPort,
        path: '/slow?ms=3000',
        agent: false,
      });
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => {
        req.socket?.resetAndDestroy();
        resolve();
      }, 300);
    });
    assert.equal(await get(quietPort, '/not-logged'), 200);
    // Quotes and backslashes in a path are escaped (the line stays one valid JSON object).
    assert.equal(await get(httpPort, '/q"uo\\te'), 200);
    const s = await tcpConnect(tcpPort);
    s.end('twelve bytes');
    assert.equal((await readToEnd(s)).data.toString(), 'twelve bytes');
    const c = await udpClient();
    c.send('ping!', udpPort);
    await waitFor('udp echo', () => (c.received.length > 0 ? true : undefined));
    await c.close();

    const byType = await waitFor('every line', () => {
      const all = lines(log);
      const http = all.filter((l) => l.type === 'http');
      const tcp = all.find((l) => l.type === 'tcp');
      const udp = all.find((l) => l.type === 'udp'); // written when the session idles out
      return http.length >= 4 && tcp && udp ? { http, tcp, udp } : undefined;
    });
    const byId = new Map(byType.http.map((l) => [l.path, l]));
    assert.equal(byType.http.length, 4, 'the sample: 0 listener logs nothing');
    assert.equal(byId.get('/q"uo\\te')?.status, 200);
    const ok = byId.get('/hello')!;
    assert.equal(typeof ok.ts, 'string');
    assert.equal(typeof ok.duration_ms, 'number');
    assert.equal(typeof ok.upstream_connect_ms, 'number');
    assert.equal(typeof ok.upstream_first_byte_ms, 'number');
    assert.ok((ok.upstream_first_byte_ms as number) <= (ok.duration_ms as number));
    // The client's X-Request-ID is kept only from trusted proxies: this one is FiberLB's own.
    assert.match(String(ok.request_id), /^\S+-[0-9a-z]+$/);
    const {
      ts: _1,
      duration_ms: _2,
      upstream_connect_ms: _3,
      upstream_first_byte_ms: _4,
      request_id: _r,
      ...okRest
    } = ok;
    assert.deepEqual(okRest, {
      type: 'http',
      listener: 'pub/web',
      route: 'default',
      pool: 'pub/web',
      backend: 'pub/web/w',
      backend_address: `127.0.0.1:${web.port}`,
      client: '127.0.0.1',
      method: 'GET',
      path: '/hello', // never the query string
      status: 200,
      bytes_in: 0,
      bytes_out: 3,
      error_class: null,
    });
    const bad = byId.get('/dead/x')!;
    assert.deepEqual(
      [
        bad.status,
        bad.error_class,
        bad.route,
        bad.pool,
        bad.backend,
        bad.upstream_first_byte_ms,
        bad.bytes_out,
      ],
      [502, 'upstream_connect_refused', '0', 'pub/dead', 'pub/dead/d', null, 0],
    );
    const gone = byId.get('/slow')!;
    assert.deepEqual(
      [gone.status, gone.error_class, gone.backend, gone.upstream_first_byte_ms],
      [null, 'client_abort', 'pub/web/w', null],
    );
    assert.ok((gone.duration_ms as number) >= 250, String(gone.duration_ms));
    const { ts: _5, duration_ms: _6, upstream_connect_ms: tcpConnectMs, ...tcpRest } = byType.tcp;
    assert.equal(typeof tcpConnectMs, 'number');
    assert.deepEqual(tcpRest, {
      type: 'tcp',
      listener: 'pub/raw',
      pool: 'pub/echo',
      backend: 'pub/echo/e',
      backend_address: `127.0.0.1:${echo.port}`,
      client: '127.0.0.1',
      bytes_in: 12,
      bytes_out: 12,
      error_class: null,
    });
    assert.deepEqual(
      [byType.udp.listener, byType.udp.backend, byType.udp.bytes_in, byType.udp.bytes_out],
      ['pub/dns', 'pub/uecho/u', 5, 5],
    );

    // logrotate: move the file away, SIGUSR1 the primary, new lines go to a new file.
    renameSync(log, `${log}.1`);
    process.kill(lb.pid, 'SIGUSR1');
    await waitFor('reopen logged', () => (lb.output().includes('reopening access logs') ? true : undefined));
    // The workers reopen when the message arrives: keep asking until a line lands in the new file.
    for (let i = 0; i < 40 && !lines(log).some((l) => l.path === '/after-rotate'); i++) {
      await get(httpPort, '/after-rotate');
      await sleep(25);
    }
    assert.ok(lines(log).some((l) => l.path === '/after-rotate'));
    assert.ok(
      !lines(`${log}.1`).some((l) => l.path === '/after-rotate'),
      'still writing to the rotated file',
    );
    assert.ok(!lb.output().includes('"port":9229'), 'SIGUSR1 did not open the inspector');
  });

  test('config: sample out of range and a missing path are named with line:col', () => {
    const r = parseConfigText(`access_log: { sample: 2 }\nload_balancers: []\n`, 'f.yaml');
    assert.ok(!r.ok);
    assert.deepEqual(
      r.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`),
      ['1:13 access_log.path: is required', '1:23 access_log.sample: 2 is out of range 0-1'],
    );
    const ok = parseConfigText(
      `access_log: { path: stdout, sample: 0.25 }\nload_balancers: []\n`,
      '/etc/f.yaml',
    );
    assert.ok(ok.ok);
    assert.deepEqual(ok.config.static.accessLog, { path: 'stdout', sample: 0.25, flushIntervalMs: 100 });
    const rel = parseConfigText(
      `access_log: { path: logs/a.log }\nload_balancers: []\n`,
      '/etc/fiberlb/f.yaml',
    );
    assert.ok(rel.ok);
    assert.deepEqual(rel.config.static.accessLog, {
      path: '/etc/fiberlb/logs/a.log',
      sample: 1,
      flushIntervalMs: 100,
    });
    const flush = parseConfigText(
      `access_log: { path: stdout, flush_interval: 1s }\nload_balancers: []\n`,
      '/etc/f.yaml',
    );
    assert.ok(flush.ok);
    assert.equal(flush.config.static.accessLog?.flushIntervalMs, 1000);
    const bad = parseConfigText(
      `access_log: { path: stdout, flush_interval: 11s }\nlisteners_x: 1\n`,
      'f.yaml',
    );
    assert.ok(!bad.ok);
    assert.ok(
      bad.issues.some(
        (i) =>
          `${i.line}:${i.col} ${i.path}: ${i.message}` ===
          '1:45 access_log.flush_interval: must be at most 10s',
      ),
      JSON.stringify(bad.issues),
    );
  });

  test('a line: durations in ms to 3 decimals, ts in ISO 8601 to the millisecond', async () => {
    const file = join(tempDir(), 'access.log');
    const w = new LogWriter(file, 0);
    const sink = new AccessLogSink(w, 1);
    const target = { key: 'lb/p/b1', address: '10.0.200.21', port: 8080 } as unknown as BackendTarget;
    const base = {
      res: { headersSent: true, statusCode: 200 },
      backend: target,
      route: { route: 'r', poolName: 'p' },
      method: 'GET',
      path: '/a?secret=1',
      peerIp: '127.0.0.1',
      requestId: 'id-1',
      errorClass: undefined,
      requestBytes: 0,
      responseBytes: 13,
    };
    const before = Date.now();
    // duration 12.3456 → 12.346; connect 0.0004 → 0; first byte 1.05 → 1.05; 7 → 7.
    sink.http(
      'lb/web',
      'lb',
      { ...base, startedAt: 100, dispatchedAt: 101, sentAt: 101.0004, firstByteAt: 102.05 },
      112.3456,
    );
    sink.http(
      'lb/web',
      'lb',
      { ...base, startedAt: 0, dispatchedAt: 0.5, sentAt: 1.5, firstByteAt: 7.5 },
      1000.0011,
    );
    await w.close(5000);
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const [a, b] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      [a!.duration_ms, a!.upstream_connect_ms, a!.upstream_first_byte_ms, a!.path],
      [12.346, 0, 1.05, '/a'],
    );
    assert.deepEqual([b!.duration_ms, b!.upstream_connect_ms, b!.upstream_first_byte_ms], [1000.001, 1, 7]);
    assert.match(lines[0]!, /"duration_ms":12\.346,"upstream_connect_ms":0,"upstream_first_byte_ms":1\.05,/);
    const ts = String(a!.ts);
    assert.match(ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(new Date(ts).toISOString(), ts);
    assert.ok(Date.parse(ts) >= before - 1 && Date.parse(ts) <= Date.now(), `${ts} vs ${before}`);
  });

  test('flush_interval: lines wait for it, then go out in one write', async () => {
    const file = join(tempDir(), 'access.log');
    const w = new LogWriter(file, 600);
    await sleep(100); // the file is open
    for (let i = 0; i < 20; i++) w.write(`{"i":${i}}`);
    await sleep(150);
    assert.equal(readFileSync(file, 'utf8'), '', 'nothing written before the interval');
    await waitFor('the batch', () =>
      readFileSync(file, 'utf8').split('\n').length === 21 ? true : undefined,
    );
    assert.equal(w.writes, 1);
    await w.close(5000);
  });

  test('the writer never blocks: with no reader, lines are dropped and counted; a reader gets the rest', async (t) => {
    const dir = tempDir();
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    // Opening a FIFO for writing waits for a reader (in libuv's thread pool, not the loop), so
    // until the reader below appears, a write that blocked would block forever: the loop
    // finishing at all is the proof. The reader is opened even if an assertion fails first,
    // or the pending open would keep this process alive.
    const w = new LogWriter(fifo);
    let reader: Awaited<ReturnType<typeof open>> | undefined;
    t.after(async () => {
      reader ??= await open(fifo, 'r');
      await w.close(1000);
      await reader.close().catch(() => {});
    });
    const line = 'x'.repeat(1023);
    const n = Math.ceil((2 * MAX_PENDING_BYTES) / 1024);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) w.write(line);
    const loopMs = performance.now() - t0;
    // Margin for a loaded machine: 8192 writes into a queue take well under a millisecond each.
    assert.ok(loopMs < 2000, `${n} writes took ${loopMs} ms`);
    assert.equal(w.dropped, n - MAX_PENDING_BYTES / 1024);
    // A reader appears: what was queued is written, in one piece per line.
    reader = await open(fifo, 'r');
    const closing = w.close(30_000);
    const text = await readFile(reader, 'utf8');
    await closing;
    const got = text.split('\n').filter(Boolean);
    assert.equal(got.length, MAX_PENDING_BYTES / 1024);
    assert.ok(got.every((l) => l === line));
    assert.equal(w.written, got.length);
  });

  test('lines are batched: a steady trickle, one line a millisecond, goes out in few writes', async () => {
    // An async fs.write costs tens of µs of CPU in the thread-pool hand-off: one per line would
    // cost more than the request it logs.
    const file = join(tempDir(), 'access.log');
    const w = new LogWriter(file);
    // Each line after the previous one's write is done: only waiting for more lines batches.
    const n = 100;
    for (let i = 0; i < n; i++) {
      w.write(`{"i":${i}}`);
      await sleep(1);
    }
    await w.close(5000);
    const got = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.deepEqual(
      got.map((l) => (JSON.parse(l) as { i: number }).i),
      Array.from({ length: n }, (_, i) => i),
      'every line, in order',
    );
    assert.equal(w.written, n);
    assert.ok(w.writes <= n / 3, `${n} lines in ${w.writes} writes`);
  });

  test('lines are written whole and in order: multi-byte characters, a line bigger than a chunk', async () => {
    const file = join(tempDir(), 'access.log');
    const w = new LogWriter(file);
    const big = `{"big":"${'é'.repeat(200_000)}"}`; // 400 kB in UTF-8, more than one 256 KiB chunk
    const want = [
      '{"p":"/caf\u00e9 ☕ 𝄞"}',
      big,
      ...Array.from({ length: 3000 }, (_, i) => `{"i":${i},"s":"ü${i}"}`),
    ];
    for (const l of want) w.write(l);
    await w.close(10_000);
    assert.deepEqual(readFileSync(file, 'utf8').split('\n').slice(0, -1), want);
    assert.equal(w.written, want.length);
    assert.equal(w.dropped, 0);
  });
});
