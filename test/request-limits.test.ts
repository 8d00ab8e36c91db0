// A listener's L7 limits driven directly (no sockets): the worker's real LeaseClient against the
// primary's real Ledger, with requests as the LimitedRequest a listener passes. What each limit
// counts by (the bucket key sent to the ledger), which limits apply to which route, the
// RateLimit-Policy of integer and fractional rates, the 429 headers when several limits are
// empty, the allow-list, and dry_run counting and logging at most once a second.

import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { test } from 'node:test';
import type { ListenerConfig } from '../src/config/model.ts';
import type { LeaseRequest } from '../src/ipc.ts';
import { Ledger } from '../src/primary/ratelimit/ledger.ts';
import { boundedKey } from '../src/worker/ratelimit/keys.ts';
import type { LeaseClient } from '../src/worker/ratelimit/lease-client.ts';
import { CompiledLimit, type LimitedRequest, RequestLimits } from '../src/worker/ratelimit/request-limits.ts';
import { captureLog } from './helpers/capture-log.ts';
import { LB, listenerConfig, listenerState, route } from './helpers/http-fixtures.ts';
import { cidrs, sleep } from './helpers/net.ts';
import { inProcessLeases, rateLimit, stallingLeases } from './helpers/rate-limit.ts';

interface Outcome {
  proceeded?: { pool: string; expectContinue: boolean };
  refused?: { headers: Record<string, string>; message: string };
}

/** A request as the limiter sees it; `outcome` settles on its (single) verdict. */
function request(o: { ip?: string; host?: string; headers?: IncomingHttpHeaders } = {}) {
  let settle!: (o: Outcome) => void;
  const outcome = new Promise<Outcome>((r) => {
    settle = r;
  });
  const r = {
    verdicts: 0,
    hashKeys: 0,
    outcome,
    host: o.host,
    req: { headers: o.headers ?? {} },
    hashKey() {
      r.hashKeys++;
      return o.ip ?? '10.0.0.1';
    },
    proceed(pool: string, expectContinue: boolean) {
      r.verdicts++;
      settle({ proceeded: { pool, expectContinue } });
    },
    refuse(h: string[], message: string) {
      r.verdicts++;
      const headers: Record<string, string> = {};
      for (let i = 0; i < h.length; i += 2) headers[h[i]!] = h[i + 1]!;
      settle({ refused: { headers, message } });
    },
  } satisfies LimitedRequest<string> & Record<string, unknown>;
  return r;
}

interface Setup {
  limits: RequestLimits<string>;
  client: LeaseClient;
  asked: LeaseRequest[];
}

function setup(
  t: { after(fn: () => void): void },
  o: Partial<ListenerConfig>,
  asked: LeaseRequest[] = [],
  client = inProcessLeases(new Ledger(), asked),
): Setup {
  t.after(() => client.close());
  const limits = new RequestLimits<string>(listenerState(listenerConfig(0, o), []), client);
  return { limits, client, asked };
}

/** Admit one request on route `index` (-1: the default pool) and wait for its verdict. */
async function admit(s: Setup, r: ReturnType<typeof request>, index = -1, expectContinue = false) {
  const lims = s.limits.limitsFor(index);
  assert.ok(lims, `limits for route ${index}`);
  s.limits.admit(r, lims, index, `pool${index}`, expectContinue);
  const got = await r.outcome;
  // One verdict only, even a turn later.
  await sleep(5);
  assert.equal(r.verdicts, 1);
  return got;
}

test('CompiledLimit: lease params, enforce, and a RateLimit-Policy with an integer q and a window of whole seconds', () => {
  const a = new CompiledLimit('lb/l/a', rateLimit({ name: 'a', rate: 2, perMs: 10_000 }));
  assert.deepEqual(a.params, { rate: 2, perMs: 10_000, burst: 2, global: false });
  assert.equal(a.enforce, true);
  assert.equal(a.policy, '"a";q=2;w=10');
  // A window under a second is stated as 1 s; a part second is rounded up.
  assert.equal(new CompiledLimit('x', rateLimit({ name: 'b', rate: 50, perMs: 200 })).policy, '"b";q=50;w=1');
  assert.equal(new CompiledLimit('x', rateLimit({ name: 'b', rate: 5, perMs: 2500 })).policy, '"b";q=5;w=3');
  // A fractional rate is 1 request per its interval: 0.5/s = 1 per 2 s, 0.3/s = 1 per 3.33 s.
  assert.equal(
    new CompiledLimit('x', rateLimit({ name: 'h', rate: 0.5, perMs: 1000 })).policy,
    '"h";q=1;w=2',
  );
  assert.equal(
    new CompiledLimit('x', rateLimit({ name: 'h', rate: 0.3, perMs: 1000 })).policy,
    '"h";q=1;w=4',
  );
  assert.equal(
    new CompiledLimit('x', rateLimit({ name: 'h', rate: 1.5, perMs: 60_000 })).policy,
    '"h";q=1;w=40',
  );
  const g = new CompiledLimit(
    'x',
    rateLimit({ name: 'g', rate: 1, burst: 7, scope: 'global', mode: 'dry_run' }),
  );
  assert.deepEqual(g.params, { rate: 1, perMs: 1000, burst: 7, global: true });
  assert.equal(g.enforce, false);
});

test('limitsFor: listener limits apply to every route and the default pool, route limits to their route only', (t) => {
  const own = rateLimit({ name: 'all', rate: 10 });
  const login = {
    ...route('web', { pathPrefix: '/login' }),
    rateLimits: [rateLimit({ name: 'login', rate: 1 })],
  };
  const s = setup(t, { rateLimits: [own], routes: [route('web'), login] });
  assert.deepEqual(
    s.limits.limitsFor(0)!.map((l) => l.id),
    [`${LB}/web/all`],
  );
  assert.deepEqual(
    s.limits.limitsFor(1)!.map((l) => l.id),
    [`${LB}/web/all`, `${LB}/web/routes[1]/login`],
  );
  assert.deepEqual(
    s.limits.limitsFor(-1)!.map((l) => l.id),
    [`${LB}/web/all`],
  );
  const none = setup(t, { routes: [route('web'), login] });
  assert.equal(none.limits.limitsFor(0), undefined);
  assert.deepEqual(
    none.limits.limitsFor(1)!.map((l) => l.id),
    [`${LB}/web/routes[1]/login`],
  );
  assert.equal(none.limits.limitsFor(-1), undefined);
});

test('bucket keys: the masked client address, a header value (joined, bounded, empty when missing), the host, the route', async (t) => {
  const s = setup(t, {
    routes: [route('web'), route('web')],
    rateLimits: [
      rateLimit({ name: 'ip', rate: 100, prefix: 24, prefixV6: 48 }),
      rateLimit({ name: 'tenant', key: 'header', header: 'x-tenant', rate: 100 }),
      rateLimit({ name: 'host', key: 'host', rate: 100 }),
      rateLimit({ name: 'route', key: 'route', rate: 100 }),
    ],
  });
  const keys = async (r: ReturnType<typeof request>, index: number) => {
    s.asked.length = 0;
    const got = await admit(s, r, index, true);
    assert.deepEqual(got, { proceeded: { pool: `pool${index}`, expectContinue: true } });
    // Each bucket is asked for once, then again for the next lease after the spend.
    return [...new Set(s.asked.map((a) => a.b))].sort();
  };
  const base = `${LB}/web`;
  assert.deepEqual(
    await keys(request({ ip: '10.1.2.3', host: 'Example.COM:8080', headers: { 'x-tenant': 'acme' } }), 1),
    [`${base}/host\nexample.com`, `${base}/ip\n10.1.2.0/24`, `${base}/route\n1`, `${base}/tenant\nacme`],
  );
  assert.deepEqual(await keys(request({ ip: '2001:db8:7:8::1', headers: { 'x-tenant': ['a', 'b'] } }), -1), [
    `${base}/host\n`,
    `${base}/ip\n2001:db8:7:0:0:0:0:0/48`,
    `${base}/route\n-1`,
    `${base}/tenant\na, b`,
  ]);
  const long = 't'.repeat(200);
  assert.deepEqual(
    await keys(request({ ip: '10.1.3.255', host: 'other.example', headers: { 'x-tenant': long } }), 0),
    [
      `${base}/host\nother.example`,
      `${base}/ip\n10.1.3.0/24`,
      `${base}/route\n0`,
      `${base}/tenant\n${boundedKey(long)}`,
    ],
  );
  assert.notEqual(boundedKey(long), long);
  // Without the header: one bucket for all such requests, keyed by the empty value.
  const missing = await keys(request({ ip: '10.1.4.1', host: 'a.example' }), 0);
  assert.ok(missing.includes(`${base}/tenant\n`), JSON.stringify(missing));
});

test('a header array and the same values joined share a bucket; a missing header is one bucket of its own', async (t) => {
  const s = setup(t, {
    rateLimits: [rateLimit({ name: 'h', key: 'header', header: 'x-k', rate: 0.001, burst: 1 })],
  });
  const ok = { proceeded: { pool: 'pool-1', expectContinue: false } };
  assert.deepEqual(await admit(s, request({ headers: { 'x-k': ['a', 'b'] } })), ok);
  assert.ok((await admit(s, request({ headers: { 'x-k': 'a, b' } }))).refused);
  assert.deepEqual(await admit(s, request({ headers: {} })), ok);
  assert.ok((await admit(s, request({ headers: {} }))).refused);
  assert.deepEqual(await admit(s, request({ headers: { 'x-k': 'c' } })), ok);
});

test('over a limit: 429 headers name the first empty limit, Retry-After is the longest wait of all empty ones', async (t) => {
  // Both empty after one request: "fast" has a token again in 2 s, "slow" in 5 s.
  const fast = rateLimit({ name: 'fast', rate: 1, perMs: 2000 });
  const slow = rateLimit({ name: 'slow', rate: 1, perMs: 5000 });
  for (const [order, first] of [
    [[fast, slow], fast],
    [[slow, fast], slow],
  ] as const) {
    const s = setup(t, { rateLimits: [...order] });
    assert.ok((await admit(s, request())).proceeded);
    const got = await admit(s, request());
    assert.deepEqual(got.refused?.headers, {
      'retry-after': '5',
      'ratelimit-policy': `"${first.name}";q=1;w=${first.perMs / 1000}`,
      ratelimit: `"${first.name}";r=0;t=5`,
    });
    assert.equal(got.refused?.message, `over rate limit ${LB}/web/${first.name}`);
    const st = s.client.stats();
    assert.equal(st.allowed, 1);
    assert.equal(st.limited, 1);
  }
});

test('Retry-After is whole seconds rounded up, at least 1', async (t) => {
  const s = setup(t, { rateLimits: [rateLimit({ name: 'quick', rate: 10, perMs: 1000 })] });
  let got: Outcome = {};
  for (let i = 0; i < 12 && !got.refused; i++) got = await admit(s, request());
  assert.equal(got.refused?.headers['retry-after'], '1');
  assert.equal(got.refused?.headers.ratelimit, '"quick";r=0;t=1');
  const s3 = setup(t, { rateLimits: [rateLimit({ name: 'q', rate: 1, perMs: 2500 })] });
  await admit(s3, request());
  assert.equal((await admit(s3, request())).refused?.headers['retry-after'], '3');
});

test('a refusal by one limit spends nothing from the others', async (t) => {
  const wide = rateLimit({ name: 'wide', rate: 0.001, burst: 2 });
  const narrow = { ...route('web'), rateLimits: [rateLimit({ name: 'narrow', rate: 0.001, burst: 1 })] };
  const s = setup(t, { rateLimits: [wide], routes: [narrow] });
  assert.ok((await admit(s, request(), 0)).proceeded);
  for (let i = 0; i < 3; i++) assert.match((await admit(s, request(), 0)).refused!.message, /narrow$/);
  // "wide" still holds its second token for the default pool, then none.
  assert.ok((await admit(s, request(), -1)).proceeded);
  assert.match((await admit(s, request(), -1)).refused!.message, /wide$/);
  const st = s.client.stats();
  assert.equal(st.allowed, 2);
  assert.equal(st.limited, 4);
});

test('once leased, requests pass at once (no wait for the primary) until the bucket is spent', async (t) => {
  const s = setup(t, { rateLimits: [rateLimit({ name: 'ip', rate: 1000, burst: 1000 })] });
  // The first request waits for the lease; later ones find tokens held, sized to the demand.
  for (let i = 0; i < 50; i++) await admit(s, request());
  let sync = 0;
  for (let i = 0; i < 20; i++) {
    const r = request();
    s.limits.admit(r, s.limits.limitsFor(-1)!, -1, 'p', false);
    if (r.verdicts === 1) sync++;
    await r.outcome;
  }
  assert.ok(sync > 0, 'no request passed synchronously');
  assert.equal(s.client.stats().allowed, 70);
});

test('rate_limit_allow: an allowed client passes without a lease; others are limited', async (t) => {
  const s = setup(t, {
    rateLimitAllow: cidrs('192.0.2.0/24'),
    rateLimits: [rateLimit({ name: 'ip', rate: 0.001, burst: 1 })],
  });
  for (let i = 0; i < 3; i++) {
    const r = request({ ip: '192.0.2.9' });
    assert.deepEqual(await admit(s, r, -1, true), { proceeded: { pool: 'pool-1', expectContinue: true } });
  }
  assert.equal(s.asked.length, 0);
  assert.equal(s.client.stats().buckets, 0);
  assert.ok((await admit(s, request({ ip: '192.0.3.1' }))).proceeded);
  assert.ok((await admit(s, request({ ip: '192.0.3.1' }))).refused);
  assert.ok(s.asked.length > 0);
});

test('dry_run: an empty bucket lets the request pass, counted, and logged at most once a second with the count held back', async (t) => {
  const log = captureLog(t);
  const s = setup(t, {
    rateLimits: [
      rateLimit({ name: 'watch', rate: 0.001, burst: 1, mode: 'dry_run' }),
      rateLimit({ name: 'real', rate: 1000 }),
    ],
  });
  const ok = { proceeded: { pool: 'pool-1', expectContinue: false } };
  for (let i = 0; i < 4; i++) assert.deepEqual(await admit(s, request({ ip: '10.9.9.9' })), ok);
  const st = s.client.stats();
  assert.equal(st.dry_run_would_limit, 3);
  assert.equal(st.allowed, 4);
  assert.equal(st.limited, 0);
  const lines = () => log.lines.filter((l) => String(l.msg).includes('dry run'));
  assert.equal(lines().length, 1);
  assert.equal(lines()[0]!.level, 'info');
  assert.equal(lines()[0]!.limit, `${LB}/web/watch`);
  assert.equal(lines()[0]!.client, '10.9.9.9');
  assert.equal(lines()[0]!.suppressed, 0);
  await sleep(1050);
  assert.deepEqual(await admit(s, request({ ip: '10.9.9.9' })), ok);
  assert.equal(lines().length, 2);
  assert.equal(lines()[1]!.suppressed, 2);
  // The "real" limit's tokens were spent by all 5 (passing dry_run limits cost the others as usual).
  assert.equal(s.client.stats().dry_run_would_limit, 4);
});

test('a limit known to be empty refuses at once, with its own Retry-After, without waiting for a new lease of another', async (t) => {
  const s = setup(t, {
    rateLimits: [
      rateLimit({ name: 'ip', rate: 1, perMs: 5000 }),
      rateLimit({ name: 'tenant', key: 'header', header: 'x-tenant', rate: 100 }),
    ],
  });
  assert.ok((await admit(s, request({ headers: { 'x-tenant': 'a' } }))).proceeded);
  // Let the "ip" lease learn that its bucket is empty.
  await sleep(10);
  const r = request({ headers: { 'x-tenant': 'b' } });
  s.limits.admit(r, s.limits.limitsFor(-1)!, -1, 'p', false);
  assert.equal(r.verdicts, 1, 'refused synchronously');
  const got = await r.outcome;
  assert.equal(got.refused?.headers['retry-after'], '5');
  assert.equal(got.refused?.headers.ratelimit, '"ip";r=0;t=5');
});

test('a lease that never settles: the request is refused after 10 rounds of waiting, Retry-After 1', {
  timeout: 5000,
}, async (t) => {
  const asked: LeaseRequest[] = [];
  const s = setup(
    t,
    {
      rateLimits: [
        rateLimit({ name: 'ip', rate: 5, perMs: 10_000 }),
        rateLimit({ name: 'host', key: 'host', rate: 5 }),
      ],
    },
    asked,
    stallingLeases(asked),
  );
  const got = await admit(s, request());
  assert.deepEqual(got.refused, {
    headers: { 'retry-after': '1', 'ratelimit-policy': '"ip";q=5;w=10', ratelimit: '"ip";r=0;t=1' },
    message: `over rate limit ${LB}/web/ip`,
  });
  // Per bucket: the first ask, then one after each of the 10 answers waited for.
  assert.equal(asked.filter((a) => a.b.includes('/ip\n')).length, 11);
  assert.equal(s.client.stats().limited, 1);
});
