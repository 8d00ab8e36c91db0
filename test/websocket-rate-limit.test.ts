// WebSocket upgrades pass the same L7 rate limits as plain requests (upgrade.ts →
// ratelimit/request-limits.ts): an in-process http listener whose leases come from a real
// Ledger, a real RFC 6455 client and echo backend (test/helpers/ws.ts) on loopback sockets.
// Over a limit an upgrade gets the HTTP path's 429 (Retry-After, RateLimit-Policy, RateLimit)
// on the raw socket, which is then closed, and the backend never sees it; dry_run only counts;
// the allow-list and the trusted-proxy X-Forwarded-For rule apply as for plain requests.

import assert from 'node:assert/strict';
import net from 'node:net';
import { type TestContext, test } from 'node:test';
import type { PoolConfig } from '../src/config/model.ts';
import { Ledger } from '../src/primary/ratelimit/ledger.ts';
import { stats } from '../src/worker/http/upgrade.ts';
import { LeaseClient } from '../src/worker/ratelimit/lease-client.ts';
import { captureFileLog } from './helpers/capture-log.ts';
import { parseHead, raw, request } from './helpers/http-client.ts';
import {
  backend,
  type ListenerOverrides,
  poolConfig,
  route,
  startHttpListener,
  workerEnv,
} from './helpers/http-fixtures.ts';
import { waitFor } from './helpers/l4-state.ts';
import { cidrs, HOST, sleep } from './helpers/net.ts';
import { rateLimit } from './helpers/rate-limit.ts';
import {
  encodeFrame,
  type Frame,
  FrameReader,
  OP_TEXT,
  type WsClient,
  type WsConnectOptions,
  wsConnect,
  wsEchoServer,
} from './helpers/ws.ts';

const log = captureFileLog();

async function echoServer(t: TestContext) {
  const s = await wsEchoServer();
  t.after(() => s.close());
  return s;
}

async function lb(t: TestContext, pools: PoolConfig[], o: ListenerOverrides, env = workerEnv()) {
  return startHttpListener(t, o, pools, { env });
}

/** One upgrade: 101 (echo checked, then closed) or the refusal's status, head and body. */
async function upgrade(
  t: TestContext,
  port: number,
  o: WsConnectOptions = {},
): Promise<{ status: number; headers: Record<string, string>; body: string; client?: WsClient }> {
  try {
    const c = await wsConnect(port, o);
    t.after(() => c.socket.destroy());
    const text = `echo ${Math.random()}`;
    c.send(text);
    assert.equal((await c.next()).toString(), text);
    return { status: 101, headers: {}, body: '', client: c };
  } catch (err) {
    const response = (err as { response?: string }).response;
    if (response === undefined) throw err;
    const head = parseHead(response);
    return { ...head, body: response.slice(response.indexOf('\r\n\r\n') + 4) };
  }
}

const UPGRADE =
  `GET /chat HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

test('listener limit (rate 2 per 10 s, burst 2): of 6 concurrent upgrades exactly 2 are tunnelled, 4 get the HTTP 429; the backend sees 2', async (t) => {
  const echo = await echoServer(t);
  const p = await lb(t, [poolConfig('web', [backend(echo.port)])], {
    rateLimits: [rateLimit({ rate: 2, burst: 2, perMs: 10_000 })],
  });
  const before = stats();
  // At once: all six wait for the bucket's first lease together.
  const got = await Promise.all(Array.from({ length: 6 }, () => upgrade(t, p.port)));
  const statuses = got.map((r) => r.status).sort();
  assert.deepEqual(statuses, [101, 101, 429, 429, 429, 429]);
  assert.equal(echo.requests.length, 2, 'refused upgrades never reach the backend');
  assert.equal(stats().upgraded - before.upgraded, 2);
  assert.equal(stats().total - before.total, 2);
  for (const r of got.filter((r) => r.status === 429)) {
    assert.equal(r.body, '429 Too Many Requests: rate_limited\n');
    // A token every 5 s.
    const secs = Number(r.headers['retry-after']);
    assert.ok(secs >= 1 && secs <= 5, `retry-after ${secs}`);
    assert.equal(r.headers['ratelimit-policy'], '"client_ip";q=2;w=10');
    assert.equal(r.headers.ratelimit, `"client_ip";r=0;t=${secs}`);
    assert.equal(r.headers.connection, 'close');
    assert.match(r.headers['x-request-id'] ?? '', /^\S+$/);
  }
  // Counted like plain requests: the limiter's decisions and the rate_limited class.
  const s = p.env.rateLimits.stats();
  assert.equal(s.allowed, 2);
  assert.equal(s.limited, 4);
  assert.equal(log.counted(p.env.failures, 'rate_limited'), 4);

  // One bucket for both: a plain GET is refused now too, with the same status, headers, body.
  const get = await request(p.port);
  assert.equal(get.status, 429);
  assert.equal(get.body, got.find((r) => r.status === 429)!.body);
  assert.equal(get.headers['ratelimit-policy'], '"client_ip";q=2;w=10');
  assert.match(String(get.headers['retry-after']), /^[1-5]$/);
  // On the wire: a whole HTTP/1.1 response, then the server closes the connection.
  const r = await raw(p.port, UPGRADE);
  assert.ok(r.closed, 'the server closed the connection after the 429');
  assert.match(r.text, /^HTTP\/1\.1 429 Too Many Requests\r\n/);
  assert.ok(r.text.endsWith('\r\n\r\n429 Too Many Requests: rate_limited\n'), r.text);
  assert.equal(echo.requests.length, 2);
  assert.equal(log.counted(p.env.failures, 'rate_limited'), 6);
});

test('plain requests and upgrades spend one bucket, in either order', async (t) => {
  const echo = await echoServer(t);
  const p = await lb(t, [poolConfig('web', [backend(echo.port)])], {
    rateLimits: [rateLimit({ rate: 2, perMs: 60_000 })],
  });
  // The echo backend answers a plain GET with 426: it reached the backend.
  assert.equal((await request(p.port)).status, 426);
  assert.equal((await upgrade(t, p.port)).status, 101);
  assert.equal((await upgrade(t, p.port)).status, 429);
  assert.equal((await request(p.port)).status, 429);
  assert.equal(echo.requests.length, 1);
  assert.equal(log.counted(p.env.failures, 'rate_limited'), 2);
});

test('route limit keyed by a header: a bucket per value, on its route only', async (t) => {
  const chat = await echoServer(t);
  const web = await echoServer(t);
  const p = await lb(t, [poolConfig('chat', [backend(chat.port)]), poolConfig('web', [backend(web.port)])], {
    routes: [
      {
        ...route('chat', { pathPrefix: '/chat' }),
        rateLimits: [rateLimit({ key: 'header', header: 'x-user', rate: 1, perMs: 60_000 })],
      },
    ],
  });
  const st = async (path: string, user: string) =>
    (await upgrade(t, p.port, { path, headers: { 'X-User': user } })).status;
  assert.equal(await st('/chat', 'a'), 101);
  const refused = await upgrade(t, p.port, { path: '/chat', headers: { 'X-User': 'a' } });
  assert.equal(refused.status, 429);
  assert.equal(refused.headers['ratelimit-policy'], '"header:x-user";q=1;w=60');
  assert.match(refused.headers.ratelimit ?? '', /^"header:x-user";r=0;t=\d+$/);
  assert.equal(await st('/chat', 'b'), 101, 'another value, another bucket');
  assert.equal(await st('/chat', 'b'), 429);
  assert.equal(await st('/lobby', 'a'), 101, 'the default route has no limit');
  assert.equal(await st('/lobby', 'a'), 101);
  assert.equal(chat.requests.length, 2);
  assert.equal(web.requests.length, 2);
  assert.equal(log.counted(p.env.failures, 'rate_limited'), 2);
});

test('dry_run: every upgrade is tunnelled, the would-be refusals counted and logged', async (t) => {
  const echo = await echoServer(t);
  const p = await lb(t, [poolConfig('web', [backend(echo.port)])], {
    rateLimits: [rateLimit({ rate: 1, perMs: 60_000, mode: 'dry_run' })],
  });
  for (let i = 0; i < 4; i++) assert.equal((await upgrade(t, p.port)).status, 101);
  assert.equal(echo.requests.length, 4);
  const s = p.env.rateLimits.stats();
  assert.equal(s.dry_run_would_limit, 3);
  assert.equal(s.limited, 0);
  assert.equal(s.allowed, 4);
  assert.equal(log.counted(p.env.failures, 'rate_limited'), 0);
  const lines = log.lines.filter((l) => l.msg === 'rate limit dry run: request would be limited');
  assert.equal(lines.length, 1, 'one line per second at most');
  assert.equal(lines[0]!.limit, 'lb1/web/client_ip');
  assert.equal(lines[0]!.client, '127.0.0.1');
});

test('rate_limit_allow exempts upgrades from allowed clients (the XFF-named client of a trusted peer), not others', async (t) => {
  const echo = await echoServer(t);
  const p = await lb(t, [poolConfig('web', [backend(echo.port)])], {
    rateLimits: [rateLimit({ rate: 1, perMs: 60_000 })],
    rateLimitAllow: cidrs('198.51.100.0/24'),
    trustedProxies: cidrs('127.0.0.1'),
  });
  const as = (ip: string) => ({ headers: { 'X-Forwarded-For': ip } });
  for (let i = 0; i < 4; i++) assert.equal((await upgrade(t, p.port, as('198.51.100.7'))).status, 101);
  assert.equal(p.env.rateLimits.stats().leases, 0, 'allowed clients never touch a bucket');
  assert.equal((await upgrade(t, p.port, as('203.0.113.1'))).status, 101);
  assert.equal((await upgrade(t, p.port, as('203.0.113.1'))).status, 429);
  assert.equal(echo.requests.length, 5);
  assert.equal(log.counted(p.env.failures, 'rate_limited'), 1);
});

test("X-Forwarded-For: an untrusted peer's never buys a fresh bucket; a trusted peer's names the client", async (t) => {
  const echo = await echoServer(t);
  const pools = [poolConfig('web', [backend(echo.port)])];
  const limits = [rateLimit({ rate: 2, perMs: 60_000 })];
  const untrusted = await lb(t, pools, { rateLimits: limits });
  const xff = (i: number) => ({ headers: { 'X-Forwarded-For': `203.0.113.${i}` } });
  const a = [];
  for (let i = 0; i < 4; i++) a.push((await upgrade(t, untrusted.port, xff(i))).status);
  assert.deepEqual(a, [101, 101, 429, 429]);

  const trusted = await lb(
    t,
    pools,
    { name: 'trusted', rateLimits: limits, trustedProxies: cidrs('127.0.0.1') },
    untrusted.env,
  );
  const b = [];
  for (let i = 0; i < 4; i++) b.push((await upgrade(t, trusted.port, xff(i))).status);
  assert.deepEqual(b, [101, 101, 101, 101]);
  const c = [];
  for (let i = 0; i < 3; i++) c.push((await upgrade(t, trusted.port, xff(9))).status);
  assert.deepEqual(c, [101, 101, 429]);
  assert.equal(echo.requests.length, 8);
  assert.equal(log.counted(trusted.env.failures, 'rate_limited'), 3);
});

test('while an upgrade waits for its lease: a client that leaves is a client_abort, early bytes of one that stays still arrive', async (t) => {
  // The test holds the primary's lease answers (a real Ledger) until it releases them, so
  // both upgrades are undecided while the first client half-closes and the second sends a
  // frame ahead of the 101. Released well within the worker's 250 ms fail-open timeout.
  const ledger = new Ledger();
  let hold = true;
  const held: Array<() => void> = [];
  const leases: LeaseClient = new LeaseClient({
    send(reqs, returns) {
      const grants = ledger.handle(reqs, returns);
      const answer = () => leases.onGrants(grants);
      if (hold) held.push(answer);
      else setImmediate(answer);
    },
  });
  const echo = await echoServer(t);
  const p = await lb(
    t,
    [poolConfig('web', [backend(echo.port)])],
    { rateLimits: [rateLimit({ rate: 5, perMs: 60_000 })] },
    { ...workerEnv(), rateLimits: leases },
  );
  const open = (payload: Buffer | string) => {
    const s = net.connect(p.port, HOST);
    t.after(() => s.destroy());
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => {});
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.write(payload);
    return { s, got, closed };
  };
  const gone = open(UPGRADE);
  await waitFor(() => held.length === 1, 2000, 'the lease ask');
  const stays = open(UPGRADE);
  await sleep(20);
  // A frame ahead of the 101, in its own segment: read while the upgrade waits.
  stays.s.write(encodeFrame(OP_TEXT, Buffer.from('early'), true));
  await sleep(20);
  gone.s.end(); // FIN, not a reset: noticed only because the waiting socket is read
  await waitFor(() => (p.env.failures.toJSON().client_abort ?? 0) === 1, 2000, 'client_abort');
  await gone.closed;
  assert.equal(Buffer.concat(gone.got).length, 0, 'nothing was answered to the client that left');
  hold = false;
  for (const a of held.splice(0)) a();
  // The 101, then the echo of the frame the client sent before it.
  let head = '';
  let frames: Frame[] = [];
  await waitFor(
    () => {
      const got = Buffer.concat(stays.got);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return false;
      head = got.subarray(0, end).toString('latin1');
      frames = new FrameReader().push(got.subarray(end + 4));
      return frames.length > 0;
    },
    3000,
    'the 101 and the echo',
  );
  assert.match(head, /^HTTP\/1\.1 101 /);
  assert.equal(frames[0]?.payload.toString(), 'early', 'the frame sent before the 101 was echoed');
  assert.equal(echo.requests.length, 1, 'the abandoned upgrade never reached the backend');
  assert.equal(log.counted(p.env.failures, 'client_abort'), 1);
  assert.equal(log.counted(p.env.failures, 'rate_limited'), 0);
});
