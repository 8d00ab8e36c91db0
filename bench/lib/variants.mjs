// FiberLB config variants shared by the bench targets (bench/lib/targets.mjs) and the HTTP
// profiler (bench/profile-http.mjs): the keys each one adds to bench/lib/configs.mjs's config.

import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fiberlbConfig } from './configs.mjs';
import { freePort, httpGet, spawnPinned, stop } from './proc.mjs';

/** Pool keys for fiberlb-health: every issue-7 mechanism on, none of them ever triggered. */
const HEALTH_POOL = `        health_check: { type: http, path: /, interval: 1s, timeout: 500ms }
        outlier_detection: { consecutive_failures: 5, on_status: [502, 503, 504] }
        retry: { attempts: 2, on_status: [502, 503] }
        slow_start: 10s
`;

export const VARIANTS = {
  plain: {},
  // Health checks, outlier detection, retries, slow start and circuit breakers (none hit).
  health: { poolExtra: HEALTH_POOL, backendExtra: ', max_connections: 100000, max_requests: 100000' },
  // A rate limit that is never hit (rate and burst 1,000,000/s).
  ratelimit: { listenerExtra: 'rate_limit: { key: client_ip, rate: 1000000, burst: 1000000 }' },
  // Every request in an access log file.
  log: { accessLog: true },
  // The same requests through a tcp listener (the l4-tcp scenario's path: L4 splice, not HTTP).
  tcp: { protocol: 'tcp' },
};

/**
 * Start the built FiberLB (1 worker, pinned to CPU 0) with VARIANTS[name] in front of
 * `backendPort`, config and logs in `dir`; resolves once its admin /healthz answers 200.
 * `nodeArgs` go before cli.js (e.g. --cpu-prof: cluster workers inherit them); `cli` is
 * another build's cli.js (default: this checkout's dist/).
 */
export async function startVariant({ root, name, dir, backendPort, nodeArgs = [], cli }) {
  const [port, adminPort] = [await freePort(), await freePort()];
  const cfg = VARIANTS[name];
  const conf = fiberlbConfig({
    dir,
    port,
    adminPort,
    backendPort,
    ...cfg,
    accessLog: cfg.accessLog ? path.join(dir, 'access.log') : undefined,
  });
  const child = spawnPinned(
    name,
    '0',
    process.execPath,
    [...nodeArgs, cli ?? path.join(root, 'dist/cli.js'), 'run', '--config', conf],
    {
      cwd: root,
      env: { NODE_ENV: 'production' },
    },
  );
  for (let i = 0; i < 200; i++) {
    try {
      if ((await httpGet(adminPort, '/healthz', '127.0.0.1', 500)).status === 200)
        return { name, child, port };
    } catch {}
    await sleep(100);
  }
  await stop(child, 5_000);
  throw new Error(`${name} did not become ready`);
}
