// Active health checks: the prober against real loopback backends (http status ranges, body
// substring, tcp connect, rise/fall, no overlapping probes), and through a real 2-worker
// FiberLB: probes run once per backend (not per worker), a failing backend stops getting
// traffic, and a reload keeps the state of unchanged backends.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server } from 'node:net';
import { describe, test } from 'node:test';
import type { HealthCheckConfig } from '../src/config/model.ts';
import { HealthMonitor } from '../src/primary/health/monitor.ts';
import { Prober, type ProbeState, probe } from '../src/primary/health/prober.ts';
import { captureLog } from './helpers/capture-log.ts';
import { tempDir } from './helpers/cluster-fiberlb.ts';
import {
  adminReload,
  adminStatus,
  healthBackend,
  healthBackends,
  startHcLb,
  waitFor,
} from './helpers/health-backends.ts';
import { healthCheck } from './helpers/http-fixtures.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

/** The shared fixture, with this file's /healthz, 2xx only and fall 2. */
function check(o: Partial<HealthCheckConfig> = {}): HealthCheckConfig {
  // Interval 2 s, timeout 1 s (the fixture's): generous, as probe() on a loaded machine (TLS
  // handshakes included) must not time out.
  return healthCheck({ path: '/healthz', expectStatus: [{ from: 200, to: 299 }], fall: 2, ...o });
}

describe('probe()', () => {
  test('http: status ranges and body substring decide; reasons say why', async (t) => {
    const b = await healthBackend('a');
    t.after(() => b.close());
    const target = { address: '127.0.0.1', port: b.port };
    assert.deepEqual(await probe(target, check(), undefined), { ok: true, reason: 'status 200' });
    b.healthStatus = 302;
    assert.deepEqual(await probe(target, check(), undefined), { ok: false, reason: 'status 302' });
    const wide = check({
      expectStatus: [
        { from: 200, to: 204 },
        { from: 300, to: 399 },
      ],
    });
    assert.equal((await probe(target, wide, undefined)).ok, true, '302 is in 300-399');
    b.healthStatus = 200;
    b.healthBody = 'status: degraded';
    const body = check({ bodyContains: 'status: ok' });
    assert.deepEqual(await probe(target, body, undefined), {
      ok: false,
      reason: "body does not contain 'status: ok'",
    });
    b.healthBody = 'xx status: ok yy';
    assert.deepEqual(await probe(target, body, undefined), { ok: true, reason: 'status 200, body matched' });
  });

  test('http: the Host header and method are sent as configured', async (t) => {
    const seen: string[] = [];
    const { createServer: httpServer } = await import('node:http');
    const s = httpServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.host}`);
      res.end('ok');
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    t.after(() => s.close());
    const port = (s.address() as { port: number }).port;
    const r = await probe(
      { address: '127.0.0.1', port },
      check({ method: 'HEAD', host: 'svc.internal', path: '/ready' }),
      undefined,
    );
    assert.equal(r.ok, true);
    assert.deepEqual(seen, ['HEAD /ready svc.internal']);
  });

  test('https: with the TLS options it is given (a CA here), status and SNI from host', async (t) => {
    const dir = tempDir();
    const r = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=svc.internal',
        '-addext',
        'subjectAltName=DNS:svc.internal',
        '-keyout',
        `${dir}/k.pem`,
        '-out',
        `${dir}/c.pem`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const cert = readFileSync(`${dir}/c.pem`);
    const names: string[] = [];
    const s = createHttpsServer({ key: readFileSync(`${dir}/k.pem`), cert }, (req, res) => {
      names.push(String((req.socket as { servername?: string }).servername));
      res.end('ok');
    });
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    t.after(() => s.close());
    const target = { address: '127.0.0.1', port: (s.address() as { port: number }).port };
    const hc = check({ type: 'https', host: 'svc.internal' });
    assert.deepEqual(await probe(target, hc, { ca: cert }), { ok: true, reason: 'status 200' });
    assert.deepEqual(names, ['svc.internal']);
    // Without the CA the certificate is not trusted: the probe fails and says why.
    const bad = await probe(target, hc, undefined);
    assert.equal(bad.ok, false);
    assert.match(bad.reason, /SELF_SIGNED|self.signed/i);
    // The monitor asks tlsFor(pool) for a pool's https checks.
    const seenPools: string[] = [];
    const m = new HealthMonitor({
      onHealth: () => {},
      tlsFor: (pool) => {
        seenPools.push(pool.name);
        return { ca: cert };
      },
    });
    t.after(() => m.stop());
    const config = {
      loadBalancers: [
        {
          name: 'lb',
          listeners: [],
          pools: [
            {
              name: 'secure',
              healthCheck: hc,
              outlierDetection: undefined,
              panicThreshold: 0,
              backends: [{ id: 's', address: '127.0.0.1', port: target.port, adminState: 'enabled' }],
            },
          ],
        },
      ],
    } as never;
    m.update(config, 1);
    await waitFor('probed', () => (m.prober('lb/secure/s')?.history().length ?? 0) > 0, 5000);
    assert.equal(m.prober('lb/secure/s')!.state, 'up');
    assert.deepEqual(seenPools, ['secure']);
  });

  test('tcp: connect ok, refused, and a timeout bounded by timeout', async (t) => {
    const s: Server = createServer((c) => c.destroy());
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    t.after(() => s.close());
    const port = (s.address() as { port: number }).port;
    assert.deepEqual(await probe({ address: '127.0.0.1', port }, check({ type: 'tcp' }), undefined), {
      ok: true,
      reason: 'connected',
    });
    const dead = await freeTcpPort();
    assert.deepEqual(await probe({ address: '127.0.0.1', port: dead }, check({ type: 'tcp' }), undefined), {
      ok: false,
      reason: 'ECONNREFUSED',
    });
    // A backend that accepts and never answers: the http probe ends at its timeout.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    t.after(() => {
      silent.close();
    });
    const started = Date.now();
    const r = await probe(
      { address: '127.0.0.1', port: (silent.address() as { port: number }).port },
      check({ timeoutMs: 150 }),
      undefined,
    );
    assert.deepEqual(r, { ok: false, reason: 'timeout after 150 ms' });
    assert.ok(Date.now() - started < 1000);
  });
});

describe('Prober', () => {
  test('first result decides; then fall consecutive failures → down, rise successes → up; history kept', async (t) => {
    const b = await healthBackend('a');
    t.after(() => b.close());
    const changes: ProbeState[] = [];
    const p = new Prober(
      { address: '127.0.0.1', port: b.port },
      check({ intervalMs: 60_000, timeoutMs: 1000 }),
      (s) => changes.push(s),
    );
    t.after(() => p.stop());
    await p.runOnce();
    assert.equal(p.state, 'up');
    b.healthStatus = 500;
    await p.runOnce();
    assert.equal(p.state, 'up', 'one failure of fall 2');
    await p.runOnce();
    assert.equal(p.state, 'down');
    b.healthStatus = 200;
    await p.runOnce();
    assert.equal(p.state, 'down', 'one success of rise 2');
    b.healthStatus = 500;
    await p.runOnce();
    b.healthStatus = 200;
    await p.runOnce();
    assert.equal(p.state, 'down', 'a failure in between restarts the count');
    await p.runOnce();
    assert.equal(p.state, 'up');
    assert.deepEqual(changes, ['down', 'up']);
    const h = p.history();
    assert.equal(h.length, 7);
    assert.deepEqual(
      h.map((r) => r.outcome),
      ['ok', 'fail', 'fail', 'ok', 'fail', 'ok', 'ok'],
    );
    assert.equal(h[1]!.reason, 'status 500');
    assert.ok(h.every((r) => r.duration_ms >= 0 && !Number.isNaN(Date.parse(r.time))));
    for (let i = 0; i < 12; i++) await p.runOnce();
    assert.equal(p.history().length, 10, 'the last 10 are kept');
  });

  test('a slow backend never gets overlapping probes', async (t) => {
    let open = 0;
    let maxOpen = 0;
    let total = 0;
    // Accepts and never answers: every probe lasts its whole timeout (40 ms of a 60 ms interval).
    const s = createServer((c) => {
      open++;
      total++;
      maxOpen = Math.max(maxOpen, open);
      c.resume(); // read, so the probe's close is seen at once
      c.on('close', () => open--);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    t.after(() => s.close());
    const p = new Prober(
      { address: '127.0.0.1', port: (s.address() as { port: number }).port },
      check({ intervalMs: 60, timeoutMs: 40 }),
      () => {},
    );
    p.start(0);
    await sleep(700);
    p.stop();
    // Each probe takes 40 ms + 60 ms to the next: ≤ 7 in 700 ms, never two at once.
    assert.equal(maxOpen, 1);
    assert.ok(total >= 3 && total <= 8, `probes: ${total}`);
  });

  test('HealthMonitor: a reload keeps the prober (state and history) of an unchanged backend', async (t) => {
    const log = captureLog(t);
    const b = await healthBackend('a');
    t.after(() => b.close());
    b.healthStatus = 500;
    const published: string[][] = [];
    const m = new HealthMonitor({ onHealth: (h) => published.push([...h.down]) });
    t.after(() => m.stop());
    const cfg = (port: number, interval = '60ms') =>
      ({
        loadBalancers: [
          {
            name: 'lb',
            org: 'o',
            project: 'p',
            vip: '127.0.0.1',
            listeners: [],
            pools: [
              {
                name: 'web',
                healthCheck: check({ intervalMs: Number.parseInt(interval, 10), timeoutMs: 40 }),
                outlierDetection: undefined,
                backends: [{ id: 'a', address: '127.0.0.1', port, adminState: 'enabled' }],
              },
            ],
          },
        ],
      }) as never;
    m.update(cfg(b.port), 1);
    await waitFor('down', () => m.healthReport().down.length === 1);
    const prober = m.prober('lb/web/a');
    const before = prober!.history().length;
    m.update(cfg(b.port, '80ms'), 2);
    assert.equal(m.prober('lb/web/a'), prober, 'same prober');
    assert.deepEqual(m.healthReport().down, ['lb/web/a'], 'still down right after the reload');
    assert.ok(prober!.history().length >= before);
    assert.deepEqual(published, [['lb/web/a']], 'published once; the reload changed nothing');
    // Another port is another server: a fresh prober.
    const c = await healthBackend('c');
    t.after(() => c.close());
    m.update(cfg(c.port), 3);
    assert.notEqual(m.prober('lb/web/a'), prober);
    assert.equal(log.lines.filter((l) => l.msg === 'backend down').length, 1);
  });
});

describe('health checks in a running FiberLB (2 workers)', () => {
  test('probes run once per backend, not per worker; a failing backend stops getting traffic; a reload keeps its state', async (t) => {
    const [a, b] = await healthBackends(t, 'a', 'b');
    const { lb, dir, file, admin, api, yaml } = await startHcLb(t, [a, b], {
      healthCheck:
        '{ type: http, path: /healthz, expect_status: "200-299", body_contains: ok, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }',
    });

    // Probe count over a measured window: one prober per backend = window / 200 ms each.
    const p0 = a.probes;
    await sleep(2000);
    const probes = a.probes - p0;
    assert.ok(
      probes >= 7 && probes <= 12,
      `probes in 2 s at 200 ms with 2 workers: ${probes} (per worker would be ~20)`,
    );

    // The body no longer contains "ok": b is down after fall (2) × interval, plus one interval.
    b.healthBody = 'degraded';
    await waitFor(
      'b down in /status',
      async () => (await adminStatus(admin, dir)).health.down.includes('hc/web/b1'),
      3000,
    );
    // Workers apply it over IPC; then no request reaches b.
    await sleep(100);
    const before = b.traffic;
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`http://127.0.0.1:${api}/x`);
      assert.equal(await r.text(), 'a');
    }
    assert.equal(b.traffic, before, 'no request reached the down backend');
    const st = await adminStatus(admin, dir);
    const bh = st.health.backends.find((x) => x.backend === 'hc/web/b1')!;
    assert.equal(bh.state, 'down');
    assert.deepEqual(st.health.pools, [{ pool: 'hc/web', enabled: 2, healthy: 1, panic: false }]);
    assert.ok(bh.probes.length > 0 && bh.probes.length <= 10);
    assert.equal(bh.probes.at(-1)!.reason, "body does not contain 'ok'");
    assert.match(lb.output(), /"msg":"backend down".*"backend":"hc\/web\/b1"/);

    // A reload (same backends, another interval) keeps b down: no flap back to traffic.
    writeFileSync(file, yaml.replace('interval: 200ms', 'interval: 250ms'));
    assert.equal(await adminReload(admin, dir), 200);
    for (let i = 0; i < 20; i++) await (await fetch(`http://127.0.0.1:${api}/x`)).text();
    assert.equal(b.traffic, before, 'still no traffic to b after the reload');
    assert.deepEqual((await adminStatus(admin, dir)).health.down, ['hc/web/b1']);

    // Healthy again: back after rise (2) × interval.
    b.healthBody = 'ok';
    await waitFor('b up', async () => (await adminStatus(admin, dir)).health.down.length === 0, 3000);
    await sleep(100);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(await (await fetch(`http://127.0.0.1:${api}/x`)).text());
    assert.deepEqual([...seen].sort(), ['a', 'b']);
  });
});
