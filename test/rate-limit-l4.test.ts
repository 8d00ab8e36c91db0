// L4 limits at accept: connection_rate_limit (new connections per client address, leased from
// a real Ledger like the request limits) and max_connections_per_ip, on tcp, tls_passthrough
// and http listeners; over a limit the connection is closed at once and counted. The
// allow-list exempts clients; a PROXY header from a trusted peer names the client.

import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { Protocol } from '../src/config/model.ts';
import type { ListenerHandle, WorkerEnv } from '../src/worker/context.ts';
import { createHttpListener } from '../src/worker/http/listener.ts';
import { createTcpListener } from '../src/worker/l4/tcp.ts';
import { encodeProxyV1 } from '../src/worker/proxy-protocol.ts';
import { captureFileLog } from './helpers/capture-log.ts';
import { raw } from './helpers/http-client.ts';
import { poolConfig, startBackend, backend as target } from './helpers/http-fixtures.ts';
import { admittedByEcho, tcpEcho } from './helpers/l4-backends.ts';
import { type L4ListenerOverrides, l4Env, l4Listener, l4Pool, l4State } from './helpers/l4-state.ts';
import { cidrs, freeTcpPort } from './helpers/net.ts';
import { rateLimit } from './helpers/rate-limit.ts';

const log = captureFileLog();

async function start(
  t: TestContext,
  protocol: Protocol,
  o: L4ListenerOverrides,
): Promise<{ port: number; env: WorkerEnv; handle: ListenerHandle }> {
  const env = l4Env();
  const port = await freeTcpPort();
  let handle: ListenerHandle;
  if (protocol === 'http') {
    const b = await startBackend((_req, res) => res.end('ok'));
    t.after(() => b.close());
    handle = createHttpListener(
      l4State(l4Listener('http', port, o), [poolConfig('main', [target(b.port)])]),
      env,
    );
  } else {
    const echo = await tcpEcho();
    t.after(() => echo.close());
    handle = createTcpListener(l4State(l4Listener(protocol, port, o), [l4Pool('main', [echo.port])]), env);
  }
  await handle.ready;
  t.after(async () => {
    await handle.close(0);
    await env.upstreams.close();
  });
  return { port, env, handle };
}

/** Admitted: the connection answers (echo, or an HTTP response); refused: closed without a byte. */
function admitted(protocol: Protocol, port: number, held: Socket[]): Promise<boolean> {
  return admittedByEcho(port, held, protocol === 'http' ? 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' : 'ping');
}

const conns = (t: TestContext): Socket[] => {
  const held: Socket[] = [];
  t.after(() => {
    for (const s of held) s.destroy();
  });
  return held;
};

for (const protocol of ['tcp', 'tls_passthrough', 'http'] as const) {
  test(`${protocol}: connection_rate_limit closes the connection over the rate, counted`, async (t) => {
    const lb = await start(t, protocol, { connectionRateLimit: rateLimit({ rate: 2, perMs: 60_000 }) });
    const held = conns(t);
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await admitted(protocol, lb.port, held));
    assert.deepEqual(got, [true, true, false, false]);
    assert.equal(log.counted(lb.env.failures, 'rate_limited'), 2);
    assert.equal(lb.env.rateLimits.stats().limited, 2);
  });

  test(`${protocol}: max_connections_per_ip refuses beyond the count, admits again after a close`, async (t) => {
    const lb = await start(t, protocol, { maxConnectionsPerIp: 2 });
    const held = conns(t);
    assert.equal(await admitted(protocol, lb.port, held), true);
    assert.equal(await admitted(protocol, lb.port, held), true);
    assert.equal(await admitted(protocol, lb.port, held), false);
    assert.equal(log.counted(lb.env.failures, 'connection_limit'), 1);
    held[0]!.destroy();
    // The release runs on the server side's close: retry briefly until it has.
    let again = false;
    for (let i = 0; i < 20 && !again; i++) again = await admitted(protocol, lb.port, held);
    assert.equal(again, true);
  });
}

test('rate_limit_allow exempts clients from L4 limits', async (t) => {
  const lb = await start(t, 'tcp', {
    connectionRateLimit: rateLimit({ rate: 1, perMs: 60_000 }),
    maxConnectionsPerIp: 1,
    rateLimitAllow: cidrs('127.0.0.1'),
  });
  const held = conns(t);
  for (let i = 0; i < 4; i++) assert.equal(await admitted('tcp', lb.port, held), true);
  assert.equal(lb.env.rateLimits.stats().leases, 0);
});

test('tcp with PROXY protocol from a trusted peer: the header source is the client', async (t) => {
  const lb = await start(t, 'tcp', {
    connectionRateLimit: rateLimit({ rate: 1, perMs: 60_000 }),
    acceptProxyProtocol: true,
    trustedProxies: cidrs('127.0.0.1'),
  });
  const via = (src: string) =>
    raw(
      lb.port,
      [
        encodeProxyV1({
          family: 4,
          sourceAddress: src,
          sourcePort: 1000,
          destAddress: '127.0.0.1',
          destPort: lb.port,
        }),
        'ping',
      ],
      500,
    );
  assert.equal((await via('198.51.100.1')).text, 'ping');
  assert.equal((await via('198.51.100.2')).text, 'ping', 'another client: its own bucket');
  const refused = await via('198.51.100.1');
  assert.equal(refused.text, '');
  assert.equal(refused.closed, true);
  assert.equal(log.counted(lb.env.failures, 'rate_limited'), 1);
});
