// Chainfire tests: a FiberLB whose source is a real etcd (test/helpers/etcd.ts), keys written
// with the etcd3 client as the platform writes them, and a cuttable TCP proxy in front of etcd
// (to lose FiberLB's watch while the test keeps talking to etcd directly).

import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Etcd3 } from 'etcd3';
import { nameServer, type RunningLb, startLb, tempDir, writeConfig } from './cluster-fiberlb.ts';
import { EtcdCluster, type EtcdOptions } from './etcd.ts';
import { freeTcpPort, sleep } from './net.ts';

export const P = '/fiberlb/';

export function etcdClient(
  endpoints: readonly string[],
  auth?: { username: string; password: string },
): Etcd3 {
  return new Etcd3({ hosts: [...endpoints], ...(auth ? { auth } : {}) });
}

export const lbKey = (lb: string, org = 'o', project = 'p') => `${P}loadbalancers/${org}/${project}/${lb}`;
export const listenerKey = (lb: string, id: string) => `${P}listeners/${lb}/${id}`;
export const poolKey = (lb: string, id: string) => `${P}pools/${lb}/${id}`;
export const backendKey = (pool: string, id: string) => `${P}backends/${pool}/${id}`;

/** One LB `w` with an http listener on `port` → pool `web` with the given backend ports. */
export async function seed(c: Etcd3, port: number, backends: number[]): Promise<void> {
  await c.put(lbKey('w')).value(JSON.stringify({ vip: '127.0.0.1' }));
  await c.put(poolKey('w', 'web')).value(JSON.stringify({ algorithm: 'round_robin' }));
  for (const [i, b] of backends.entries())
    await c.put(backendKey('web', `b${i}`)).value(JSON.stringify({ address: '127.0.0.1', port: b }));
  await c.put(listenerKey('w', 'api')).value(JSON.stringify({ port, protocol: 'http', default_pool: 'web' }));
}

type NameServer = Awaited<ReturnType<typeof nameServer>>;

/**
 * The usual start of a Chainfire test, through client `c`: name servers `a` and `b` (closed
 * after the test) and the store seeded (seed()) with LB `w` on a free `port` → pool web → a.
 */
export async function seedAB(
  t: TestContext,
  c: Etcd3,
): Promise<{ a: NameServer; b: NameServer; port: number }> {
  const [a, b] = [await nameServer('a'), await nameServer('b')];
  t.after(() => Promise.all([a.close(), b.close()]));
  const port = await freeTcpPort();
  await seed(c, port, [a.port]);
  return { a, b, port };
}

/** A real etcd and a client of it (both stopped after the test), seeded by seedAB(). */
export async function seededEtcd(
  t: TestContext,
  opts: EtcdOptions = {},
): Promise<{ etcd: EtcdCluster; c: Etcd3; a: NameServer; b: NameServer; port: number }> {
  const etcd = await EtcdCluster.start(opts);
  t.after(() => etcd.stop());
  const c = etcdClient(etcd.endpoints);
  t.after(() => c.close());
  return { etcd, c, ...(await seedAB(t, c)) };
}

/**
 * FiberLB whose source reaches etcd only through a cuttableProxy() to `endpoint`, so a test can
 * cut or freeze FiberLB's watch while it keeps talking to etcd itself. Both stopped after the test.
 */
export async function startBehindProxy(
  t: TestContext,
  endpoint: string,
): Promise<{ proxy: Awaited<ReturnType<typeof cuttableProxy>>; f: ChainfireLb }> {
  const proxy = await cuttableProxy(endpoint);
  t.after(() => proxy.close());
  const f = await startChainfireLb([proxy.url]);
  t.after(() => f.lb.stop());
  return { proxy, f };
}

/** Put backend `id` of pool web at 127.0.0.1:`port` (as the platform registers one). */
export function putBackend(c: Etcd3, id: string, port: number) {
  return c.put(backendKey('web', id)).value(JSON.stringify({ address: '127.0.0.1', port }));
}

export interface ChainfireLb {
  readonly lb: RunningLb;
  readonly dir: string;
  readonly admin: number;
  readonly token: string;
  status(): Promise<Record<string, unknown> & { revision: number; source_state: Record<string, unknown> }>;
  health(): Promise<{ revision: number; workers: number; workers_ready: number; status: string }>;
  /** True once the primary serves `rev` and every worker has applied it (listeners opened/closed). */
  appliedEverywhere(rev: number): Promise<boolean>;
}

export function chainfireYaml(o: {
  admin: number;
  endpoints: readonly string[];
  dir: string;
  workers?: number;
  extra?: string;
  adminExtra?: string;
}): string {
  return `
admin: { address: 127.0.0.1, port: ${o.admin}, token_file: ${join(o.dir, 'admin.token')}${o.adminExtra ?? ''} }
cluster: { workers: ${o.workers ?? 2}, drain_timeout: 1s }
source:
  type: chainfire
  endpoints: [${o.endpoints.join(', ')}]
  last_good: ${join(o.dir, 'state', 'last-good.json')}
${o.extra ?? ''}
load_balancers: []
`;
}

export async function startChainfireLb(
  endpoints: readonly string[],
  opts: {
    workers?: number;
    extra?: string;
    adminExtra?: string;
    dir?: string;
    until?: 'ok' | 'serving';
  } = {},
): Promise<ChainfireLb> {
  const dir = opts.dir ?? tempDir();
  const admin = await freeTcpPort();
  const file = writeConfig(dir, chainfireYaml({ admin, endpoints, dir, ...opts }));
  const lb = await startLb(file, admin, 20_000, { until: opts.until ?? 'ok' });
  const { readFileSync } = await import('node:fs');
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const health = async () =>
    (await (await fetch(`http://127.0.0.1:${admin}/healthz`)).json()) as Awaited<
      ReturnType<ChainfireLb['health']>
    >;
  return {
    lb,
    dir,
    admin,
    token,
    status: async () => {
      const r = await fetch(`http://127.0.0.1:${admin}/status`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return (await r.json()) as never;
    },
    health,
    appliedEverywhere: async (rev) => {
      const h = await health();
      return h.revision === rev && h.workers_ready === h.workers;
    },
  };
}

/** Poll until `fn` returns a truthy value (or throw with the last value after `ms`). */
export async function eventually<T>(fn: () => Promise<T>, ms = 10_000, what = 'condition'): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`${what} not reached within ${ms} ms (last: ${String(last)})`);
    await sleep(25);
  }
}

/** GET through FiberLB on fresh connections until `want` answers (so each worker is asked). */
export async function body(port: number, path = '/'): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' } });
  return `${res.status} ${await res.text()}`;
}

/**
 * A TCP proxy to `target` that can be cut (every connection destroyed, new ones refused) or
 * frozen (open connections stay open but carry nothing more, like a peer that vanished without
 * a FIN or RST; new connections work).
 */
export async function cuttableProxy(target: string): Promise<{
  url: string;
  cut(): void;
  freeze(): void;
  restore(): Promise<void>;
  close(): Promise<void>;
}> {
  const { hostname, port } = new URL(target);
  const socks = new Set<Socket>();
  const frozen = new Set<Socket>();
  let server: Server | undefined;
  const listenPort = await freeTcpPort();
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        const up = connect(Number(port), hostname);
        socks.add(client).add(up);
        const drop = () => {
          client.destroy();
          up.destroy();
          socks.delete(client);
          socks.delete(up);
        };
        client.on('error', drop).on('close', drop);
        up.on('error', drop).on('close', drop);
        client.pipe(up).pipe(client);
      });
      server.listen(listenPort, '127.0.0.1', () => resolve());
    });
  await listen();
  const cut = () => {
    server?.close();
    server = undefined;
    for (const s of socks) s.destroy();
    socks.clear();
  };
  const freeze = () => {
    for (const sock of socks) {
      sock.unpipe();
      sock.pause();
      frozen.add(sock);
    }
    socks.clear(); // left open until close()
  };
  return {
    url: `http://127.0.0.1:${listenPort}`,
    cut,
    freeze,
    restore: listen,
    close: async () => {
      cut();
      for (const sock of frozen) sock.destroy();
    },
  };
}
