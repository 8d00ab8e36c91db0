// CPU cost of routing alone, in process: Router.match with the `routes` scenario's tables (N−1
// host routes that never match, then a catch-all; bench/lib/configs.mjs) for N = 10 and
// 10,000, and the time to build each table. Run after `npm run build`:
//   node bench/routes-micro.mjs [DIST_DIR]   (default ./dist; another build's dist for a before/after)

import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = path.resolve(process.argv[2] ?? new URL('../dist', import.meta.url).pathname);
const { Router } = await import(pathToFileURL(path.join(dist, 'worker/routing/router.js')).href);

const match = (m) => ({
  host: undefined,
  sni: undefined,
  pathPrefix: undefined,
  headers: [],
  methods: [],
  ...m,
});
function table(n) {
  const routes = Array.from({ length: n - 1 }, (_, i) => ({
    pool: 'backend',
    match: match({ host: `r${i}.bench.example` }),
    rateLimits: [],
  }));
  routes.push({ pool: 'backend', match: match({ pathPrefix: '/' }), rateLimits: [] });
  const start = process.hrtime.bigint();
  const router = new Router({ routes, defaultPool: undefined }, new Map());
  return { router, buildMs: Number(process.hrtime.bigint() - start) / 1e6 };
}

const headers = { host: '127.0.0.1:8080', 'user-agent': 'bench', accept: '*/*' };
for (const n of [10, 10_000]) {
  const { router, buildMs } = table(n);
  if (router.match('GET', '/', '127.0.0.1:8080', headers)?.index !== n - 1)
    throw new Error('not the catch-all');
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    // Batches of 1,000 calls until the round has run 200 ms.
    let calls = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < 200e6) {
      for (let i = 0; i < 1000; i++) router.match('GET', '/', '127.0.0.1:8080', headers);
      calls += 1000;
      elapsed = Number(process.hrtime.bigint() - start);
    }
    best = Math.min(best, elapsed / calls);
  }
  console.log(
    `${n} routes: ${best.toFixed(0)} ns per match (best of 5 rounds), table built in ${buildMs.toFixed(1)} ms`,
  );
}
