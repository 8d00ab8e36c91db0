// What `npm start` runs for a config: one small backend for every loopback backend the config
// points at (HTTP, TCP echo or UDP echo, from the listeners that use its pool), and the
// commands to try against each listener. Deriving both from the config keeps the demo, the
// banner and config/fiberlb.yaml from drifting apart, and lets tests run the demo on free ports.

import type { Config, ListenerConfig, LoadBalancerConfig } from '../config/model.ts';

export type DemoKind = 'http' | 'tcp' | 'udp';

export interface DemoBackendSpec {
  readonly kind: DemoKind;
  /** What an HTTP backend says it is: the pool name, or pool-N when the pool has several. */
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export interface DemoTry {
  readonly command: string;
  readonly note: string;
}

const KIND: Record<ListenerConfig['protocol'], DemoKind> = {
  http: 'http',
  https: 'http',
  tcp: 'tcp',
  tls_passthrough: 'tcp',
  udp: 'udp',
};

function isLoopback(address: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(address) || address === '::1';
}

function poolsOf(l: ListenerConfig): string[] {
  return [...(l.defaultPool ? [l.defaultPool] : []), ...l.routes.map((r) => r.pool)];
}

function backendName(pool: string, index: number, count: number): string {
  return count === 1 ? pool : `${pool}-${index + 1}`;
}

/** The demo backends for a config; a pool no listener uses, or a non-loopback backend, gets none. */
export function demoBackends(config: Config): DemoBackendSpec[] {
  const out: DemoBackendSpec[] = [];
  const seen = new Set<string>();
  for (const lb of config.dynamic.loadBalancers) {
    for (const pool of lb.pools) {
      const user = lb.listeners.find((l) => poolsOf(l).includes(pool.name));
      if (!user) continue;
      const kind = KIND[user.protocol];
      pool.backends.forEach((b, i) => {
        const key = `${kind === 'udp' ? 'udp' : 'tcp'} ${b.address} ${b.port}`;
        if (!isLoopback(b.address) || seen.has(key)) return;
        seen.add(key);
        out.push({
          kind,
          name: backendName(pool.name, i, pool.backends.length),
          address: b.address,
          port: b.port,
        });
      });
    }
  }
  return out;
}

/** host:port for a URL, with a wildcard VIP replaced by the loopback address of its family. */
function hostPort(address: string, port: number): string {
  const host = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function poolNote(lb: LoadBalancerConfig, name: string): string {
  const pool = lb.pools.find((p) => p.name === name);
  if (!pool) return `pool ${name}`;
  const names = pool.backends.map((_, i) => backendName(pool.name, i, pool.backends.length));
  return pool.backends.length > 1
    ? `pool ${name}: ${pool.algorithm} over ${names.join(', ')}`
    : `pool ${name}`;
}

function httpTries(lb: LoadBalancerConfig, l: ListenerConfig): DemoTry[] {
  const base = `http://${hostPort(lb.vip, l.port)}`;
  const out: DemoTry[] = [];
  if (l.defaultPool) out.push({ command: `curl -s ${base}/hello`, note: poolNote(lb, l.defaultPool) });
  for (const r of l.routes) {
    const args: string[] = [];
    const why: string[] = [];
    const method = r.match.methods.find((m) => m !== 'GET');
    if (method && !r.match.methods.includes('GET')) args.push(`-X ${method}`);
    if (r.match.host) {
      args.push(`-H 'Host: ${r.match.host.replace(/^\*/, 'demo')}'`);
      why.push('host');
    }
    for (const h of r.match.headers) {
      args.push(`-H '${h.name}: ${h.value === '*' ? '1' : h.value}'`);
      why.push(`header ${h.name}`);
    }
    let path = '/v1/users';
    if (r.match.pathPrefix) {
      path = `${r.match.pathPrefix}${r.match.pathPrefix.endsWith('/') ? '' : '/'}whoami`;
      why.push('path_prefix');
    }
    if (method) why.push('method');
    out.push({
      command: ['curl -s', ...args, `${base}${path}`].join(' '),
      note: `${poolNote(lb, r.pool)} (route by ${why.join(', ')})`,
    });
  }
  return out;
}

/** The commands the banner prints: each listener of each load balancer, then the admin API. */
export function demoTries(config: Config): DemoTry[] {
  const out: DemoTry[] = [];
  for (const lb of config.dynamic.loadBalancers) {
    for (const l of lb.listeners) {
      const pool = l.defaultPool ? poolNote(lb, l.defaultPool) : '';
      if (l.protocol === 'http') out.push(...httpTries(lb, l));
      else if (l.protocol === 'tcp' || l.protocol === 'tls_passthrough')
        out.push({
          command: `node dist/demo/send.js tcp://${hostPort(lb.vip, l.port)} hello`,
          note: `TCP → ${pool}`,
        });
      else if (l.protocol === 'udp')
        out.push({
          command: `node dist/demo/send.js udp://${hostPort(lb.vip, l.port)} hello`,
          note: `UDP → ${pool}`,
        });
      // https listeners are validated but not served yet: nothing to try.
    }
  }
  out.push({
    command: `curl -s http://${hostPort(config.static.admin.address, config.static.admin.port)}/healthz`,
    note: 'admin API (no token needed for /healthz)',
  });
  return out;
}

/** Commands padded into one column, notes after `#`. */
export function formatTries(tries: readonly DemoTry[], indent = '  '): string {
  const width = Math.max(...tries.map((t) => t.command.length));
  return tries.map((t) => `${indent}${t.command.padEnd(width)}  # ${t.note}`).join('\n');
}
