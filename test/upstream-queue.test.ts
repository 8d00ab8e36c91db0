// The bounded wait queue in front of each upstream: the Gate on its own (FIFO hand-over,
// cancel, timeout, clamping), then through an in-process HTTP listener with a backend that
// holds requests until the test lets them go: a full queue answers 503 queue_full at once,
// a long wait 503 queue_timeout, a released slot goes to the oldest waiter, and undici never
// opens more connections than the gate admits.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import type { PoolConfig } from '../src/config/model.ts';
import type { ErrorClass } from '../src/shared/errors.ts';
import { Failures } from '../src/shared/failure.ts';
import type { ListenerState, WorkerEnv } from '../src/worker/context.ts';
import { TicketKeyRing } from '../src/worker/tls/ticket-keys.ts';
import { Gate, PoolQueue, type Waiter } from '../src/worker/upstream/admission.ts';
import { type Upstream, UpstreamPools } from '../src/worker/upstream/http-pools.ts';
import { captureLog } from './helpers/capture-log.ts';
import { parseHead, raw } from './helpers/http-client.ts';
import {
  backend,
  type ListenerOverrides,
  poolConfig,
  startBackend,
  startHttpListener,
} from './helpers/http-fixtures.ts';
import { sleep } from './helpers/net.ts';
import { inProcessLeases } from './helpers/rate-limit.ts';

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not met in time: ${what}`);
    await sleep(5);
  }
}

describe('Gate (admission.ts)', () => {
  function waiter(log: string[], name: string): Waiter {
    return {
      admitted: () => log.push(`${name} admitted`),
      queueTimedOut: () => log.push(`${name} timed out`),
    };
  }

  it('admits up to capacity, queues FIFO up to max_queue, hands a released slot to the oldest', () => {
    const g = new Gate(2);
    const q = new PoolQueue({ maxQueue: 2, queueTimeoutMs: 60_000 });
    const log: string[] = [];
    assert.equal(g.tryAcquire(), true);
    assert.equal(g.tryAcquire(), true);
    assert.equal(g.tryAcquire(), false);
    const a = g.enqueue(waiter(log, 'a'), q);
    const b = g.enqueue(waiter(log, 'b'), q);
    assert.ok(a && b);
    assert.equal(g.enqueue(waiter(log, 'c'), q), undefined, 'queue full');
    assert.equal(q.waiting, 2);
    g.release();
    assert.deepEqual(log, ['a admitted']);
    assert.equal(g.inflight, 2, 'the slot passed straight on');
    b.cancel();
    b.cancel(); // twice is harmless
    assert.equal(q.waiting, 0);
    assert.equal(g.waiting(), 0);
    g.release();
    g.release();
    g.release(); // a stray extra release is clamped
    assert.equal(g.inflight, 0);
    assert.deepEqual(log, ['a admitted']);
  });

  it('times a waiter out after queue_timeout and forgets it', async () => {
    const g = new Gate(1);
    const q = new PoolQueue({ maxQueue: 10, queueTimeoutMs: 50 });
    const log: string[] = [];
    g.tryAcquire();
    g.enqueue(waiter(log, 'a'), q);
    let emptied = false;
    g.whenEmpty(() => {
      emptied = true;
    });
    await sleep(120);
    assert.deepEqual(log, ['a timed out']);
    assert.equal(q.waiting, 0);
    assert.ok(emptied, 'whenEmpty ran once the last waiter left');
    g.release();
    assert.equal(g.inflight, 0);
    assert.deepEqual(log, ['a timed out']);
  });

  it('max_queue 0: nobody waits', () => {
    const g = new Gate(1);
    g.tryAcquire();
    assert.equal(g.enqueue(waiter([], 'a'), new PoolQueue({ maxQueue: 0, queueTimeoutMs: 1000 })), undefined);
  });
});

/** A backend that holds every request until release() and records arrival order. */
async function holdingBackend(t: TestContext) {
  const held: Array<{ path: string; res: http.ServerResponse }> = [];
  const arrived: string[] = [];
  let connections = 0;
  const b = await startBackend((req, res) => {
    req.resume();
    arrived.push(req.url ?? '');
    held.push({ path: req.url ?? '', res });
  });
  b.server.on('connection', () => connections++);
  t.after(() => b.close());
  return {
    port: b.port,
    arrived,
    held: () => held.length,
    connections: () => connections,
    /** Answer the oldest held request. */
    release(): string {
      const h = held.shift()!;
      h.res.end(`done ${h.path}`);
      return h.path;
    },
  };
}

interface Proxy {
  port: number;
  state: ListenerState;
  env: WorkerEnv;
  upstream(): Upstream;
  count(cls: ErrorClass): number;
}

async function startProxy(
  t: TestContext,
  connections: number,
  pools: PoolConfig[],
  o: ListenerOverrides = {},
): Promise<Proxy> {
  const env: WorkerEnv = {
    failures: new Failures(),
    upstreams: new UpstreamPools({ connections }),
    rateLimits: inProcessLeases(),
    tickets: new TicketKeyRing(),
  };
  const { port, state } = await startHttpListener(t, o, pools, { env });
  return {
    port,
    state,
    env,
    upstream: () => env.upstreams.get(state.pools.get('web')!.targets[0]!, state.listener.timeouts.connectMs),
    count: (cls) => env.failures.counts.get(cls) ?? 0,
  };
}

/** GET on a fresh connection; 'timeout' if no answer within `ms`. */
function get(port: number, path: string, ms = 5000): Promise<{ status: number; body: string } | 'timeout'> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(ms, () => {
      req.destroy();
      resolve('timeout');
    });
    req.on('error', () => resolve('timeout'));
    req.end();
  });
}

function queuePool(b: { port: number }, maxQueue: number, queueTimeoutMs: number): PoolConfig[] {
  return [{ ...poolConfig('web', [backend(b.port)]), maxQueue, queueTimeoutMs }];
}

describe('per-pool wait queue in front of the upstream', () => {
  it('queue full → 503 queue_full at once; undici opens no more connections than admitted', async (t) => {
    const b = await holdingBackend(t);
    const p = await startProxy(t, 2, queuePool(b, 1, 10_000));
    const log = captureLog(t);
    const r1 = get(p.port, '/1');
    const r2 = get(p.port, '/2');
    await until(() => b.held() === 2, 'two requests at the backend');
    const r3 = get(p.port, '/3');
    await until(() => p.upstream().gate.waiting() === 1, 'one waiter');
    // The waiter waits at the gate, not inside undici.
    const stats = p.upstream().pool.stats;
    assert.equal(stats.queued, 0, 'nothing queued inside undici');
    assert.equal(stats.running, 2);
    const t0 = Date.now();
    const r4 = await get(p.port, '/4', 3000);
    const took = Date.now() - t0;
    assert.notEqual(r4, 'timeout');
    assert.equal(r4 !== 'timeout' && r4.status, 503);
    assert.match(r4 !== 'timeout' ? r4.body : '', /queue_full/);
    assert.ok(took < 500, `queue_full took ${took} ms`);
    assert.equal(p.count('queue_full'), 1);
    const [line] = log.of('queue_full');
    assert.equal(line?.backend, `lb1/web/127.0.0.1:${b.port}`);
    assert.equal(line?.backend_address, `127.0.0.1:${b.port}`);
    assert.equal(line?.listener, 'lb1/web');
    assert.match(String(line?.error), /2 requests in flight, max_queue 1 waiting/);
    assert.ok(line?.request_id);

    // The oldest waiter gets the first released slot, on an existing connection.
    assert.equal(b.release(), '/1');
    await until(() => b.held() === 2, 'the waiter reached the backend');
    assert.deepEqual(b.arrived, ['/1', '/2', '/3']);
    b.release();
    b.release();
    for (const [r, path] of [
      [r1, '/1'],
      [r2, '/2'],
      [r3, '/3'],
    ] as const) {
      const got = await r;
      assert.deepEqual(got, { status: 200, body: `done ${path}` });
    }
    assert.equal(b.connections(), 2, 'never more upstream connections than slots');
    assert.equal(p.upstream().gate.inflight, 0);
    assert.equal(p.state.pools.get('web')!.targets[0]!.active, 0);
  });

  it('waited queue_timeout → 503 queue_timeout (a queued upload gets connection: close)', async (t) => {
    const b = await holdingBackend(t);
    const p = await startProxy(t, 1, queuePool(b, 10, 300));
    const log = captureLog(t);
    const r1 = get(p.port, '/held');
    await until(() => b.held() === 1, 'one request at the backend');
    const t0 = Date.now();
    const r2 = await get(p.port, '/waits');
    const took = Date.now() - t0;
    assert.equal(r2 !== 'timeout' && r2.status, 503);
    assert.match(r2 !== 'timeout' ? r2.body : '', /queue_timeout/);
    assert.ok(took >= 280 && took < 2000, `answered after ${took} ms`);
    // A streamed body (no buffering here) waits unread; after the 503 the connection closes.
    const r3 = await raw(
      p.port,
      `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'u'.repeat(1000)}`,
      3000,
    );
    assert.equal(parseHead(r3.text).status, 503);
    assert.equal(parseHead(r3.text).headers.connection, 'close');
    assert.ok(r3.closed);
    assert.equal(p.count('queue_timeout'), 2);
    const lines = log.of('queue_timeout');
    assert.equal(lines.length, 2);
    assert.match(String(lines[0]!.error), /^waited 300ms for one of 1 connections$/);
    assert.equal(lines[0]!.backend, `lb1/web/127.0.0.1:${b.port}`);
    assert.equal(p.upstream().gate.waiting(), 0);
    assert.equal(p.state.pools.get('web')!.targets[0]!.active, 1, 'only the held request counts');
    b.release();
    assert.deepEqual(await r1, { status: 200, body: 'done /held' });
    assert.deepEqual(b.arrived, ['/held']);
    await until(() => p.upstream().gate.inflight === 0, 'slot released');
  });

  it('FIFO: released slots go to the oldest waiter still there; a waiter that left holds nothing', async (t) => {
    const b = await holdingBackend(t);
    const p = await startProxy(t, 1, queuePool(b, 10, 10_000));
    captureLog(t);
    const r1 = get(p.port, '/1');
    await until(() => b.held() === 1, 'first at the backend');
    const r2 = get(p.port, '/2');
    await until(() => p.upstream().gate.waiting() === 1, 'r2 waits');
    // r3 waits on a raw socket and then leaves.
    const s3 = net.connect(p.port, '127.0.0.1');
    s3.on('error', () => {});
    s3.write('GET /3 HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => p.upstream().gate.waiting() === 2, 'r3 waits');
    const r4 = get(p.port, '/4');
    await until(() => p.upstream().gate.waiting() === 3, 'r4 waits');
    // A reset, not a FIN: a FIN is a half-close, whose client still gets its answer.
    s3.resetAndDestroy();
    await until(() => p.upstream().gate.waiting() === 2, 'r3 left the queue');
    assert.equal(p.count('client_abort'), 1);
    assert.equal(b.release(), '/1');
    await until(() => b.held() === 1, 'r2 admitted');
    assert.equal(b.release(), '/2');
    await until(() => b.held() === 1, 'r4 admitted');
    assert.equal(b.release(), '/4');
    assert.deepEqual(b.arrived, ['/1', '/2', '/4']);
    for (const r of [r1, r2, r4]) assert.equal(((await r) as { status: number }).status, 200);
    assert.equal(p.upstream().gate.inflight, 0);
    assert.equal(p.state.pools.get('web')!.targets[0]!.active, 0);
    assert.equal(b.connections(), 1);
  });
});
