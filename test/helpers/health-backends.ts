// Backends for the health tests: real HTTP servers on 127.0.0.1 that count what reaches them
// (probes and traffic apart), can turn their health endpoint bad, and can be killed and
// brought back on the same port. Plus reading the primary's /status with its token, and a
// running 2-worker FiberLB whose one pool has a health check over such backends.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { lbConfigHead, type RunningLb, startLb, tempDir, writeConfig } from './cluster-fiberlb.ts';
import { freeTcpPort } from './net.ts';

export interface HealthBackend {
  readonly name: string;
  port: number;
  /** Requests to /healthz (probes) and to anything else (traffic). */
  probes: number;
  traffic: number;
  /** Methods of traffic requests, in order. */
  readonly methods: string[];
  /** What /healthz answers. */
  healthStatus: number;
  healthBody: string;
  /** Time of the last traffic request (ms). */
  lastTrafficAt: number;
  /** Times of traffic requests (ms), in order. */
  readonly trafficTimes: number[];
  /** Status traffic requests get (200 unless a test makes it fail). */
  trafficStatus: number;
  kill(): Promise<void>;
  revive(): Promise<void>;
  close(): Promise<void>;
}

/** A backend answering its name on every path; /healthz answers healthStatus/healthBody. */
export async function healthBackend(name: string, port = 0): Promise<HealthBackend> {
  const sockets = new Set<Socket>();
  let server: http.Server | undefined;
  const b: HealthBackend = {
    name,
    port,
    probes: 0,
    traffic: 0,
    methods: [],
    healthStatus: 200,
    healthBody: 'ok',
    lastTrafficAt: 0,
    trafficTimes: [],
    trafficStatus: 200,
    async kill() {
      const s = server;
      server = undefined;
      if (!s) return;
      await new Promise<void>((r) => {
        s.close(() => r());
        for (const c of sockets) c.destroy();
      });
    },
    async revive() {
      if (server) return;
      server = http.createServer((req, res) => {
        req.resume();
        if (req.url === '/healthz') {
          b.probes++;
          res.writeHead(b.healthStatus, { 'content-type': 'text/plain' }).end(b.healthBody);
          return;
        }
        b.traffic++;
        b.methods.push(req.method ?? '');
        b.lastTrafficAt = Date.now();
        b.trafficTimes.push(b.lastTrafficAt);
        // /slow?ms=N answers after N ms (a request in flight for drain tests).
        const slow = /^\/slow\?ms=(\d+)/.exec(req.url ?? '');
        const status = b.trafficStatus;
        const reply = () => res.writeHead(status, { 'content-type': 'text/plain' }).end(name);
        req.on('end', () => (slow ? setTimeout(reply, Number(slow[1])) : reply()));
      });
      server.keepAliveTimeout = 30_000;
      server.on('connection', (c: Socket) => {
        sockets.add(c);
        c.on('close', () => sockets.delete(c));
      });
      const s = server;
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(b.port, '127.0.0.1', () => resolve());
      });
      b.port = (s.address() as AddressInfo).port;
    },
    close() {
      return b.kill();
    },
  };
  await b.revive();
  return b;
}

/** Health backends named `names`, closed after the test. */
export async function healthBackends<N extends string[]>(
  t: TestContext,
  ...names: N
): Promise<{ [K in keyof N]: HealthBackend }> {
  const bs = await Promise.all(names.map((n) => healthBackend(n)));
  t.after(() => Promise.all(bs.map((b) => b.close())));
  return bs as { [K in keyof N]: HealthBackend };
}

/** Pool `web` of the health cluster tests (see hcYaml). */
export interface HcPool {
  /** The flow mapping after `health_check:`. */
  readonly healthCheck: string;
  /** More lines of pool web (indented 8 spaces), before its backends. */
  readonly pool?: string;
  /** Appended to backend i's flow mapping, e.g. ', admin_state: drain'. */
  readonly backendExtra?: readonly string[];
}

/**
 * 2 workers; LB `hc` with http listener `api` on port `api` → pool `web` (health-checked) with
 * backends b0, b1, … on `ports`; admin API on `admin` with a token file.
 */
export function hcYaml(admin: number, api: number, ports: readonly number[], o: HcPool): string {
  return `${lbConfigHead(admin, 'workers: 2, drain_timeout: 2s', 'hc')}      - { name: api, port: ${api}, protocol: http, default_pool: web }
    pools:
      - name: web
        health_check: ${o.healthCheck}
${o.pool === undefined ? '' : `${o.pool}\n`}        backends:
${ports.map((p, i) => `          - { id: b${i}, address: 127.0.0.1, port: ${p}${o.backendExtra?.[i] ?? ''} }`).join('\n')}
`;
}

export interface HcLb {
  readonly lb: RunningLb;
  readonly dir: string;
  readonly file: string;
  readonly admin: number;
  readonly api: number;
  /** The config it started with. */
  readonly yaml: string;
  /** That config with other pool settings (same ports). */
  config(o: HcPool): string;
}

/** FiberLB running hcYaml() over `backends` (stopped after the test). */
export async function startHcLb(
  t: TestContext,
  backends: readonly HealthBackend[],
  o: HcPool,
): Promise<HcLb> {
  const dir = tempDir();
  const admin = await freeTcpPort();
  const api = await freeTcpPort();
  const config = (p: HcPool) =>
    hcYaml(
      admin,
      api,
      backends.map((b) => b.port),
      p,
    );
  const yaml = config(o);
  const file = writeConfig(dir, yaml);
  const lb = await startLb(file, admin);
  t.after(() => lb.stop());
  return { lb, dir, file, admin, api, yaml, config };
}

/** POST /reload to a running FiberLB whose token file is `dir/admin.token`: the HTTP status. */
export async function adminReload(adminPort: number, dir: string): Promise<number> {
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const r = await fetch(`http://127.0.0.1:${adminPort}/reload`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  await r.text();
  return r.status;
}

/** GET /status from a running FiberLB whose token file is `dir/admin.token`. */
export async function adminStatus(adminPort: number, dir: string): Promise<StatusBody> {
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const r = await fetch(`http://127.0.0.1:${adminPort}/status`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (r.status !== 200) throw new Error(`/status answered ${r.status}`);
  return (await r.json()) as StatusBody;
}

export interface StatusBody {
  readonly errors: Record<string, number>;
  readonly health: {
    readonly down: string[];
    readonly pools: Array<{ pool: string; enabled: number; healthy: number; panic: boolean }>;
    readonly backends: Array<{
      backend: string;
      state: string;
      admin_state: string;
      probes: Array<{ time: string; duration_ms: number; outcome: string; reason: string }>;
      outlier?: { ejected: boolean; ejections: number; ejected_until?: string };
      drain?: { in_flight: number; drained: boolean };
    }>;
  };
  readonly [k: string]: unknown;
}

/** Poll `fn` until it returns true (or throw after `timeoutMs`, naming `what`). */
export async function waitFor(
  what: string,
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface RawBackend {
  readonly port: number;
  /** Requests answered. */
  requests: number;
  /** Idle sockets this backend closed on its timer. */
  idleCloses: number;
  close(): Promise<void>;
}

/**
 * A minimal keep-alive HTTP/1.1 backend on node:net that closes a connection once it has been
 * idle for `idleCloseMs`, without announcing it (no Keep-Alive: timeout hint, as many servers
 * and middleboxes do): the stale keep-alive race, on demand. Handles GETs without bodies.
 */
/**
 * `lateFin`: the close on the timer is decided but its FIN held back until the next request
 * arrives, which is then reset unanswered. This is the race's worst case, every time: the
 * proxy cannot have seen the close before it reuses the socket (a real FIN racing the request
 * loses only now and then, and almost never on a quiet machine).
 */
export async function idleClosingBackend(
  idleCloseMs: number,
  name = 'raw',
  o: { lateFin?: boolean } = {},
): Promise<RawBackend> {
  const { createServer } = await import('node:net');
  const sockets = new Set<Socket>();
  const b = { port: 0, requests: 0, idleCloses: 0, close: async () => {} } as RawBackend;
  const server = createServer((c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
    c.on('error', () => {});
    let buf = '';
    let timer = setTimeout(() => idle(), idleCloseMs);
    let closed = false;
    const idle = () => {
      b.idleCloses++;
      if (o.lateFin) closed = true;
      else c.end();
    };
    c.on('data', (d: Buffer) => {
      clearTimeout(timer);
      if (closed) {
        c.destroy();
        return;
      }
      buf += d.toString('latin1');
      let end = buf.indexOf('\r\n\r\n');
      while (end >= 0) {
        buf = buf.slice(end + 4);
        b.requests++;
        c.write(
          `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${name.length}\r\n\r\n${name}`,
        );
        end = buf.indexOf('\r\n\r\n');
      }
      timer = setTimeout(idle, idleCloseMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  (b as { port: number }).port = (server.address() as AddressInfo).port;
  b.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    });
  return b;
}
