import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { PoolConfig } from '../src/config/model.ts';
import type { ListenerHandle, WorkerEnv } from '../src/worker/context.ts';
import { createUdpListener } from '../src/worker/l4/udp.ts';
import { captureFileLog } from './helpers/capture-log.ts';
import { type UdpBackend, type UdpClient, udpBackend, udpClient } from './helpers/l4-backends.ts';
import { type L4ListenerOverrides, l4Env, l4Listener, l4Pool, l4State, waitFor } from './helpers/l4-state.ts';
import { freeUdpPort, sleep } from './helpers/net.ts';

interface Proxy {
  readonly port: number;
  readonly handle: ListenerHandle;
  readonly env: WorkerEnv;
}

async function startProxy(
  t: TestContext,
  pools: readonly PoolConfig[],
  o: L4ListenerOverrides = {},
): Promise<Proxy> {
  const port = await freeUdpPort();
  const env = l4Env();
  const handle = createUdpListener(l4State(l4Listener('udp', port, o), pools), env);
  await handle.ready;
  t.after(() => handle.close(0));
  return { port, handle, env };
}

async function backend(t: TestContext, reply?: Parameters<typeof udpBackend>[0]): Promise<UdpBackend> {
  const b = await udpBackend(reply);
  t.after(() => b.close());
  return b;
}

async function client(t: TestContext): Promise<UdpClient> {
  const c = await udpClient();
  t.after(() => c.close());
  return c;
}

// Failure lines are captured, not printed, and each count is checked against the log.
const log = captureFileLog();
const counted = (env: WorkerEnv, cls: string) => log.counted(env.failures, cls);

test('echo: the reply comes back from the listener port', async (t) => {
  const be = await backend(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])]);
  const c = await client(t);
  c.send('ping', p.port);
  await waitFor(() => c.received.length === 1);
  assert.deepEqual(c.received, [{ msg: 'ping', port: p.port }]);
  assert.equal(p.handle.active(), 1);
  // A burst right away exercises the datagrams queued while a session connects.
  const c2 = await client(t);
  for (let i = 0; i < 5; i++) c2.send(`m${i}`, p.port);
  await waitFor(() => c2.received.length === 5);
  assert.deepEqual(c2.received.map((r) => r.msg).sort(), ['m0', 'm1', 'm2', 'm3', 'm4']);
  assert.deepEqual(p.env.failures.toJSON(), {});
});

test('two concurrent clients each get only their own replies', async (t) => {
  const be = await backend(t, (m) => Buffer.from(`re:${m}`));
  const p = await startProxy(t, [l4Pool('main', [be.port])]);
  const a = await client(t);
  const b = await client(t);
  for (let i = 0; i < 20; i++) {
    a.send(`a${i}`, p.port);
    b.send(`b${i}`, p.port);
  }
  await waitFor(() => a.received.length === 20 && b.received.length === 20);
  assert.ok(a.received.every((r) => r.msg.startsWith('re:a')));
  assert.ok(b.received.every((r) => r.msg.startsWith('re:b')));
  assert.equal(p.handle.active(), 2);
  // Each client has its own session socket towards the backend.
  assert.equal(new Set(be.sources).size, 2);
});

test('idle sessions expire; the next datagram opens a new session', async (t) => {
  const be = await backend(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])], { timeouts: { idleMs: 150 } });
  const c = await client(t);
  c.send('one', p.port);
  await waitFor(() => c.received.length === 1);
  // Traffic keeps the session alive past idleMs.
  for (let i = 0; i < 4; i++) {
    await sleep(60);
    c.send('keep', p.port);
  }
  await waitFor(() => c.received.length === 5);
  assert.equal(p.handle.active(), 1);
  assert.equal(new Set(be.sources).size, 1);
  await waitFor(() => p.handle.active() === 0, 2000, 'session expiry');
  c.send('two', p.port);
  await waitFor(() => c.received.length === 6);
  assert.equal(p.handle.active(), 1);
  assert.equal(new Set(be.sources).size, 2, 'a new session socket');
});

test('backend down: ECONNREFUSED is counted, the session dropped, nothing crashes', async (t) => {
  const dead = await freeUdpPort();
  const p = await startProxy(t, [l4Pool('main', [dead])]);
  const c = await client(t);
  c.send('x', p.port);
  await waitFor(() => counted(p.env, 'upstream_connect_refused') === 1);
  await waitFor(() => p.handle.active() === 0);
  c.send('y', p.port);
  await waitFor(() => counted(p.env, 'upstream_connect_refused') === 2);
  assert.equal(c.received.length, 0);
});

test('no healthy backend: datagram dropped and counted', async (t) => {
  const p = await startProxy(t, [l4Pool('main', [])]);
  const c = await client(t);
  c.send('x', p.port);
  await waitFor(() => counted(p.env, 'no_healthy_backend') === 1);
  assert.equal(p.handle.active(), 0);
});

test('maxSessions caps sessions per worker; excess is dropped as connection_limit', async (t) => {
  const be = await backend(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])], { limits: { maxSessions: 2 } });
  const [a, b, c] = [await client(t), await client(t), await client(t)];
  a.send('a', p.port);
  b.send('b', p.port);
  await waitFor(() => a.received.length === 1 && b.received.length === 1);
  c.send('c', p.port);
  await waitFor(() => counted(p.env, 'connection_limit') === 1);
  await sleep(50);
  assert.equal(c.received.length, 0);
  assert.equal(p.handle.active(), 2);
  // Existing sessions are unaffected.
  a.send('a2', p.port);
  await waitFor(() => a.received.length === 2);
});

test('update(): new sessions use the new pool, an existing one keeps its backend', async (t) => {
  const one = await backend(t, (m) => Buffer.from(`1:${m}`));
  const two = await backend(t, (m) => Buffer.from(`2:${m}`));
  const port = await freeUdpPort();
  const listener = l4Listener('udp', port);
  const handle = createUdpListener(l4State(listener, [l4Pool('main', [one.port])]), l4Env());
  await handle.ready;
  t.after(() => handle.close(0));
  const a = await client(t);
  a.send('x', port);
  await waitFor(() => a.received.length === 1);
  handle.update(l4State(listener, [l4Pool('main', [two.port])]));
  const b = await client(t);
  b.send('y', port);
  a.send('z', port);
  await waitFor(() => a.received.length === 2 && b.received.length === 1);
  assert.deepEqual(
    a.received.map((r) => r.msg),
    ['1:x', '1:z'],
  );
  assert.equal(b.received[0]!.msg, '2:y');
});

test('close() stops receiving and closes every session', async (t) => {
  const be = await backend(t);
  const p = await startProxy(t, [l4Pool('main', [be.port])]);
  const c = await client(t);
  c.send('x', p.port);
  await waitFor(() => c.received.length === 1);
  await p.handle.close(1000);
  assert.equal(p.handle.active(), 0);
  // The port is free again.
  const again = createUdpListener(l4State(l4Listener('udp', p.port), [l4Pool('main', [be.port])]), l4Env());
  await again.ready;
  await again.close(0);
});

test('bind failure rejects ready and is counted as listen_failed', async (t) => {
  const p = await startProxy(t, [l4Pool('main', [1])]);
  const env = l4Env();
  const dup = createUdpListener(l4State(l4Listener('udp', p.port), [l4Pool('main', [1])]), env);
  await assert.rejects(dup.ready, { code: 'EADDRINUSE' });
  assert.equal(counted(env, 'listen_failed'), 1);
  await dup.close(0);
});
