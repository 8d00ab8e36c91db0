// test: serial — it kills processes under load and waits on timings, so it runs alone.
// Health end to end through a real 2-worker `dist/cli.js run`, against real loopback backends
// that the tests kill, reset and revive: a backend killed under autocannon load costs no client
// request (retries cover the race until the probes mark it down) and gets no traffic after
// fall × interval (+ one interval); back, it gets traffic after rise × interval, ramped by slow
// start. A tcp pool's new connections avoid a dead backend. Drain finishes and says so.
// Passive outlier detection ejects a backend that answers 500s and lets it back.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import autocannon from 'autocannon';
import { lbConfigHead, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { adminReload, adminStatus, healthBackends, startHcLb, waitFor } from './helpers/health-backends.ts';
import { readToEnd, tcpConnect, tcpEcho } from './helpers/l4-backends.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

const INTERVAL = 200;
const RISE = 2;
const FALL = 2;

const HC = `{ type: http, path: /healthz, interval: ${INTERVAL}ms, timeout: 100ms, rise: ${RISE}, fall: ${FALL} }`;

/** A server on `port` that accepts and resets every connection, counting them. */
async function resetter(port: number): Promise<{ count: () => number; close(): Promise<void> }> {
  let n = 0;
  const socks = new Set<Socket>();
  const s = createServer((c) => {
    n++;
    c.on('error', () => {});
    c.resetAndDestroy();
  });
  s.on('connection', (c) => {
    socks.add(c);
    c.on('close', () => socks.delete(c));
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', () => r()));
  return {
    count: () => n,
    close: () =>
      new Promise<void>((r) => {
        s.close(() => r());
        for (const c of socks) c.destroy();
      }),
  };
}

describe('health end to end (2 workers)', () => {
  test('kill one of three backends under load: no client error, no traffic after fall × interval, back after rise × interval with slow start', async (t) => {
    const bs = await healthBackends(t, 'a', 'b', 'c');
    const c = bs[2];
    const { lb, dir, admin, api } = await startHcLb(t, bs, {
      healthCheck: HC,
      pool: '        slow_start: 2s',
    });

    const run = autocannon({ url: `http://127.0.0.1:${api}/x`, connections: 10, duration: 8 });
    t.after(() => run.stop());
    await sleep(1000);
    // Kill c (its port refuses). Once fall × interval (+ one interval) passed, what answers on
    // its port resets every connection (probes included), so we can count what still reaches it.
    await c.kill();
    await sleep(FALL * INTERVAL + INTERVAL + 100);
    const dead = await resetter(c.port);
    const windowStart = Date.now();
    await sleep(2000);
    const reached = dead.count();
    const windowMs = Date.now() - windowStart;
    // Only the probes (one per interval) still connect; traffic would be hundreds.
    assert.ok(
      reached <= windowMs / INTERVAL + 2,
      `${reached} connections reached the dead backend in ${windowMs} ms`,
    );

    await dead.close();
    const trafficBefore = c.traffic;
    await c.revive();
    const revivedAt = Date.now();
    await waitFor('traffic to c again', () => c.traffic > trafficBefore, 3000);
    const backAfter = c.trafficTimes[trafficBefore]! - revivedAt;
    // rise × interval: the first good probe comes within an interval, the second one later.
    assert.ok(backAfter >= (RISE - 1) * INTERVAL - 50, `back after ${backAfter} ms`);
    // Upper bound with room for a loaded machine (probe, IPC to 2 workers, the next request).
    assert.ok(backAfter <= RISE * INTERVAL + INTERVAL + 800, `back after ${backAfter} ms`);

    const result = await run;
    assert.equal(result.errors, 0, 'connection errors seen by clients');
    assert.equal(
      result.non2xx,
      0,
      `non-2xx answers: ${JSON.stringify((await adminStatus(admin, dir)).errors)}`,
    );
    assert.ok(result.requests.total > 1000, `requests: ${result.requests.total}`);

    // Slow start: c's share of all traffic in its first 500 ms back vs from 2.2 s on.
    const back = c.trafficTimes[trafficBefore]!;
    const all = bs.flatMap((b) => b.trafficTimes);
    const share = (from: number, to: number) =>
      c.trafficTimes.filter((x) => x >= from && x < to).length /
      Math.max(1, all.filter((x) => x >= from && x < to).length);
    const early = share(back, back + 500);
    const late = share(back + 2200, back + 10_000);
    assert.ok(early < late * 0.75, `early share ${early.toFixed(3)}, late ${late.toFixed(3)}`);
    assert.ok(late > 0.2, `late share ${late.toFixed(3)}`);
    const st = await adminStatus(admin, dir);
    assert.ok((st.counters as Record<string, number>).retries_total > 0, 'retries covered the kill');
    assert.match(lb.output(), /"msg":"backend down".*"backend":"hc\/web\/b2"/);
    assert.match(lb.output(), /"msg":"backend up".*"backend":"hc\/web\/b2"/);
  });

  test('tcp pool with a dead backend: new connections avoid it once its tcp check fails', async (t) => {
    const a = await tcpEcho('a:');
    const b = await tcpEcho('b:');
    t.after(() => Promise.all([a.close(), b.close()]));
    const dir = tempDir();
    const admin = await freeTcpPort();
    const port = await freeTcpPort();
    const file = writeConfig(
      dir,
      `${lbConfigHead(admin, 'workers: 2, drain_timeout: 1s', 'l4')}      - { name: raw, port: ${port}, protocol: tcp, default_pool: echo }
    pools:
      - name: echo
        health_check: { type: tcp, interval: ${INTERVAL}ms, timeout: 100ms, rise: 2, fall: 2 }
        backends:
          - { address: 127.0.0.1, port: ${a.port} }
          - { address: 127.0.0.1, port: ${b.port} }
`,
    );
    const lb = await startLb(file, admin);
    t.after(() => lb.stop());
    await b.close();
    await sleep(FALL * INTERVAL + INTERVAL + 200);
    const answers: string[] = [];
    for (let i = 0; i < 20; i++) {
      const s = await tcpConnect(port);
      s.end('hi');
      answers.push((await readToEnd(s)).data.toString());
    }
    assert.deepEqual([...new Set(answers)], ['a:hi'], 'every new connection went to the live backend');
  });

  test('drain: no new requests to a draining backend, in-flight ones finish, then "backend drained"', async (t) => {
    const [a, b] = await healthBackends(t, 'a', 'b');
    const { lb, dir, file, admin, api, config } = await startHcLb(t, [a, b], { healthCheck: HC });
    // Slow requests until at least one is in flight at b.
    const slow: Array<Promise<number>> = [];
    for (let i = 0; i < 10 && b.traffic === 0; i++) {
      slow.push(fetch(`http://127.0.0.1:${api}/slow?ms=1500`).then((r) => r.text().then(() => r.status)));
      await sleep(30);
    }
    await waitFor('a request in flight at b', () => b.traffic > 0, 2000);
    const atB = b.traffic;
    writeFileSync(file, config({ healthCheck: HC, backendExtra: ['', ', admin_state: drain'] }));
    assert.equal(await adminReload(admin, dir), 200);
    for (let i = 0; i < 10; i++) assert.equal(await (await fetch(`http://127.0.0.1:${api}/x`)).text(), 'a');
    assert.equal(b.traffic, atB, 'no new request reached the draining backend');
    await waitFor(
      'in-flight reported',
      async () =>
        (await adminStatus(admin, dir)).health.backends.find((x) => x.backend === 'hc/web/b1')?.drain
          ?.in_flight === atB,
      2000,
    );
    const mid = (await adminStatus(admin, dir)).health.backends.find((x) => x.backend === 'hc/web/b1')!;
    assert.equal(mid.drain?.drained, false);
    assert.doesNotMatch(lb.output(), /backend drained/);
    assert.deepEqual([...new Set(await Promise.all(slow))], [200], 'in-flight requests finished');
    await waitFor(
      'drained',
      async () =>
        (await adminStatus(admin, dir)).health.backends.find((x) => x.backend === 'hc/web/b1')?.drain
          ?.drained === true,
      3000,
    );
    assert.match(lb.output(), /"msg":"backend drained".*"backend":"hc\/web\/b1"/);
  });

  test('outlier detection: a backend answering 500s is ejected for all workers, then returns', async (t) => {
    const [a, b] = await healthBackends(t, 'a', 'b');
    const { lb, dir, admin, api } = await startHcLb(t, [a, b], {
      healthCheck: HC,
      pool: '        outlier_detection: { consecutive_failures: 3, on_status: [500], base_ejection_time: 1500ms, max_ejection_percent: 50 }',
    });
    b.trafficStatus = 500;
    // Enough requests for 3 failures at b across both workers.
    for (let i = 0; i < 12; i++) await (await fetch(`http://127.0.0.1:${api}/x`)).text();
    await waitFor(
      'b ejected',
      async () => (await adminStatus(admin, dir)).health.down.includes('hc/web/b1'),
      2000,
    );
    await sleep(100);
    const atB = b.traffic;
    for (let i = 0; i < 20; i++) assert.equal(await (await fetch(`http://127.0.0.1:${api}/x`)).text(), 'a');
    assert.equal(b.traffic, atB, 'no traffic to the ejected backend');
    const st = (await adminStatus(admin, dir)).health.backends.find((x) => x.backend === 'hc/web/b1')!;
    assert.equal(st.state, 'ejected');
    assert.equal(st.outlier?.ejections, 1);
    const until = Date.parse(st.outlier!.ejected_until!);
    assert.match(lb.output(), /"msg":"backend ejected".*"backend":"hc\/web\/b1"/);
    // a alone must not be ejected too (max_ejection_percent 50 of 2 = 1).
    b.trafficStatus = 200;
    await waitFor('b back', async () => (await adminStatus(admin, dir)).health.down.length === 0, 3000);
    assert.ok(Date.now() >= until - 50, 'ejected until base_ejection_time passed');
  });
});
