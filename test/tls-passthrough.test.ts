// tls_passthrough end to end: real `openssl s_client` and node:tls clients through the
// in-process passthrough listener to real node:tls backends with their own certificates (from
// a throw-away CA made with openssl). The proxy never terminates TLS: the backend's servername
// callback sees the client's SNI and the client verifies the backend's own certificate. Bad
// ClientHellos (garbage, truncated, too slow) are closed cleanly and counted by class.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect, createServer as tlsServer } from 'node:tls';
import type { PoolConfig, RouteConfig } from '../src/config/model.ts';
import type { ListenerHandle, WorkerEnv } from '../src/worker/context.ts';
import { createPassthroughListener, stats } from '../src/worker/l4/passthrough.ts';
import { captureFileLog } from './helpers/capture-log.ts';
import { childPids, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { readToEnd, tcpConnect } from './helpers/l4-backends.ts';
import { type L4ListenerOverrides, l4Env, l4Listener, l4Pool, l4State, waitFor } from './helpers/l4-state.ts';
import { freeTcpPort, HOST, sleep } from './helpers/net.ts';
import { makeCa } from './helpers/sni-certs.ts';

const log = captureFileLog();
const counted = (env: WorkerEnv, cls: string) => log.counted(env.failures, cls);

const ca = makeCa();
const certA = ca.leaf('a', ['a.example.com']);
const certB = ca.leaf('b', ['*.wild.example']);
const certD = ca.leaf('d', ['default.example']);

interface TlsBackend {
  readonly port: number;
  /** server_name of each handshake as the backend's own servername callback saw it. */
  readonly seen: Array<string | undefined>;
}

/** A TLS server answering "NAME:servername:line" to the first line, then closing. */
async function tlsBackend(
  t: TestContext,
  name: string,
  leaf: { cert: Buffer; key: Buffer },
): Promise<TlsBackend> {
  const seen: Array<string | undefined> = [];
  const sockets = new Set<TLSSocket>();
  const server = tlsServer(
    {
      cert: leaf.cert,
      key: leaf.key,
      SNICallback: (servername, cb) => {
        seen.push(servername);
        cb(null);
      },
    },
    (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      s.once('data', (d) => s.end(`${name}:${s.servername || '-'}:${d.toString().trim()}\n`));
    },
  );
  server.on('tlsClientError', () => {});
  // No servername callback call without SNI: record that too, once per secure connection.
  server.on('secureConnection', (s) => {
    if (!s.servername) seen.push(undefined);
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  t.after(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as AddressInfo).port, seen };
}

interface Proxy {
  readonly port: number;
  readonly handle: ListenerHandle;
  readonly env: WorkerEnv;
}

function sniRoute(sni: string, pool: string): RouteConfig {
  return {
    pool,
    match: { host: undefined, sni, pathPrefix: undefined, headers: [], methods: [] },
    rateLimits: [],
  };
}

async function startProxy(
  t: TestContext,
  pools: readonly PoolConfig[],
  o: L4ListenerOverrides,
): Promise<Proxy> {
  const port = await freeTcpPort();
  const env = l4Env();
  const handle = createPassthroughListener(l4State(l4Listener('tls_passthrough', port, o), pools), env);
  await handle.ready;
  t.after(() => handle.close(0));
  return { port, handle, env };
}

/** openssl s_client with SNI (or none), verifying the peer's certificate against our CA. */
function sClient(
  port: number,
  servername: string | undefined,
  verifyName: string,
): Promise<{ code: number; out: string }> {
  const sni = servername === undefined ? ['-noservername'] : ['-servername', servername];
  const p = spawn(
    'openssl',
    [
      's_client',
      '-connect',
      `${HOST}:${port}`,
      ...sni,
      '-CAfile',
      ca.caFile,
      '-verify_return_error',
      '-verify_hostname',
      verifyName,
      '-brief',
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  p.stdin.write('ping\n');
  const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
  return new Promise((resolve) =>
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    }),
  );
}

async function threeBackends(t: TestContext) {
  const a = await tlsBackend(t, 'A', certA);
  const b = await tlsBackend(t, 'B', certB);
  const d = await tlsBackend(t, 'D', certD);
  const pools = [l4Pool('pa', [a.port]), l4Pool('pb', [b.port]), l4Pool('pd', [d.port])];
  return { a, b, d, pools };
}

const ROUTES = [sniRoute('a.example.com', 'pa'), sniRoute('*.wild.example', 'pb')];

test('openssl s_client: exact, wildcard and default routing; the backend sees the original handshake', async (t) => {
  const { a, b, d, pools } = await threeBackends(t);
  const p = await startProxy(t, pools, { routes: ROUTES, defaultPool: 'pd' });
  const before = stats();

  const ra = await sClient(p.port, 'A.Example.com', 'a.example.com');
  assert.equal(ra.code, 0, ra.out);
  assert.match(ra.out, /Verification: OK/);
  assert.match(ra.out, /Peer certificate: CN = a\.example\.com/);
  // The backend's own servername callback got the name exactly as the client sent it.
  assert.match(ra.out, /A:A\.Example\.com:ping/);
  assert.deepEqual(a.seen, ['A.Example.com']);

  const rb = await sClient(p.port, 'x.wild.example', 'x.wild.example');
  assert.equal(rb.code, 0, rb.out);
  assert.match(rb.out, /B:x\.wild\.example:ping/);
  assert.deepEqual(b.seen, ['x.wild.example']);

  // An unknown name and no SNI at all both go to default_pool.
  const rOther = await sClient(p.port, 'default.example', 'default.example');
  assert.equal(rOther.code, 0, rOther.out);
  assert.match(rOther.out, /D:default\.example:ping/);
  const rNone = await sClient(p.port, undefined, 'default.example');
  assert.equal(rNone.code, 0, rNone.out);
  assert.match(rNone.out, /D:-:ping/);
  assert.deepEqual(d.seen, ['default.example', undefined]);
  // "wild.example" itself is not covered by "*.wild.example".
  const rBare = await sClient(p.port, 'wild.example', 'default.example');
  assert.match(rBare.out, /D:wild\.example:ping/);

  const after = stats();
  assert.equal(after.routedBySni - before.routedBySni, 2);
  assert.equal(after.routedDefault - before.routedDefault, 3);
  assert.equal(after.noSni - before.noSni, 1);
  await waitFor(() => p.handle.active() === 0, 3000, 'connections to finish');
  assert.deepEqual(p.env.failures.toJSON(), {});
});

test('a ClientHello split into 1-byte TCP segments with delays still routes by SNI', async (t) => {
  const { a, pools } = await threeBackends(t);
  // 600 slivers 2 ms apart take over a second: more than the fixture's 1 s client_header.
  const p = await startProxy(t, pools, {
    routes: ROUTES,
    defaultPool: 'pd',
    timeouts: { clientHeaderMs: 10_000 },
  });
  // A relay between a node:tls client and FiberLB that forwards the first 600 bytes one per
  // segment, 2 ms apart (Nagle off), then the rest as it comes.
  let sentSingly = 0;
  const relay = createServer((inbound: Socket) => {
    inbound.pause();
    const out = connect({ host: HOST, port: p.port, noDelay: true });
    out.on('error', () => inbound.destroy());
    inbound.on('error', () => out.destroy());
    out.pipe(inbound);
    let queue = Promise.resolve();
    inbound.on('data', (d: Buffer) => {
      queue = queue.then(async () => {
        for (const byte of d) {
          if (sentSingly < 600) {
            sentSingly++;
            out.write(Buffer.from([byte]));
            await sleep(2);
          } else out.write(Buffer.from([byte]));
        }
      });
    });
    inbound.on('end', () => queue.then(() => out.end()));
    inbound.resume();
  });
  await new Promise<void>((r) => relay.listen(0, HOST, r));
  t.after(() => relay.close());
  const s = tlsConnect({
    host: HOST,
    port: (relay.address() as AddressInfo).port,
    servername: 'a.example.com',
    ca: ca.ca,
  });
  t.after(() => s.destroy());
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
  });
  assert.equal(s.authorized, true);
  s.write('split\n');
  const { data } = await readToEnd(s as unknown as Socket);
  assert.equal(data.toString(), 'A:a.example.com:split\n');
  assert.ok(sentSingly >= 200, `only ${sentSingly} bytes went one per segment`);
  assert.deepEqual(a.seen, ['a.example.com']);
});

test('garbage, truncated and too-slow ClientHellos close cleanly with their class; others keep being served', async (t) => {
  const { a, pools } = await threeBackends(t);
  const p = await startProxy(t, pools, {
    routes: ROUTES,
    defaultPool: 'pd',
    timeouts: { clientHeaderMs: 400 },
  });

  // Plain HTTP on the TLS port.
  const http = await tcpConnect(p.port);
  http.write('GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n');
  const r1 = await readToEnd(http);
  assert.equal(r1.data.length, 0, 'nothing is ever answered');

  // A real ClientHello cut short: the client sends 40 bytes and half-closes.
  const hello = await captureHello();
  const cut = await tcpConnect(p.port);
  cut.end(hello.subarray(0, 40));
  assert.equal((await readToEnd(cut)).data.length, 0);

  // Too slow: 10 bytes, then nothing; cut at client_header (400 ms).
  const slow = await tcpConnect(p.port);
  slow.write(hello.subarray(0, 10));
  const started = Date.now();
  await readToEnd(slow);
  const waited = Date.now() - started;
  assert.ok(waited >= 350 && waited < 3000, `closed after ${waited} ms`);

  // A connect-and-leave probe is a client abort, not a protocol error.
  const probe = await tcpConnect(p.port);
  probe.end();
  await readToEnd(probe);

  await waitFor(() => p.handle.active() === 0, 3000, 'connections to close');
  assert.equal(counted(p.env, 'tls_client_hello'), 3);
  assert.equal(counted(p.env, 'client_abort'), 1);
  const lines = log.lines.filter((l) => l.error_class === 'tls_client_hello').map((l) => String(l.msg));
  assert.match(lines[0]!, /not a TLS handshake \(first byte 0x47\)/);
  assert.match(lines[1]!, /truncated ClientHello: closed after 40 bytes/);
  assert.match(lines[2]!, /no complete ClientHello within 400ms \(10 bytes received\)/);
  assert.equal(a.seen.length, 0, 'no backend saw any of them');

  // Normal clients are still served.
  const ok = await sClient(p.port, 'a.example.com', 'a.example.com');
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /A:a\.example\.com:ping/);
});

test('no route and no default_pool: the connection is closed and counted as no_route', async (t) => {
  const { a, pools } = await threeBackends(t);
  const p = await startProxy(t, pools, { routes: ROUTES, defaultPool: undefined });
  const r = await sClient(p.port, 'unknown.example', 'unknown.example');
  assert.notEqual(r.code, 0);
  await waitFor(() => p.handle.active() === 0, 3000, 'connection to close');
  assert.equal(counted(p.env, 'no_route'), 1);
  assert.match(
    String(log.lines.find((l) => l.error_class === 'no_route')?.msg),
    /no route for SNI 'unknown\.example'/,
  );
  assert.equal(a.seen.length, 0);
});

/** A real ClientHello from node:tls (for the truncated/slow cases). */
async function captureHello(): Promise<Buffer> {
  return new Promise((resolve) => {
    const server = createServer((s) => {
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
        server.close();
      });
    });
    server.listen(0, HOST, () => {
      const c = tlsConnect({
        host: HOST,
        port: (server.address() as AddressInfo).port,
        servername: 'a.example.com',
      });
      c.on('error', () => {});
    });
  });
}

test('cluster: a tls_passthrough listener from YAML routes by SNI in real workers', async (t) => {
  const { a, d } = await threeBackends(t);
  const admin = await freeTcpPort();
  const port = await freeTcpPort();
  const dir = tempDir();
  const file = writeConfig(
    dir,
    `admin: { address: 127.0.0.1, port: ${admin} }
cluster: { workers: 2, drain_timeout: 1s }
load_balancers:
  - name: edge
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - name: tls
        port: ${port}
        protocol: tls_passthrough
        default_pool: other
        routes:
          - { match: { sni: a.example.com }, pool: iam }
    pools:
      - { name: iam, backends: [{ address: 127.0.0.1, port: ${a.port} }] }
      - { name: other, backends: [{ address: 127.0.0.1, port: ${d.port} }] }
`,
  );
  const lb = await startLb(file, admin);
  t.after(() => lb.stop());
  for (let i = 0; i < 4; i++) {
    const r = await sClient(port, 'a.example.com', 'a.example.com');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /A:a\.example\.com:ping/);
  }
  const r = await sClient(port, 'default.example', 'default.example');
  assert.match(r.out, /D:default\.example:ping/);
  // Garbage is closed and counted in whichever worker took it.
  const workers = (await childPids(lb.pid)).sort();
  const g = await tcpConnect(port);
  g.write('GET / HTTP/1.0\r\n\r\n');
  assert.equal((await readToEnd(g)).data.length, 0);
  await waitFor(() => lb.output().includes('"error_class":"tls_client_hello"'), 3000, 'the failure line');
  // 60 random or mangled first flights (some TLS-looking) never reach a backend or a crash.
  const hello = await captureHello();
  for (let i = 0; i < 60; i++) {
    const s = await tcpConnect(port);
    const junk = i % 2 === 0 ? randomBytes(1 + i * 7) : Buffer.from(hello);
    if (i % 2 === 1) for (let k = 0; k < 4; k++) junk[5 + ((i * 31 + k * 17) % (junk.length - 5))] = i + k;
    s.end(junk);
    await readToEnd(s);
  }
  assert.deepEqual((await childPids(lb.pid)).sort(), workers, 'the same workers');
  const again = await sClient(port, 'a.example.com', 'a.example.com');
  assert.match(again.out, /A:a\.example\.com:ping/);
  assert.equal(a.seen.filter((n) => n !== 'a.example.com').length, 0);
});
