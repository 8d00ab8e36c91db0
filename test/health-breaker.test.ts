// Circuit breaking: a backend's max_requests / max_connections (each worker's share) caps what
// is in flight to it; HTTP requests over it wait in the pool's bounded queue and overflow
// answers 503 queue_full at once; a TCP connection goes to a backend under its limit or is
// refused (queue_full).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BackendConfig, PoolConfig } from '../src/config/model.ts';
import { createTcpListener } from '../src/worker/l4/tcp.ts';
import { PoolRuntime } from '../src/worker/routing/pool-runtime.ts';
import { Gate, PoolQueue } from '../src/worker/upstream/admission.ts';
import { captureLog } from './helpers/capture-log.ts';
import { backend, poolConfig, startBackend, startHttpListener } from './helpers/http-fixtures.ts';
import { readToEnd, tcpBackend, tcpConnect } from './helpers/l4-backends.ts';
import { l4Env, l4Listener, l4Pool, l4State } from './helpers/l4-state.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

describe('circuit breaking (http)', () => {
  test('max_requests caps in-flight requests; one waits in the queue, the next is 503 queue_full at once', async (t) => {
    const log = captureLog(t);
    let open = 0;
    let maxOpen = 0;
    const b = await startBackend((_req, res) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      setTimeout(() => {
        open--;
        res.end('ok');
      }, 300);
    });
    t.after(() => b.close());
    const limited: BackendConfig = { ...backend(b.port), maxRequests: 2 };
    const cfg: PoolConfig = { ...poolConfig('web', [limited]), maxQueue: 1 };
    const l = await startHttpListener(t, {}, [cfg]);
    const timed = async () => {
      const started = Date.now();
      const r = await fetch(`http://127.0.0.1:${l.port}/`);
      return { status: r.status, text: await r.text(), ms: Date.now() - started };
    };
    const first = [timed(), timed(), timed()];
    await sleep(50);
    const overflow = await timed();
    assert.equal(overflow.status, 503);
    assert.match(overflow.text, /queue_full/);
    assert.ok(overflow.ms < 150, `overflow answered in ${overflow.ms} ms`);
    const rest = await Promise.all(first);
    assert.deepEqual(
      rest.map((r) => r.status),
      [200, 200, 200],
    );
    assert.ok(rest[2]!.ms >= 550, `the queued one waited for a slot: ${rest[2]!.ms} ms`);
    assert.equal(maxOpen, 2, 'never more than max_requests at the backend');
    assert.equal(log.of('queue_full').length, 1);
  });

  test('the limit is split by the worker count, at least 1; max_connections counts too', () => {
    const cfg = poolConfig('web', [
      { ...backend(1), maxRequests: 10 },
      { ...backend(2), maxConnections: 3, maxRequests: 8 },
      backend(3),
    ]);
    const p = new PoolRuntime('lb1', cfg, new Set(), undefined, 4);
    assert.deepEqual(
      p.targets.map((t) => p.limitOf(t)),
      [2, 1, 0],
    );
  });

  test('Gate.limit: lowering lets in-flight finish; raising admits waiters', () => {
    const g = new Gate(4);
    const q = new PoolQueue({ maxQueue: 10, queueTimeoutMs: 10_000 });
    for (let i = 0; i < 4; i++) assert.equal(g.tryAcquire(), true);
    g.limit(2);
    let admitted = 0;
    const w = { admitted: () => admitted++, queueTimedOut: () => assert.fail('timed out') };
    const tickets = [g.enqueue(w, q), g.enqueue(w, q)];
    g.release();
    g.release();
    assert.equal(admitted, 0, 'still at 2 in flight: nothing handed on');
    g.release();
    assert.equal(admitted, 1, 'below the limit again: the oldest waiter goes');
    g.limit(0);
    assert.equal(admitted, 2, 'limit lifted: the rest go at once');
    for (const t of tickets) t?.cancel();
  });
});

describe('circuit breaking (tcp)', () => {
  test('a backend at max_connections gets no new connection; all full → refused (queue_full)', async (t) => {
    const log = captureLog(t);
    const conns: string[] = [];
    const mk = (tag: string) =>
      tcpBackend((s) => {
        conns.push(tag);
        s.on('data', () => {});
        s.on('end', () => s.end());
      });
    const a = await mk('a');
    const b = await mk('b');
    t.after(() => Promise.all([a.close(), b.close()]));
    const port = await freeTcpPort();
    const pool = l4Pool('main', [a.port, b.port]);
    const limited = { ...pool, backends: pool.backends.map((x) => ({ ...x, maxConnections: 1 })) };
    const env = l4Env();
    const h = createTcpListener(l4State(l4Listener('tcp', port), [limited]), env);
    await h.ready;
    t.after(() => h.close(100));
    const c1 = await tcpConnect(port);
    const c2 = await tcpConnect(port);
    await sleep(100);
    assert.deepEqual([...conns].sort(), ['a', 'b']);
    const c3 = await tcpConnect(port);
    await readToEnd(c3);
    assert.equal(conns.length, 2, 'the third connection reached no backend');
    assert.equal(log.of('queue_full').length, 1);
    c1.destroy();
    await sleep(100);
    const c4 = await tcpConnect(port);
    await sleep(100);
    assert.equal(conns.length, 3, 'a freed slot takes the next connection');
    c2.destroy();
    c4.destroy();
  });
});
