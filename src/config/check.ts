// `fiberlb check FILE`: validate a config file and describe the outcome as printable lines.

import { FileSource } from './file-source.ts';
import { formatIssue } from './issue.ts';
import type { Config } from './model.ts';
import { poolTlsWarnings } from './pool-tls.ts';

export async function checkConfigFile(path: string): Promise<{ ok: boolean; lines: string[] }> {
  const source = new FileSource(path);
  try {
    const r = await source.load();
    if (!r.ok) return { ok: false, lines: r.issues.map(formatIssue) };
    const notes = [...poolTlsWarnings(r.config.dynamic).map((n) => `${path}: warning: ${n}`)];
    return { ok: true, lines: [`${path}: OK (${summarize(r.config)})`, ...notes] };
  } finally {
    await source.close();
  }
}

export function summarize(config: Config): string {
  const lbs = config.dynamic.loadBalancers;
  const listeners = lbs.reduce((n, lb) => n + lb.listeners.length, 0);
  const pools = lbs.reduce((n, lb) => n + lb.pools.length, 0);
  const backends = lbs.reduce((n, lb) => n + lb.pools.reduce((m, p) => m + p.backends.length, 0), 0);
  return [
    count(lbs.length, 'load balancer'),
    count(listeners, 'listener'),
    count(pools, 'pool'),
    count(backends, 'backend'),
  ].join(', ');
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
