// Open-loop load for the rate-limit acceptance tests: `rps` requests per second for `seconds`,
// spread round-robin over `connections` keep-alive connections (undici Pools, one connection
// each, so the kernel spreads them over the workers as it would real clients). Counts 200s and
// 429s; anything else is returned as an error.

import { Pool } from 'undici';

export interface LoadResult {
  ok: number;
  limited: number;
  errors: string[];
  /** First send to last send, ms. */
  spanMs: number;
}

export async function paced(
  url: string,
  o: { rps: number; seconds: number; connections: number; headers?: Record<string, string> },
): Promise<LoadResult> {
  const origin = new URL(url).origin;
  const path = new URL(url).pathname;
  // One connection per Pool, pipelined so one connection keeps up with the whole rate.
  const pools = Array.from(
    { length: o.connections },
    () => new Pool(origin, { connections: 1, pipelining: o.connections === 1 ? 32 : 4 }),
  );
  const r: LoadResult = { ok: 0, limited: 0, errors: [], spanMs: 0 };
  const pending: Array<Promise<void>> = [];
  const total = Math.round(o.rps * o.seconds);
  const start = performance.now();
  let sent = 0;
  let last = start;
  try {
    while (sent < total) {
      const due = Math.floor(((performance.now() - start) / 1000) * o.rps) + 1;
      while (sent < Math.min(due, total)) {
        const pool = pools[sent % pools.length]!;
        sent++;
        last = performance.now();
        pending.push(
          pool.request({ path, method: 'GET', headers: o.headers }).then(
            async (res) => {
              await res.body.text();
              if (res.statusCode === 200) r.ok++;
              else if (res.statusCode === 429) r.limited++;
              else r.errors.push(`status ${res.statusCode}`);
            },
            (err: Error) => {
              r.errors.push(err.message);
            },
          ),
        );
      }
      await new Promise((res) => setTimeout(res, 2));
    }
    await Promise.all(pending);
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  r.spanMs = last - start;
  return r;
}
