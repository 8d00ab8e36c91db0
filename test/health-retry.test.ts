// Retries through the in-process HTTP listener, against real loopback backends: refused
// connections and the stale keep-alive race are retried transparently; a reset after the
// backend may have read a POST is not; retry.on_status honours Retry-After; the retry budget
// caps what a total outage costs the backends; a streamed body is never replayed.

import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import type { PoolConfig, RetryConfig } from '../src/config/model.ts';
import { DEFAULT_RETRY } from '../src/config/validate-health.ts';
import { retryAfterMs, retryStats } from '../src/worker/upstream/retry.ts';
import { captureLog } from './helpers/capture-log.ts';
import { idleClosingBackend } from './helpers/health-backends.ts';
import { backend, poolConfig, startBackend, startHttpListener } from './helpers/http-fixtures.ts';
import { blackholeTcpPort } from './helpers/l4-backends.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

function pool(ports: number[], retry: Partial<RetryConfig> = {}): PoolConfig {
  return {
    ...poolConfig(
      'web',
      ports.map((p) => backend(p)),
    ),
    retry: { ...DEFAULT_RETRY, ...retry },
  };
}

/** A backend that counts requests (by method) and answers with `handler`. */
async function counting(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: string[] = [];
  const b = await startBackend((req, res) => {
    seen.push(req.method ?? '');
    handler(req, res);
  });
  return Object.assign(b, { seen });
}

const okHandler = (name: string) => (req: IncomingMessage, res: ServerResponse) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c));
  req.on('end', () => res.end(`${name}:${body}`));
};

describe('retries', () => {
  test('connection refused: every request is answered by the live backend, POST included, body intact', async (t) => {
    captureLog(t);
    const live = await counting(okHandler('live'));
    t.after(() => live.close());
    const dead = await freeTcpPort();
    const l = await startHttpListener(t, { limits: { bufferBodyBytes: 65536 } }, [pool([dead, live.port])]);
    const before = retryStats().retries_total;
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`http://127.0.0.1:${l.port}/`, {
        method: i % 2 ? 'POST' : 'GET',
        body: i % 2 ? `b${i}` : undefined,
      });
      assert.equal(r.status, 200);
      assert.equal(await r.text(), `live:${i % 2 ? `b${i}` : ''}`);
    }
    assert.equal(live.seen.length, 10, 'each request reached the live backend once');
    assert.ok(retryStats().retries_total - before >= 4, 'about half went to the dead one first');
    assert.equal(l.env.failures.toJSON().upstream_connect_refused ?? 0, 0, 'no failure reached a client');
  });

  test('a backend that resets after reading a POST: 502 upstream_reset, not retried; a GET is', async (t) => {
    const log = captureLog(t);
    const other = await counting(okHandler('other'));
    const resetter = await counting((req) => {
      req.resume();
      req.on('end', () => req.socket.destroy());
    });
    t.after(() => Promise.all([other.close(), resetter.close()]));
    // ip_hash on one client: every request goes to the same backend first.
    const cfg = { ...pool([resetter.port, other.port]) };
    const l = await startHttpListener(t, { limits: { bufferBodyBytes: 65536 } }, [cfg]);
    let posts = 0;
    for (let i = 0; i < 8; i++) {
      const r = await fetch(`http://127.0.0.1:${l.port}/`, { method: 'POST', body: 'data' });
      if (r.status === 502) {
        assert.match(await r.text(), /upstream_reset/);
        posts++;
      } else assert.equal(await r.text(), 'other:data');
    }
    assert.ok(posts >= 3, `round robin sent about half the POSTs to the resetter: ${posts}`);
    assert.equal(
      other.seen.filter((m) => m === 'POST').length,
      8 - posts,
      'no POST was retried on the other backend',
    );
    assert.equal(log.of('upstream_reset').length, posts);
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`http://127.0.0.1:${l.port}/`);
      assert.equal(r.status, 200, 'a GET is retried elsewhere');
      await r.text();
    }
  });

  test('a backend that resets mid-response-body: the client connection is cut (upstream_reset), no retry, no crash', async (t) => {
    const log = captureLog(t);
    const other = await counting(okHandler('other'));
    const cutter = await counting((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    t.after(() => Promise.all([other.close(), cutter.close()]));
    const l = await startHttpListener(t, {}, [pool([cutter.port])]);
    const r = await fetch(`http://127.0.0.1:${l.port}/`);
    assert.equal(r.status, 200);
    await assert.rejects(r.text(), 'the truncated body is not passed off as complete');
    await sleep(50);
    assert.equal(log.of('upstream_reset').length, 1);
    assert.equal(other.seen.length, 0);
    // The listener still serves.
    const l2 = await startHttpListener(t, {}, [pool([other.port])]);
    assert.equal(await (await fetch(`http://127.0.0.1:${l2.port}/`)).text(), 'other:');
  });

  test('on_status: a 503 is retried elsewhere; a Retry-After beyond max_retry_after goes to the client', async (t) => {
    captureLog(t);
    let retryAfter = '0';
    const busy = await counting((_req, res) => res.writeHead(503, { 'retry-after': retryAfter }).end('busy'));
    const good = await counting(okHandler('good'));
    t.after(() => Promise.all([busy.close(), good.close()]));
    const l = await startHttpListener(t, {}, [pool([busy.port, good.port], { onStatus: [503] })]);
    for (let i = 0; i < 6; i++)
      assert.equal(await (await fetch(`http://127.0.0.1:${l.port}/`)).text(), 'good:');
    assert.equal(good.seen.length, 6);
    // POST is not idempotent: its 503 is the answer.
    let post503 = 0;
    for (let i = 0; i < 4; i++)
      if ((await fetch(`http://127.0.0.1:${l.port}/`, { method: 'POST', body: 'x' })).status === 503)
        post503++;
    assert.ok(post503 >= 1);
    // A short Retry-After is waited for.
    retryAfter = '1';
    const tooLong0 = retryStats().retry_after_too_long_total;
    let started = 0;
    let waited = 0;
    for (let i = 0; i < 4; i++) {
      started = Date.now();
      const r = await fetch(`http://127.0.0.1:${l.port}/`);
      await r.text();
      waited = Math.max(waited, Date.now() - started);
    }
    assert.ok(waited >= 900, `a retry after Retry-After: 1 waited ${waited} ms`);
    retryAfter = '120';
    let passed = 0;
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`http://127.0.0.1:${l.port}/`);
      if (r.status === 503) {
        assert.equal(r.headers.get('retry-after'), '120');
        passed++;
      }
      await r.text();
    }
    assert.ok(passed >= 1, 'the busy backend answered with a long Retry-After: passed through');
    assert.equal(retryStats().retry_after_too_long_total - tooLong0, passed);
  });

  test('total outage: retries are capped by the budget (counted at the backends)', async (t) => {
    captureLog(t);
    const slow503 = () =>
      counting((_req, res) => {
        setTimeout(() => res.writeHead(503).end('down'), 150);
      });
    const bs = await Promise.all([slow503(), slow503(), slow503()]);
    t.after(() => Promise.all(bs.map((b) => b.close())));
    const l = await startHttpListener(t, {}, [
      pool(
        bs.map((b) => b.port),
        { onStatus: [503], attempts: 2, budgetPercent: 20, budgetMin: 2 },
      ),
    ]);
    const exhausted0 = retryStats().retry_budget_exhausted_total;
    const N = 50;
    const answers = await Promise.all(
      Array.from({ length: N }, () =>
        fetch(`http://127.0.0.1:${l.port}/`).then((r) => r.text().then(() => r.status)),
      ),
    );
    assert.deepEqual([...new Set(answers)], [503]);
    const hits = bs.reduce((n, b) => n + b.seen.length, 0);
    // Without a budget: up to 3 tries each = 150. With it: 50 first tries + ≤ 20% of 50 in flight.
    assert.ok(hits > N, `some retries happened: ${hits}`);
    assert.ok(hits <= N + 10 + 2, `backend hits ${hits} for ${N} requests`);
    assert.ok(retryStats().retry_budget_exhausted_total > exhausted0);
  });

  test('connect timeout: a GET is retried elsewhere, a POST answers 504 upstream_connect_timeout', async (t) => {
    const log = captureLog(t);
    const live = await counting(okHandler('live'));
    const hole = await blackholeTcpPort();
    t.after(() => Promise.all([live.close(), hole.close()]));
    const l = await startHttpListener(
      t,
      { timeouts: { connectMs: 200 }, limits: { bufferBodyBytes: 1024 } },
      [pool([hole.port, live.port])],
    );
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`http://127.0.0.1:${l.port}/`);
      statuses.push(r.status);
      await r.text();
    }
    assert.deepEqual(statuses, [200, 200, 200, 200]);
    let timedOut = 0;
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`http://127.0.0.1:${l.port}/`, { method: 'POST', body: 'x' });
      if (r.status === 504) timedOut++;
      else assert.equal(r.status, 200);
      await r.text();
    }
    assert.ok(timedOut >= 1, 'round robin sent a POST to the black hole');
    assert.equal(log.of('upstream_connect_timeout').length, timedOut);
    assert.equal(live.seen.filter((m) => m === 'POST').length, 4 - timedOut);
  });

  test('a streamed body (over buffer_body) is never replayed', async (t) => {
    captureLog(t);
    const live = await counting(okHandler('live'));
    t.after(() => live.close());
    const dead = await freeTcpPort();
    const l = await startHttpListener(t, { limits: { bufferBodyBytes: 4 } }, [pool([dead, live.port])]);
    let refused = 0;
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`http://127.0.0.1:${l.port}/`, { method: 'PUT', body: 'more than four bytes' });
      if (r.status === 502) refused++;
      await r.text();
    }
    assert.ok(refused >= 2, `some PUTs met the dead backend and were not retried: ${refused}`);
    assert.equal(l.env.failures.toJSON().upstream_connect_refused, refused);
  });

  test('the stale keep-alive race (backends closing idle sockets at 50 ms) costs no request', async (t) => {
    captureLog(t);
    // a closes sockets idle for 50 ms and sends the FIN only when the next request arrives
    // (helpers: lateFin), so every reuse after a pause loses the race; b keeps its sockets.
    const a = await idleClosingBackend(50, 'a', { lateFin: true });
    const b = await idleClosingBackend(60_000, 'b');
    t.after(() => Promise.all([a.close(), b.close()]));
    // Steady traffic from 8 clients, each pausing around a's idle timeout. Runs at least 2 s,
    // and until `enough()` or 10 s.
    const run = async (attempts: number, enough: (errors: number) => boolean) => {
      const l = await startHttpListener(t, {}, [pool([a.port, b.port], { attempts })]);
      let errors = 0;
      let n = 0;
      const started = Date.now();
      const done = () => Date.now() - started > 10_000 || (Date.now() - started > 2000 && enough(errors));
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (!done()) {
            const r = await fetch(`http://127.0.0.1:${l.port}/`);
            if (r.status !== 200) errors++;
            await r.text();
            n++;
            await sleep(45 + Math.random() * 10);
          }
        }),
      );
      return { errors, n };
    };
    const without = await run(0, (errors) => errors > 0);
    assert.ok(without.errors > 0, `the race reproduces without retries (${without.errors} of ${without.n})`);
    const before = retryStats().retries_total;
    const withRetry = await run(2, () => retryStats().retries_total > before);
    assert.equal(withRetry.errors, 0, `errors with retries, of ${withRetry.n}`);
    assert.ok(
      retryStats().retries_total > before,
      `the race happened and was retried (${withRetry.n} requests)`,
    );
  });
});

describe('retryAfterMs', () => {
  test('seconds, HTTP dates, absent and garbage', () => {
    assert.equal(retryAfterMs('3'), 3000);
    assert.equal(retryAfterMs(['0']), 0);
    assert.equal(retryAfterMs(undefined), undefined);
    assert.equal(retryAfterMs('soon'), undefined);
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(retryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
    assert.equal(retryAfterMs('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
  });
});
